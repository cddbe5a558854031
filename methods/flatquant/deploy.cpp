#include "methods/flatquant/deploy.h"

#include "methods/flatquant/block_ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fb::flatquant {
namespace {

// Range of one group after LAC, its scale and zero point (official ActivationQuantizer).
struct GroupScale {
  float s = 1, z = 0;
};
GroupScale group_scale(const float* x, int n, const fb::QuantSpec& spec, ClipRatios clip) {
  float mx = 0, mn = 0;
  for (int k = 0; k < n; ++k) mx = std::max(mx, x[k]), mn = std::min(mn, x[k]);
  GroupScale g;
  if (spec.sym) {
    const float m = lac_symmetric_range(mx, mn, clip);
    g.s = m == 0 ? 1.f : m / spec.qmax();
    return g;
  }
  float hi = mx * clip.hi, lo = mn * clip.lo;
  if (hi == 0 && lo == 0) hi = 1, lo = -1;
  g.s = (hi - lo) / spec.qmax();
  g.z = std::nearbyint(-lo / g.s);
  return g;
}

void check_group(const Mat& x, int group) {
  if (group <= 0 || x.cols() % group)
    throw std::invalid_argument(fmt::format("flatquant: group {} does not divide {} columns", group, x.cols()));
}

Mat to_float(const MatD& m) { return m.cast<float>(); }
Vec to_float(const VecD& v) { return v.cast<float>(); }

ClipRatios lac_ratios(const LinearClip& c) {
  if (!c.amax.v.size()) return {};
  return {static_cast<float>(sigmoid(c.amax.v(0, 0))), static_cast<float>(sigmoid(c.amin.v(0, 0)))};
}

// (W ⊘ d)·(L⊗R)⁻ᵀ, LWC clamp, optional per-head output transform — the training forward's
// weight path with quantization left out, in double.
MatD merge_weight(const MatD& w, const KronTransform* tr, const MatD* inv_l, const MatD* inv_r, const LinearClip& clip,
                  const QuantSettings& s, const MatD* out_head) {
  MatD w_in = (tr && tr->has_diag()) ? MatD(w * tr->diag.v.col(0).cwiseInverse().asDiagonal()) : w;
  MatD w_t, w_c;
  if (inv_l) kron_apply(w_in, *inv_l, *inv_r, w_t);
  else w_t = w_in;
  if (s.lwc) lwc_forward(w_t, clip.wmax.v, clip.wmin.v, w_c);
  else w_c = w_t;
  if (out_head) {
    const long hd = out_head->rows();
    for (long r = 0; r < w_c.rows(); r += hd) w_c.middleRows(r, hd) = (out_head->transpose() * w_c.middleRows(r, hd)).eval();
  }
  return w_c;
}

}  // namespace

fb::QuantSpec to_common_spec(const QuantSpec& s, bool weight) {
  fb::QuantSpec c;
  c.bits = s.bits;
  c.sym = s.sym;
  c.granularity = weight ? Granularity::per_channel : Granularity::per_token;
  c.weight = weight;
  return c;
}

TokenCodes quantize_groups(const Mat& x, int group, const fb::QuantSpec& spec, ClipRatios clip) {
  check_group(x, group);
  TokenCodes out;
  out.codes.resize(x.size());
  const long groups = x.size() / group;
  out.scale.resize(groups);
  out.zero.resize(groups);
  for (long g = 0; g < groups; ++g) {
    const float* xg = x.data() + g * group;
    GroupScale gs = group_scale(xg, group, spec, clip);
    out.scale[g] = gs.s, out.zero[g] = gs.z;
    for (int k = 0; k < group; ++k)
      out.codes[g * group + k] =
          static_cast<int8_t>(quantize_code(xg[k], gs.s, gs.z, spec.qmin(), spec.qmax()) + spec.storage_offset());
  }
  return out;
}

