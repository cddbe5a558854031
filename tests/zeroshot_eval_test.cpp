// The zeroshot evaluator: lm-eval's request tokenisation (on a toy tokenizer and on the real
// stories260K SentencePiece model), log-likelihoods checked against hand computation on a
// bigram model whose probabilities are known in closed form and against an independent
// plain loop over the reference forward of a tiny synthetic transformer, for every task
// format; acc / acc_norm / stderr / LAMBADA greedy + ppl; missing and unknown tasks; threading.
#include "datasets/tasks/lm_eval_rules.h"
#include "harness/evaluator.h"
#include "backends/parallel.h"
#include "methods/common/kv_quant.h"
#include "models/reference_forward.h"
#include "models/source.h"
#include "models/synthetic.h"
#include "models/tokenizer.h"
#include "test_util.h"

#include <cmath>
#include <fstream>

namespace fb {
namespace {

constexpr int kVocab = 256;

// A toy tokenizer with one merge rule, so the tail rule matters: each printable ASCII
// character is a token, and a space directly followed by a printable non-space character
// is one token (as SentencePiece's "▁x"). ids: 0 unk, 1 BOS, 2 EOS, 3.. single characters,
// 98.. space+character, 192 newline.
class ToyTokenizer final : public Tokenizer {
 public:
  explicit ToyTokenizer(bool has_bos = true) : has_bos_(has_bos) {}
  static int single(char c) {
    if (c == '\n') return 192;
    if (c >= 32 && c <= 126) return 3 + (c - 32);
    return 0;
  }
  static int merged(char c) { return 98 + (c - 33); }
  static bool mergeable(char c) { return c >= 33 && c <= 126; }

  std::vector<int> encode(std::string_view text, bool add_bos) const override {
    std::vector<int> ids;
    if (add_bos && has_bos_) ids.push_back(1);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == ' ' && i + 1 < text.size() && mergeable(text[i + 1])) {
        ids.push_back(merged(text[++i]));
      } else {
        ids.push_back(single(text[i]));
      }
    }
    return ids;
  }
  std::string decode(const std::vector<int>& ids) const override {
    std::string s;
    for (int id : ids) s += piece(-1, id);
    return s;
  }
  std::string piece(int, int id) const override {
    if (id == 192) return "\n";
    if (id >= 3 && id < 98) return std::string(1, char(32 + id - 3));
    if (id >= 98 && id < 192) return std::string(" ") + char(33 + id - 98);
    return "";
  }
  int bos_id() const override { return has_bos_ ? 1 : -1; }
  int eos_id() const override { return 2; }
  int vocab_size() const override { return kVocab; }

 private:
  bool has_bos_;
};

// A model with no layers whose next-token logits depend only on the current token:
// logit(next | prev) = boosts[(prev, next)], else 0. One-hot embeddings (scaled so the
// RMSNorm, eps 0, returns them unchanged) and classifier column `prev` = that row of logits.
struct Boost {
  int prev, next;
  float logit;
};

Model bigram_model(const std::vector<Boost>& boosts) {
  Model m;
  m.cfg.name = "bigram";
  m.cfg.arch = Arch::llama;
  m.cfg.dim = kVocab;
  m.cfg.hidden_dim = kVocab;
  m.cfg.n_layers = 0;
  m.cfg.n_heads = m.cfg.n_kv_heads = 1;
  m.cfg.vocab_size = kVocab;
  m.cfg.max_seq_len = 512;
  m.cfg.norm_eps = 0;
  m.cfg.synthetic = true;
  m.tok_embedding = Mat::Identity(kVocab, kVocab) * std::sqrt(float(kVocab));  // RMS of each row = 1
  m.final_norm.gamma = Vec::Ones(kVocab);
  m.classifier = Mat::Zero(kVocab, kVocab);
  for (const Boost& b : boosts) m.classifier(b.next, b.prev) = b.logit / std::sqrt(float(kVocab));
  return m;
}

// log P(next | prev) of the bigram model, by hand: logit − log Σ exp(row).
double bigram_ll(const std::vector<Boost>& boosts, int prev, int next) {
  double z = 0, logit = 0;
  std::vector<double> row(kVocab, 0.0);
  for (const Boost& b : boosts)
    if (b.prev == prev) row[size_t(b.next)] = b.logit;
  for (double r : row) z += std::exp(r);
  logit = row[size_t(next)];
  return logit - std::log(z);
}

