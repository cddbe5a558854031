#include "methods/flatquant/block.h"

#include "methods/flatquant/block_ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace fb::flatquant {
namespace {

void update_absmax(VecD& stat, const MatD& x) {
  if (stat.size() != x.cols()) stat = VecD::Constant(x.cols(), 1e-5);
  stat = stat.cwiseMax(x.cwiseAbs().colwise().maxCoeff().transpose());
}

// d_k = clamp(max_n|W[n,k]|^(1−α) / xmax_k^α, min 1e-5) (official get_init_scale).
VecD sq_style_scale(const MatD& w_cat, const VecD& x_absmax, double alpha) {
  VecD w_absmax = w_cat.cwiseAbs().colwise().maxCoeff().transpose();
  VecD d(w_absmax.size());
  for (long k = 0; k < d.size(); ++k)
    d(k) = std::max(std::pow(w_absmax(k), 1 - alpha) / std::pow(x_absmax(k), alpha), 1e-5);
  return d;
}

MatD vstack(std::initializer_list<const MatD*> parts) {
  long rows = 0;
  for (auto* p : parts) rows += p->rows();
  MatD out(rows, (*parts.begin())->cols());
  rows = 0;
  for (auto* p : parts) out.middleRows(rows, p->rows()) = *p, rows += p->rows();
  return out;
}

void init_kron(KronTransform& tr, int K, bool add_diag, const VecD& diag, bool direct, std::mt19937_64& rng) {
  auto [n1, n2] = decompose_dim(K);
  tr.left.init(n1, direct, rng);
  tr.right.init(n2, direct, rng);
  if (add_diag) tr.diag.init(diag, Group::diag);
}

void init_clip(LinearClip& c, long rows, const QuantSettings& s) {
  if (s.lwc) {
    c.wmax.init(MatD::Constant(rows, 1, 4.0), Group::wclip);
    c.wmin.init(MatD::Constant(rows, 1, 4.0), Group::wclip);
  }
  if (s.lac) {
    c.amax.init(MatD::Constant(1, 1, 4.0), Group::aclip);
    c.amin.init(MatD::Constant(1, 1, 4.0), Group::aclip);
  }
}

}  // namespace

BlockShape block_shape_of(const ModelConfig& c) {
  BlockShape s;
  s.dim = c.dim, s.hidden = c.hidden_dim, s.n_heads = c.n_heads, s.n_kv_heads = c.n_kv_heads;
  s.norm_eps = c.norm_eps, s.rope_theta = c.rope_theta;
  s.rope_interleaved = true;
  return s;
}

FpBlock fp_block_of(const Block& b) {
  FpBlock f;
  f.attn_gamma = b.attn_norm.gamma.cast<double>();
  f.mlp_gamma = b.mlp_norm.gamma.cast<double>();
  f.wq = b.q.W.cast<double>(), f.wk = b.k.W.cast<double>(), f.wv = b.v.W.cast<double>();
  f.wo = b.o.W.cast<double>(), f.wgate = b.gate.W.cast<double>(), f.wup = b.up.W.cast<double>();
  f.wdown = b.down.W.cast<double>();
  return f;
}

namespace {

// Softmax bytes one chunk of windows may hold: all 128 calibration windows at once would keep
// (B·H)·T×T doubles (2.1 GB for stories260K at T = 512), faulted in afresh for every block.
constexpr long kFpChunkProbBytes = 32L << 20;

struct FpScratch {
  MatD h, q, k, v, att, probs, gate, up, m;
  VecD rstd;
};

MatD fp_block_forward_windows(const BlockShape& shape, const FpBlock& fp, const MatD& x, int T, InputStats* stats,
                              FpScratch& s) {
  auto& [h, q, k, v, att, probs, gate, up, m, rstd] = s;
  rmsnorm_forward(x, fp.attn_gamma, shape.norm_eps, h, rstd);
  if (stats) update_absmax(stats->qkv, h);
  q = h * fp.wq.transpose();
  k = h * fp.wk.transpose();
  v = h * fp.wv.transpose();
  rope_apply(q, T, shape.head_dim(), shape.rope_theta, shape.rope_interleaved, false);
  rope_apply(k, T, shape.head_dim(), shape.rope_theta, shape.rope_interleaved, false);
  attention_forward(q, k, v, T, shape.n_heads, shape.n_kv_heads, att, probs);
  MatD x2 = x + att * fp.wo.transpose();
  rmsnorm_forward(x2, fp.mlp_gamma, shape.norm_eps, h, rstd);
  if (stats) update_absmax(stats->upgate, h);
  gate = h * fp.wgate.transpose();
  up = h * fp.wup.transpose();
  swiglu_forward(gate, up, m);
  if (stats) update_absmax(stats->down, m);
  return x2 + m * fp.wdown.transpose();
}

}  // namespace

