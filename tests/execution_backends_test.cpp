// Execution backends (backends/backend.h): placements as configs write them, the CPU runner
// as the reference, CUDA jobs where there is no GPU, and — on a machine with one — the CUDA
// backend held to the CPU (logits, token scores, stories260K perplexity, zero-shot scores).
// The CUDA checks skip, saying so, where no GPU is visible (CI).
#include "backends/backend.h"
#include "harness/config.h"
#include "harness/evaluator.h"
#include "method_test_util.h"
#include "models/source.h"
#include "models/synthetic.h"
#include "runner_test_util.h"
#include "test_util.h"

#include <cmath>
#include <random>
#include <sstream>

namespace fb {
namespace {

using test::TempDir;

const ExecutionBackendInfo& backend(const std::string& name) {
  const ExecutionBackendInfo* b = Registry<ExecutionBackendInfo>::instance().find(name);
  if (!b) throw std::logic_error("backend " + name + " is not registered");
  return *b;
}

bool gpu_here() { return backend("cuda").unavailable().empty(); }

#define FB_REQUIRE_GPU()                                                               \
  do {                                                                                 \
    if (!gpu_here()) GTEST_SKIP() << "no CUDA device: " << backend("cuda").unavailable(); \
  } while (0)

std::vector<int> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = int(rng() % uint64_t(vocab));
  return t;
}

Model tiny(const std::string& arch, uint64_t seed = 1) {
  SyntheticOptions o;
  o.layers = 2;
  o.seed = seed;
  return make_synthetic_model(synthetic_config(arch), o);
}

TEST(ExecutionBackends, PlacementsAsConfigsWriteThem) {
  EXPECT_EQ(parse_placement("cpu", "").spec_backend(), "cpu");
  EXPECT_EQ(parse_placement("cuda", "").spec_backend(), "cuda/fp16") << "fp16 is the GPU's default";
  const Placement p = parse_placement("cuda:3", "bf16");
  EXPECT_EQ(p.device, 3);
  EXPECT_EQ(p.spec_backend(), "cuda/bf16") << "which GPU is provenance, not identity";
  EXPECT_EQ(placement_of_spec("cuda/fp32", 1).dtype, "fp32");
  EXPECT_NE(test::error_of([] { parse_placement("tpu", ""); }).find("known: cpu, cuda"), std::string::npos);
  EXPECT_NE(test::error_of([] { parse_placement("cuda:x", ""); }).find("cuda:N"), std::string::npos);
  EXPECT_NE(test::error_of([] { parse_placement("cpu:1", ""); }).find("device 'cpu:1'"), std::string::npos);
  EXPECT_NE(test::error_of([] { parse_placement("cuda", "fp8"); }).find("fp16, bf16, fp32"), std::string::npos);
  EXPECT_NE(test::error_of([] { parse_placement("cpu", "fp16"); }).find("it runs: fp32"), std::string::npos);
}

TEST(ExecutionBackends, ScoreRowIsTheDoubleLogSoftmaxAndFirstArgmax) {
  const std::vector<float> row = {1.f, 3.f, -2.f, 3.f, 0.5f};
  double sum = 0;
  for (float v : row) sum += std::exp(double(v) - 3.0);
  const double lse = 3.0 + std::log(sum);
  EXPECT_NEAR(score_row(row, 4).logprob, 0.5 - lse, 1e-12);
  EXPECT_TRUE(score_row(row, 1).greedy) << "the first of two equal maxima is the arg-max";
  EXPECT_FALSE(score_row(row, 3).greedy) << "the second is not (torch.argmax)";
}

// The CPU runner scores what the logits say, and shares one forward between requests of one input.
TEST(ExecutionBackends, CpuRunnerScoresTheTargetsOfEachRequest) {
  const Model m = tiny("llama-tiny");
  auto runner = backend("cpu").make_runner(m, {});
  const std::vector<int> a = random_tokens(40, m.cfg.vocab_size, 1), b = random_tokens(17, m.cfg.vocab_size, 2);
  const std::vector<ScoreRequest> requests = {{a, 0, std::span<const int>(a).subspan(1)},
                                              {b, 10, std::span<const int>(b).subspan(11)},
                                              {a, 38, std::span<const int>(a).subspan(39)}};
  std::vector<std::vector<TokenScore>> out;
  Progress quiet(true);
  runner->score(requests, out, {}, quiet);
  ASSERT_EQ(out.size(), 3u);
  ASSERT_EQ(out[0].size(), 39u);
  ASSERT_EQ(out[1].size(), 6u);
  const Mat la = m.forward(a), lb = m.forward(b);
  for (int t = 0; t < 39; ++t) {
    const TokenScore want = score_row({la.row(t).data(), size_t(la.cols())}, a[size_t(t) + 1]);
    EXPECT_EQ(out[0][size_t(t)].logprob, want.logprob) << t;
    EXPECT_EQ(out[0][size_t(t)].greedy, want.greedy) << t;
  }
  EXPECT_EQ(out[1][0].logprob, score_row({lb.row(10).data(), size_t(lb.cols())}, b[11]).logprob);
  EXPECT_EQ(out[2][0].logprob, out[0][38].logprob) << "same input, same row";
}

std::filesystem::path write(const TempDir& dir, const std::string& text) {
  test::put(dir / "c.yaml", text);
  return dir / "c.yaml";
}

constexpr const char* kSynthetic =
    "models:\n  - name: tiny\n    format: synthetic\n    arch: llama-tiny\n    layers: 1\n"
    "methods:\n  - name: fp16\n"
    "evaluations:\n  - name: memory\n";

TEST(ExecutionBackends, DeviceIsAnAxisOfModelJobsAndEntersTheKey) {
  TempDir dir;
  const Config plain = load_config(write(dir, kSynthetic), dir.path);
  const Config both = load_config(write(dir, std::string("device: [cpu, cuda]\n") + kSynthetic), dir.path);
  ASSERT_EQ(plain.jobs.size(), 1u);
  ASSERT_EQ(both.jobs.size(), 2u);
  EXPECT_EQ(both.jobs[0].spec.backend, "cpu");
  EXPECT_EQ(both.jobs[0].key, plain.jobs[0].key) << "a CPU job keeps its key when devices are listed";
  EXPECT_EQ(both.jobs[1].spec.backend, "cuda/fp16");
  EXPECT_NE(both.jobs[1].key, both.jobs[0].key);
  EXPECT_NE(both.jobs[1].label.find("@cuda/fp16"), std::string::npos) << both.jobs[1].label;
  const Config bf = load_config(write(dir, std::string("device: cuda:1\ngpu_dtype: bf16\n") + kSynthetic), dir.path);
  ASSERT_EQ(bf.jobs.size(), 1u);
  EXPECT_EQ(bf.jobs[0].spec.backend, "cuda/bf16");
  EXPECT_EQ(bf.jobs[0].device_index, 1);
  const Config same_gpu_elsewhere = load_config(write(dir, std::string("device: cuda:0\ngpu_dtype: bf16\n") + kSynthetic), dir.path);
  EXPECT_EQ(same_gpu_elsewhere.jobs[0].key, bf.jobs[0].key) << "the GPU's index is not part of the job";
  const Config each = load_config(write(dir, std::string("device: [cuda/fp32, cuda]\ngpu_dtype: bf16\n") + kSynthetic), dir.path);
  ASSERT_EQ(each.jobs.size(), 2u);
  EXPECT_EQ(each.jobs[0].spec.backend, "cuda/fp32") << "a device's own dtype wins";
  EXPECT_EQ(each.jobs[1].spec.backend, "cuda/bf16");
}

TEST(ExecutionBackends, BadDevicesAreConfigErrorsAtTheirLine) {
  TempDir dir;
  auto error = [&](const std::string& head) {
    try {
      load_config(write(dir, head + kSynthetic), dir.path);
    } catch (const ConfigError& e) {
      return std::pair<int, std::string>{e.line, e.what()};
    }
    return std::pair<int, std::string>{0, "loaded"};
  };
  auto [l1, e1] = error("name: x\ndevice: gpu\n");
  EXPECT_EQ(l1, 2);
  EXPECT_NE(e1.find("device: unknown device 'gpu'"), std::string::npos) << e1;
  auto [l2, e2] = error("gpu_dtype: bf16\n");
  EXPECT_EQ(l2, 1);
  EXPECT_NE(e2.find("no device of this config is a GPU"), std::string::npos) << e2;
  auto [l3, e3] = error("device: cuda\ngpu_dtype: int4\n");
  EXPECT_EQ(l3, 2);
  EXPECT_NE(e3.find("gpu_dtype: dtype 'int4'"), std::string::npos) << e3;
  auto [l5, e5] = error("device: [cpu, cuda/int3]\n");
  EXPECT_EQ(l5, 1);
  EXPECT_NE(e5.find("device: dtype 'int3'"), std::string::npos) << e5;
  auto [l4, e4] = error("device: {a: 1}\n");
  EXPECT_NE(e4.find("expected cpu, cuda, cuda:N"), std::string::npos) << e4;
}

// Without a GPU, a CUDA job fails with the reason, before its method prepares the model.
TEST(ExecutionBackends, CudaJobWithoutAGpuFailsWithTheReason) {
  if (gpu_here()) GTEST_SKIP() << "a GPU is visible here: the CUDA checks below run instead";
  TempDir dir;
  const Config cfg = load_config(write(dir, std::string("device: cuda\n") + kSynthetic), dir.path);
  RunOptions opt;
  opt.db_path = dir / "r.db";
  opt.quiet = true;
  std::ostringstream out;
  const RunCounts c = test::run_and_print(cfg, opt, out);
  ASSERT_EQ(c.failed, 1);
  ASSERT_EQ(c.failures.size(), 1u);
  const std::string& why = c.failures[0].error;
  EXPECT_TRUE(why.find("no usable GPU") != std::string::npos || why.find("built without CUDA") != std::string::npos)
      << why;
}

#ifdef FLATBENCH_HAVE_CUDA
// A method whose operators have no CUDA form is refused, naming the site, whatever the machine.
TEST(ExecutionBackends, CudaRefusesOperatorsItHasNoFormFor) {
  Model m = tiny("llama-tiny");
  struct Doubled final : LinearOp {
    void forward(const Mat& x, Mat& y) const override { y = 2 * x; }
    std::string describe() const override { return "doubling op"; }
    OpFootprint footprint() const override { return {}; }
  };
  m.blocks[1].up.op = std::make_shared<Doubled>();
  const std::string why = test::error_of([&] { backend("cuda").make_runner(m, parse_placement("cuda", "fp32")); });
  EXPECT_NE(why.find("layer 1 up runs 'doubling op', which has no CUDA form"), std::string::npos) << why;
}

// Integer GEMMs (real_quant) and opaque attention hooks have no plan: refused, not run as something else.
TEST(ExecutionBackends, CudaRefusesRealQuantAndOpaqueHooks) {
  Model real = tiny("llama-tiny");
  test::run_method("rtn", real, nullptr, {{"w_bits", 8}, {"a_bits", 8}, {"real_quant", true}});
  std::string why = test::error_of([&] { backend("cuda").make_runner(real, parse_placement("cuda", "fp32")); });
  EXPECT_NE(why.find("integer GEMMs run on the CPU"), std::string::npos) << why;
  EXPECT_NE(why.find("real_quant: false"), std::string::npos) << why;
  Model hooked = tiny("llama-tiny");
  hooked.attention_hook = [](int, Mat&, Mat& k, Mat&) { k *= 2; };
  why = test::error_of([&] { backend("cuda").make_runner(hooked, parse_placement("cuda", "fp32")); });
  EXPECT_NE(why.find("layer 0's attention hook is not a deployed operator"), std::string::npos) << why;
}
#endif

// ---- on a GPU ---------------------------------------------------------------------------

double max_relative(const Mat& got, const Mat& want) {
  return (got - want).cwiseAbs().maxCoeff() / want.cwiseAbs().maxCoeff();
}

TEST(CudaBackend, LogitsEqualTheCpuReference) {
  FB_REQUIRE_GPU();
  for (const char* arch : {"llama-tiny", "opt-tiny"}) {
    const Model m = tiny(arch, 5);
    for (const auto& [dtype, bound] : {std::pair{"fp32", 1e-5}, {"fp16", 5e-3}, {"bf16", 3e-2}}) {
      auto gpu = backend("cuda").make_runner(m, parse_placement("cuda", dtype));
      // Both sides of the 32-key tiles and 32-row blocks; LLaMA also past its context, which the CPU runs too.
      std::vector<int> lengths = {1, 31, 33, 100, m.cfg.max_seq_len};
      if (m.cfg.arch == Arch::llama) lengths.push_back(m.cfg.max_seq_len + 45);
      for (int T : lengths) {
        const std::vector<int> tokens = random_tokens(T, m.cfg.vocab_size, uint64_t(T));
        EXPECT_LE(max_relative(gpu->logits(tokens), m.forward(tokens)), bound) << arch << " " << dtype << " T=" << T;
      }
    }
  }
}

// How far the CPU's own logits move when its norm gains move by `eps` (relative). Fake-quantized
// models are chaotic: a 1e-7 nudge flips a code that sat on a rounding boundary and the change
// grows through the layers (llama-tiny W4A4KV4: 0.34 of the largest logit from a 1e-7 nudge), so
// a backend is held to the CPU no closer than the CPU is to itself under a nudge of the backend's
// rounding size. For dense or 8-bit settings this stays near zero and the fixed bound decides.
// The nudge is random per channel (as rounding noise is) and the largest of 16 draws counts:
// which boundary codes flip depends on its direction, and a flip that half the draws hit on one
// CPU can miss four draws on another (opt-tiny SmoothQuant W4A4KV4: 0.147 in 21 of 40 draws on
// an AMD EPYC, in none of 4 on the H200 host's Xeon).
double self_noise(const Model& m, const std::vector<int>& tokens, float eps) {
  const Mat reference = m.forward(tokens);
  double worst = 0;
  std::mt19937_64 rng(tokens.size());
  std::uniform_real_distribution<float> u(-eps, eps);
  for (int draw = 0; draw < 16; ++draw) {
    Model nudged = m;
    for (Block& b : nudged.blocks)
      for (Vec* g : {&b.attn_norm.gamma, &b.mlp_norm.gamma})
        for (long i = 0; i < g->size(); ++i) (*g)[i] *= 1 + u(rng);
    worst = std::max(worst, max_relative(nudged.forward(tokens), reference));
  }
  return worst;
}

// The bound for a dtype: its dense tolerance, or three times the CPU's own chaos at its rounding.
double bound_for(const Model& m, const std::vector<int>& tokens, const std::string& dtype) {
  return dtype == "fp32" ? std::max(2e-3, 3 * self_noise(m, tokens, 1e-7f))
                         : std::max(3e-2, 3 * self_noise(m, tokens, 4.9e-4f));  // 2^-11: fp16's rounding
}

// configs/flatquant.yaml's methods and bit settings (small calibration budgets), plus activation
// scopes it does not use (per-tensor dynamic and static, per-group), as jobs on a tiny model.
std::vector<std::pair<std::string, json>> method_jobs(Arch arch) {
  auto flatten = [](json p) {  // a small calibration budget
    p.update({{"calib_samples", 8}, {"calib_seqlen", 64}, {"check_windows", 0}});
    return p;
  };
  std::vector<std::pair<std::string, json>> jobs = {
      {"rtn", {{"w_bits", 4}, {"a_bits", 4}, {"kv_bits", 4}}},
      {"rtn", {{"w_bits", 4}, {"a_bits", 8}}},
      {"rtn", {{"w_bits", 8}, {"a_bits", 4}, {"a_granularity", "per_tensor"}, {"a_sym", false}}},
      {"rtn", {{"w_bits", 8}, {"a_bits", 8}, {"a_granularity", "per_tensor"}, {"a_static", true}, {"calib_samples", 4}}},
      {"smoothquant", {{"alpha", 0.85}, {"w_granularity", "per_channel"}, {"w_bits", 4}, {"a_bits", 4}, {"kv_bits", 4}}},
      {"flattenquant", flatten({{"bits_mode", "int4"}, {"kv_bits", 4}, {"w_granularity", "per_channel"}})},
      {"flattenquant", flatten({{"bits_mode", "int8"}, {"split", "staggered"}})},
  };
  if (arch == Arch::llama) {
    jobs.push_back({"flatquant", {{"epochs", 1}, {"nsamples", 4}, {"seqlen", 32}, {"cali_bsz", 2}}});
    jobs.push_back({"flatquant", {{"epochs", 1}, {"nsamples", 4}, {"seqlen", 32}, {"cali_bsz", 2}, {"a_bits", 8}, {"k_bits", 16}, {"v_bits", 16}}});
  }
  return jobs;
}

// Every method's deployed operators, run from their plans on the GPU, give the CPU's logits.
TEST(CudaBackend, EveryMethodsOperatorsRunAsOnTheCpu) {
  FB_REQUIRE_GPU();
  for (const char* arch : {"llama-tiny", "opt-tiny"}) {
    for (const auto& [method, params] : method_jobs(synthetic_config(arch).arch)) {
      Model m = test::tiny_synthetic(arch, 3, 2);
      test::run_method(method, m, nullptr, params);
      // fp32: the same steps in the same order, so only a code on a rounding boundary after a
      // GEMM summed in another order can differ; fp16 adds its rounding of weights and inputs.
      for (const std::string dtype : {"fp32", "fp16"}) {
        auto gpu = backend("cuda").make_runner(m, parse_placement("cuda", dtype));
        for (int T : {33, 100}) {
          const std::vector<int> tokens = random_tokens(T, m.cfg.vocab_size, uint64_t(T));
          EXPECT_LE(max_relative(gpu->logits(tokens), m.forward(tokens)), bound_for(m, tokens, dtype))
              << arch << " " << method << " " << params.dump() << " " << dtype << " T=" << T;
        }
      }
    }
  }
}

// Every next token of each input, scored by `gpu` in one packed batch, against the CPU
// scoring each input alone: log-probabilities within `tolerance`.
void expect_packed_scores_as_cpu(const Model& m, ModelRunner& gpu, const std::vector<std::vector<int>>& inputs,
                                 double tolerance, const std::string& what) {
  std::vector<ScoreRequest> requests;
  for (const auto& in : inputs) requests.push_back({in, 0, std::span<const int>(in).subspan(1)});
  std::vector<std::vector<TokenScore>> want, got;
  Progress quiet(true);
  backend("cpu").make_runner(m, {})->score(requests, want, {}, quiet);
  gpu.score(requests, got, {}, quiet);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    for (size_t j = 0; j < want[i].size(); ++j)
      EXPECT_NEAR(got[i][j].logprob, want[i][j].logprob, tolerance) << what << " window " << i << " target " << j;
}

// Per-tensor activation ranges are per window: windows packed into one batch score as each
// does alone on the CPU.
TEST(CudaBackend, PerTensorRangesArePerPackedWindow) {
  FB_REQUIRE_GPU();
  Model m = test::tiny_synthetic("llama-tiny", 4, 2);
  test::run_method("rtn", m, nullptr, {{"w_bits", 8}, {"a_bits", 4}, {"a_granularity", "per_tensor"}});
  std::vector<std::vector<int>> inputs;
  for (int i = 0; i < 12; ++i) inputs.push_back(random_tokens(20 + 17 * i, m.cfg.vocab_size, uint64_t(100 + i)));
  expect_packed_scores_as_cpu(m, *backend("cuda").make_runner(m, parse_placement("cuda", "fp32")), inputs, 2e-3, "");
}

// At LLaMA-2-7B's and OPT-6.7B's widths (one layer: the CPU side is the slow one), the GPU's
// logits are the CPU's to fp16 tolerance, dense and with each method's operators installed.
TEST(CudaBackend, SevenBShapesMatchTheCpuWithEachMethod) {
  FB_REQUIRE_GPU();
  for (const char* arch : {"llama-2-7b", "opt-6.7b"}) {
    const bool llama = synthetic_config(arch).arch == Arch::llama;
    std::vector<std::pair<std::string, json>> jobs = {{"fp16", json::object()},
                                                      {"rtn", {{"w_bits", 4}, {"a_bits", 4}, {"kv_bits", 4}, {"calib_samples", 2}, {"calib_seqlen", 32}}},
                                                      {"smoothquant", {{"alpha", 0.85}, {"w_bits", 8}, {"a_bits", 8}, {"calib_samples", 2}, {"calib_seqlen", 64}}},
                                                      {"flattenquant", {{"bits_mode", "int4"}, {"w_quantizer", "rtn"}, {"calib_samples", 2}, {"calib_seqlen", 64}, {"check_windows", 0}}}};
    if (llama) jobs.push_back({"flatquant", {{"epochs", 0}, {"nsamples", 2}, {"seqlen", 32}, {"cali_bsz", 2}}});
    const std::vector<int> tokens = random_tokens(40, synthetic_config(arch).vocab_size, 7);
    for (const auto& [method, params] : jobs) {
      SyntheticOptions o;
      o.layers = 1;
      o.seed = 11;
      Model m = make_synthetic_model(synthetic_config(arch), o);
      if (method != "fp16") test::run_method(method, m, nullptr, params);
      auto gpu = backend("cuda").make_runner(m, parse_placement("cuda", "fp16"));
      EXPECT_LE(max_relative(gpu->logits(tokens), m.forward(tokens)), bound_for(m, tokens, "fp16")) << arch << " " << method;
    }
  }
}

// The tensor-core attention (fp16 / bf16, head_dim 64 and 128) over one and many 64-key tiles,
// GQA included: the CPU's logits to the dtype's tolerance; fp32 keeps the CUDA-core kernel.
TEST(CudaBackend, TensorCoreAttentionMatchesTheCpuAcrossTiles) {
  FB_REQUIRE_GPU();
  for (const int head_dim : {64, 128}) {
    ModelConfig c = synthetic_config("llama-tiny");
    c.dim = 256, c.n_heads = 256 / head_dim, c.n_kv_heads = head_dim == 64 ? 2 : 1, c.hidden_dim = 512;
    c.max_seq_len = 512;
    SyntheticOptions o;
    o.seed = 21;
    const Model m = make_synthetic_model(c, o);
    for (const auto& [dtype, bound] : {std::pair{"fp16", 5e-3}, {"bf16", 3e-2}}) {
      auto gpu = backend("cuda").make_runner(m, parse_placement("cuda", dtype));
      EXPECT_NE(gpu->where().value("attention", "").find("mma.sync"), std::string::npos) << gpu->where().dump();
      for (int T : {1, 17, 64, 65, 200, 512}) {
        const std::vector<int> tokens = random_tokens(T, m.cfg.vocab_size, uint64_t(T + head_dim));
        EXPECT_LE(max_relative(gpu->logits(tokens), m.forward(tokens)), bound) << "hd " << head_dim << " " << dtype << " T=" << T;
      }
      // Windows of many lengths packed into one batch (tiles of several sequences, the longest
      // scheduled first): each attends to itself only, as the CPU scores it alone.
      std::vector<std::vector<int>> inputs;
      for (int i = 0; i < 9; ++i) inputs.push_back(random_tokens(2 + 61 * i, m.cfg.vocab_size, uint64_t(50 + i)));
      expect_packed_scores_as_cpu(m, *gpu, inputs, std::string(dtype) == "fp16" ? 2e-2 : 8e-2,
                                  "hd " + std::to_string(head_dim) + " " + dtype);
    }
    auto exact = backend("cuda").make_runner(m, parse_placement("cuda", "fp32"));
    EXPECT_NE(exact->where().value("attention", "").find("cuda-core"), std::string::npos) << exact->where().dump();
  }
}

// Requests of different lengths packed into one batch score as each does alone on the CPU.
TEST(CudaBackend, PackedRequestsScoreAsOnTheCpu) {
  FB_REQUIRE_GPU();
  const Model m = tiny("llama-tiny", 9);
  std::vector<std::vector<int>> inputs;
  std::vector<ScoreRequest> requests;
  for (int i = 0; i < 40; ++i) inputs.push_back(random_tokens(1 + (i * 37) % 150, m.cfg.vocab_size, uint64_t(i)));
  for (const auto& in : inputs) {
    const int first = int(in.size()) / 2;
    requests.push_back({in, first - 1 < 0 ? 0 : first - 1, std::span<const int>(in).subspan(size_t(first))});
  }
  std::vector<std::vector<TokenScore>> cpu, gpu;
  Progress quiet(true);
  backend("cpu").make_runner(m, {})->score(requests, cpu, {}, quiet);
  backend("cuda").make_runner(m, parse_placement("cuda", "fp32"))->score(requests, gpu, {}, quiet);
  ASSERT_EQ(gpu.size(), cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    ASSERT_EQ(gpu[i].size(), cpu[i].size()) << i;
    for (size_t j = 0; j < cpu[i].size(); ++j) {
      EXPECT_NEAR(gpu[i][j].logprob, cpu[i][j].logprob, 1e-4) << i << "," << j;
      EXPECT_EQ(gpu[i][j].greedy, cpu[i][j].greedy) << i << "," << j;
    }
  }
}

// Every CUDA job records where its device time went (ran_on.stage_ms), counted from its start.
TEST(CudaBackend, StageTimesArePerJob) {
  FB_REQUIRE_GPU();
  const Model m = tiny("llama-tiny", 3);
  auto gpu = backend("cuda").make_runner(m, parse_placement("cuda", "fp16"));
  const std::vector<int> in = random_tokens(300, m.cfg.vocab_size, 5);
  const std::vector<ScoreRequest> requests = {{in, 0, std::span<const int>(in).subspan(1)}};
  std::vector<std::vector<TokenScore>> out;
  Progress quiet(true);
  gpu->begin_job();
  gpu->score(requests, out, {}, quiet);
  const json once = gpu->where().at("stage_ms");
  for (const char* stage : {"gemm qkv", "attention", "gemm down", "norm", "gemm classifier", "log-softmax"})
    EXPECT_GT(once.value(stage, 0.0), 0.0) << stage << " in " << once.dump();
  gpu->score(requests, out, {}, quiet);
  EXPECT_GT(gpu->where().at("stage_ms").value("gemm qkv", 0.0), once.value("gemm qkv", 0.0));  // totals add up
  gpu->begin_job();
  EXPECT_TRUE(gpu->where().at("stage_ms").empty()) << "a new job starts from zero";
}

LoadedModel stories260k() {
  const SpecPart part{"stories260K", "llama2c",
                      {{"path", "stories260K/stories260K.bin"}, {"tokenizer", "stories260K/tok512.model"}}};
  return load_model(part, test::data_dir());
}

// The evaluator `name` on the model, scored by `runner` (null: the CPU reference).
JobResult run_eval(const std::string& name, const json& params, LoadedModel& lm, ModelRunner* runner) {
  Progress quiet(true);
  EvalContext ctx{params, test::data_dir(), &lm.model, lm.tokenizer.get(), 0, quiet, runner};
  JobResult r;
  Registry<EvaluatorInfo>::instance().find(name)->run(ctx, r);
  return r;
}

// The check: stories260K WikiText-2 perplexity on CUDA within 1e-5 (fp32) and 1e-3
// (fp16) of the CPU's.
TEST(CudaBackend, Stories260kPerplexityMatchesTheCpu) {
  FB_REQUIRE_GPU();
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  LoadedModel lm = stories260k();
  auto ppl = [&](ModelRunner* runner) {
    const JobResult r =
        run_eval("ppl", {{"dataset", "wikitext2"}, {"seqlen", 512}, {"max_windows", 0}, {"threads", 0}}, lm, runner);
    for (const Metric& m : r.metrics)
      if (m.name == "ppl") return m.value;
    return -1.0;
  };
  const double cpu = ppl(nullptr);
  auto fp32 = backend("cuda").make_runner(lm.model, parse_placement("cuda", "fp32"));
  auto fp16 = backend("cuda").make_runner(lm.model, parse_placement("cuda", "fp16"));
  const double g32 = ppl(fp32.get()), g16 = ppl(fp16.get());
  std::cout << "stories260K WikiText-2 PPL: cpu " << cpu << ", cuda fp32 " << g32 << ", cuda fp16 " << g16 << "\n";
  EXPECT_LE(std::abs(g32 - cpu) / cpu, 1e-5);
  EXPECT_LE(std::abs(g16 - cpu) / cpu, 1e-3);
}

TEST(CudaBackend, ZeroShotScoresEqualTheCpus) {
  FB_REQUIRE_GPU();
  FB_REQUIRE_DATA("piqa");
  LoadedModel lm = stories260k();
  auto accs = [&](ModelRunner* runner) {
    const JobResult r = run_eval("zeroshot",
                                 {{"tasks", {"piqa", "hellaswag", "openbookqa"}}, {"limit", 0}, {"threads", 0},
                                  {"max_length", 0}, {"add_bos", false}, {"task_dir", ""}, {"log_samples", false}},
                                 lm, runner);
    std::map<std::string, double> out;
    for (const Metric& m : r.metrics)
      if (m.name.ends_with("_acc") || m.name.ends_with("_acc_norm")) out[m.name] = m.value;
    return out;
  };
  const auto cpu = accs(nullptr);
  auto gpu_runner = backend("cuda").make_runner(lm.model, parse_placement("cuda", "fp32"));
  const auto gpu = accs(gpu_runner.get());
  ASSERT_FALSE(cpu.empty());
  for (const auto& [name, v] : cpu) {
    std::cout << name << ": cpu " << v << ", cuda fp32 " << gpu.at(name) << "\n";
    EXPECT_EQ(gpu.at(name), v) << name;
  }
}

}  // namespace
}  // namespace fb
