// The fast forward pass against the plain reference, on synthetic LLaMA (GQA) and OPT
// models at small shapes; hooks, operators, site bookkeeping; synthetic model properties.
#include "models/reference_forward.h"
#include "models/source.h"
#include "models/synthetic.h"
#include "test_util.h"

#include <random>

namespace fb {
namespace {

Model tiny(const std::string& arch, int layers = 2, uint64_t seed = 1, int outliers = 0) {
  SyntheticOptions o;
  o.layers = layers;
  o.seed = seed;
  o.outlier_channels = outliers;
  return make_synthetic_model(synthetic_config(arch), o);
}

std::vector<int> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = int(rng() % uint64_t(vocab));
  return t;
}

double relative_error(const Mat& fast, const Mat& ref) {
  return (fast - ref).cwiseAbs().maxCoeff() / ref.cwiseAbs().maxCoeff();
}

// Windows longer than 8 (vector width) and not multiples of it exercise the kernel's tails.
TEST(ModelForward, LlamaGqaMatchesReference) {
  const Model m = tiny("llama-tiny");
  ASSERT_EQ(m.cfg.n_heads, 4);
  ASSERT_EQ(m.cfg.n_kv_heads, 2);  // grouped-query attention
  for (int T : {1, 7, 37, 200}) {
    const auto tokens = random_tokens(T, m.cfg.vocab_size, uint64_t(T));
    EXPECT_LE(relative_error(m.forward(tokens), reference_forward(m, tokens)), 1e-5) << "T=" << T;
  }
}

TEST(ModelForward, OptMatchesReference) {
  const Model m = tiny("opt-tiny");
  for (int T : {1, 9, 64, 130}) {
    const auto tokens = random_tokens(T, m.cfg.vocab_size, uint64_t(T) + 100);
    EXPECT_LE(relative_error(m.forward(tokens), reference_forward(m, tokens)), 1e-5) << "T=" << T;
  }
}

// Outlier channels (×30) carry fp32 rounding errors 30× larger than the logits they feed
// through the normalised stream, so the bound is looser than for plain weights.
TEST(ModelForward, OutlierModelsMatchReference) {
  for (const char* arch : {"llama-tiny", "opt-tiny"}) {
    const Model m = tiny(arch, 2, 7, 3);
    const auto tokens = random_tokens(50, m.cfg.vocab_size, 3);
    EXPECT_LE(relative_error(m.forward(tokens), reference_forward(m, tokens)), 1e-4) << arch;
  }
}

TEST(ModelForward, IsCausal) {
  const Model m = tiny("llama-tiny");
  auto tokens = random_tokens(40, m.cfg.vocab_size, 5);
  const Mat full = m.forward(tokens);
  tokens[30] = (tokens[30] + 1) % m.cfg.vocab_size;  // change the future of rows 0..29
  const Mat changed = m.forward(tokens);
  EXPECT_EQ(full.topRows(30), changed.topRows(30));
  EXPECT_GT((full.bottomRows(10) - changed.bottomRows(10)).cwiseAbs().maxCoeff(), 1e-4);
}

TEST(ModelForward, RejectsBadWindows) {
  const Model m = tiny("opt-tiny");
  EXPECT_THROW(m.forward(std::vector<int>{}), std::invalid_argument);
  EXPECT_THROW(m.forward(std::vector<int>{0, m.cfg.vocab_size}), std::out_of_range);
  EXPECT_THROW(m.forward(std::vector<int>(size_t(m.cfg.max_seq_len) + 1, 0)), std::out_of_range);
}

TEST(ModelForward, SiteHookSeesEveryInputInOrder) {
  Model m = tiny("llama-tiny");
  std::vector<std::pair<int, Role>> seen;
  std::vector<long> cols;
  m.site_hook = [&](const SiteId& id, const Mat& x) {
    seen.emplace_back(id.layer, id.role);
    cols.push_back(x.cols());
    EXPECT_EQ(x.rows(), 5);
  };
  m.forward(random_tokens(5, m.cfg.vocab_size, 1));
  const auto sites = m.sites();
  ASSERT_EQ(seen.size(), sites.size());
  for (size_t i = 0; i < sites.size(); ++i) {
    EXPECT_EQ(seen[i].first, sites[i]->id.layer);
    EXPECT_EQ(seen[i].second, sites[i]->id.role);
    EXPECT_EQ(cols[i], sites[i]->in_features());
  }
}

TEST(ModelForward, AttentionHookRunsAfterRopeAndCanEditKv) {
  Model m = tiny("llama-tiny");
  const auto tokens = random_tokens(12, m.cfg.vocab_size, 2);
  const Mat base = m.forward(tokens);
  int calls = 0;
  m.attention_hook = [&](int layer, Mat& q, Mat& k, Mat& v) {
    EXPECT_EQ(layer, calls++);
    EXPECT_EQ(q.cols(), m.cfg.dim);
    EXPECT_EQ(k.cols(), m.cfg.n_kv_heads * m.cfg.head_dim());
    EXPECT_EQ(v.rows(), 12);
  };
  EXPECT_EQ(m.forward(tokens), base);  // observing changes nothing
  EXPECT_EQ(calls, m.cfg.n_layers);
  m.attention_hook = [](int, Mat&, Mat&, Mat& v) { v.setZero(); };
  const Mat zeroed = m.forward(tokens);
  // With v = 0 attention contributes nothing: same as zeroing every o projection.
  Model no_attn = tiny("llama-tiny");
  for (Block& b : no_attn.blocks) b.o.W.setZero();
  EXPECT_LE(relative_error(zeroed, no_attn.forward(tokens)), 1e-6);
}

// A replacement operator computing y = 0.5·x·Wᵀ: installing it must equal halving W.
class HalfOp final : public LinearOp {
 public:
  explicit HalfOp(Mat w) : w_(std::move(w)) {}
  void forward(const Mat& x, Mat& y) const override { y = 0.5f * (x * w_.transpose()); }
  std::string describe() const override { return "half"; }
  OpFootprint footprint() const override {
    OpFootprint f;
    f.weight_values = w_.size();
    f.a_width = int(w_.cols());
    return f;
  }