// Chunks of whole windows: every op is row-wise or within one window, so the result and the
// statistics (running maxima) are those of one pass over all rows.
MatD fp_block_forward(const BlockShape& shape, const FpBlock& fp, const MatD& x, int T, InputStats* stats) {
  const long windows = x.rows() / T;
  const long probs_per_window = long(shape.n_heads) * T * T * long(sizeof(double));
  const long chunk = std::clamp(kFpChunkProbBytes / std::max(probs_per_window, 1L), 1L, std::max(windows, 1L));
  MatD y(x.rows(), x.cols());
  FpScratch scratch;
  for (long w = 0; w < windows; w += chunk) {
    const long n = std::min(chunk, windows - w);
    y.middleRows(w * T, n * T) = fp_block_forward_windows(shape, fp, x.middleRows(w * T, n * T), T, stats, scratch);
  }
  return y;
}

std::vector<Param*> BlockParams::all() {
  std::vector<Param*> out;
  for (Factor* f : factors())
    for (Param* p : f->params()) out.push_back(p);
  for (KronTransform* t : {&qkv, &upgate, &down})
    if (t->has_diag()) out.push_back(&t->diag);
  for (LinearClip* c : {&q, &k, &v, &o, &gate, &up, &dn, &q_cache, &k_cache, &v_cache})
    for (Param* p : {&c->wmax, &c->wmin, &c->amax, &c->amin})
      if (p->v.size()) out.push_back(p);
  return out;
}

std::vector<Factor*> BlockParams::factors() {
  std::vector<Factor*> out;
  for (Factor* f : {&qkv.left, &qkv.right, &o_heads, &k_head, &v_head, &upgate.left, &upgate.right, &down.left,
                    &down.right})
    if (f->mat.size() || f->sigma.v.size() || f->a.v.size()) out.push_back(f);
  return out;
}

long BlockParams::count() {
  long n = 0;
  for (Param* p : all()) n += p->v.size();
  return n;
}

BlockParams init_block_params(const BlockShape& shape, const FpBlock& fp, const InputStats& stats,
                              const QuantSettings& s, bool sq_style_diag, double alpha, std::mt19937_64& rng) {
  if (!s.linear_transforms() && s.v_transform())
    throw std::invalid_argument("flatquant: KV-cache-only quantization (w_bits = a_bits = 16) is not supported");
  BlockParams p;
  const int hd = shape.head_dim();
  auto diag_for = [&](const MatD& w_cat, const VecD& x_absmax) {
    return sq_style_diag ? sq_style_scale(w_cat, x_absmax, alpha) : VecD::Ones(w_cat.cols());
  };
  // Same construction order as the official modules: attention (ln, o, k, v), then MLP.
  if (s.linear_transforms()) {
    init_kron(p.qkv, shape.dim, s.add_diag, diag_for(vstack({&fp.wq, &fp.wk, &fp.wv}), stats.qkv), s.direct_inv, rng);
    p.o_heads.init(shape.n_heads, s.direct_inv, rng);
  }
  if (s.k_transform()) p.k_head.init(hd, s.direct_inv, rng);
  if (s.v_transform()) p.v_head.init(hd, s.direct_inv, rng);
  if (s.linear_transforms()) {
    init_kron(p.upgate, shape.dim, s.add_diag, diag_for(vstack({&fp.wup, &fp.wgate}), stats.upgate), s.direct_inv,
              rng);
    init_kron(p.down, shape.hidden, s.add_diag, diag_for(fp.wdown, stats.down), s.direct_inv, rng);
  }
  init_clip(p.q, fp.wq.rows(), s);
  init_clip(p.k, fp.wk.rows(), s);
  init_clip(p.v, fp.wv.rows(), s);
  init_clip(p.o, fp.wo.rows(), s);
  init_clip(p.gate, fp.wgate.rows(), s);
  init_clip(p.up, fp.wup.rows(), s);
  init_clip(p.dn, fp.wdown.rows(), s);
  QuantSettings cache_only = s;
  cache_only.lwc = false;
  if (s.q.enabled()) init_clip(p.q_cache, 0, cache_only);
  if (s.k.enabled()) init_clip(p.k_cache, 0, cache_only);
  if (s.v.enabled()) init_clip(p.v_cache, 0, cache_only);
  return p;
}