const Metric* metric(const JobResult& r, const std::string& name) {
  for (const Metric& m : r.metrics)
    if (m.name == name) return &m;
  return nullptr;
}

double value(const JobResult& r, const std::string& name) {
  const Metric* m = metric(r, name);
  EXPECT_NE(m, nullptr) << "metric " << name << " missing";
  return m ? m->value : std::nan("");
}

JobResult run_zeroshot(const Model& model, const Tokenizer* tok, const std::filesystem::path& dir, json given) {
  const EvaluatorInfo* ev = Registry<EvaluatorInfo>::instance().find("zeroshot");
  EXPECT_NE(ev, nullptr);
  if (!ev) return {};
  EXPECT_TRUE(ev->needs_model);
  given["log_samples"] = true;
  const json params = fill_defaults(ev->params, given);
  Progress progress(true);
  EvalContext ctx{params, dir, &model, tok, 0, progress};
  JobResult r;
  ev->run(ctx, r);
  return r;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<double> logged_lls(const JobResult& r, const std::string& task, size_t doc) {
  return r.info.at("samples").at(task).at(doc).at("loglik").get<std::vector<double>>();
}

const double kLn256 = std::log(256.0);

// ---- tokenisation rules --------------------------------------------------------------

TEST(ZeroshotRules, TrailingSpaceMovesToContinuationAndContinuationIsTheTail) {
  const ToyTokenizer tok;
  const EncodedRequest r = encode_request(tok, "ab ", "c", false);
  EXPECT_EQ(r.context, (std::vector<int>{ToyTokenizer::single('a'), ToyTokenizer::single('b')}));
  EXPECT_EQ(r.continuation, (std::vector<int>{ToyTokenizer::merged('c')}));  // " c" merged, not ' ' + 'c'
  // Several trailing whitespace characters (newline included) all move.
  const EncodedRequest r2 = encode_request(tok, "a:\n ", "x", false);
  EXPECT_EQ(r2.context.size(), 2u);
  EXPECT_EQ(r2.continuation, (std::vector<int>{ToyTokenizer::single('\n'), ToyTokenizer::merged('x')}));
}

TEST(ZeroshotRules, EmptyContextIsConditionedOnThePrefixToken) {
  const EncodedRequest with_bos = encode_request(ToyTokenizer(true), "", " hi", false);
  EXPECT_EQ(with_bos.context, std::vector<int>{1});
  EXPECT_EQ(with_bos.continuation, (std::vector<int>{ToyTokenizer::merged('h'), ToyTokenizer::single('i')}));
  const EncodedRequest eos_only = encode_request(ToyTokenizer(false), "", " hi", false);
  EXPECT_EQ(eos_only.context, std::vector<int>{2});
}

TEST(ZeroshotRules, AddBosPrefixesBothEncodingsButNotTheContinuation) {
  const EncodedRequest r = encode_request(ToyTokenizer(), "a", " b", true);
  EXPECT_EQ(r.context, (std::vector<int>{1, ToyTokenizer::single('a')}));
  EXPECT_EQ(r.continuation, std::vector<int>{ToyTokenizer::merged('b')});
}

TEST(ZeroshotRules, LongInputsAreTruncatedFromTheLeft) {
  EncodedRequest r;
  for (int i = 1; i <= 10; ++i) r.context.push_back(i);
  r.continuation = {11, 12};
  const ScoringWindow w = scoring_window(r, 5);
  EXPECT_EQ(w.input, (std::vector<int>{7, 8, 9, 10, 11}));  // (ctx + cont)[-6:][:-1]
  EXPECT_EQ(w.targets, (std::vector<int>{11, 12}));
  EXPECT_EQ(w.first_row, 3);  // row of token 10 predicts 11
  const ScoringWindow full = scoring_window(r, 100);
  EXPECT_EQ(full.input.size(), 11u);
  EXPECT_EQ(full.first_row, 9);
  EXPECT_EQ(full.dropped, 0);
  EXPECT_TRUE(w.truncated);
  EXPECT_FALSE(full.truncated);
  // A continuation longer than the window keeps its last max_length tokens as targets.
  r.continuation = {11, 12, 13, 14, 15, 16};
  const ScoringWindow tail = scoring_window(r, 5);
  EXPECT_EQ(tail.input, (std::vector<int>{11, 12, 13, 14, 15}));
  EXPECT_EQ(tail.targets, (std::vector<int>{12, 13, 14, 15, 16}));
  EXPECT_EQ(tail.first_row, 0);
  EXPECT_EQ(tail.dropped, 1);
}

TEST(ZeroshotRules, LengthArgmaxAndStderrFollowPythonAndNumpy) {
  EXPECT_EQ(python_length("abc"), 3);
  EXPECT_EQ(python_length("caf\xC3\xA9"), 4);  // "café": 5 bytes, 4 characters
  const std::vector<double> tie{1.0, 3.0, 3.0};
  EXPECT_EQ(argmax_first(tie), 1);
  const std::vector<double> v{0, 1, 0};
  EXPECT_NEAR(mean_stderr(v), 1.0 / 3.0, 1e-12);  // sd = sqrt(1/3), / sqrt(3)
  EXPECT_EQ(mean_stderr(std::vector<double>{1.0}), 0.0);
}

// The split rule on the real SentencePiece tokenizer of stories260K.
TEST(ZeroshotRules, StoriesSentencePieceSplit) {
  FB_REQUIRE_DATA("stories260K/tok512.model");
  const auto tok = load_tokenizer(test::data_dir() / "stories260K/tok512.model");
  // Trailing space: the context is encoded without it and the continuation gets "▁time"
  // (SentencePiece's normaliser drops trailing whitespace anyway; GPT-2 below does not).
  const EncodedRequest r = encode_request(*tok, "Once upon a ", "time", false);
  EXPECT_EQ(r.context, tok->encode("Once upon a", false));
  const std::vector<int> whole = tok->encode("Once upon a time", false);
  ASSERT_GE(whole.size(), r.context.size());
  EXPECT_EQ(r.continuation, std::vector<int>(whole.begin() + long(r.context.size()), whole.end()));
  EXPECT_EQ(tok->decode(r.continuation), "time");  // one word piece, no dummy prefix of its own

  // A word split across the boundary: the continuation is the tail of the whole encoding,
  // not the continuation encoded on its own (which would start with a dummy "▁").
  const EncodedRequest split = encode_request(*tok, "The cat sa", "t down.", false);
  const std::vector<int> ctx = tok->encode("The cat sa", false);
  const std::vector<int> all = tok->encode("The cat sat down.", false);
  EXPECT_EQ(split.context, ctx);
  ASSERT_GE(all.size(), ctx.size());
  EXPECT_EQ(split.continuation, std::vector<int>(all.begin() + long(ctx.size()), all.end()));
  EXPECT_NE(split.continuation, tok->encode("t down.", false));

  // Empty context: conditioned on BOS alone.
  const EncodedRequest empty = encode_request(*tok, "", " Lily", false);
  EXPECT_EQ(empty.context, std::vector<int>{tok->bos_id()});
  EXPECT_EQ(empty.continuation, tok->encode(" Lily", false));
}

// With GPT-2's byte-level BPE a trailing space is a token of its own ("Ġ"), so the move
// decides whether the continuation is "Ġtime" or a bare "time".
TEST(ZeroshotRules, Gpt2TrailingSpaceMove) {
  FB_REQUIRE_DATA("gpt2_tokenizer/encoder.json");
  const auto tok = load_tokenizer(test::data_dir() / "gpt2_tokenizer/encoder.json");
  EXPECT_NE(tok->encode("Once upon a ", false), tok->encode("Once upon a", false));
  const EncodedRequest r = encode_request(*tok, "Once upon a ", "time", false);
  EXPECT_EQ(r.context, tok->encode("Once upon a", false));
  EXPECT_EQ(r.continuation, tok->encode(" time", false));
  EXPECT_EQ(tok->decode(r.continuation), " time");
}

// ---- hand-computed scores on the bigram model ----------------------------------------

// PIQA with a uniform model: every token costs ln 256, so ll = −tokens·ln 256 and acc picks
// the fewest tokens while acc_norm divides by characters. The boost on ':' → " a" checks
// that the continuation is conditioned on the context's last token.
TEST(ZeroshotHand, PiqaAccAndAccNormFromTokenCounts) {
  test::TempDir dir;
  write_file(dir / "piqa/valid.jsonl",
             "{\"goal\": \"g\", \"sol1\": \"abc\", \"sol2\": \"a b c d\"}\n"
             "{\"goal\": \"g\", \"sol1\": \"abc\", \"sol2\": \"a b c d\"}\n"
             "{\"goal\": \"h\", \"sol1\": \"xy\", \"sol2\": \"x y z\"}\n");
  write_file(dir / "piqa/valid-labels.lst", "1\n0\n1\n");
  const std::vector<Boost> boosts{{ToyTokenizer::single(':'), ToyTokenizer::merged('a'), 1.5f}};
  const Model model = bigram_model(boosts);
  const ToyTokenizer tok;
  const JobResult r = run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa"}}});

  // " abc" = [" a", b, c]; " a b c d" = [" a", " b", " c", " d"]; the first token follows ':'.
  const double first_a = bigram_ll(boosts, ToyTokenizer::single(':'), ToyTokenizer::merged('a'));
  const double first_x = bigram_ll(boosts, ToyTokenizer::single(':'), ToyTokenizer::merged('x'));
  EXPECT_NEAR(first_a, 1.5 - std::log(255 + std::exp(1.5)), 1e-12);
  const std::vector<double> doc0 = logged_lls(r, "piqa", 0), doc2 = logged_lls(r, "piqa", 2);
  EXPECT_NEAR(doc0[0], first_a - 2 * kLn256, 1e-4);
  EXPECT_NEAR(doc0[1], first_a - 3 * kLn256, 1e-4);
  EXPECT_NEAR(doc2[0], first_x - 1 * kLn256, 1e-4);
  EXPECT_NEAR(doc2[1], first_x - 2 * kLn256, 1e-4);
  // acc: sol1 (fewer tokens) everywhere -> right only for doc 1. acc_norm: "a b c d" and
  // "x y z" have more characters per token -> right for docs 0 and 2.
  EXPECT_NEAR(value(r, "piqa_acc"), 1.0 / 3, 1e-12);
  EXPECT_NEAR(value(r, "piqa_acc_norm"), 2.0 / 3, 1e-12);
  EXPECT_NEAR(value(r, "piqa_acc_stderr"), 1.0 / 3, 1e-12);
  EXPECT_NEAR(value(r, "piqa_acc_norm_stderr"), 1.0 / 3, 1e-12);
  EXPECT_EQ(value(r, "piqa_n"), 3);
  EXPECT_EQ(metric(r, "piqa_acc")->samples, (std::vector<double>{0, 1, 0}));
  EXPECT_NEAR(value(r, "avg"), 2.0 / 3, 1e-12);  // PIQA's paper metric is acc_norm
  EXPECT_EQ(r.info["avg_tasks"], json::array({"piqa:acc_norm"}));
}

// LAMBADA: acc is the greedy match of every continuation token, ppl = exp(−mean ll).
TEST(ZeroshotHand, LambadaGreedyAccuracyAndPerplexity) {
  test::TempDir dir;
  write_file(dir / "lambada_openai/lambada_test.jsonl", "{\"text\": \"the cat sat\"}\n{\"text\": \"a dog ran\"}\n");
  using T = ToyTokenizer;
  const std::vector<Boost> boosts{{T::single('t'), T::merged('s'), 4.f},
                                  {T::merged('s'), T::single('a'), 4.f},
                                  {T::single('a'), T::single('t'), 4.f}};
  const Model model = bigram_model(boosts);
  const ToyTokenizer tok;
  const JobResult r = run_zeroshot(model, &tok, dir.path, {{"tasks", {"lambada_openai"}}});
  // Doc 0: "the cat" + " sat" = [" s", a, t] after 't': all boosted, all greedy.
  const double ll0 = bigram_ll(boosts, T::single('t'), T::merged('s')) + bigram_ll(boosts, T::merged('s'), T::single('a')) +
                     bigram_ll(boosts, T::single('a'), T::single('t'));
  EXPECT_NEAR(ll0, 3 * (4 - std::log(255 + std::exp(4.0))), 1e-12);
  // Doc 1: "a dog" + " ran" = [" r", a, n] after 'g': " r" and a unboosted; 'n' after 'a' is
  // not the boosted 't', so the match fails.
  const double ll1 = -2 * kLn256 - std::log(255 + std::exp(4.0));
  EXPECT_NEAR(logged_lls(r, "lambada_openai", 0)[0], ll0, 1e-4);
  EXPECT_NEAR(logged_lls(r, "lambada_openai", 1)[0], ll1, 1e-4);
  EXPECT_EQ(value(r, "lambada_openai_acc"), 0.5);
  EXPECT_NEAR(value(r, "lambada_openai_ppl"), std::exp(-(ll0 + ll1) / 2), 1e-3);
  EXPECT_EQ(metric(r, "lambada_openai_acc_norm"), nullptr);  // not defined for LAMBADA
  EXPECT_NEAR(value(r, "avg"), 0.5, 1e-12);
}

// WinoGrande: the shared suffix is scored after each option; only the boundary bigram differs.
TEST(ZeroshotHand, WinograndeScoresTheSharedSuffix) {
  test::TempDir dir;
  write_file(dir / "winogrande/dev.jsonl",
             "{\"sentence\": \"ab _ cd.\", \"option1\": \"x\", \"option2\": \"yy\", \"answer\": \"2\"}\n"
             "{\"sentence\": \"ab _ cd.\", \"option1\": \"yy\", \"option2\": \"x\", \"answer\": \"2\"}\n");
  using T = ToyTokenizer;
  const std::vector<Boost> boosts{{T::single('y'), T::merged('c'), 2.f}};
  const Model model = bigram_model(boosts);
  const ToyTokenizer tok;
  const JobResult r = run_zeroshot(model, &tok, dir.path, {{"tasks", {"winogrande"}}});
  // Continuation " cd." = [" c", d, .]; after 'y' the " c" is boosted, after 'x' it is not.
  const double after_y = bigram_ll(boosts, T::single('y'), T::merged('c')) - 2 * kLn256;
  const std::vector<double> doc0 = logged_lls(r, "winogrande", 0);
  EXPECT_NEAR(doc0[0], -3 * kLn256, 1e-4);
  EXPECT_NEAR(doc0[1], after_y, 1e-4);
  EXPECT_EQ(metric(r, "winogrande_acc")->samples, (std::vector<double>{1, 0}));
  EXPECT_EQ(metric(r, "winogrande_acc_norm"), nullptr);  // acc only
}

// ---- every task format against a plain loop over the reference forward ----------------

// Expected log-likelihood of a request on `model`, written out independently: the context
// without its trailing spaces, the whole string's encoding tail, one reference forward,
// log-softmax in double by explicit loops.
double plain_loglik(const Model& model, const Tokenizer& tok, std::string ctx, std::string cont) {
  while (!ctx.empty() && ctx.back() == ' ') {
    cont.insert(cont.begin(), ' ');
    ctx.pop_back();
  }
  const std::vector<int> ctx_ids = tok.encode(ctx, false);
  const std::vector<int> whole = tok.encode(ctx + cont, false);
  std::vector<int> seq = ctx_ids;
  seq.insert(seq.end(), whole.begin() + long(ctx_ids.size()), whole.end());
  const std::vector<int> input(seq.begin(), seq.end() - 1);
  const Mat logits = reference_forward(model, input);
  double ll = 0;
  for (size_t pos = ctx_ids.size(); pos < seq.size(); ++pos) {
    const long row = long(pos) - 1;
    double z = 0;
    for (long v = 0; v < logits.cols(); ++v) z += std::exp(double(logits(row, v)));
    ll += double(logits(row, seq[pos])) - std::log(z);
  }
  return ll;
}

struct FormatCase {
  std::string task, file, content;
  std::vector<std::vector<std::pair<std::string, std::string>>> requests;  // per doc, the lm-eval requests
  std::vector<std::vector<std::string>> choices;                           // acc_norm lengths
  std::vector<int> gold;
};

std::vector<FormatCase> format_cases() {
  std::vector<FormatCase> cases;
  cases.push_back({"piqa", "piqa/valid.jsonl",
                   "{\"goal\": \"Open a jar\", \"sol1\": \"twist the lid\", \"sol2\": \"hit it\", \"label\": 0}\n"
                   "{\"goal\": \"Dry hair\", \"sol1\": \"use a fan\", \"sol2\": \"use a towel\", \"label\": 1}\n",
                   {{{"Question: Open a jar\nAnswer:", " twist the lid"}, {"Question: Open a jar\nAnswer:", " hit it"}},
                    {{"Question: Dry hair\nAnswer:", " use a fan"}, {"Question: Dry hair\nAnswer:", " use a towel"}}},
                   {{"twist the lid", "hit it"}, {"use a fan", "use a towel"}},
                   {0, 1}});
  cases.push_back(
      {"hellaswag", "hellaswag/hellaswag_val.jsonl",
       "{\"activity_label\": \"Baking\", \"ctx_a\": \"A man mixes flour.\", \"ctx_b\": \"he THEN\", "
       "\"endings\": [\"bakes [title] it.\", \"eats  it.\", \"runs.\", \"sings [step] loudly.\"], \"label\": \"2\"}\n",
       {{{"Baking: A man mixes flour. He then", " bakes. it."},
         {"Baking: A man mixes flour. He then", " eats it."},
         {"Baking: A man mixes flour. He then", " runs."},
         {"Baking: A man mixes flour. He then", " sings loudly."}}},
       {{"bakes. it.", "eats it.", "runs.", "sings loudly."}},
       {2}});
  cases.push_back({"hellaswag", "hellaswag/hellaswag_val_full.txt",
                   "Roof: A man is on a roof. he\n3\nis up.\nis down.\nfalls off.\nstarts working.\n",
                   {{{"Roof: A man is on a roof. he", " is up."},
                     {"Roof: A man is on a roof. he", " is down."},
                     {"Roof: A man is on a roof. he", " falls off."},
                     {"Roof: A man is on a roof. he", " starts working."}}},
                   {{"is up.", "is down.", "falls off.", "starts working."}},
                   {3}});
  cases.push_back({"openbookqa", "openbookqa/test.tsv",
                   "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n"
                   "7-1\tFog is likely near:\t(A) a marsh (B) a desert (C) the sun (D) a rock\tFog...\tA\n",
                   {{{"Fog is likely near:", " a marsh"},
                     {"Fog is likely near:", " a desert"},
                     {"Fog is likely near:", " the sun"},
                     {"Fog is likely near:", " a rock"}}},
                   {{"a marsh", "a desert", "the sun", "a rock"}},
                   {0}});
  cases.push_back({"openbookqa", "openbookqa/test.jsonl",
                   "{\"id\": \"1\", \"question_stem\": \"Plants need\", \"choices\": {\"text\": [\"light\", \"rocks\", "
                   "\"salt\", \"oil\"], \"label\": [\"A\", \"B\", \"C\", \"D\"]}, \"answerKey\": \"A\"}\n",
                   {{{"Plants need", " light"}, {"Plants need", " rocks"}, {"Plants need", " salt"}, {"Plants need", " oil"}}},
                   {{"light", "rocks", "salt", "oil"}},
                   {0}});
  cases.push_back({"arc_easy", "arc_easy/test.jsonl",
                   "{\"id\": \"q1\", \"question\": {\"stem\": \"Water freezes at?\", \"choices\": [{\"text\": \"0 C\", "
                   "\"label\": \"1\"}, {\"text\": \"50 C\", \"label\": \"2\"}, {\"text\": \"90 C\", \"label\": \"3\"}]}, "
                   "\"answerKey\": \"1\"}\n",
                   {{{"Question: Water freezes at?\nAnswer:", " 0 C"},
                     {"Question: Water freezes at?\nAnswer:", " 50 C"},
                     {"Question: Water freezes at?\nAnswer:", " 90 C"}}},
                   {{"0 C", "50 C", "90 C"}},
                   {0}});
  cases.push_back({"arc_challenge", "arc_challenge/test.jsonl",
                   "{\"id\": \"q2\", \"question\": \"Which is a gas?\", \"choices\": {\"text\": [\"ice\", \"steam\"], "
                   "\"label\": [\"A\", \"B\"]}, \"answerKey\": \"B\"}\n",
                   {{{"Question: Which is a gas?\nAnswer:", " ice"}, {"Question: Which is a gas?\nAnswer:", " steam"}}},
                   {{"ice", "steam"}},
                   {1}});
  cases.push_back({"lambada_openai", "lambada_openai/lambada_test.jsonl",
                   "{\"text\": \"She opened the door and saw her friend\"}\n",
                   {{{"She opened the door and saw her", " friend"}}},
                   {{" friend"}},
                   {0}});
  cases.push_back({"winogrande", "winogrande/dev.jsonl",
                   "{\"sentence\": \"Tom gave Bob a gift because _ was kind.\", \"option1\": \"Tom\", \"option2\": \"Bob\", "
                   "\"answer\": \"1\"}\n",
                   {{{"Tom gave Bob a gift because Tom", " was kind."}, {"Tom gave Bob a gift because Bob", " was kind."}}},
                   {{"Tom gave Bob a gift because Tom", "Tom gave Bob a gift because Bob"}},
                   {0}});
  return cases;
}

Model tiny_transformer() {
  SyntheticOptions opt;
  opt.seed = 7;
  opt.vocab = kVocab;
  return make_synthetic_model(synthetic_config("llama-tiny"), opt);
}

TEST(ZeroshotFormats, EveryFormatMatchesAPlainLoopOverTheReferenceForward) {
  const Model model = tiny_transformer();
  const ToyTokenizer tok;
  for (const FormatCase& c : format_cases()) {
    SCOPED_TRACE(c.file);
    test::TempDir dir;
    write_file(dir / c.file, c.content);
    const JobResult r = run_zeroshot(model, &tok, dir.path, {{"tasks", {c.task}}, {"threads", 2}});
    ASSERT_EQ(r.info["task_files"][c.task]["file"], (dir / c.file).string());
    double acc = 0, acc_norm = 0;
    for (size_t d = 0; d < c.requests.size(); ++d) {
      std::vector<double> expected, normed;
      for (size_t k = 0; k < c.requests[d].size(); ++k) {
        expected.push_back(plain_loglik(model, tok, c.requests[d][k].first, c.requests[d][k].second));
        normed.push_back(expected.back() / double(c.choices[d][k].size()));
      }
      const std::vector<double> got = logged_lls(r, c.task, d);
      ASSERT_EQ(got.size(), expected.size());
      for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], expected[k], 1e-3) << "doc " << d << " request " << k;
      EXPECT_EQ(r.info["samples"][c.task][d]["gold"], c.gold[d]);
      acc += argmax_first(expected) == c.gold[d];
      acc_norm += argmax_first(normed) == c.gold[d];
    }
    const double n = double(c.requests.size());
    EXPECT_EQ(value(r, c.task + "_n"), n);
    if (c.task != "lambada_openai") {
      EXPECT_DOUBLE_EQ(value(r, c.task + "_acc"), acc / n);
    }
    if (c.task != "lambada_openai" && c.task != "winogrande") {
      EXPECT_DOUBLE_EQ(value(r, c.task + "_acc_norm"), acc_norm / n);
    }
  }
}

