#include "methods/flatquant/calibrate.h"

#include <chrono>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace fb::flatquant {

AdamW::AdamW(std::vector<Param*> params, double weight_decay) : params_(std::move(params)), wd_(weight_decay) {
  for (Param* p : params_) {
    m_.push_back(MatD::Zero(p->v.rows(), p->v.cols()));
    v_.push_back(MatD::Zero(p->v.rows(), p->v.cols()));
  }
}

void AdamW::zero_grad() {
  for (Param* p : params_) p->zero_grad();
}

void AdamW::update(size_t i, double lr) {
  constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  Param& p = *params_[i];
  p.v *= 1 - lr * wd_;
  m_[i] = b1 * m_[i] + (1 - b1) * p.g;
  v_[i] = b2 * v_[i] + (1 - b2) * p.g.cwiseAbs2();
  const double bc1 = 1 - std::pow(b1, t_), bc2 = 1 - std::pow(b2, t_);
  MatD denom = (v_[i].cwiseSqrt() / std::sqrt(bc2)).array() + eps;
  p.v -= (lr / bc1) * m_[i].cwiseQuotient(denom);
}

double scheduled_lr(double group_base, double base, long t, long t_max, bool warmup) {
  const double eta_min = base * 1e-3;
  double lr = eta_min + (group_base - eta_min) * (1 + std::cos(std::numbers::pi * t / t_max)) / 2;
  if (warmup) lr *= 0.01 + 0.99 * std::min(t, 16L) / 16.0;
  return lr;
}

namespace {

MatD rows_of(const MatD& m, long first, long count) { return m.middleRows(first, count); }

double group_lr(Group g, double lr) { return (g == Group::wclip || g == Group::aclip) ? 10 * lr : lr; }

}  // namespace

double evaluate_block(const BlockShape& shape, const FpBlock& fp, const MatD& x, const MatD& y_fp, int T, int batch,
                      BlockParams& params, const QuantSettings& settings) {
  QuantBlock qb(shape, fp, params, settings);
  const long windows = x.rows() / T, rows = static_cast<long>(batch) * T;
  double sum = 0;
  long steps = 0;
  for (long w = 0; w + batch <= windows; w += batch, ++steps) {
    MatD y = qb.forward(rows_of(x, w * T, rows), T);
    sum += (y - rows_of(y_fp, w * T, rows)).squaredNorm() / y.size();
  }
  return steps ? sum / steps : 0.0;
}

BlockCalibReport calibrate_block(const BlockShape& shape, const FpBlock& fp, const MatD& x, const MatD& y_fp, int T,
                                 BlockParams& params, const QuantSettings& settings, const CalibOptions& opt) {
  const long windows = x.rows() / T;
  if (opt.batch <= 0 || windows < opt.batch)
    throw std::invalid_argument("flatquant calibration: " + std::to_string(windows) + " windows, batch " +
                                std::to_string(opt.batch) + " (nsamples must be ≥ cali_bsz)");
  auto start = std::chrono::steady_clock::now();
  BlockCalibReport rep;
  rep.n_params = params.count();
  rep.init_mse = evaluate_block(shape, fp, x, y_fp, T, opt.batch, params, settings);

  std::vector<Param*> trained;
  for (Param* p : params.all())
    if (opt.train_transforms || p->group != Group::transform) trained.push_back(p);
  AdamW adam(trained, opt.weight_decay);
  QuantBlock qb(shape, fp, params, settings);
  const long steps_per_epoch = windows / opt.batch, t_max = opt.epochs * steps_per_epoch;
  const long rows = static_cast<long>(opt.batch) * T;
  long t = 0;
  for (int epoch = 0; epoch < opt.epochs; ++epoch) {
    double sum = 0;
    for (long j = 0; j < steps_per_epoch; ++j, ++t) {
      MatD target = rows_of(y_fp, j * rows, rows);
      MatD y = qb.forward(rows_of(x, j * rows, rows), T);
      MatD diff = y - target;
      const double loss = diff.squaredNorm() / diff.size();
      sum += loss;
      // d(loss)/dy = 2·diff/size; loss / loss.detach() divides it by the loss value.
      const double norm = (opt.loss_normalise && loss > 0) ? loss : 1.0;
      adam.zero_grad();
      qb.backward(diff * (2.0 / (diff.size() * norm)));
      adam.step([&](Group g) { return scheduled_lr(group_lr(g, opt.lr), opt.lr, t, t_max, opt.warmup); });
    }
    rep.epoch_mse.push_back(sum / steps_per_epoch);
  }
  rep.final_mse = evaluate_block(shape, fp, x, y_fp, T, opt.batch, params, settings);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return rep;
}

}  // namespace fb::flatquant