namespace {
// A double matrix (parameter, factor) in the block's scalar; a copy only when S is float.
template <class S>
MatX<S> in_s(const MatD& m) {
  return m.template cast<S>();
}
template <class S>
VecX<S> in_s(const VecD& v) {
  return v.template cast<S>();
}
}  // namespace

template <class S>
QuantBlockT<S>::QuantBlockT(const BlockShape& shape, const FpBlock& fp, BlockParams& params,
                            const QuantSettings& settings)
    : shape_(shape), fp_(fp), p_(params), s_(settings), eye_hd_(Mat::Identity(shape.head_dim(), shape.head_dim())) {
  const QuantSpec off{16, true};
  w_ = s_.quantize ? s_.w : off;
  a_ = s_.quantize ? s_.a : off;
  q_ = s_.quantize ? s_.q : off;
  k_ = s_.quantize ? s_.k : off;
  v_ = s_.quantize ? s_.v : off;
}

template <class S>
void QuantBlockT<S>::transform_input(const Mat& x, KronTransform& tr, ActSide& side) {
  side.x = x;
  if (!s_.linear_transforms()) {
    side.x_d = side.x_t = x;
    return;
  }
  side.x_d = tr.has_diag() ? Mat(x * in_s<S>(VecD(tr.diag.v.col(0))).asDiagonal()) : x;
  kron_apply<S>(side.x_d, in_s<S>(tr.left.mat), in_s<S>(tr.right.mat), side.x_t);
}

template <class S>
void QuantBlockT<S>::transform_input_backward(KronTransform& tr, const ActSide& side, const Mat& g_xt, Mat* g_x) {
  if (!s_.linear_transforms()) {
    if (g_x) *g_x += g_xt;
    return;
  }
  Mat g_xd;
  Mat g_l = Mat::Zero(tr.left.mat.rows(), tr.left.mat.cols()), g_r = Mat::Zero(tr.right.mat.rows(), tr.right.mat.cols());
  kron_backward<S>(side.x_d, in_s<S>(tr.left.mat), in_s<S>(tr.right.mat), g_xt, &g_xd, &g_l, &g_r);
  tr.left.g_mat += g_l.template cast<double>();
  tr.right.g_mat += g_r.template cast<double>();
  if (tr.has_diag()) {
    tr.diag.g.col(0) += g_xd.cwiseProduct(side.x).colwise().sum().transpose().template cast<double>();
    if (g_x) *g_x += g_xd * in_s<S>(VecD(tr.diag.v.col(0))).asDiagonal();
  } else if (g_x) {
    *g_x += g_xd;
  }
}