TEST(ZeroshotFormats, ThreadedAndSerialAgreeAndLimitCutsDocuments) {
  const Model model = tiny_transformer();
  const ToyTokenizer tok;
  test::TempDir dir;
  std::string piqa, labels;
  for (int i = 0; i < 12; ++i) {
    piqa += "{\"goal\": \"goal " + std::to_string(i) + "\", \"sol1\": \"do " + std::string(size_t(i % 3 + 1), 'a') +
            "\", \"sol2\": \"do b\"}\n";
    labels += std::to_string(i % 2) + "\n";
  }
  write_file(dir / "piqa/valid.jsonl", piqa);
  write_file(dir / "piqa/valid-labels.lst", labels);
  const JobResult serial = run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa"}}, {"threads", 1}});
  const JobResult threaded = run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa"}}, {"threads", 2}});
  EXPECT_EQ(serial.info["samples"], threaded.info["samples"]);
  EXPECT_EQ(value(serial, "piqa_n"), 12);
  const JobResult limited = run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa"}}, {"limit", 5}});
  EXPECT_EQ(value(limited, "piqa_n"), 5);
  EXPECT_EQ(limited.info["samples"]["piqa"], json(std::vector<json>(serial.info["samples"]["piqa"].begin(),
                                                                    serial.info["samples"]["piqa"].begin() + 5)));
}

