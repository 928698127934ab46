#include "node/common/json_quote.h"

#include <string>

#include "gtest/gtest.h"

namespace fedshare {
namespace {

TEST(JsonQuoteTest, EscapesQuotesBackslashesAndControlBytes) {
  EXPECT_EQ(JsonQuote(""), "\"\"");
  EXPECT_EQ(JsonQuote("say \"hi\"\\"), R"("say \"hi\"\\")");
  EXPECT_EQ(JsonQuote("a\nb\rc\td"), R"("a\nb\rc\td")");
  EXPECT_EQ(JsonQuote(std::string("\x01\x1f", 2)), R"("\u0001\u001f")");
  EXPECT_EQ(JsonQuote(std::string(1, '\0')), R"("\u0000")");
  EXPECT_EQ(JsonQuote("Zoë 名前"), "\"Zoë 名前\"");
}

}  // namespace
}  // namespace fedshare