template <class S>
void QuantBlockT<S>::weight_forward(const MatD& w, KronTransform* tr, const MatD* inv_l, const MatD* inv_r,
                                LinearClip& clip, const MatD* out_head, WeightPath& p) {
  p.w_in = (tr && tr->has_diag()) ? MatD(w * tr->diag.v.col(0).cwiseInverse().asDiagonal()) : w;
  if (inv_l) kron_apply(p.w_in, *inv_l, *inv_r, p.w_t);
  else p.w_t = p.w_in;
  if (s_.lwc) lwc_forward(p.w_t, clip.wmax.v, clip.wmin.v, p.w_c);
  else p.w_c = p.w_t;
  if (out_head) {
    // Each head's block of output rows becomes P_vᵀ·W_h, so that head's output is v_h·P_v.
    p.w_o.resize(p.w_c.rows(), p.w_c.cols());
    const long hd = out_head->rows();
    for (long r = 0; r < p.w_c.rows(); r += hd)
      p.w_o.middleRows(r, hd).noalias() = out_head->transpose() * p.w_c.middleRows(r, hd);
  } else {
    p.w_o = p.w_c;
  }
  weight_quant_forward(p.w_o, w_, p.w_q);
}

template <class S>
void QuantBlockT<S>::weight_backward(const MatD& w, KronTransform* tr, const MatD* inv_l, const MatD* inv_r,
                                 LinearClip& clip, const MatD* out_head, const WeightPath& p, const MatD& g_wq,
                                 MatD* g_inv_l, MatD* g_inv_r, MatD* g_out_head) {
  MatD g_wo = MatD::Zero(g_wq.rows(), g_wq.cols());
  weight_quant_backward(p.w_o, w_, g_wq, g_wo);
  MatD g_wc;
  if (out_head) {
    g_wc.resize(g_wo.rows(), g_wo.cols());
    const long hd = out_head->rows();
    for (long r = 0; r < g_wo.rows(); r += hd) {
      g_wc.middleRows(r, hd).noalias() = *out_head * g_wo.middleRows(r, hd);
      g_out_head->noalias() += p.w_c.middleRows(r, hd) * g_wo.middleRows(r, hd).transpose();
    }
  } else {
    g_wc = std::move(g_wo);
  }
  MatD g_wt;
  if (s_.lwc) {
    g_wt = MatD::Zero(g_wc.rows(), g_wc.cols());
    lwc_backward(p.w_t, clip.wmax.v, clip.wmin.v, g_wc, g_wt, clip.wmax.g, clip.wmin.g);
  } else {
    g_wt = std::move(g_wc);
  }
  if (!(tr && tr->has_diag()) && !inv_l) return;
  MatD g_win;
  if (inv_l) kron_backward(p.w_in, *inv_l, *inv_r, g_wt, &g_win, g_inv_l, g_inv_r);
  else g_win = std::move(g_wt);
  if (tr && tr->has_diag()) {
    // w_in = W ⊘ d: ∂/∂d_k = −Σ_n g[n,k]·W[n,k]/d_k².
    VecD d = tr->diag.v.col(0);
    VecD s = g_win.cwiseProduct(w).colwise().sum().transpose();
    tr->diag.g.col(0) -= s.cwiseQuotient(d.cwiseAbs2());
  }
}

template <class S>
void QuantBlockT<S>::linear_forward(const Mat& x, LinearClip& clip, const WeightPath& p, Mat& xq, Mat& y) {
  act_quant_forward<S>(x, static_cast<int>(x.cols()), a_, lac(clip.amax), lac(clip.amin), xq);
  y.noalias() = xq * in_s<S>(p.w_q).transpose();
}

template <class S>
MatD QuantBlockT<S>::linear_backward(const Mat& x, LinearClip& clip, const WeightPath& p, const Mat& xq,
                                     const Mat& g_y, Mat& g_x) {
  Mat g_xq = g_y * in_s<S>(p.w_q);
  act_quant_backward<S>(x, static_cast<int>(x.cols()), a_, lac(clip.amax), lac(clip.amin), g_xq, g_x,
                        lac_grad(clip.amax), lac_grad(clip.amin));
  return (g_y.transpose() * xq).template cast<double>();
}

namespace {
// The weight side threads itself unless it already runs on a thread of the windows' team, or a
// rounding tape (tests) must see its roundings in order on this thread.
bool weight_side_threads() { return !omp_in_parallel() && !rounding_tape_active(); }
}  // namespace