// KV-cache quantization is a pure attention hook: documents are still scored in parallel,
// with the very same log-likelihoods as a serial run.
TEST(ZeroshotFormats, KvQuantizedModelScoresInParallelLikeSerial) {
  Model model = tiny_transformer();
  const ToyTokenizer tok;
  test::TempDir dir;
  std::string piqa;
  for (int i = 0; i < 10; ++i)
    piqa += "{\"goal\": \"goal " + std::to_string(i) + "\", \"sol1\": \"do " + std::string(size_t(i % 4 + 1), 'a') +
            "\", \"sol2\": \"do b\", \"label\": " + std::to_string(i % 2) + "}\n";
  write_file(dir / "piqa/valid.jsonl", piqa);
  const JobResult plain = run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa"}}, {"threads", 2}});
  install_kv_quant(model, 4);
  ASSERT_TRUE(forwards_may_run_concurrently(model));
  const JobResult serial = run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa"}}, {"threads", 1}});
  const JobResult threaded = run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa"}}, {"threads", 2}});
  EXPECT_EQ(serial.info["samples"], threaded.info["samples"]);
  EXPECT_NE(serial.info["samples"], plain.info["samples"]) << "KV4 must change the log-likelihoods";
}

// ---- missing and refused tasks --------------------------------------------------------

