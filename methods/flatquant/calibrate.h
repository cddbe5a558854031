// Block-wise calibration of FlatQuant (official flatquant/train_utils.py cali_flat_quant):
// minimise MSE(full-precision block output, quantized block output) over the block's
// parameters with AdamW (weight decay 0.01 on every group, as torch's default) and a
// cosine schedule; the caller feeds each block the FULL-PRECISION outputs of the previous
// block (pitfall 11).
#pragma once

#include "methods/flatquant/block.h"

#include <cstdint>
#include <vector>

namespace fb::flatquant {

struct CalibOptions {
  int epochs = 15;
  int batch = 4;               // windows per step (cali_bsz)
  double lr = 5e-3;            // transforms, σ and d; clipping logits get 10·lr
  double weight_decay = 0.01;  // AdamW default, applied to every group (pitfall 13)
  bool loss_normalise = true;  // back-propagate loss / loss.detach() (pitfall 12)
  bool warmup = false;         // linear 0.01 → 1 over the first 16 steps
  bool train_transforms = true;  // cali_trans: false keeps factors at their random start
  // Activations, attention and their gradients in float (the parameters, the weight path and
  // AdamW stay in double); false: everything in double, the reference the tests hold it to.
  bool fp32 = true;
};

// AdamW with torch.optim.AdamW's update (β = (0.9, 0.999), eps 1e-8, decoupled decay).
class AdamW {
 public:
  AdamW(std::vector<Param*> params, double weight_decay);
  // One update; lr_of(group) gives this step's learning rate for each group.
  template <class LrOf>
  void step(LrOf lr_of) {
    ++t_;
    for (size_t i = 0; i < params_.size(); ++i) update(i, lr_of(params_[i]->group));
  }
  void zero_grad();

 private:
  void update(size_t i, double lr);
  std::vector<Param*> params_;
  std::vector<MatD> m_, v_;
  double wd_;
  long t_ = 0;
};

// lr of a group at step t of t_max: torch CosineAnnealingLR (eta_min = base lr·1e-3 for
// every group, as the official code passes one scalar), times the warm-up factor.
double scheduled_lr(double group_base, double base, long t, long t_max, bool warmup);

struct BlockCalibReport {
  double init_mse = 0, final_mse = 0;  // mean MSE over the calibration set before / after
  double seconds = 0;
  std::vector<double> epoch_mse;       // mean training MSE of each epoch
  long n_params = 0;
};

// Calibrates one block in place. x and y_fp are (n·T)×dim: n windows of T tokens.
// One batch's forward and backward as the calibration runs it (windows on threads, the weight
// side computed once and its backward run on the windows' summed gradients), in double: returns
// the block output for x (B windows of T tokens) and accumulates the gradients of the upstream
// gradient g into params. Tests hold it equal to one QuantBlock over the whole batch.
MatD batch_forward_backward(const BlockShape& shape, const FpBlock& fp, const MatD& x, const MatD& g, int T,
                            BlockParams& params, const QuantSettings& settings);
BlockCalibReport calibrate_block(const BlockShape& shape, const FpBlock& fp, const MatD& x, const MatD& y_fp, int T,
                                 BlockParams& params, const QuantSettings& settings, const CalibOptions& opt);

// Mean MSE of the quantized block against y_fp, batch by batch (no gradients), in float or double.
double evaluate_block(const BlockShape& shape, const FpBlock& fp, const MatD& x, const MatD& y_fp, int T, int batch,
                      BlockParams& params, const QuantSettings& settings, bool fp32 = true);

}  // namespace fb::flatquant
