// Task loaders: lm-eval's prompts and choices from every file format, HellaSwag's cleanup,
// errors naming file and line for malformed files, and the real files under ../shared/data.
#include "datasets/tasks/task.h"
#include "test_util.h"

#include <fstream>

namespace fb {
namespace {

namespace fs = std::filesystem;

fs::path write_file(const test::TempDir& dir, const std::string& rel, const std::string& text) {
  const fs::path path = dir / rel;
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Runs fn, expecting a std::runtime_error whose message holds every one of `parts`.
template <class Fn>
void expect_error(Fn fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning " << *parts.begin();
  } catch (const std::runtime_error& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(ZeroshotTasks, HellaswagPreprocessMatchesLmEval) {
  EXPECT_EQ(hellaswag_preprocess("  Make tea [title] Boil water.  "), "Make tea. Boil water.");
  EXPECT_EQ(hellaswag_preprocess("[header] Step one [step] go"), " Step one go");  // strip() runs first
  EXPECT_EQ(hellaswag_preprocess("a [b\nc] d"), "a [b\nc] d");  // '.' in the regex does not cross lines
  EXPECT_EQ(hellaswag_preprocess("x   y"), "x  y");              // one pass of "  " -> " ", as str.replace
}

TEST(ZeroshotTasks, HellaswagJsonlBuildsLmEvalQuery) {
  test::TempDir dir;
  const fs::path f = write_file(dir, "h.jsonl",
                                "{\"activity_label\": \"Ski\", \"ctx_a\": \"A man skis.\", \"ctx_b\": \"the MAN\", "
                                "\"endings\": [\"a\", \"b [title] c\", \"d\", \"e\"], \"label\": 1}\n");
  const auto docs = load_hellaswag_jsonl(f, 0);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].requests[1].context, "Ski: A man skis. The man");  // ctx_b.capitalize() lowers the rest
  EXPECT_EQ(docs[0].requests[1].continuation, " b. c");
  EXPECT_EQ(docs[0].choices[1], "b. c");
  EXPECT_EQ(docs[0].gold, 1);
}

TEST(ZeroshotTasks, MalformedFilesNameFileAndLine) {
  test::TempDir dir;
  // PIQA: a bad label on line 3 of the labels file.
  const fs::path piqa = write_file(dir, "piqa/valid.jsonl",
                                   "{\"goal\": \"a\", \"sol1\": \"b\", \"sol2\": \"c\"}\n"
                                   "{\"goal\": \"a\", \"sol1\": \"b\", \"sol2\": \"c\"}\n"
                                   "{\"goal\": \"a\", \"sol1\": \"b\", \"sol2\": \"c\"}\n");
  write_file(dir, "piqa/valid-labels.lst", "0\n1\n2\n");
  expect_error([&] { load_piqa_jsonl(piqa, 0); }, {"valid-labels.lst:3", "0 or 1"});
  write_file(dir, "piqa/valid-labels.lst", "0\n1\n");
  expect_error([&] { load_piqa_jsonl(piqa, 0); }, {"valid-labels.lst", "2 labels for 3 questions"});
  fs::remove(dir / "piqa/valid-labels.lst");
  expect_error([&] { load_piqa_jsonl(piqa, 0); }, {"valid.jsonl", "no 'label' field"});

  // jsonl: broken JSON on line 2, a missing field on line 1.
  const fs::path arc = write_file(dir, "arc.jsonl", "{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], "
                                                    "\"label\": [\"A\", \"B\"]}, \"answerKey\": \"A\"}\n{\"question\": \n");
  expect_error([&] { load_arc_jsonl(arc, 0); }, {"arc.jsonl:2", "not a valid JSON"});
  EXPECT_EQ(load_arc_jsonl(arc, 1).size(), 1u);  // the limit stops before the broken line
  const fs::path arc_key = write_file(dir, "arc_key.jsonl",
                                      "\n{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", "
                                      "\"B\"]}, \"answerKey\": \"E\"}\n");
  expect_error([&] { load_arc_jsonl(arc_key, 0); }, {"arc_key.jsonl:2", "answerKey 'E'"});
  const fs::path wino = write_file(dir, "w.jsonl", "{\"sentence\": \"no blank\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"1\"}\n");
  expect_error([&] { load_winogrande_jsonl(wino, 0); }, {"w.jsonl:1", "no '_'"});
  const fs::path wino_ans = write_file(dir, "w2.jsonl", "{\"sentence\": \"_ x\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"\"}\n");
  expect_error([&] { load_winogrande_jsonl(wino_ans, 0); }, {"w2.jsonl:1", "answer must be"});
  const fs::path lambada = write_file(dir, "l.jsonl", "{\"txt\": \"a b\"}\n");
  expect_error([&] { load_lambada_jsonl(lambada, 0); }, {"l.jsonl:1", "missing field 'text'"});
  const fs::path hs_json = write_file(dir, "hs.jsonl", "{\"activity_label\": \"a\", \"ctx_a\": \"b\", \"ctx_b\": \"c\", "
                                                       "\"endings\": [\"a\", \"b\"], \"label\": 0}\n");
  expect_error([&] { load_hellaswag_jsonl(hs_json, 0); }, {"hs.jsonl:1", "4 strings"});

  // HellaSwag 6-line text: a bad gold index on line 8, a truncated item.
  const fs::path hs = write_file(dir, "hs.txt", "ctx\n0\na\nb\nc\nd\nctx2\nx\na\nb\nc\nd\n");
  expect_error([&] { load_hellaswag_text(hs, 0); }, {"hs.txt:8", "gold ending index"});
  const fs::path hs_short = write_file(dir, "hs_short.txt", "ctx\n0\na\nb\nc\nd\nctx2\n1\na\n");
  expect_error([&] { load_hellaswag_text(hs_short, 0); }, {"hs_short.txt:9", "truncated"});

  // OpenBookQA TSV: wrong column count on line 3, a missing choice marker on line 2.
  const fs::path obqa = write_file(dir, "o.tsv", "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n"
                                                 "1\tq\t(A) a (B) b (C) c (D) d\tq\tB\n"
                                                 "2\tq\t(A) a (B) b\n");
  expect_error([&] { load_openbookqa_tsv(obqa, 0); }, {"o.tsv:3", "5 tab-separated columns"});
  const fs::path obqa2 = write_file(dir, "o2.tsv", "1\tq\t(A) a (B) b (D) d\tq\tB\n");
  expect_error([&] { load_openbookqa_tsv(obqa2, 0); }, {"o2.tsv:1", "(C)"});
  const fs::path obqa3 = write_file(dir, "o3.tsv", "1\tq\t(A) a (B) b (C) c (D) d\tq\tF\n");
  expect_error([&] { load_openbookqa_tsv(obqa3, 0); }, {"o3.tsv:1", "A..D"});
}

TEST(ZeroshotTasks, LoadTaskPrefersLmEvalJsonlAndReportsAbsence) {
  test::TempDir dir;
  EXPECT_FALSE(load_task(*find_task("hellaswag"), dir.path, 0).has_value());
  write_file(dir, "hellaswag/hellaswag_val_full.txt", "c\n0\na\nb\nc\nd\n");
  auto text = load_task(*find_task("hellaswag"), dir.path, 0);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->format, "6-line text");
  write_file(dir, "hellaswag/hellaswag_val.jsonl", "{\"activity_label\": \"a\", \"ctx_a\": \"b\", \"ctx_b\": \"c\", "
                                                   "\"endings\": [\"a\", \"b\", \"c\", \"d\"], \"label\": 0}\n");
  EXPECT_EQ(load_task(*find_task("hellaswag"), dir.path, 0)->format, "jsonl");
  write_file(dir, "winogrande/dev.jsonl", "\n\n");
  expect_error([&] { load_task(*find_task("winogrande"), dir.path, 0); }, {"dev.jsonl", "no documents"});
  EXPECT_EQ(find_task("nope"), nullptr);
  EXPECT_EQ(task_specs().size(), 7u);
}

TEST(ZeroshotTasks, RealPiqaOpenbookqaHellaswag) {
  FB_REQUIRE_DATA("piqa/valid.jsonl");
  FB_REQUIRE_DATA("openbookqa/test.tsv");
  FB_REQUIRE_DATA("hellaswag/hellaswag_val_full.txt");
  const fs::path data = test::data_dir();

  const auto piqa = load_task(*find_task("piqa"), data, 0);
  ASSERT_TRUE(piqa.has_value());
  ASSERT_EQ(piqa->docs.size(), 1838u);
  EXPECT_EQ(piqa->docs[0].requests[0].context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  EXPECT_EQ(piqa->docs[0].requests[1].continuation.substr(0, 25), " Provide the guinea pig w");
  EXPECT_EQ(piqa->docs[0].gold, 0);
  EXPECT_EQ(piqa->docs[1].gold, 1);

  const auto obqa = load_task(*find_task("openbookqa"), data, 0);
  ASSERT_TRUE(obqa.has_value());
  ASSERT_EQ(obqa->docs.size(), 500u);
  EXPECT_EQ(obqa->docs[1].requests[0].context, "There is most likely going to be fog around:");
  EXPECT_EQ(obqa->docs[1].choices, (std::vector<std::string>{"a marsh", "a tundra", "the plains", "a desert"}));
  EXPECT_EQ(obqa->docs[1].requests[3].continuation, " a desert");
  EXPECT_EQ(obqa->docs[1].gold, 0);

  const auto hs = load_task(*find_task("hellaswag"), data, 100);
  ASSERT_TRUE(hs.has_value());
  ASSERT_EQ(hs->docs.size(), 100u);
  EXPECT_EQ(hs->docs[0].requests[3].context, "Roof shingle removal: A man is sitting on a roof. he");
  EXPECT_EQ(hs->docs[0].requests[3].continuation, " starts pulling up roofing on a roof.");
  EXPECT_EQ(hs->docs[0].gold, 3);
  EXPECT_EQ(load_hellaswag_text(data / "hellaswag/hellaswag_val_full.txt", 0).size(), 10042u);
}

}  // namespace
}  // namespace fb
