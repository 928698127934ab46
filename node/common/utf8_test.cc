#include "node/common/utf8.h"

#include "gtest/gtest.h"

namespace fedshare {
namespace {

TEST(Utf8Test, AcceptsValidText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("Z\xC3\xBCrich \xE2\x82\xAC \xF0\x9F\x98\x80"));
}

TEST(Utf8Test, FindsTheFirstInvalidByte) {
  EXPECT_EQ(FirstInvalidUtf8("ab\xFF"
                             "cd"),
            2u);
  EXPECT_EQ(FirstInvalidUtf8("ab\xC3"), 2u);                                // cut mid-character
  EXPECT_EQ(FirstInvalidUtf8("\xC0\xAF"), 0u);                              // overlong
  EXPECT_EQ(FirstInvalidUtf8("x\xED\xA0\x80"), 1u);                         // surrogate
  EXPECT_EQ(FirstInvalidUtf8("\xF4\x90\x80\x80"), 0u);                      // above U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8(absl::string_view("\xFF\xFEh\0i\0", 6)), 0u);  // UTF-16 BOM
}

TEST(Utf8Test, TruncatesOnACharacterBoundary) {
  std::string euros;
  for (int i = 0; i < 20; ++i) euros += "\xE2\x82\xAC";  // 60 bytes
  std::string cut = TruncateUtf8(euros, 40);
  EXPECT_LE(cut.size(), 40u);
  EXPECT_TRUE(IsValidUtf8(cut));
  EXPECT_EQ(cut.substr(cut.size() - 3), "\xE2\x80\xA6");
  EXPECT_EQ(TruncateUtf8("short", 40), "short");
}

TEST(Utf8Test, SanitizesInvalidBytes) {
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_TRUE(IsValidUtf8(TruncateUtf8("abc\xE2\x82", 10)));
}

}  // namespace
}  // namespace fedshare