void fake_quantize_groups(Mat& x, int group, const fb::QuantSpec& spec, ClipRatios clip) {
  if (!spec.enabled()) return;
  check_group(x, group);
  for (long g = 0; g < x.size() / group; ++g) {
    float* xg = x.data() + g * group;
    GroupScale gs = group_scale(xg, group, spec, clip);
    for (int k = 0; k < group; ++k) xg[k] = gs.s * (quantize_code(xg[k], gs.s, gs.z, spec.qmin(), spec.qmax()) - gs.z);
  }
}

FlatQuantLinear::FlatQuantLinear(MatF left, MatF right, fb::QuantSpec a, ClipRatios clip, const Mat& w,
                                 fb::QuantSpec w_spec, Vec bias, bool real_quant, bool holds_transform)
    : left_(std::move(left)), right_(std::move(right)), a_(a), w_spec_(w_spec), clip_(clip), bias_(std::move(bias)),
      real_(real_quant), holds_transform_(holds_transform) {
  check_shapes(w.cols());
  if (w_spec_.enabled())
    set_weight(quantize_weight_rtn(w, w_spec_, false));
  else
    w_hat_ = w;
}

void FlatQuantLinear::check_shapes(long K) {
  transform_values_ = left_.size() + right_.size();
  if (right_.size() == 0) right_ = MatF::Identity(K / left_.rows(), K / left_.rows());
  if (left_.rows() * right_.rows() != K)
    throw std::invalid_argument(fmt::format("FlatQuantLinear: factors {}×{} do not match {} input channels",
                                            left_.rows(), right_.rows(), K));
  if (real_ && (!a_.enabled() || !a_.sym || a_.bits > 8 || !w_spec_.enabled() || !w_spec_.sym || w_spec_.bits > 8))
    throw std::invalid_argument("FlatQuantLinear: real_quant needs symmetric ≤8-bit per-token activations and "
                                "symmetric ≤8-bit per-channel weights (got " + w_spec_.describe() + " / " +
                                a_.describe() + ")");
}

void FlatQuantLinear::set_weight(QuantizedWeight w) {
  w_ = std::move(w);
  w_hat_ = w_.dequantized();
  if (!real_) return;
  if (w_spec_.bits <= 4) {
    std::vector<uint8_t> packed = pack_int4(w_.codes.data(), w_.rows(), w_.cols());
    packed_ = pack_weights_s4(packed.data(), w_.rows(), w_.cols());
  } else {
    packed_ = pack_weights_s8(w_.codes.data(), w_.rows(), w_.cols());
  }
}

std::shared_ptr<const FlatQuantLinear> FlatQuantLinear::with_weight(QuantizedWeight w, bool real_quant) const {
  if (!w_spec_.enabled() || w.rows() != w_hat_.rows() || w.cols() != w_hat_.cols())
    throw std::invalid_argument(fmt::format("FlatQuantLinear: a {}×{} quantized weight for a {}×{} site at {}", w.rows(),
                                            w.cols(), w_hat_.rows(), w_hat_.cols(), w_spec_.describe()));
  // The same transform, activation quantizer and bias; the weight is the new one (an empty float
  // weight keeps the constructor from quantizing anything itself).
  fb::QuantSpec off = w_spec_;
  off.bits = 16;
  auto op = std::make_shared<FlatQuantLinear>(left_, right_, a_, clip_, Mat(w.rows(), w.cols()), off, bias_, false,
                                              holds_transform_);
  op->w_spec_ = w_spec_;
  op->real_ = real_quant;
  op->transform_values_ = transform_values_;
  op->set_weight(std::move(w));
  return op;
}

Mat FlatQuantLinear::hessian_rows(const Mat& x) const {
  Mat xt = transform(x);
  fake_quantize_groups(xt, static_cast<int>(xt.cols()), a_, clip_);
  return xt;
}

Mat FlatQuantLinear::transform(const Mat& x) const {
  Mat xt;
  kron_apply<float>(x, left_, right_, xt);
  return xt;
}

