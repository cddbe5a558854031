// Perplexity by the GPTQ / QuaRot / FlatQuant protocol (methods.md §4.1,
// protocols-and-peers.md §3a): the corpus is tokenised once (BOS once at the start when the
// tokenizer adds one), cut into non-overlapping windows of `seqlen` tokens with the tail
// dropped, each window run as an independent forward pass; PPL = exp(mean over windows of
// the mean next-token NLL of that window).
//
// Windows are independent, so they run in parallel (one window per thread, BLAS single-
// threaded meanwhile): for small models this beats threading inside the GEMMs by far.
#include "harness/evaluator.h"
#include "harness/evaluators/parallel.h"

#include "datasets/corpus.h"
#include "models/model.h"
#include "models/tokenizer.h"

#include <chrono>
#include <ctime>
#include <cmath>
#include <stdexcept>

namespace fb {
namespace {

constexpr const char* kProtocol =
    "gptq-ppl: corpus tokenised once (BOS at start if the tokenizer adds one), non-overlapping windows, "
    "tail dropped, PPL = exp(mean over windows of mean next-token NLL)";

// Mean next-token negative log-likelihood of one window: logits row t predicts token t+1.
double window_nll(const Model& model, std::span<const int> window) {
  const Mat logits = model.forward(window);
  double sum = 0;
  for (size_t t = 0; t + 1 < window.size(); ++t) {
    const auto row = logits.row(Eigen::Index(t));
    const double mx = row.maxCoeff();
    const double lse = mx + std::log((row.array() - float(mx)).exp().cast<double>().sum());
    sum += lse - row[window[t + 1]];
  }
  return sum / double(window.size() - 1);
}

void run_ppl(EvalContext& ctx, JobResult& result) {
  if (!ctx.model) throw std::runtime_error("ppl: no model");
  const Model& model = *ctx.model;
  result.synthetic = model.cfg.synthetic;
  if (!ctx.tokenizer) throw std::runtime_error("ppl needs a tokenizer; synthetic models are for latency/memory/mechanics");

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

  std::vector<double> nll(static_cast<size_t>(windows));
  ctx.progress.begin("ppl " + dataset, windows);
  const auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  for_each_forward(model, windows, param_int(ctx.params, "threads"), ctx.progress, [&](int i) {
    nll[size_t(i)] = window_nll(model, std::span<const int>(tokens).subspan(size_t(i) * size_t(seqlen), size_t(seqlen)));
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu_seconds = double(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  ctx.progress.end();

  double mean = 0;
  for (double v : nll) mean += v;
  mean /= double(windows);
  result.add("ppl", std::exp(mean));
  Metric& m = result.add("mean_nll", mean, "nats");
  m.n = windows;
  m.samples = nll;
  result.add("tokens", double(tokens.size()), "tokens");
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
        {"dataset", ParamType::String, "wikitext2", "wikitext2 | wikitext2-valid | tinystories | a text file under the data dir"},
        {"seqlen", ParamType::Int, 0, "window length in tokens (0 = min(2048, model context))"},
        {"max_windows", ParamType::Int, 0, "evaluate at most this many windows (0 = all)"},
        {"threads", ParamType::Int, 0, "windows evaluated in parallel (0 = all cores)"},
    },
    true,
    run_ppl});

}  // namespace
}  // namespace fb
