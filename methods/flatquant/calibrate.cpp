#include "methods/flatquant/calibrate.h"

#include "core/blas_threads.h"

#include <chrono>
#include <deque>
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

double group_lr(Group g, double lr) { return (g == Group::wclip || g == Group::aclip) ? 10 * lr : lr; }

// One training step's forward and backward over a batch, window by window on OpenMP's threads:
// each window has its own copy of the parameters (values copied from the master before the
// forward, gradients summed into it in window order after the backward), so the gradient does
// not depend on how many threads ran. The weight side (transforms, LWC and fake quantization
// of the weights, in double) does not depend on the window: the master's block computes it
// once per forward, every window reads it, and its backward runs once on the windows' summed
// gradients (it is linear in them), as does each factor's (Factor::backward).
template <class S>
class WindowParallelStep {
 public:
  WindowParallelStep(const BlockShape& shape, const FpBlock& fp, BlockParams& master, const QuantSettings& settings,
                     int batch)
      : master_(master), owner_(shape, fp, master, settings), locals_(batch, master) {
    for (BlockParams& p : locals_) {
      blocks_.emplace_back(shape, fp, p, settings);
      blocks_.back().share_weights(owner_);
    }
  }

  MatX<S> forward(const MatX<S>& x, int T) {
    owner_.prepare_weights();
    const std::vector<Param*> from = master_.all();
    const std::vector<Factor*> from_f = master_.factors();
    for (BlockParams& p : locals_) {
      const std::vector<Param*> to = p.all();
      for (size_t i = 0; i < to.size(); ++i) to[i]->v = from[i]->v;
      const std::vector<Factor*> to_f = p.factors();
      for (size_t i = 0; i < to_f.size(); ++i) to_f[i]->take_materialised(*from_f[i]);
    }
    MatX<S> y(x.rows(), x.cols());
    const long n = long(blocks_.size());
#pragma omp parallel for schedule(static)
    for (long w = 0; w < n; ++w) y.middleRows(w * T, T) = blocks_[w].forward(x.middleRows(w * T, T), T);
    T_ = T;
    return y;
  }

  // Accumulates the batch's parameter gradients into the master's.
  void backward(const MatX<S>& g) {
    const long n = long(blocks_.size());
#pragma omp parallel for schedule(static)
    for (long w = 0; w < n; ++w) {
      for (Param* p : locals_[w].all()) p->zero_grad();
      blocks_[w].backward(g.middleRows(w * T_, T_));
    }
    const std::vector<Param*> to = master_.all();
    const std::vector<Factor*> to_f = master_.factors();
    typename QuantBlockT<S>::WeightGrads sum = blocks_[0].weight_grads();
    for (long w = 0; w < n; ++w) {
      const std::vector<Param*> from = locals_[w].all();
      for (size_t i = 0; i < to.size(); ++i) to[i]->g += from[i]->g;
      const std::vector<Factor*> from_f = locals_[w].factors();
      for (size_t i = 0; i < to_f.size(); ++i) to_f[i]->g_mat += from_f[i]->g_mat, to_f[i]->g_inv_t += from_f[i]->g_inv_t;
      if (w == 0) continue;
      const auto& gw = blocks_[w].weight_grads();
      for (size_t site = 0; site < sum.size(); ++site) sum[site] += gw[site];
    }
    owner_.weights_backward(sum);
  }

 private:
  BlockParams& master_;
  QuantBlockT<S> owner_;              // the master's block: it holds the batch's weight side
  std::vector<BlockParams> locals_;   // sized once: the blocks hold references into it
  std::deque<QuantBlockT<S>> blocks_;
  int T_ = 0;
};

// Mean MSE of the block in scalar S against y_fp over whole batches (x and y_fp already in S).
template <class S, class Block>
double evaluate_in(Block& qb, const MatX<S>& x, const MatX<S>& y_fp, int T, int batch) {
  const long windows = x.rows() / T, rows = static_cast<long>(batch) * T;
  double sum = 0;
  long steps = 0;
  for (long w = 0; w + batch <= windows; w += batch, ++steps) {
    const MatX<S> y = qb.forward(x.middleRows(w * T, rows), T);
    sum += double((y - y_fp.middleRows(w * T, rows)).squaredNorm()) / double(y.size());
  }
  return steps ? sum / steps : 0.0;
}