void FlatQuantLinear::forward(const Mat& x, Mat& y) const {
  Mat xt = transform(x);
  const long M = xt.rows(), N = w_.rows();
  if (real_) {
    TokenCodes c = quantize_groups(xt, static_cast<int>(xt.cols()), a_, clip_);
    y.resize(M, N);
    DequantEpilogue ep{c.scale.data(), M, w_.params.scale.data(), N, bias_.size() ? bias_.data() : nullptr};
    gemm_s8_packed(c.codes.data(), M, packed_, ep, y.data());
    return;
  }
  fake_quantize_groups(xt, static_cast<int>(xt.cols()), a_, clip_);
  y.noalias() = xt * w_hat_.transpose();
  if (bias_.size()) y.rowwise() += bias_.transpose();
}

namespace {
// fake_quantize_groups as a backend-neutral step.
PlanQuant groups_plan(const fb::QuantSpec& spec, int group, ClipRatios clip) {
  PlanQuant q;
  if (!spec.enabled()) return q;
  q.scope = PlanQuant::Scope::row_groups, q.group = group, q.bits = spec.bits, q.sym = spec.sym, q.clip = clip;
  return q;
}
}  // namespace

std::optional<LinearPlan> FlatQuantLinear::plan() const {
  if (real_) return std::nullopt;
  LinearPlan p;
  p.kron_left = &left_, p.kron_right = &right_;
  p.quant = groups_plan(a_, 0, clip_);
  p.weight = &w_hat_;
  p.bias = bias_.size() ? &bias_ : nullptr;
  return p;
}

std::optional<AttentionPlan> FlatQuantAttentionHook::plan(int layer) const {
  const KvLayer& L = layers.at(size_t(layer));
  using T = AttentionStep::Tensor;
  AttentionPlan plan;
  if (L.pk.size()) plan.push_back({T::q, &L.pk_inv_t, {}}), plan.push_back({T::k, &L.pk, {}});
  plan.push_back({T::q, nullptr, groups_plan(L.q, head_dim, L.q_clip)});
  plan.push_back({T::k, nullptr, groups_plan(L.k, head_dim, L.k_clip)});
  plan.push_back({T::v, nullptr, groups_plan(L.v, head_dim, L.v_clip)});
  return plan;
}

std::string FlatQuantLinear::describe() const {
  return fmt::format("flatquant {}×{} kron + {} / {}{} (LAC {:.3f}/{:.3f})", left_.rows(), right_.rows(),
                     w_spec_.describe(), a_.describe(), real_ ? " real-quant" : " fake-quant", clip_.hi, clip_.lo);
}

OpFootprint FlatQuantLinear::footprint() const {
  OpFootprint f;
  f.weight_values = w_hat_.size();
  f.w_bits = w_spec_.enabled() ? w_spec_.bits : 16;
  if (real_) f.packed_bytes = w_spec_.bits <= 4 ? w_.rows() * ((w_.cols() + 1) / 2) : w_.rows() * w_.cols();
  if (w_spec_.enabled()) f.scale_values = long(w_.params.scale.size()) + (w_spec_.sym ? 0 : long(w_.params.zero.size()));
  const long lac = a_.enabled() ? 2 : 0;  // the (hi, lo) clipping ratios of the input quantizer
  f.extra_float_values = (holds_transform_ ? transform_values_ : 0) + lac + bias_.size();
  f.a_bits = a_.enabled() ? a_.bits : 16;
  f.a_width = int(w_hat_.cols());
  return f;
}

namespace {
// One cache (K or V) after the hook: codes and their scales when quantized here, floats when only
// transformed here, otherwise what the hooks before left.
void cached_after(const fb::QuantSpec& spec, bool transformed, long groups, int& bits, long& scales) {
  if (spec.enabled()) bits = spec.bits, scales = groups * (spec.sym ? 1 : 2);
  else if (transformed) bits = 16, scales = 0;
}
bool same_cache_layout(const KvLayer& a, const KvLayer& b) {
  return a.k.bits == b.k.bits && a.k.sym == b.k.sym && a.v.bits == b.v.bits && a.v.sym == b.v.sym &&
         (a.pk.size() > 0) == (b.pk.size() > 0);
}
}  // namespace

