#include "datasets/tasks/lm_eval_rules.h"

#include "datasets/tasks/task_io.h"
#include "models/tokenizer.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace fb {

namespace {

int prefix_token(const Tokenizer& tok) {
  const int prefix = tok.bos_id() >= 0 ? tok.bos_id() : tok.eos_id();
  if (prefix < 0) throw std::runtime_error("zeroshot: empty context but the tokenizer has neither BOS nor EOS");
  return prefix;
}

}  // namespace

EncodedRequest encode_request(const Tokenizer& tok, std::string_view context, std::string_view continuation,
                              bool add_bos) {
  EncodedRequest r;
  if (context.empty()) {
    r.context = {prefix_token(tok)};
    r.continuation = tok.encode(continuation, add_bos);
    if (add_bos && !r.continuation.empty() && r.continuation.front() == r.context.front())
      r.continuation.erase(r.continuation.begin());  // the prefix token is the context, never scored
    return r;
  }
  size_t keep = context.size();
  while (keep > 0 && tasks::is_space(context[keep - 1])) --keep;
  const std::string moved_continuation = std::string(context.substr(keep)) + std::string(continuation);
  context = context.substr(0, keep);
  const std::vector<int> whole = tok.encode(std::string(context) + moved_continuation, add_bos);
  r.context = tok.encode(context, add_bos);
  if (r.context.size() <= whole.size()) r.continuation.assign(whole.begin() + long(r.context.size()), whole.end());
  // A whitespace-only context encodes to nothing; lm-eval would mis-slice its logits there,
  // we condition on the prefix token as for an empty context.
  if (r.context.empty()) r.context = {prefix_token(tok)};
  return r;
}

ScoringWindow scoring_window(const EncodedRequest& r, int max_length) {
  if (max_length < 1) throw std::runtime_error("zeroshot: max_length must be at least 1");
  std::vector<int> all = r.context;
  all.insert(all.end(), r.continuation.begin(), r.continuation.end());
  const size_t keep = std::min(all.size(), size_t(max_length) + 1);
  const size_t scored = std::min(r.continuation.size(), keep - 1);
  ScoringWindow w;
  w.input.assign(all.end() - long(keep), all.end() - 1);
  w.targets.assign(r.continuation.end() - long(scored), r.continuation.end());
  w.first_row = int(w.input.size() - scored);
  w.dropped = int(r.continuation.size() - scored);
  w.truncated = keep < all.size();
  return w;
}

double python_length(std::string_view utf8) {
  double n = 0;
  for (const char c : utf8)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) n += 1;  // count lead bytes, not continuation bytes
  return n;
}

int argmax_first(std::span<const double> values) {
  int best = 0;
  for (size_t i = 1; i < values.size(); ++i)
    if (values[i] > values[size_t(best)]) best = int(i);
  return best;
}

double mean_stderr(std::span<const double> values) {
  const size_t n = values.size();
  if (n < 2) return 0;
  double mean = 0;
  for (double v : values) mean += v;
  mean /= double(n);
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / double(n - 1)) / std::sqrt(double(n));
}

}  // namespace fb
