// lm-evaluation-harness's request tokenisation and scoring rules (lm_eval/api/model.py
// `_encode_pair`, lm_eval/models/huggingface.py `_loglikelihood_tokens`, lm_eval/api/task.py
// `process_results`, lm_eval/api/metrics.py `mean_stderr`), written once so the zeroshot
// evaluator and its tests agree on them.
#pragma once

#include "models/model.h"

#include <span>
#include <string_view>
#include <vector>

namespace fb {

class Tokenizer;

// One (context, continuation) request as token ids.
struct EncodedRequest {
  std::vector<int> context;       // encode(context), or the prefix token alone for an empty context
  std::vector<int> continuation;  // encode(context + continuation)[len(context tokens):]
};

// lm-eval's `_encode_pair`: trailing whitespace of the context moves to the front of the
// continuation; the whole string is encoded and the continuation is the tail beyond the
// context's token count (so a token merging across the boundary counts as continuation).
// An empty context is conditioned on the prefix token (BOS, else EOS) and the continuation
// is encoded alone. add_bos: prepend BOS to every encoding (HFLM add_bos_token=True; lm-eval
// ≤ 0.4.9 leaves it off for causal models unless asked).
EncodedRequest encode_request(const Tokenizer& tok, std::string_view context, std::string_view continuation,
                              bool add_bos);

// What one forward pass sees: (context + continuation)[-(max_length + 1):][:-1] — contexts
// too long for the model lose tokens from the left — and which logits rows predict the
// continuation tokens (rows first_row .. first_row + targets.size() - 1).
//
// A continuation longer than max_length keeps only its last max_length tokens as targets
// (the rest fall outside the window, like the context): lm-eval mis-slices its logits in
// that case, so there is no reference behaviour to follow; `dropped` counts them.
struct ScoringWindow {
  std::vector<int> input;
  std::vector<int> targets;
  int first_row = 0;
  int dropped = 0;         // continuation tokens outside the window, not scored
  bool truncated = false;  // the request lost tokens on the left
};
ScoringWindow scoring_window(const EncodedRequest& r, int max_length);

// acc_norm's divisor: len(choice) as Python counts a str, i.e. Unicode code points of the
// UTF-8 text (equal to bytes for ASCII).
double python_length(std::string_view utf8);

// numpy.argmax: the first index of the largest value.
int argmax_first(std::span<const double> values);

// lm-eval's mean_stderr: sample standard deviation (n − 1) / sqrt(n); 0 for n < 2.
double mean_stderr(std::span<const double> values);

}  // namespace fb
