// SpareBuffers: which kept buffer a question is given back, and how much is kept.
#include "node/engine/question_memory.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace fedshare::engine {
namespace {

// Empties the process-wide set (other tests in this binary fill it).
void Drain() {
  while (SpareBuffers::Get().Take<double>(0).capacity() > 0) {
  }
}

std::vector<double> WithCapacity(size_t n) {
  std::vector<double> v;
  v.reserve(n);
  return v;
}

TEST(SpareBuffersTest, TakeAtLeastGivesTheSmallestKeptBufferThatFits) {
  Drain();
  constexpr size_t kSmall = SpareBuffers::kMinBytes / sizeof(double);
  SpareBuffers& spares = SpareBuffers::Get();
  for (size_t n : {4 * kSmall, kSmall, 2 * kSmall}) {
    std::vector<double> v = WithCapacity(n);
    spares.Give(v);
    EXPECT_EQ(v.capacity(), 0u);
  }
  std::vector<double> fit = spares.Take<double>(kSmall + 1);
  EXPECT_EQ(fit.capacity(), 2 * kSmall);
  EXPECT_TRUE(fit.empty());
  // Nothing kept is large enough: nothing is handed out, and what is kept
  // stays for smaller needs.
  EXPECT_EQ(spares.Take<double>(8 * kSmall).capacity(), 0u);
  EXPECT_EQ(spares.Take<double>(kSmall).capacity(), kSmall);
  EXPECT_EQ(spares.Take<double>(0).capacity(), 4 * kSmall);
  EXPECT_EQ(spares.Take<double>(0).capacity(), 0u);
}

TEST(SpareBuffersTest, SmallBuffersAreNotKept) {
  Drain();
  std::vector<double> v = WithCapacity(SpareBuffers::kMinBytes / sizeof(double) - 1);
  SpareBuffers::Get().Give(v);
  EXPECT_EQ(SpareBuffers::Get().Take<double>(0).capacity(), 0u);
}

TEST(SpareBuffersTest, KeepsUpToItsMostAndLetsGoOfWhatALowerMostLeavesOver) {
  Drain();
  SpareBuffers& spares = SpareBuffers::Get();
  const size_t before = spares.max_bytes();
  constexpr size_t kSmall = SpareBuffers::kMinBytes / sizeof(double);
  spares.SetMaxBytes(3 * SpareBuffers::kMinBytes);
  for (int i = 0; i < 4; ++i) {
    std::vector<double> v = WithCapacity(kSmall);
    spares.Give(v);
  }
  // Three fit; the fourth was let go.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(spares.Take<double>(0).capacity(), kSmall);
  EXPECT_EQ(spares.Take<double>(0).capacity(), 0u);

  for (int i = 0; i < 3; ++i) {
    std::vector<double> v = WithCapacity(kSmall);
    spares.Give(v);
  }
  spares.SetMaxBytes(SpareBuffers::kMinBytes);
  EXPECT_EQ(spares.Take<double>(0).capacity(), kSmall);
  EXPECT_EQ(spares.Take<double>(0).capacity(), 0u);
  spares.SetMaxBytes(before);
}

}  // namespace
}  // namespace fedshare::engine
