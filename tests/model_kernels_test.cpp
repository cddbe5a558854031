// The forward kernels (both compiled copies) against plain double-precision loops, over
// head sizes that hit the hd=8 fast path, the 4-wide blocks and their tails, and window
// lengths around the 8-lane vector width.
#include "models/forward_kernels.h"
#include "test_util.h"

#include <cmath>
#include <random>
#include <vector>

namespace fb {
namespace {

using KernelFn = void (*)(const AttentionHeadArgs&);

struct HeadData {
  int T, hd;
  long ld;  // row stride of q/k/v/out (wider than hd, as inside a multi-head matrix)
  std::vector<float> q, k, v;
  HeadData(int T_, int hd_, uint64_t seed) : T(T_), hd(hd_), ld(hd_ + 3) {
    std::mt19937 rng{static_cast<uint32_t>(seed)};
    std::normal_distribution<float> n(0.f, 2.f);
    for (auto* x : {&q, &k, &v}) {
      x->resize(size_t(T * ld));
      for (float& e : *x) e = n(rng);
    }
  }
  std::vector<float> run(KernelFn fn) const {
    std::vector<float> out(size_t(T * ld), -7.f), scratch(size_t(attention_scratch_floats(T, hd)));
    AttentionHeadArgs a{q.data(), k.data(), v.data(), out.data(), ld, ld, ld, ld, T, hd,
                        1.0f / std::sqrt(float(hd)), scratch.data()};
    fn(a);
    return out;
  }
  std::vector<double> reference() const {
    std::vector<double> out(size_t(T * ld), -7.0);
    for (int t = 0; t < T; ++t) {
      std::vector<double> w(size_t(t + 1));
      double mx = -1e300, sum = 0;
      for (int s = 0; s <= t; ++s) {
        double dot = 0;
        for (int i = 0; i < hd; ++i) dot += double(q[size_t(t * ld + i)]) * k[size_t(s * ld + i)];
        w[size_t(s)] = dot / std::sqrt(double(hd));
        mx = std::max(mx, w[size_t(s)]);
      }
      for (double& e : w) sum += (e = std::exp(e - mx));
      for (int i = 0; i < hd; ++i) {
        double acc = 0;
        for (int s = 0; s <= t; ++s) acc += w[size_t(s)] * v[size_t(s * ld + i)];
        out[size_t(t * ld + i)] = acc / sum;
      }
    }
    return out;
  }
};

void expect_close(const std::vector<float>& got, const std::vector<double>& want, const std::string& what) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  EXPECT_LE(worst, 2e-5) << what;  // values are O(1); untouched padding columns must stay -7
}

TEST(ModelKernels, AttentionBothCopiesMatchReference) {
  for (int hd : {2, 6, 8, 16, 64})
    for (int T : {1, 5, 8, 9, 33, 100}) {
      const HeadData d(T, hd, uint64_t(hd * 1000 + T));
      const auto want = d.reference();
      const std::string what = "hd=" + std::to_string(hd) + " T=" + std::to_string(T);
      expect_close(d.run(kernel_detail::causal_attention_head_generic), want, "generic " + what);
      if (std::string(forward_kernels_isa()) == "avx2")
        expect_close(d.run(kernel_detail::causal_attention_head_avx2), want, "avx2 " + what);
    }
}

// Scores far apart (one key dominating, others underflowing) must still give weights
// summing to one without NaN.
TEST(ModelKernels, AttentionSurvivesExtremeScores) {
  HeadData d(20, 8, 3);
  for (float& x : d.q) x *= 300.f;
  const auto got = d.run(causal_attention_head);
  for (float x : got) EXPECT_TRUE(std::isfinite(x));
  expect_close(got, d.reference(), "extreme");
}

TEST(ModelKernels, SiluMultiplyMatchesFormula) {
  std::vector<float> gate, up;
  for (int i = -50; i <= 50; ++i) {
    gate.push_back(float(i) * 0.37f);
    up.push_back(1.0f + float(i % 7) * 0.25f);
  }
  gate.push_back(-200.f);  // e^{200}: overflow path
  up.push_back(1.f);
  gate.push_back(200.f);
  up.push_back(1.f);
  for (auto fn : {kernel_detail::silu_multiply_generic, silu_multiply}) {
    std::vector<float> g = gate;
    fn(g.data(), up.data(), long(g.size()));
    for (size_t i = 0; i < g.size(); ++i) {
      const double want = double(gate[i]) / (1.0 + std::exp(-double(gate[i]))) * up[i];
      EXPECT_NEAR(g[i], want, 1e-6 * std::max(1.0, std::abs(want))) << "gate " << gate[i];
    }
  }
}

}  // namespace
}  // namespace fb
