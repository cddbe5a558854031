// When evaluators may run forwards on several threads (backends/parallel.h): under
// pure attention hooks (KV-cache quantization) PPL windows run in parallel and give the very
// same NLL as a serial run; a stateful attention hook or a calibration site hook keeps them
// one at a time. A synthetic llama-tiny model with a byte tokenizer and a corpus written to a
// temporary data directory, so nothing here needs the real data.
#include "harness/evaluator.h"
#include "backends/parallel.h"
#include "core/progress.h"
#include "methods/common/kv_quant.h"
#include "models/synthetic.h"
#include "models/tokenizer.h"
#include "method_test_util.h"
#include "test_util.h"

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

namespace fb {
namespace {

using test::ByteTokenizer;

Model tiny_model() {
  SyntheticOptions o;
  o.seed = 11;
  o.vocab = 256;
  return make_synthetic_model(synthetic_config("llama-tiny"), o);
}

struct Corpus {
  test::TempDir dir;
  Corpus() {
    std::ofstream f(dir / "corpus.txt", std::ios::binary);
    std::mt19937_64 rng(5);
    for (int i = 0; i < 64 * 12 + 17; ++i) f << char('a' + int(rng() % 26));
  }
};

JobResult run_ppl(const Model& m, const Corpus& c, int threads) {
  const EvaluatorInfo* ev = Registry<EvaluatorInfo>::instance().find("ppl");
  EXPECT_NE(ev, nullptr);
  const json params = fill_defaults(ev->params, {{"dataset", "corpus.txt"}, {"seqlen", 64}, {"threads", threads}});
  const ByteTokenizer tok;
  Progress progress(true);
  EvalContext ctx{params, c.dir.path, &m, &tok, 0, progress};
  JobResult r;
  ev->run(ctx, r);
  return r;
}

const Metric& metric(const JobResult& r, const std::string& name) {
  for (const Metric& m : r.metrics)
    if (m.name == name) return m;
  throw std::runtime_error("no metric " + name);
}

// How many calls are inside a hook at once; each call stays a little so that overlapping
// forwards would be seen.
struct InFlight {
  std::atomic<int> now{0}, most{0}, calls{0};
  void enter() {
    ++calls;
    const int n = ++now;
    int m = most.load();
    while (n > m && !most.compare_exchange_weak(m, n)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    --now;
  }
};

TEST(ParallelForward, KvQuantPplIsParallelAndBitwiseEqualToSerial) {
  const Corpus corpus;
  Model plain = tiny_model();
  Model kv4 = tiny_model();
  install_kv_quant(kv4, 4);
  ASSERT_TRUE(attention_hook_is_pure(kv4.attention_hook));
  EXPECT_TRUE(forwards_may_run_concurrently(kv4));
  EXPECT_EQ(installed_kv_bits(kv4), 4);

  const JobResult serial = run_ppl(kv4, corpus, 1);
  const JobResult parallel = run_ppl(kv4, corpus, 2);
  ASSERT_EQ(metric(serial, "windows").value, 12);
  // Every window's NLL bit for bit: a window's forward does not depend on the thread it runs on.
  EXPECT_EQ(metric(serial, "mean_nll").samples, metric(parallel, "mean_nll").samples);
  EXPECT_EQ(metric(serial, "ppl").value, metric(parallel, "ppl").value);
  EXPECT_NE(metric(serial, "ppl").value, metric(run_ppl(plain, corpus, 2), "ppl").value) << "KV4 must change the result";
}

TEST(ParallelForward, PureHooksLetForwardsOverlap) {
  Model m = tiny_model();
  // A hook vouched pure that waits (bounded) for a second forward to arrive: it only meets one
  // when forwards really run at the same time.
  std::atomic<int> arrived{0};
  std::atomic<bool> met{false};
  m.attention_hook = chain_attention_hooks({}, [&](int layer, Mat&, Mat&, Mat&) {
    if (layer != 0 || met) return;
    ++arrived;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (arrived < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    if (arrived >= 2) met = true;
  }, true);
  install_kv_quant(m, 4);
  ASSERT_TRUE(forwards_may_run_concurrently(m));
  Progress progress(true);
  const std::vector<int> window(32, 7);
  for_each_forward(m, 4, 2, progress, [&](int) { (void)m.forward(window); });
  EXPECT_TRUE(met) << "two forwards never overlapped under pure hooks";
}

TEST(ParallelForward, StatefulAttentionHookKeepsPplSerial) {
  const Corpus corpus;
  Model kv4 = tiny_model();
  install_kv_quant(kv4, 4);
  const JobResult reference = run_ppl(kv4, corpus, 1);

  // A hook with shared state, installed before KV4 (which then chains inside KvQuantHook) ...
  InFlight before;
  Model m1 = tiny_model();
  m1.attention_hook = [&](int, Mat&, Mat&, Mat&) { before.enter(); };
  EXPECT_FALSE(forwards_may_run_concurrently(m1));
  install_kv_quant(m1, 4);
  EXPECT_FALSE(forwards_may_run_concurrently(m1));
  EXPECT_EQ(installed_kv_bits(m1), 4);
  const JobResult r1 = run_ppl(m1, corpus, 4);
  EXPECT_EQ(before.most, 1);
  EXPECT_EQ(before.calls, 12 * m1.cfg.n_layers);
  EXPECT_EQ(metric(r1, "mean_nll").samples, metric(reference, "mean_nll").samples);

  // ... or chained after it without vouching for its purity: serial either way.
  InFlight after;
  Model m2 = tiny_model();
  install_kv_quant(m2, 4);
  m2.attention_hook = chain_attention_hooks(m2.attention_hook, [&](int, Mat&, Mat&, Mat&) { after.enter(); }, false);
  EXPECT_FALSE(forwards_may_run_concurrently(m2));
  run_ppl(m2, corpus, 4);
  EXPECT_EQ(after.most, 1);
  EXPECT_EQ(after.calls, 12 * m2.cfg.n_layers);

  // A plain assignment replaces a pure hook with an impure one.
  Model m3 = tiny_model();
  install_kv_quant(m3, 4);
  m3.attention_hook = [](int, Mat&, Mat&, Mat&) {};
  EXPECT_FALSE(forwards_may_run_concurrently(m3));
}

TEST(ParallelForward, CalibrationSiteHookKeepsForwardsSerial) {
  const Corpus corpus;
  InFlight sites;
  Model m = tiny_model();
  install_kv_quant(m, 4);
  m.site_hook = [&](const SiteId&, const Mat&) { sites.enter(); };
  EXPECT_FALSE(forwards_may_run_concurrently(m));
  run_ppl(m, corpus, 4);
  EXPECT_EQ(sites.most, 1);
  EXPECT_GT(sites.calls, 12);
}

}  // namespace
}  // namespace fb