// A requested task whose file is missing fails the job (lm-eval stops too) before any
// task is scored, naming every file it looked for: a partial average is not a result.
TEST(ZeroshotSkip, MissingTaskFileFailsTheJobNamingTheFilesLookedFor) {
  test::TempDir dir;
  write_file(dir / "piqa/valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"abc\", \"sol2\": \"a b c d\", \"label\": 1}\n");
  const Model model = bigram_model({});
  const ToyTokenizer tok;
  try {
    run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa", "arc_easy", "winogrande"}}});
    FAIL() << "a missing task file must fail the job";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'arc_easy'"), std::string::npos) << what;
    EXPECT_NE(what.find((dir / "arc_easy/test.jsonl").string()), std::string::npos) << what;
    EXPECT_NE(what.find((dir / "arc/ARC-Easy-Test.jsonl").string()), std::string::npos) << what;
  }

  // Nothing present at all (the default task list): the first task's files are named.
  test::TempDir empty;
  try {
    run_zeroshot(model, &tok, empty.path, {});
    FAIL() << "no task file at all must fail the job";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((empty / "piqa/valid.jsonl").string()), std::string::npos) << e.what();
  }

  // Every requested file present: runs, and the average covers exactly the requested tasks.
  const JobResult r = run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa"}}});
  EXPECT_EQ(value(r, "avg"), value(r, "piqa_acc_norm"));
  EXPECT_EQ(r.info["avg_tasks"], json::array({"piqa:acc_norm"}));
}