template <class S>
typename QuantBlockT<S>::SiteArgs QuantBlockT<S>::site_args(Site site) {
  const bool lt = s_.linear_transforms(), vt = s_.v_transform();
  // The Kronecker input transform of a site, its inverse factors and their gradients (none without transforms).
  auto kron = [&](const MatD& w, KronTransform& tr, LinearClip& clip) {
    return lt ? SiteArgs{&w, &tr, &tr.left.inv_t, &tr.right.inv_t, &clip, nullptr, &tr.left.g_inv_t,
                         &tr.right.g_inv_t, nullptr}
              : SiteArgs{&w, nullptr, nullptr, nullptr, &clip, nullptr, nullptr, nullptr, nullptr};
  };
  switch (site) {
    case kQ: return kron(fp_.wq, p_.qkv, p_.q);
    case kK: return kron(fp_.wk, p_.qkv, p_.k);
    case kV: {
      SiteArgs a = kron(fp_.wv, p_.qkv, p_.v);
      if (vt) a.out_head = &p_.v_head.mat, a.g_out_head = &p_.v_head.g_mat;  // W_v's output side gets P_v
      return a;
    }
    case kO:  // the input side of W_o is P_o ⊗ P_v across heads, no diagonal scaling
      return lt ? SiteArgs{&fp_.wo, nullptr, &p_.o_heads.inv_t, &p_.v_head.inv_t, &p_.o, nullptr,
                           &p_.o_heads.g_inv_t, &p_.v_head.g_inv_t, nullptr}
                : SiteArgs{&fp_.wo, nullptr, nullptr, nullptr, &p_.o, nullptr, nullptr, nullptr, nullptr};
    case kGate: return kron(fp_.wgate, p_.upgate, p_.gate);
    case kUp: return kron(fp_.wup, p_.upgate, p_.up);
    default: return kron(fp_.wdown, p_.down, p_.dn);
  }
}

template <class S>
void QuantBlockT<S>::prepare_weights() {
  const std::vector<Factor*> factors = p_.factors();
#pragma omp parallel for schedule(dynamic) if (weight_side_threads())
  for (size_t i = 0; i < factors.size(); ++i) factors[i]->materialise();
  // Seven independent products (each writes its own path) on the threads the windows use next.
#pragma omp parallel for schedule(dynamic) if (weight_side_threads())
  for (int site = 0; site < kSites; ++site) {
    const SiteArgs a = site_args(Site(site));
    weight_forward(*a.w, a.tr, a.inv_l, a.inv_r, *a.clip, a.out_head, own_[site]);
  }
}

template <class S>
void QuantBlockT<S>::weights_backward(const WeightGrads& g) {
  // Four groups that write disjoint gradients (down; gate and up: the up/gate transform; o: the
  // g_inv_t of P_o and P_v; q, k, v: the qkv transform and P_v's g_mat), each in a fixed order,
  // so the sums do not depend on the thread count.
  static constexpr Site kGroups[4][3] = {{kDown, kSites, kSites}, {kGate, kUp, kSites}, {kO, kSites, kSites},
                                         {kQ, kK, kV}};
#pragma omp parallel for schedule(dynamic) if (weight_side_threads())
  for (int group = 0; group < 4; ++group)
    for (Site site : kGroups[group]) {
      if (site == kSites) break;
      const SiteArgs a = site_args(site);
      weight_backward(*a.w, a.tr, a.inv_l, a.inv_r, *a.clip, a.out_head, own_[site], g[site], a.g_inv_l, a.g_inv_r,
                      a.g_out_head);
    }
  const std::vector<Factor*> factors = p_.factors();
#pragma omp parallel for schedule(dynamic) if (weight_side_threads())
  for (size_t i = 0; i < factors.size(); ++i) factors[i]->backward();
}