KvFootprint FlatQuantAttentionHook::kv_footprint(const ModelConfig& cfg, const KvFootprint& before) const {
  if (static_cast<int>(layers.size()) != cfg.n_layers)
    throw std::logic_error(fmt::format("flatquant: the attention hook has {} layers, the model {}", layers.size(),
                                       cfg.n_layers));
  KvFootprint f = before;
  if (layers.empty()) return f;
  for (const KvLayer& L : layers)
    if (!same_cache_layout(L, layers.front()))
      throw std::logic_error("flatquant: the K/V cache settings differ between layers; the accounting assumes one");
  const KvLayer& L = layers.front();
  const long groups = long(cfg.n_layers) * cfg.n_kv_heads;  // one scale group per token per kv head per layer
  cached_after(L.k, L.pk.size() > 0, groups, f.k_bits, f.k_scale_values);
  cached_after(L.v, false, groups, f.v_bits, f.v_scale_values);
  for (const KvLayer& l : layers) f.parameter_values += long(l.pk.size() + l.pk_inv_t.size());
  return f;
}

void FlatQuantAttentionHook::apply(int layer, Mat& q, Mat& k, Mat& v) const {
  const KvLayer& L = layers.at(layer);
  auto per_head = [&](Mat& x, const MatF& M) {
    Eigen::Map<Mat> xr(x.data(), x.size() / head_dim, head_dim);
    xr = (xr * M).eval();
  };
  if (L.pk.size()) {
    per_head(q, L.pk_inv_t);
    per_head(k, L.pk);
  }
  fake_quantize_groups(q, head_dim, L.q, L.q_clip);
  fake_quantize_groups(k, head_dim, L.k, L.k_clip);
  fake_quantize_groups(v, head_dim, L.v, L.v_clip);
}

MergedBlock merge_block(const BlockShape& shape, const FpBlock& fp, BlockParams& p, const QuantSettings& s) {
  for (Factor* f : p.factors()) f->materialise();
  const bool lt = s.linear_transforms();
  auto inv = [&](Factor& f) -> const MatD* { return lt ? &f.inv_t : nullptr; };
  const KronTransform* qkv = lt ? &p.qkv : nullptr;
  const KronTransform* ug = lt ? &p.upgate : nullptr;
  const KronTransform* dn = lt ? &p.down : nullptr;
  MergedBlock m;
  m.wq = to_float(merge_weight(fp.wq, qkv, inv(p.qkv.left), inv(p.qkv.right), p.q, s, nullptr));
  m.wk = to_float(merge_weight(fp.wk, qkv, inv(p.qkv.left), inv(p.qkv.right), p.k, s, nullptr));
  m.wv = to_float(merge_weight(fp.wv, qkv, inv(p.qkv.left), inv(p.qkv.right), p.v, s,
                               s.v_transform() ? &p.v_head.mat : nullptr));
  m.wo = to_float(merge_weight(fp.wo, nullptr, inv(p.o_heads), inv(p.v_head), p.o, s, nullptr));
  m.wgate = to_float(merge_weight(fp.wgate, ug, inv(p.upgate.left), inv(p.upgate.right), p.gate, s, nullptr));
  MatD up = merge_weight(fp.wup, ug, inv(p.upgate.left), inv(p.upgate.right), p.up, s, nullptr);
  if (lt && p.down.has_diag()) up = p.down.diag.v.col(0).asDiagonal() * up;  // d_down folded into W_up rows
  m.wup = to_float(up);
  m.wdown = to_float(merge_weight(fp.wdown, dn, inv(p.down.left), inv(p.down.right), p.dn, s, nullptr));
  VecD ga = fp.attn_gamma, gm = fp.mlp_gamma;
  if (lt && p.qkv.has_diag()) ga = ga.cwiseProduct(p.qkv.diag.v.col(0));
  if (lt && p.upgate.has_diag()) gm = gm.cwiseProduct(p.upgate.diag.v.col(0));
  m.attn_gamma = to_float(ga);
  m.mlp_gamma = to_float(gm);
  return m;
}

