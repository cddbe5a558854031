// Helpers for the quantization-method tests: run a registered method or evaluator on a model.
#pragma once

#include "harness/evaluator.h"
#include "core/progress.h"
#include "methods/method.h"
#include "models/source.h"
#include "models/synthetic.h"
#include "models/tokenizer.h"
#include "test_util.h"

#include <stdexcept>
#include <string>

namespace fb::test {

// One token per byte, no BOS (the synthetic *-tiny vocabularies have 256 entries): enough to cut
// a corpus into windows without a real tokenizer.
class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int> encode(std::string_view text, bool) const override {
    std::vector<int> ids;
    for (unsigned char c : text) ids.push_back(int(c));
    return ids;
  }
  std::string decode(const std::vector<int>& ids) const override {
    std::string s;
    for (int id : ids) s.push_back(char(id));
    return s;
  }
  std::string piece(int, int id) const override { return std::string(1, char(id)); }
  int bos_id() const override { return -1; }
  int eos_id() const override { return -1; }
  int vocab_size() const override { return 256; }
};

// A small synthetic model of a registered shape (e.g. "opt-tiny"), optionally with outlier channels.
inline Model tiny_synthetic(const std::string& arch, uint64_t seed, int outlier_channels = 0) {
  SyntheticOptions o;
  o.seed = seed;
  o.outlier_channels = outlier_channels;
  return make_synthetic_model(synthetic_config(arch), o);
}

inline JobResult run_method(const std::string& name, Model& m, const Tokenizer* tok, const json& given,
                            uint64_t seed = 0) {
  const MethodInfo* info = Registry<MethodInfo>::instance().find(name);
  if (!info) throw std::runtime_error("method not registered: " + name);
  const json params = fill_defaults(info->params, given);
  const auto dir = data_dir();
  Progress progress(/*quiet=*/true);
  MethodContext ctx{params, dir, tok, seed, progress};
  JobResult result;
  info->apply(m, ctx, result);
  return result;
}

inline JobResult run_evaluator(const std::string& name, const Model& m, const Tokenizer* tok, const json& given) {
  const EvaluatorInfo* info = Registry<EvaluatorInfo>::instance().find(name);
  if (!info) throw std::runtime_error("evaluator not registered: " + name);
  const json params = fill_defaults(info->params, given);
  const auto dir = data_dir();
  Progress progress(/*quiet=*/true);
  EvalContext ctx{params, dir, &m, tok, 0, progress};
  JobResult result;
  info->run(ctx, result);
  return result;
}

inline double metric(const JobResult& r, const std::string& name) {
  for (const Metric& m : r.metrics)
    if (m.name == name) return m.value;
  throw std::runtime_error("metric not reported: " + name);
}

inline LoadedModel load_stories260k() {
  return load_model({"", "llama2c", {{"path", "stories260K/stories260K.bin"}, {"tokenizer", "stories260K/tok512.model"}}},
                    data_dir());
}

}  // namespace fb::test