template <class S>
MatX<S> QuantBlockT<S>::forward(const Mat& x, int T) {
  T_ = T;
  x_ = x;
  const int hd = shape_.head_dim();
  const bool lt = s_.linear_transforms(), kt = s_.k_transform();
  if (!shares_weights()) prepare_weights();
  const Weights& w = *weights_;

  // attention
  rmsnorm_forward<S>(x, in_s<S>(fp_.attn_gamma), shape_.norm_eps, h1_, rstd1_);
  transform_input(h1_, p_.qkv, qkv_in_);
  linear_forward(qkv_in_.x_t, p_.q, w[kQ], xq_q_, q_lin_);
  linear_forward(qkv_in_.x_t, p_.k, w[kK], xq_k_, k_lin_);
  linear_forward(qkv_in_.x_t, p_.v, w[kV], xq_v_, v_lin_);
  q_rot_ = q_lin_;
  k_rot_ = k_lin_;
  rope_apply<S>(q_rot_, T, hd, shape_.rope_theta, shape_.rope_interleaved, false);
  rope_apply<S>(k_rot_, T, hd, shape_.rope_theta, shape_.rope_interleaved, false);
  if (kt) {
    per_head_apply<S>(q_rot_, in_s<S>(p_.k_head.inv_t), q2_);
    per_head_apply<S>(k_rot_, in_s<S>(p_.k_head.mat), k2_);
  } else {
    q2_ = q_rot_, k2_ = k_rot_;
  }
  act_quant_forward<S>(q2_, hd, q_, lac(p_.q_cache.amax), lac(p_.q_cache.amin), q3_);
  act_quant_forward<S>(k2_, hd, k_, lac(p_.k_cache.amax), lac(p_.k_cache.amin), k3_);
  act_quant_forward<S>(v_lin_, hd, v_, lac(p_.v_cache.amax), lac(p_.v_cache.amin), v3_);
  attention_forward<S>(q3_, k3_, v3_, T, shape_.n_heads, shape_.n_kv_heads, att_, probs_);
  if (lt) kron_apply<S>(att_, in_s<S>(p_.o_heads.mat), eye_hd_, a2_);  // P_oᵀ·A across heads
  else a2_ = att_;
  Mat o_lin;
  linear_forward(a2_, p_.o, w[kO], xq_o_, o_lin);
  x2_ = x + o_lin;

  // MLP
  rmsnorm_forward<S>(x2_, in_s<S>(fp_.mlp_gamma), shape_.norm_eps, h2_, rstd2_);
  transform_input(h2_, p_.upgate, ug_in_);
  linear_forward(ug_in_.x_t, p_.gate, w[kGate], xq_g_, gate_);
  linear_forward(ug_in_.x_t, p_.up, w[kUp], xq_u_, up_);
  Mat m;
  swiglu_forward<S>(gate_, up_, m);
  transform_input(m, p_.down, dn_in_);
  Mat d_lin;
  linear_forward(dn_in_.x_t, p_.dn, w[kDown], xq_d_, d_lin);
  return x2_ + d_lin;
}

