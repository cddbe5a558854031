// The perplexity evaluator: protocol checked against a direct computation with the
// reference forward, the synthetic-model guard, and the full WikiText-2 run on stories260K.
#include "datasets/corpus.h"
#include "harness/evaluator.h"
#include "backends/parallel.h"
#include "methods/common/kv_quant.h"
#include "models/reference_forward.h"
#include "models/source.h"
#include "test_util.h"

#include <cmath>
#include <iostream>

namespace fb {
namespace {

const Metric* metric(const JobResult& r, const std::string& name) {
  for (const Metric& m : r.metrics)
    if (m.name == name) return &m;
  return nullptr;
}

JobResult run_ppl(const LoadedModel& lm, const json& given) {
  const EvaluatorInfo* ev = Registry<EvaluatorInfo>::instance().find("ppl");
  EXPECT_NE(ev, nullptr);
  EXPECT_TRUE(ev->needs_model);
  const json params = fill_defaults(ev->params, given);
  const std::filesystem::path dir = test::data_dir();
  Progress progress(true);
  EvalContext ctx{params, dir, &lm.model, lm.tokenizer.get(), 0, progress};
  JobResult r;
  ev->run(ctx, r);
  return r;
}

LoadedModel stories() {
  return load_model({"", "llama2c", {{"path", "stories260K/stories260K.bin"}, {"tokenizer", "stories260K/tok512.model"}}},
                    test::data_dir());
}

// PPL = exp(mean over windows of the mean next-token NLL), windows cut from one tokenisation.
TEST(Ppl, MatchesDirectComputationWithReferenceForward) {
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  FB_REQUIRE_DATA("tinystories/TinyStories-valid.head30KB.txt");
  const LoadedModel lm = stories();
  const int seqlen = 64, windows = 3;
  const JobResult r = run_ppl(lm, {{"dataset", "tinystories"}, {"seqlen", seqlen}, {"max_windows", windows}});

  const std::vector<int> tokens = lm.tokenizer->encode(load_corpus("tinystories", test::data_dir()), true);
  ASSERT_EQ(tokens[0], lm.tokenizer->bos_id());
  double total = 0;
  std::vector<double> per_window;
  for (int w = 0; w < windows; ++w) {
    const std::vector<int> win(tokens.begin() + w * seqlen, tokens.begin() + (w + 1) * seqlen);
    const Mat logits = reference_forward(lm.model, win);
    double nll = 0;
    for (int t = 0; t + 1 < seqlen; ++t) {
      double z = 0;
      for (Eigen::Index v = 0; v < logits.cols(); ++v) z += std::exp(double(logits(t, v)));
      nll += std::log(z) - logits(t, win[size_t(t) + 1]);
    }
    per_window.push_back(nll / (seqlen - 1));
    total += per_window.back();
  }
  ASSERT_NE(metric(r, "ppl"), nullptr);
  EXPECT_NEAR(metric(r, "ppl")->value, std::exp(total / windows), 1e-4 * std::exp(total / windows));
  const Metric* nll = metric(r, "mean_nll");
  ASSERT_NE(nll, nullptr);
  ASSERT_EQ(nll->samples.size(), size_t(windows));
  for (int w = 0; w < windows; ++w) EXPECT_NEAR(nll->samples[size_t(w)], per_window[size_t(w)], 1e-4);
  EXPECT_EQ(metric(r, "tokens")->value, double(windows) * seqlen);  // scored, not the corpus
  EXPECT_EQ(metric(r, "corpus_tokens")->value, double(tokens.size()));
  EXPECT_EQ(metric(r, "windows")->value, windows);
  EXPECT_EQ(metric(r, "seqlen")->value, seqlen);
  EXPECT_GT(metric(r, "tok_per_s")->value, 0);
  EXPECT_FALSE(r.synthetic);
  EXPECT_NE(r.info["protocol"].get<std::string>().find("non-overlapping"), std::string::npos);
  // In-domain text: a trained model is far better than uniform over 512 tokens.
  EXPECT_LT(metric(r, "ppl")->value, 20.0);
}

TEST(Ppl, SerialAndParallelAgree) {
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  FB_REQUIRE_DATA("tinystories/TinyStories-valid.head30KB.txt");
  const LoadedModel lm = stories();
  const JobResult one = run_ppl(lm, {{"dataset", "tinystories"}, {"seqlen", 128}, {"threads", 1}});
  const JobResult two = run_ppl(lm, {{"dataset", "tinystories"}, {"seqlen", 128}, {"threads", 2}});
  // Same windows, same order of the final mean; only BLAS threading may differ in fp32 rounding.
  EXPECT_NEAR(metric(one, "ppl")->value, metric(two, "ppl")->value, 1e-6 * metric(one, "ppl")->value);
  EXPECT_EQ(metric(one, "windows")->value, std::floor(metric(one, "tokens")->value / 128));  // tail dropped
}

// KV-cache quantization is a pure attention hook: PPL windows still run in parallel and agree
// with the serial run. A stateful hook (here a counter) keeps them serial, even with KV
// quantization chained after it, and the KV bits stay readable through either chain.
TEST(Ppl, PureKvQuantHookKeepsWindowsParallel) {
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  FB_REQUIRE_DATA("tinystories/TinyStories-valid.head30KB.txt");
  LoadedModel lm = stories();
  install_kv_quant(lm.model, 4);
  EXPECT_TRUE(forwards_may_run_concurrently(lm.model));
  EXPECT_EQ(installed_kv_bits(lm.model), 4);
  const JobResult one = run_ppl(lm, {{"dataset", "tinystories"}, {"seqlen", 128}, {"threads", 1}});
  const JobResult two = run_ppl(lm, {{"dataset", "tinystories"}, {"seqlen", 128}, {"threads", 2}});
  // Each window's forward is the same arithmetic on any thread: the same NLLs bit for bit.
  EXPECT_EQ(metric(one, "mean_nll")->samples, metric(two, "mean_nll")->samples);
  EXPECT_EQ(metric(one, "ppl")->value, metric(two, "ppl")->value);

  LoadedModel fp = stories();
  const JobResult plain = run_ppl(fp, {{"dataset", "tinystories"}, {"seqlen", 128}});
  EXPECT_GT(metric(one, "ppl")->value, metric(plain, "ppl")->value) << "KV4 must change the result";

  long calls = 0;
  LoadedModel counted = stories();
  counted.model.attention_hook = [&calls](int, Mat&, Mat&, Mat&) { ++calls; };
  EXPECT_FALSE(forwards_may_run_concurrently(counted.model));
  install_kv_quant(counted.model, 4);
  EXPECT_FALSE(forwards_may_run_concurrently(counted.model));
  EXPECT_EQ(installed_kv_bits(counted.model), 4);
  const JobResult serial = run_ppl(counted, {{"dataset", "tinystories"}, {"seqlen", 128}, {"threads", 2}});
  EXPECT_EQ(calls, long(metric(serial, "windows")->value) * counted.model.cfg.n_layers);
  EXPECT_EQ(metric(serial, "mean_nll")->samples, metric(one, "mean_nll")->samples);
}

TEST(Model, AttentionHookChainsArePureOnlyWhenEveryPartIs) {
  const AttentionHook impure = [](int, Mat&, Mat&, Mat&) {};
  EXPECT_TRUE(attention_hook_is_pure(AttentionHook()));
  EXPECT_FALSE(attention_hook_is_pure(impure));
  const AttentionHook pure = chain_attention_hooks({}, impure, true);  // the caller vouches for it
  EXPECT_TRUE(attention_hook_is_pure(pure));
  EXPECT_TRUE(attention_hook_is_pure(chain_attention_hooks(pure, impure, true)));
  EXPECT_FALSE(attention_hook_is_pure(chain_attention_hooks(pure, impure, false)));
  EXPECT_FALSE(attention_hook_is_pure(chain_attention_hooks(impure, pure, true)));
  int order = 0, first = -1, second = -1;
  const AttentionHook chained = chain_attention_hooks([&](int, Mat&, Mat&, Mat&) { first = order++; },
                                                      [&](int, Mat&, Mat&, Mat&) { second = order++; }, false);
  Mat q, k, v;
  chained(0, q, k, v);
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 1);
}

TEST(Ppl, SyntheticModelsAreRefused) {
  const LoadedModel lm = load_model({"", "synthetic", {{"arch", "opt-tiny"}}}, test::data_dir());
  const EvaluatorInfo* ev = Registry<EvaluatorInfo>::instance().find("ppl");
  ASSERT_NE(ev, nullptr);
  const json params = fill_defaults(ev->params, json::object());
  const std::filesystem::path dir = test::data_dir();
  Progress progress(true);
  EvalContext ctx{params, dir, &lm.model, nullptr, 0, progress};
  JobResult r;
  try {
    ev->run(ctx, r);
    FAIL() << "ppl ran on a synthetic model";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ppl needs a tokenizer and the model has none"),
              std::string::npos);
  }
  EXPECT_TRUE(r.synthetic);
}

