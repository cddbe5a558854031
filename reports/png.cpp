#include "reports/png.h"

#include <zlib.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>

namespace fb {

namespace {

uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

int paeth(int a, int b, int c) {
  int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

// Undoes the per-scanline filters (PNG spec §9) in place into img.pixels.
void unfilter(const std::vector<uint8_t>& raw, Image& img, const std::string& name) {
  const size_t bpp = img.channels, stride = size_t(img.width) * bpp;
  img.pixels.assign(stride * img.height, 0);
  for (int y = 0; y < img.height; ++y) {
    const uint8_t* in = raw.data() + y * (stride + 1);
    uint8_t filter = in[0];
    uint8_t* out = img.pixels.data() + y * stride;
    const uint8_t* up = y ? out - stride : nullptr;
    for (size_t x = 0; x < stride; ++x) {
      int a = x >= bpp ? out[x - bpp] : 0, b = up ? up[x] : 0, c = up && x >= bpp ? up[x - bpp] : 0;
      int v = in[1 + x];
      switch (filter) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) / 2; break;
        case 4: v += paeth(a, b, c); break;
        default: throw std::runtime_error(name + ": bad PNG filter type " + std::to_string(filter));
      }
      out[x] = static_cast<uint8_t>(v);
    }
  }
}

}  // namespace

Image read_png(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + name);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || !std::equal(kSignature, kSignature + 8, bytes.begin()))
    throw std::runtime_error(name + " is not a PNG file");
  Image img;
  std::vector<uint8_t> idat;
  for (size_t pos = 8; pos + 8 <= bytes.size();) {
    uint32_t len = be32(&bytes[pos]);
    std::string type(bytes.begin() + pos + 4, bytes.begin() + pos + 8);
    if (pos + 12 + len > bytes.size()) throw std::runtime_error(name + ": truncated chunk " + type);
    const uint8_t* data = &bytes[pos + 8];
    if (type == "IHDR") {
      img.width = static_cast<int>(be32(data));
      img.height = static_cast<int>(be32(data + 4));
      int depth = data[8], colour = data[9], interlace = data[12];
      static const std::array<int, 7> kChannels = {1, 0, 3, 0, 2, 0, 4};
      if (depth != 8 || colour > 6 || kChannels[colour] == 0 || interlace != 0)
        throw std::runtime_error(name + ": only 8-bit non-interlaced grey/RGB/RGBA PNGs are supported");
      img.channels = kChannels[colour];
    } else if (type == "IDAT") {
      idat.insert(idat.end(), data, data + len);
    } else if (type == "IEND") {
      break;
    }
    pos += 12 + len;
  }
  if (img.width <= 0 || img.height <= 0) throw std::runtime_error(name + ": no IHDR chunk");
  uLongf raw_size = static_cast<uLongf>((size_t(img.width) * img.channels + 1) * img.height);
  std::vector<uint8_t> raw(raw_size);
  if (uncompress(raw.data(), &raw_size, idat.data(), static_cast<uLong>(idat.size())) != Z_OK ||
      raw_size != raw.size())
    throw std::runtime_error(name + ": corrupt image data");
  unfilter(raw, img, name);
  return img;
}

PixelStats pixel_stats(const Image& img) {
  PixelStats s;
  if (img.pixels.empty()) return s;
  auto rgb = [&](size_t i) -> uint32_t {
    const uint8_t* p = &img.pixels[i * img.channels];
    return img.channels >= 3 ? (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2] : uint32_t(p[0]) * 0x010101u;
  };
  const size_t n = size_t(img.width) * img.height;
  const uint32_t background = rgb(0);
  std::set<uint32_t> colours;
  size_t differ = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t c = rgb(i);
    differ += c != background;
    if (colours.size() < 4096) colours.insert(c);
  }
  s.non_background = double(differ) / n;
  s.distinct_colours = static_cast<int>(colours.size());
  return s;
}

}  // namespace fb