template <class S>
void QuantBlockT<S>::backward(const Mat& g_out) {
  const int hd = shape_.head_dim();
  const bool lt = s_.linear_transforms(), kt = s_.k_transform();
  const Weights& w = *weights_;
  WeightGrads& g_w = g_w_;

  // MLP: out = x2 + down(...)
  Mat g_x2 = g_out;
  Mat g_dt = Mat::Zero(dn_in_.x_t.rows(), dn_in_.x_t.cols());
  g_w[kDown] = linear_backward(dn_in_.x_t, p_.dn, w[kDown], xq_d_, g_out, g_dt);
  Mat g_m = Mat::Zero(dn_in_.x.rows(), dn_in_.x.cols());
  transform_input_backward(p_.down, dn_in_, g_dt, &g_m);
  Mat g_gate, g_up;
  swiglu_backward<S>(gate_, up_, g_m, g_gate, g_up);
  Mat g_ugt = Mat::Zero(ug_in_.x_t.rows(), ug_in_.x_t.cols());
  g_w[kGate] = linear_backward(ug_in_.x_t, p_.gate, w[kGate], xq_g_, g_gate, g_ugt);
  g_w[kUp] = linear_backward(ug_in_.x_t, p_.up, w[kUp], xq_u_, g_up, g_ugt);
  Mat g_h2 = Mat::Zero(h2_.rows(), h2_.cols());
  transform_input_backward(p_.upgate, ug_in_, g_ugt, &g_h2);
  rmsnorm_backward<S>(x2_, in_s<S>(fp_.mlp_gamma), rstd2_, g_h2, g_x2);

  // attention: x2 = x + o(...); x itself is a fixed input.
  Mat g_a2 = Mat::Zero(a2_.rows(), a2_.cols());
  g_w[kO] = linear_backward(a2_, p_.o, w[kO], xq_o_, g_x2, g_a2);
  Mat g_att;
  if (lt) {
    Mat g_o = Mat::Zero(p_.o_heads.mat.rows(), p_.o_heads.mat.cols());
    kron_backward<S>(att_, in_s<S>(p_.o_heads.mat), eye_hd_, g_a2, &g_att, &g_o, nullptr);
    p_.o_heads.g_mat += g_o.template cast<double>();
  } else {
    g_att = g_a2;
  }
  Mat g_q3, g_k3, g_v3;
  attention_backward<S>(q3_, k3_, v3_, probs_, g_att, T_, shape_.n_heads, shape_.n_kv_heads, g_q3, g_k3, g_v3);
  Mat g_q2 = Mat::Zero(q2_.rows(), q2_.cols()), g_k2 = Mat::Zero(k2_.rows(), k2_.cols());
  Mat g_v = Mat::Zero(v_lin_.rows(), v_lin_.cols());
  act_quant_backward<S>(q2_, hd, q_, lac(p_.q_cache.amax), lac(p_.q_cache.amin), g_q3, g_q2,
                     lac_grad(p_.q_cache.amax), lac_grad(p_.q_cache.amin));
  act_quant_backward<S>(k2_, hd, k_, lac(p_.k_cache.amax), lac(p_.k_cache.amin), g_k3, g_k2,
                     lac_grad(p_.k_cache.amax), lac_grad(p_.k_cache.amin));
  act_quant_backward<S>(v_lin_, hd, v_, lac(p_.v_cache.amax), lac(p_.v_cache.amin), g_v3, g_v,
                     lac_grad(p_.v_cache.amax), lac_grad(p_.v_cache.amin));
  Mat g_q, g_k;
  if (kt) {
    Mat g_inv = Mat::Zero(hd, hd), g_mat = Mat::Zero(hd, hd);
    per_head_backward<S>(q_rot_, in_s<S>(p_.k_head.inv_t), g_q2, &g_q, &g_inv);
    per_head_backward<S>(k_rot_, in_s<S>(p_.k_head.mat), g_k2, &g_k, &g_mat);
    p_.k_head.g_inv_t += g_inv.template cast<double>();
    p_.k_head.g_mat += g_mat.template cast<double>();
  } else {
    g_q = std::move(g_q2), g_k = std::move(g_k2);
  }
  rope_apply<S>(g_q, T_, hd, shape_.rope_theta, shape_.rope_interleaved, true);  // rotation⁻¹ = rotationᵀ
  rope_apply<S>(g_k, T_, hd, shape_.rope_theta, shape_.rope_interleaved, true);
  Mat g_xt = Mat::Zero(qkv_in_.x_t.rows(), qkv_in_.x_t.cols());
  g_w[kQ] = linear_backward(qkv_in_.x_t, p_.q, w[kQ], xq_q_, g_q, g_xt);
  g_w[kK] = linear_backward(qkv_in_.x_t, p_.k, w[kK], xq_k_, g_k, g_xt);
  g_w[kV] = linear_backward(qkv_in_.x_t, p_.v, w[kV], xq_v_, g_v, g_xt);
  transform_input_backward(p_.qkv, qkv_in_, g_xt, nullptr);  // the input x needs no gradient

  if (!shares_weights()) weights_backward(g_w);
}

template class QuantBlockT<float>;
template class QuantBlockT<double>;

}  // namespace fb::flatquant
