// Perplexity by the GPTQ / QuaRot / FlatQuant protocol (docs/methods.md §4.1,
// docs/protocols.md §3a): the corpus is tokenised once (BOS once at the start when the
// tokenizer adds one), cut into non-overlapping windows of `seqlen` tokens with the tail
// dropped, each window run as an independent forward pass; PPL = exp(mean over windows of
// the mean next-token NLL of that window).
//
// Windows are independent: the job's execution backend scores them (backends/backend.h), on the
// CPU one window per thread, on a GPU many windows per batch.
#include "harness/evaluator.h"

#include "datasets/corpus.h"
#include "models/model.h"
#include "models/tokenizer.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <stdexcept>

namespace fb {
namespace {

constexpr const char* kProtocol =
    "gptq-ppl: corpus tokenised once (BOS at start if the tokenizer adds one), non-overlapping windows, "
    "tail dropped, PPL = exp(mean over windows of mean next-token NLL); ppl_stderr = PPL × the standard error "
    "of the mean per-token NLL (llama-perplexity's +/-)";

// Next-token negative log-likelihoods of one window (logits row t predicts token t+1): their
// sum and sum of squares, for the mean and llama-perplexity's per-token uncertainty.
struct WindowNll {
  double sum = 0, sum_sq = 0;
  long count = 0;
  double mean() const { return sum / double(count); }
};

WindowNll window_nll(const std::vector<TokenScore>& scores) {
  WindowNll w;
  for (const TokenScore& s : scores) {
    const double nll = -s.logprob;
    w.sum += nll, w.sum_sq += nll * nll, ++w.count;
  }
  return w;
}

// llama-perplexity's "PPL = X +/- Y" (docs/protocols.md §1): the standard error of the mean per-token NLL,
// sqrt(var / (count − 1)) with var = E[nll²] − E[nll]², propagated through exp (× PPL).
// It treats tokens as independent, so it is a lower bound on the true uncertainty.
double mean_nll_stderr(const std::vector<WindowNll>& windows) {
  double sum = 0, sum_sq = 0;
  long count = 0;
  for (const WindowNll& w : windows) sum += w.sum, sum_sq += w.sum_sq, count += w.count;
  if (count < 2) return 0;
  const double mean = sum / double(count);
  const double var = std::max(0.0, sum_sq / double(count) - mean * mean);
  return std::sqrt(var / double(count - 1));
}

void run_ppl(EvalContext& ctx, JobResult& result) {
  if (!ctx.model) throw std::runtime_error("ppl: no model");
  const Model& model = *ctx.model;
  result.synthetic = model.cfg.synthetic;
  if (!ctx.tokenizer) throw std::runtime_error("ppl needs a tokenizer and the model has none (give its models entry `tokenizer:`)");

  const std::string dataset = param_string(ctx.params, "dataset");
  int seqlen = param_int(ctx.params, "seqlen");
  if (seqlen == 0) seqlen = std::min(2048, model.cfg.max_seq_len);
  if (seqlen < 2) throw std::runtime_error("ppl: seqlen must be at least 2");
  if (model.cfg.arch == Arch::opt && seqlen > model.cfg.max_seq_len)
    throw std::runtime_error("ppl: seqlen " + std::to_string(seqlen) + " exceeds the model's " +
                             std::to_string(model.cfg.max_seq_len) + " learned positions");

  const std::vector<int> tokens = ctx.tokenizer->encode(load_corpus(dataset, ctx.data_dir), true);
  int windows = int(tokens.size() / size_t(seqlen));
  if (windows == 0)
    throw std::runtime_error("ppl: corpus '" + dataset + "' has " + std::to_string(tokens.size()) +
                             " tokens, fewer than one window of " + std::to_string(seqlen));
  const int max_windows = param_int(ctx.params, "max_windows");
  if (max_windows > 0) windows = std::min(windows, max_windows);

  // Window i is read by the model and scored on its next tokens (row t predicts token t + 1).
  std::vector<ScoreRequest> requests(static_cast<size_t>(windows));
  for (int i = 0; i < windows; ++i) {
    const std::span<const int> window = std::span<const int>(tokens).subspan(size_t(i) * size_t(seqlen), size_t(seqlen));
    requests[size_t(i)] = {window, 0, window.subspan(1)};
  }
  ModelRunner& runner = model_runner(ctx);
  std::vector<std::vector<TokenScore>> token_scores;
  const auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  runner.score(requests, token_scores, {"ppl " + dataset, param_int(ctx.params, "threads")}, ctx.progress);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu_seconds = double(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  std::vector<WindowNll> scored;
  for (const std::vector<TokenScore>& w : token_scores) scored.push_back(window_nll(w));

  std::vector<double> nll;
  long predictions = 0;
  for (const WindowNll& w : scored) nll.push_back(w.mean()), predictions += w.count;
  const Summary over_windows = summarise(nll);
  const double ppl = std::exp(over_windows.mean);
  const double nll_stderr = mean_nll_stderr(scored);
  result.add("ppl", ppl);
  result.add("ppl_stderr", ppl * nll_stderr);
  Metric& m = result.add("mean_nll", over_windows.mean, "nats");
  m.n = windows;
  m.stddev = over_windows.stddev;  // spread of the per-window means
  m.samples = nll;
  result.add("mean_nll_stderr", nll_stderr, "nats");
  // What was scored: the tokens of the evaluated windows and the next-token predictions among
  // them; the corpus length only says how much text there was to choose from.
  result.add("tokens", double(windows) * seqlen, "tokens");
  result.add("scored_tokens", double(predictions), "tokens");
  result.add("corpus_tokens", double(tokens.size()), "tokens");
  result.add("windows", windows);
  result.add("seqlen", seqlen, "tokens");
  result.add("eval_s", seconds, "s");
  // Process CPU time over all threads: on a shared machine, wall time alone says little.
  result.add("eval_cpu_s", cpu_seconds, "s");
  result.add("tok_per_s", double(windows) * seqlen / seconds, "tok/s");
  result.info["protocol"] = kProtocol;
  result.info["dataset"] = dataset;
  result.info["bos_added"] = ctx.tokenizer->bos_id() >= 0;
}

FB_REGISTER_EVALUATOR(EvaluatorInfo{
    "ppl",
    "Perplexity (GPTQ protocol): non-overlapping windows over a tokenised corpus, tail dropped.",
    {
        {"dataset", ParamType::String, "wikitext2", "wikitext2 | wikitext2-valid | tinystories | a text file under the data dir",
         {}, ParamRole::corpus},
        {"seqlen", ParamType::Int, 0, "window length in tokens (0 = min(2048, model context))", {}, {}, at_least(0)},
        {"max_windows", ParamType::Int, 0, "evaluate at most this many windows (0 = all)", {}, {}, at_least(0)},
        {"threads", ParamType::Int, 0, "windows evaluated in parallel (0 = all cores)", {}, {}, between(0, 4096)},
    },
    true,
    run_ppl,
    /*needs_tokenizer=*/true});

}  // namespace
}  // namespace fb
