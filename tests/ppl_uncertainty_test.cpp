// PPL records what it scored and its uncertainty: `tokens` counts the evaluated windows (not
// the corpus), mean_nll's stddev is the spread of the per-window means, and ppl_stderr /
// mean_nll_stderr are llama-perplexity's standard error of the mean per-token NLL × PPL.
// Checked against an independent computation from the reference forward on a tiny synthetic
// model, with a byte tokenizer over a tiny corpus.
#include "method_test_util.h"
#include "models/reference_forward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace fb {
namespace {

using test::ByteTokenizer;

std::filesystem::path write_corpus(const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / "flatbench_ppl_uncertainty_corpus.txt";
  std::ofstream(path) << text;
  return path;
}

const Metric& find_metric(const JobResult& r, const std::string& name) {
  for (const Metric& m : r.metrics)
    if (m.name == name) return m;
  throw std::runtime_error("metric not reported: " + name);
}

TEST(PplUncertainty, TokensStddevAndStderrMatchAnIndependentComputation) {
  const Model m = test::tiny_synthetic("llama-tiny", 11);
  const ByteTokenizer tok;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the quick brown fox " + std::to_string(i * 7919 % 1000) + " jumps. ";
  const auto corpus = write_corpus(text);
  const int seqlen = 48, windows = 5;
  ASSERT_GT(text.size(), size_t(seqlen * (windows + 2))) << "max_windows must cut the corpus short";
  const JobResult r = test::run_evaluator(
      "ppl", m, &tok, {{"dataset", corpus.string()}, {"seqlen", seqlen}, {"max_windows", windows}, {"threads", 1}});

  // Per-token NLLs from the reference forward, window by window.
  const std::vector<int> ids = tok.encode(text, true);
  std::vector<double> token_nll, window_mean;
  for (int w = 0; w < windows; ++w) {
    const std::vector<int> win(ids.begin() + w * seqlen, ids.begin() + (w + 1) * seqlen);
    const Mat logits = reference_forward(m, win);
    double sum = 0;
    for (int t = 0; t + 1 < seqlen; ++t) {
      double z = 0;
      for (Eigen::Index v = 0; v < logits.cols(); ++v) z += std::exp(double(logits(t, v)));
      token_nll.push_back(std::log(z) - logits(t, win[size_t(t) + 1]));
      sum += token_nll.back();
    }
    window_mean.push_back(sum / (seqlen - 1));
  }
  double mean = 0;
  for (double x : window_mean) mean += x;
  mean /= windows;
  double ss_windows = 0;
  for (double x : window_mean) ss_windows += (x - mean) * (x - mean);
  const double window_stddev = std::sqrt(ss_windows / (windows - 1));
  const double n = double(token_nll.size());
  double ss_tokens = 0;
  for (double x : token_nll) ss_tokens += (x - mean) * (x - mean);  // equal windows: token mean = window mean
  const double nll_stderr = std::sqrt(ss_tokens / n / (n - 1));

  EXPECT_EQ(find_metric(r, "tokens").value, double(windows) * seqlen);
  EXPECT_EQ(find_metric(r, "scored_tokens").value, n);
  EXPECT_EQ(find_metric(r, "corpus_tokens").value, double(ids.size()));
  const Metric& nll = find_metric(r, "mean_nll");
  EXPECT_NEAR(nll.value, mean, 1e-4);
  EXPECT_EQ(nll.n, windows);
  ASSERT_GT(window_stddev, 0);
  EXPECT_NEAR(nll.stddev, window_stddev, 1e-3 * window_stddev);
  EXPECT_NEAR(find_metric(r, "mean_nll_stderr").value, nll_stderr, 1e-3 * nll_stderr);
  const double ppl = std::exp(mean);
  EXPECT_NEAR(find_metric(r, "ppl").value, ppl, 1e-4 * ppl);
  EXPECT_NEAR(find_metric(r, "ppl_stderr").value, ppl * nll_stderr, 1e-3 * ppl * nll_stderr);
  std::filesystem::remove(corpus);
}

}  // namespace
}  // namespace fb
