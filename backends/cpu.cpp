// The CPU execution backend: the harness's own runtime (Model::forward), fp32, and the
// reference every other backend is held to. Requests run in parallel, one forward per thread
// (backends/parallel.h); requests with the same input share one forward (lm-eval's grouping
// of single-token continuations of one context).
#include "backends/backend.h"
#include "backends/parallel.h"

#include <map>

namespace fb {
namespace {

class CpuRunner final : public ModelRunner {
 public:
  explicit CpuRunner(const Model& m) : model_(m) {}

  void score(std::span<const ScoreRequest> requests, std::vector<std::vector<TokenScore>>& out,
             const ScoreOptions& opt, Progress& progress) override {
    out.assign(requests.size(), {});
    // Requests by input, in first-seen order, so each distinct input runs once.
    std::map<std::vector<int>, size_t> index_of;
    std::vector<std::vector<size_t>> users;
    for (size_t i = 0; i < requests.size(); ++i) {
      if (requests[i].targets.empty()) continue;
      std::vector<int> key(requests[i].input.begin(), requests[i].input.end());
      auto [it, fresh] = index_of.emplace(std::move(key), users.size());
      if (fresh) users.emplace_back();
      users[it->second].push_back(i);
    }
    progress.begin(opt.what, long(users.size()));
    for_each_forward(model_, int(users.size()), opt.threads, progress, [&](int u) {
      const std::vector<size_t>& mine = users[size_t(u)];
      const Mat logits = model_.forward(requests[mine.front()].input);
      for (size_t i : mine) {
        const ScoreRequest& r = requests[i];
        out[i].reserve(r.targets.size());
        for (size_t j = 0; j < r.targets.size(); ++j) {
          const auto row = logits.row(Eigen::Index(r.first_row) + Eigen::Index(j));
          out[i].push_back(score_row({row.data(), size_t(row.size())}, r.targets[j]));
        }
      }
    });
    progress.end();
  }

  Mat logits(std::span<const int> window) override { return model_.forward(window); }

  nlohmann::json where() const override { return {{"backend", "cpu"}, {"dtype", "fp32"}}; }

 private:
  const Model& model_;
};

FB_REGISTER_EXECUTION_BACKEND(ExecutionBackendInfo{
    "cpu",
    "the harness's runtime on the CPU in fp32 (Model::forward): the reference for every other backend",
    {"fp32"},
    [] { return std::string(); },
    [](const Model& m, const Placement&) { return std::make_unique<CpuRunner>(m); }});

}  // namespace
}  // namespace fb