template <class S>
BlockCalibReport calibrate_in(const BlockShape& shape, const FpBlock& fp, const MatX<S>& x, const MatX<S>& y_fp, int T,
                              BlockParams& params, const QuantSettings& settings, const CalibOptions& opt) {
  auto start = std::chrono::steady_clock::now();
  const long windows = x.rows() / T;
  BlockCalibReport rep;
  rep.n_params = params.count();
  WindowParallelStep<S> step(shape, fp, params, settings, opt.batch);
  rep.init_mse = evaluate_in<S>(step, x, y_fp, T, opt.batch);

  std::vector<Param*> trained;
  for (Param* p : params.all())
    if (opt.train_transforms || p->group != Group::transform) trained.push_back(p);
  AdamW adam(trained, opt.weight_decay);
  const long steps_per_epoch = windows / opt.batch, t_max = opt.epochs * steps_per_epoch;
  const long rows = static_cast<long>(opt.batch) * T;
  long t = 0;
  for (int epoch = 0; epoch < opt.epochs; ++epoch) {
    double sum = 0;
    for (long j = 0; j < steps_per_epoch; ++j, ++t) {
      MatX<S> diff = step.forward(x.middleRows(j * rows, rows), T) - y_fp.middleRows(j * rows, rows);
      const double loss = double(diff.squaredNorm()) / double(diff.size());
      sum += loss;
      // d(loss)/dy = 2·diff/size; loss / loss.detach() divides it by the loss value.
      const double norm = (opt.loss_normalise && loss > 0) ? loss : 1.0;
      adam.zero_grad();
      step.backward(diff * S(2.0 / (double(diff.size()) * norm)));
      adam.step([&](Group g) { return scheduled_lr(group_lr(g, opt.lr), opt.lr, t, t_max, opt.warmup); });
    }
    rep.epoch_mse.push_back(sum / steps_per_epoch);
  }
  rep.final_mse = evaluate_in<S>(step, x, y_fp, T, opt.batch);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return rep;
}

}  // namespace

double evaluate_block(const BlockShape& shape, const FpBlock& fp, const MatD& x, const MatD& y_fp, int T, int batch,
                      BlockParams& params, const QuantSettings& settings, bool fp32) {
  const BlasThreadsFor single_blas(1);  // the attention threads over (window, kv head) itself
  if (fp32) {
    WindowParallelStep<float> step(shape, fp, params, settings, batch);
    return evaluate_in<float>(step, x.cast<float>(), y_fp.cast<float>(), T, batch);
  }
  WindowParallelStep<double> step(shape, fp, params, settings, batch);
  return evaluate_in<double>(step, x, y_fp, T, batch);
}

MatD batch_forward_backward(const BlockShape& shape, const FpBlock& fp, const MatD& x, const MatD& g, int T,
                            BlockParams& params, const QuantSettings& settings) {
  WindowParallelStep<double> step(shape, fp, params, settings, int(x.rows() / T));
  MatD y = step.forward(x, T);
  step.backward(g);
  return y;
}

BlockCalibReport calibrate_block(const BlockShape& shape, const FpBlock& fp, const MatD& x, const MatD& y_fp, int T,
                                 BlockParams& params, const QuantSettings& settings, const CalibOptions& opt) {
  const long windows = x.rows() / T;
  if (opt.batch <= 0 || windows < opt.batch)
    throw std::invalid_argument("flatquant calibration: " + std::to_string(windows) + " windows, batch " +
                                std::to_string(opt.batch) + " (nsamples must be ≥ cali_bsz)");
  const BlasThreadsFor single_blas(1);  // the attention threads over (window, kv head) itself
  if (opt.fp32) return calibrate_in<float>(shape, fp, x.cast<float>(), y_fp.cast<float>(), T, params, settings, opt);
  return calibrate_in<double>(shape, fp, x, y_fp, T, params, settings, opt);
}

}  // namespace fb::flatquant
