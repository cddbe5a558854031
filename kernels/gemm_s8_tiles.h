// Internal to the integer GEMM (kernels/gemm_s8.cpp): the per-ISA register-tile kernels and
// the packed weight layouts they read. Each ISA's tiles live in their own .cpp compiled with
// that ISA's flags (kernels/CMakeLists.txt); nothing here may be called unless
// isa_supported() said so.
//
// Packed layouts (per panel of NR output columns; k padded with zeros to the group size):
//   vnni s8: [k/4][64 cols][4 bytes]            byte = w + 128
//   vnni s4: [k/8][4 col-groups of 16][64 bytes] byte i of col-group j: low nibble = w+8 at
//            (col 16j + i/4, k = 8·o + i%4), high nibble = w+8 at (same col, k = 8·o + 4 + i%4)
//   avx2 s8: [k/2][16 cols][2 int16]            sign-extended w
//   avx2 s4: [k/4][2 col-halves of 8][16 bytes]  byte i of half h: low nibble = w+8 at
//            (col 8h + i/2, k = 4·q + i%2), high nibble = w+8 at (same col, k = 4·q + 2 + i%2)
#pragma once

#include <cstdint>

namespace fb::gemm_detail {

constexpr int kVnniMR = 6, kVnniNR = 64;
constexpr int kAvx2MR = 4, kAvx2NR = 16;

// One register tile's work: rows × cols of C over k ∈ [k0, k0 + k_len).
struct TileJob {
  const void* a = nullptr;  // A at (row0, k0): packed int8 tile (vnni) or int16 rows (avx2)
  long lda = 0;             // int16 elements per row (avx2 only)
  const uint8_t* b = nullptr;  // packed panel at k0
  long k_len = 0;
  int rows = 0, cols = 0;   // valid rows ≤ MR, valid cols ≤ NR
  bool first = true;        // start from zero (else from the int32 partials in c)
  bool last = true;         // apply the epilogue (else store int32 partials to c)
  int32_t* c = nullptr;     // int32 partials / int32 output at (row0, col0)
  long ldc = 0;
  const int32_t* row_corr = nullptr;  // subtracted from every column of a row (offset·Σₖa), or null
  float* y = nullptr;       // fp32 output at (row0, col0); null → int32 output in c
  long ldy = 0;
  const float* sa = nullptr;  // at row0 when sa_per_row, else one value
  bool sa_per_row = false;
  const float* sb = nullptr;  // at col0 when sb_per_col, else one value
  bool sb_per_col = false;
  const float* bias = nullptr;  // at col0, or null
};

// The vnni tiles read A packed per tile of kVnniMR rows as [k/4 groups][kVnniMR][4 bytes],
// zero-padded to a whole number of k-octets.
constexpr long kPackedGroupBytes = 4 * kVnniMR;
long packed_a_tile_bytes(long k_len);
// Packs rows [0, rows) × k [0, k_len) of A (row stride lda) into consecutive tiles.
void pack_a_vnni(const int8_t* A, long lda, long rows, long k_len, int8_t* out);
void tile_vnni_s8(const TileJob& job);
void tile_vnni_s4(const TileJob& job);
// out[m] = offset · Σₖ A[m,k] for rows [0, M) (A row stride lda).
void row_corrections_avx512(const int8_t* A, long M, long K, long lda, int32_t offset, int32_t* out);

void tile_avx2_s8(const TileJob& job);
void tile_avx2_s4(const TileJob& job);
// A16 (row stride ld16 ≥ K, zero-filled beyond K) = int16(A); out[m] = offset·Σₖ A[m,k] when out.
void widen_rows_avx2(const int8_t* A, long M, long K, int16_t* A16, long ld16, int32_t offset, int32_t* out);

}  // namespace fb::gemm_detail
