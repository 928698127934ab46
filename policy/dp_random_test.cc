#include "policy/dp_random.h"

#include <array>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kSecret(32, 's');

std::vector<uint8_t> Bytes(RandomSource& rng, size_t n) {
  std::vector<uint8_t> out(n);
  EXPECT_OK(rng.Fill(absl::MakeSpan(out)));
  return out;
}

TEST(DpRandomTest, SameQuestionAndDataGiveTheSameStream) {
  ASSERT_OK_AND_ASSIGN(NoiseSeed a, DeriveNoiseSeed(kSecret, "question-hash", 7));
  ASSERT_OK_AND_ASSIGN(NoiseSeed b, DeriveNoiseSeed(kSecret, "question-hash", 7));
  EXPECT_EQ(a, b);
  ASSERT_OK_AND_ASSIGN(auto s1, AesCtrStream::Create(a));
  ASSERT_OK_AND_ASSIGN(auto s2, AesCtrStream::Create(b));
  // Different read sizes, same bytes: the stream does not depend on chunking.
  std::vector<uint8_t> x = Bytes(*s1, 10000);
  std::vector<uint8_t> y = Bytes(*s2, 3);
  std::vector<uint8_t> rest = Bytes(*s2, 9997);
  y.insert(y.end(), rest.begin(), rest.end());
  EXPECT_EQ(x, y);
}

TEST(DpRandomTest, QuestionVersionAndSecretEachChangeTheSeed) {
  ASSERT_OK_AND_ASSIGN(NoiseSeed base, DeriveNoiseSeed(kSecret, "q", 1));
  ASSERT_OK_AND_ASSIGN(NoiseSeed other_question, DeriveNoiseSeed(kSecret, "q2", 1));
  ASSERT_OK_AND_ASSIGN(NoiseSeed other_version, DeriveNoiseSeed(kSecret, "q", 2));
  ASSERT_OK_AND_ASSIGN(NoiseSeed other_secret, DeriveNoiseSeed(std::string(32, 't'), "q", 1));
  EXPECT_NE(base, other_question);
  EXPECT_NE(base, other_version);
  EXPECT_NE(base, other_secret);
}

TEST(DpRandomTest, ShortSecretIsRefused) {
  EXPECT_THAT(DeriveNoiseSeed("short", "q", 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("32 bytes")));
}

TEST(DpRandomTest, UniformBelowIsUniform) {
  auto rng = AesCtrStream::ForTest("uniform");
  constexpr int kBound = 6;
  constexpr int kDraws = 60000;
  std::array<int, kBound> seen{};
  for (int i = 0; i < kDraws; ++i) {
    ASSERT_OK_AND_ASSIGN(uint64_t v, rng->UniformBelow(kBound));
    ASSERT_LT(v, static_cast<uint64_t>(kBound));
    ++seen[v];
  }
  // Each count is Binomial(60000, 1/6): sd ~ 91; allow 5 sd.
  for (int count : seen) EXPECT_NEAR(count, kDraws / kBound, 460);
}

TEST(DpRandomTest, OpenSslRandomFills) {
  OpenSslRandom rng;
  std::vector<uint8_t> a = Bytes(rng, 32);
  std::vector<uint8_t> b = Bytes(rng, 32);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace fedshare::policy