 private:
  Mat w_;
};

TEST(ModelForward, InstalledOperatorReplacesDenseProduct) {
  Model with_op = tiny("llama-tiny"), halved = tiny("llama-tiny");
  for (int l = 0; l < with_op.cfg.n_layers; ++l) {
    LinearSite& s = with_op.site({l, Role::down});
    s.op = std::make_shared<HalfOp>(s.W);
    halved.site({l, Role::down}).W *= 0.5f;
  }
  const auto tokens = random_tokens(20, with_op.cfg.vocab_size, 9);
  EXPECT_LE(relative_error(with_op.forward(tokens), halved.forward(tokens)), 1e-6);
  EXPECT_LE(relative_error(reference_forward(with_op, tokens), halved.forward(tokens)), 1e-5);
}

TEST(ModelForward, SitesNormsAndNames) {
  Model llama = tiny("llama-tiny"), opt = tiny("opt-tiny");
  EXPECT_EQ(llama.sites().size(), 7u * 2);
  EXPECT_EQ(opt.sites().size(), 6u * 2);
  EXPECT_EQ(llama.norm_before({1, Role::up}), &llama.blocks[1].mlp_norm);
  EXPECT_EQ(llama.norm_before({0, Role::k}), &llama.blocks[0].attn_norm);
  EXPECT_EQ(opt.norm_before({0, Role::fc1}), &opt.blocks[0].mlp_norm);
  EXPECT_EQ(opt.norm_before({0, Role::o}), nullptr);
  EXPECT_EQ(&opt.site({1, Role::fc2}), &opt.blocks[1].fc2);
  EXPECT_THROW(opt.site({0, Role::gate}), std::out_of_range);
  EXPECT_THROW(llama.site({2, Role::q}), std::out_of_range);
  EXPECT_STREQ(role_name(Role::gate), "gate");
  EXPECT_STREQ(arch_name(Arch::opt), "opt");
  for (const LinearSite* s : opt.sites()) EXPECT_EQ(s->b.size(), s->out_features());
}

TEST(ModelForward, ParameterCountMatchesShapes) {
  const Model m = tiny("llama-tiny");
  const long d = 64, f = 176, kv = 32, v = 256;
  const long per_layer = 2 * d + d * d * 2 + 2 * kv * d + 3 * f * d;
  EXPECT_EQ(m.parameter_count(), v * d * 2 + d + 2 * per_layer);  // untied classifier
}

TEST(SyntheticModel, PublishedShapes) {
  const ModelConfig opt = synthetic_config("opt-6.7b");
  EXPECT_EQ(opt.dim, 4096);
  EXPECT_EQ(opt.hidden_dim, 16384);
  EXPECT_EQ(opt.n_layers, 32);
  EXPECT_EQ(opt.vocab_size, 50272);
  const ModelConfig l70 = synthetic_config("llama-2-70b");
  EXPECT_EQ(l70.n_kv_heads, 8);
  EXPECT_EQ(l70.hidden_dim, 28672);
  const ModelConfig l3 = synthetic_config("llama-3-8b");
  EXPECT_EQ(l3.vocab_size, 128256);
  EXPECT_FLOAT_EQ(l3.rope_theta, 500000.f);
  EXPECT_EQ(synthetic_config("opt-66b").n_heads, 72);
  EXPECT_THROW(synthetic_config("opt-7b"), std::invalid_argument);
}

TEST(SyntheticModel, DeterministicBySeed) {
  const Model a = tiny("opt-tiny", 1, 42), b = tiny("opt-tiny", 1, 42), c = tiny("opt-tiny", 1, 43);
  EXPECT_EQ(a.blocks[0].fc1.W, b.blocks[0].fc1.W);
  EXPECT_NE(a.blocks[0].fc1.W, c.blocks[0].fc1.W);
  EXPECT_TRUE(a.cfg.synthetic);
  // Weights are N(0, 1/K): the sample std of a 256×64 matrix is close to 1/8.
  const Mat& w = a.blocks[0].fc1.W;
  const double mean = w.mean(), var = (w.array() - float(mean)).square().mean();
  EXPECT_NEAR(std::sqrt(var), 1.0 / 8, 0.005);
  EXPECT_NEAR(mean, 0.0, 0.005);
}

TEST(SyntheticModel, OutlierChannelsDominateNormOutputs) {
  Model m = tiny("opt-tiny", 2, 3, 4);
  SyntheticOptions o;
  o.seed = 3;
  o.outlier_channels = 4;
  const std::vector<int> outliers = synthetic_outlier_channels(m.cfg.dim, o);
  ASSERT_EQ(outliers.size(), 4u);
  Eigen::VectorXf colmax;
  m.site_hook = [&](const SiteId& id, const Mat& x) {
    if (id.layer == 1 && id.role == Role::fc1) colmax = x.cwiseAbs().colwise().maxCoeff().transpose();
  };
  m.forward(random_tokens(32, m.cfg.vocab_size, 4));
  ASSERT_EQ(colmax.size(), m.cfg.dim);
  float smallest_outlier = 1e30f, largest_other = 0;
  for (int c = 0; c < m.cfg.dim; ++c) {
    const bool is_outlier = std::find(outliers.begin(), outliers.end(), c) != outliers.end();
    if (is_outlier) smallest_outlier = std::min(smallest_outlier, colmax[c]);
    else largest_other = std::max(largest_other, colmax[c]);
  }
  EXPECT_GT(smallest_outlier, 5 * largest_other);
}

TEST(SyntheticModel, LoadsThroughModelSource) {
  const LoadedModel lm = load_model({"", "synthetic", {{"arch", "opt-125m"}, {"layers", 1}, {"vocab", 1000}}},
                                    test::data_dir());
  EXPECT_TRUE(lm.model.cfg.synthetic);
  EXPECT_EQ(lm.model.cfg.dim, 768);
  EXPECT_EQ(lm.model.cfg.n_layers, 1);
  EXPECT_EQ(lm.model.cfg.vocab_size, 1000);
  EXPECT_FALSE(lm.tokenizer);
  const Mat logits = lm.model.forward(random_tokens(16, 1000, 1));
  EXPECT_TRUE(logits.allFinite());
  // Logits O(1): the scaling keeps activations in range.
  EXPECT_LT(logits.cwiseAbs().maxCoeff(), 50.f);
  EXPECT_GT(logits.cwiseAbs().maxCoeff(), 0.1f);
  EXPECT_THROW(load_model({"", "synthetic", {{"arch", "gpt-5"}}}, test::data_dir()), std::exception);
  EXPECT_THROW(load_model({"", "synthetic", json::object()}, test::data_dir()), std::runtime_error);
  EXPECT_THROW(load_model({"", "onnx", json::object()}, test::data_dir()), std::runtime_error);
}

}  // namespace
}  // namespace fb
