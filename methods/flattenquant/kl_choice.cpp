#include "methods/flattenquant/kl_choice.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace fb {

Histogram::Histogram(float r, int bins, bool sign) : range(r), is_signed(sign) {
  if (bins < 2) throw std::invalid_argument(fmt::format("flattenquant: histogram needs ≥ 2 bins, got {}", bins));
  if (!(r > 0)) throw std::invalid_argument(fmt::format("flattenquant: histogram range must be > 0, got {}", r));
  counts.assign(size_t(sign ? 2 * bins : bins), 0.0);
}

void Histogram::add(const float* v, long n) {
  const long B = long(counts.size());
  const double lo = is_signed ? -double(range) : 0.0;
  const double width = (is_signed ? 2.0 * range : double(range)) / double(B);
  for (long i = 0; i < n; ++i) {
    const double x = is_signed ? double(v[i]) : std::fabs(double(v[i]));
    const long b = std::clamp(long(std::floor((x - lo) / width)), 0L, B - 1);
    counts[size_t(b)] += 1;
  }
}

double Histogram::total() const { return std::accumulate(counts.begin(), counts.end(), 0.0); }

double kl_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  if (p.size() != q.size()) throw std::invalid_argument("kl_divergence: histograms differ in length");
  const double sp = std::accumulate(p.begin(), p.end(), 0.0), sq = std::accumulate(q.begin(), q.end(), 0.0);
  if (!(sp > 0) || !(sq > 0)) throw std::invalid_argument("kl_divergence: empty histogram");
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    if (q[i] <= 0) throw std::invalid_argument(fmt::format("kl_divergence: Q is 0 at bin {} where P > 0", i));
    const double pi = p[i] / sp, qi = q[i] / sq;
    kl += pi * std::log(pi / qi);
  }
  return std::max(kl, 0.0);  // the sum is ≥ 0 mathematically; clamp rounding residue
}

std::vector<double> quantized_reference(const Histogram& h, int bits) {
  if (bits < 2 || bits > 8) throw std::invalid_argument(fmt::format("flattenquant: KL bits must be 2..8, got {}", bits));
  const long B = long(h.counts.size());
  const int qmax = (1 << (bits - 1)) - 1, qmin = h.is_signed ? -qmax - 1 : 0;
  const double lo = h.is_signed ? -double(h.range) : 0.0;
  const double width = (h.is_signed ? 2.0 * h.range : double(h.range)) / double(B);
  const double step = double(h.range) / qmax;

  // The quantization cell (nearest level) of each bin's centre.
  std::vector<int> cell(static_cast<size_t>(B));
  for (long b = 0; b < B; ++b) {
    const double centre = lo + (double(b) + 0.5) * width;
    cell[size_t(b)] = std::clamp(int(std::nearbyint(centre / step)), qmin, qmax) - qmin;
  }
  const int cells = qmax - qmin + 1;
  std::vector<double> mass(size_t(cells), 0.0), nonzero(size_t(cells), 0.0);
  for (long b = 0; b < B; ++b)
    if (h.counts[size_t(b)] > 0) {
      mass[size_t(cell[size_t(b)])] += h.counts[size_t(b)];
      nonzero[size_t(cell[size_t(b)])] += 1;
    }
  std::vector<double> q(size_t(B), 0.0);
  for (long b = 0; b < B; ++b)
    if (h.counts[size_t(b)] > 0) q[size_t(b)] = mass[size_t(cell[size_t(b)])] / nonzero[size_t(cell[size_t(b)])];
  return q;
}

double kl_quantization(const Histogram& h, int bits) {
  if (!(h.total() > 0)) return 0;  // nothing observed: nothing to lose
  return kl_divergence(h.counts, quantized_reference(h, bits));
}

double kl_of_values(const std::vector<float>& v, float range, int bits, int bins, bool is_signed) {
  Histogram h(range, bins, is_signed);
  h.add(v.data(), long(v.size()));
  return kl_quantization(h, bits);
}

}  // namespace fb