// The whole WikiText-2 test set at seqlen 512 (stories260K's context).
TEST(Ppl, Stories260KWikitext2Full) {
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  FB_REQUIRE_DATA("wikitext2/wiki.test.raw");
  const LoadedModel lm = stories();
  const auto start = std::chrono::steady_clock::now();
  const JobResult r = run_ppl(lm, json::object());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double ppl = metric(r, "ppl")->value;
  std::cout << "[ stories260K wikitext2 ] ppl " << ppl << ", tokens " << metric(r, "tokens")->value << ", windows "
            << metric(r, "windows")->value << ", seqlen " << metric(r, "seqlen")->value << ", eval "
            << metric(r, "eval_s")->value << " s (cpu " << metric(r, "eval_cpu_s")->value << " s), "
            << metric(r, "tok_per_s")->value << " tok/s, total " << seconds
            << " s (incl. load + tokenise)\n";
  EXPECT_EQ(metric(r, "seqlen")->value, 512);
  EXPECT_EQ(metric(r, "windows")->value, std::floor(metric(r, "tokens")->value / 512));
  // A TinyStories model on Wikipedia: far worse than in-domain, far better than uniform (512).
  EXPECT_GT(ppl, 20.0);
  EXPECT_LT(ppl, 512.0);
}

}  // namespace
}  // namespace fb
