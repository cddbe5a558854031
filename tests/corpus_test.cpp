// Text corpora: WikiText-2 rows joined as Hugging Face + GPTQ do, named corpora, and the
// seeded calibration windows.
#include "datasets/corpus.h"
#include "test_util.h"

#include <fstream>

namespace fb {
namespace {

TEST(Corpus, WikitextRowsJoinedLikeHuggingFace) {
  test::TempDir tmp;
  std::ofstream(tmp / "w.raw") << " \n = Title = \n \t \n text line\nlast";
  // Rows: "", " = Title = \n", "", " text line\n", "last" — joined with "\n\n".
  EXPECT_EQ(load_wikitext_rows_joined(tmp / "w.raw"), "\n\n = Title = \n\n\n\n\n text line\n\n\nlast");
}

TEST(Corpus, RealWikitext2Test) {
  FB_REQUIRE_DATA("wikitext2/wiki.test.raw");
  const std::string text = load_corpus("wikitext2", test::data_dir());
  EXPECT_EQ(text.rfind("\n\n = Robert Boulter = \n\n\n\n\n Robert Boulter is an English film", 0), 0u);
  // 4358 rows → 4357 separators; blank rows contribute nothing.
  const std::string raw = load_text(test::data_dir() / "wikitext2/wiki.test.raw");
  size_t blank_bytes = 0, start = 0;
  while (start < raw.size()) {
    size_t end = raw.find('\n', start);
    end = end == std::string::npos ? raw.size() : end + 1;
    if (raw.find_first_not_of(" \t\n\r", start) >= end) blank_bytes += end - start;
    start = end;
  }
  EXPECT_EQ(text.size(), raw.size() - blank_bytes + 2 * 4357);
}

TEST(Corpus, NamedCorporaAndErrors) {
  FB_REQUIRE_DATA("tinystories/TinyStories-valid.head30KB.txt");
  EXPECT_EQ(load_corpus("tinystories", test::data_dir()),
            load_text(test::data_dir() / "tinystories/TinyStories-valid.head30KB.txt"));
  EXPECT_EQ(load_corpus("tinystories/TinyStories-valid.head30KB.txt", test::data_dir()),
            load_corpus("tinystories", test::data_dir()));
  try {
    load_corpus("c4", test::data_dir());
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a known name"), std::string::npos) << e.what();
  }
}

TEST(Corpus, SampleWindowsAreSeededSlices) {
  std::vector<int> tokens(1000);
  for (int i = 0; i < 1000; ++i) tokens[size_t(i)] = i;
  const auto a = sample_windows(tokens, 8, 50, 7), b = sample_windows(tokens, 8, 50, 7), c = sample_windows(tokens, 8, 50, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  ASSERT_EQ(a.size(), 8u);
  for (const auto& w : a) {
    ASSERT_EQ(w.size(), 50u);
    for (size_t i = 1; i < w.size(); ++i) EXPECT_EQ(w[i], w[0] + int(i));  // contiguous slice
    EXPECT_LE(w.back(), 999);
  }
  EXPECT_TRUE(sample_windows(tokens, 0, 50, 1).empty());
  EXPECT_EQ(sample_windows(tokens, 3, 1000, 1)[2], tokens);  // the only possible window
  EXPECT_THROW(sample_windows(tokens, 1, 1001, 1), std::invalid_argument);
}

}  // namespace
}  // namespace fb