TEST(ZeroshotSkip, UnknownTaskAndMissingTokenizerAreErrors) {
  test::TempDir dir;
  const Model model = bigram_model({});
  const ToyTokenizer tok;
  try {
    run_zeroshot(model, &tok, dir.path, {{"tasks", {"piqa", "hellaswagg"}}});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown task 'hellaswagg'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(run_zeroshot(model, nullptr, dir.path, {}), std::runtime_error);
}

// ---- the real model on real data ---------------------------------------------------------

TEST(ZeroshotReal, Stories260KOnPiqaHellaswagOpenbookqa) {
  FB_REQUIRE_DATA("stories260K/stories260K.bin");
  FB_REQUIRE_DATA("piqa/valid.jsonl");
  FB_REQUIRE_DATA("hellaswag/hellaswag_val_full.txt");
  FB_REQUIRE_DATA("openbookqa/test.tsv");
  const LoadedModel lm = load_model(
      {"", "llama2c", {{"path", "stories260K/stories260K.bin"}, {"tokenizer", "stories260K/tok512.model"}}},
      test::data_dir());
  const JobResult r = run_zeroshot(lm.model, lm.tokenizer.get(), test::data_dir(),
                                   {{"tasks", {"piqa", "hellaswag", "openbookqa"}}, {"limit", 40}});
  EXPECT_FALSE(r.synthetic);
  for (const char* t : {"piqa", "hellaswag", "openbookqa"}) {
    SCOPED_TRACE(t);
    EXPECT_EQ(value(r, std::string(t) + "_n"), 40);
    for (const char* m : {"_acc", "_acc_norm"}) {
      const double v = value(r, t + std::string(m));
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0);
      EXPECT_GT(value(r, t + std::string(m) + "_stderr"), 0.0);
    }
  }
  EXPECT_EQ(r.info["task_files"]["hellaswag"]["format"], "6-line text");
  // The first PIQA document by the plain loop on the reference forward.
  const double sol1 = plain_loglik(lm.model, *lm.tokenizer, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:",
                                   " Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper "
                                   "strips, you will also need to supply it with a water bottle and a food dish.");
  EXPECT_NEAR(logged_lls(r, "piqa", 0)[0], sol1, 2e-3);
}

}  // namespace
}  // namespace fb