void deploy_block(Model& m, int l, const BlockShape& shape, const MergedBlock& merged, BlockParams& p,
                  const QuantSettings& s, const DeployOptions& opt, FlatQuantAttentionHook& hook) {
  Block& b = m.blocks.at(l);
  const bool lt = s.linear_transforms();
  const QuantSpec off{16, true};
  const fb::QuantSpec w_spec = to_common_spec(s.quantize ? s.w : off, true);
  const fb::QuantSpec a_spec = to_common_spec(s.quantize ? s.a : off, false);
  // `shares`: the site reads the same transformed input as the one installed before it (k, v
  // after q; up after gate), so that one counts the factors in its footprint.
  auto install = [&](LinearSite& site, const Mat& w, const MatD* left, const MatD* right, const LinearClip& clip,
                     bool shares = false) {
    site.W = w;
    MatF l = left ? MatF(left->cast<float>()) : MatF::Identity(1, 1);
    MatF r = right ? MatF(right->cast<float>()) : MatF();
    site.op = std::make_shared<FlatQuantLinear>(std::move(l), std::move(r), a_spec, lac_ratios(clip), w, w_spec,
                                                site.b, opt.real_quant, lt && !shares);
  };
  auto mat = [&](Factor& f) -> const MatD* { return lt ? &f.mat : nullptr; };
  install(b.q, merged.wq, mat(p.qkv.left), mat(p.qkv.right), p.q);
  install(b.k, merged.wk, mat(p.qkv.left), mat(p.qkv.right), p.k, true);
  install(b.v, merged.wv, mat(p.qkv.left), mat(p.qkv.right), p.v, true);
  install(b.o, merged.wo, mat(p.o_heads), nullptr, p.o);  // P_oᵀ·A across heads, identity within
  install(b.gate, merged.wgate, mat(p.upgate.left), mat(p.upgate.right), p.gate);
  install(b.up, merged.wup, mat(p.upgate.left), mat(p.upgate.right), p.up, true);
  install(b.down, merged.wdown, mat(p.down.left), mat(p.down.right), p.dn);
  b.attn_norm.gamma = merged.attn_gamma;
  b.mlp_norm.gamma = merged.mlp_gamma;

  KvLayer kv;
  if (s.k_transform()) kv.pk = p.k_head.mat.cast<float>(), kv.pk_inv_t = p.k_head.inv_t.cast<float>();
  kv.q = to_common_spec(s.quantize ? s.q : off, false);
  kv.k = to_common_spec(s.quantize ? s.k : off, false);
  kv.v = to_common_spec(s.quantize ? s.v : off, false);
  kv.q_clip = lac_ratios(p.q_cache);
  kv.k_clip = lac_ratios(p.k_cache);
  kv.v_clip = lac_ratios(p.v_cache);
  if (static_cast<int>(hook.layers.size()) <= l) hook.layers.resize(l + 1);
  hook.layers[l] = std::move(kv);
  hook.head_dim = shape.head_dim();
}

long online_transform_scalars(const BlockShape& shape, const QuantSettings& s) {
  long n = 0;
  auto kron = [](int K) {
    auto [n1, n2] = decompose_dim(K);
    return static_cast<long>(n1) * n1 + static_cast<long>(n2) * n2;
  };
  if (s.linear_transforms()) n += 2 * kron(shape.dim) + kron(shape.hidden) + static_cast<long>(shape.n_heads) * shape.n_heads;
  if (s.k_transform()) n += 2L * shape.head_dim() * shape.head_dim();  // P_k and P_k⁻ᵀ
  return n;
}

}  // namespace fb::flatquant
