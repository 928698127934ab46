#include "node/common/test_temp_dir.h"

#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"

namespace fedshare::testing {
namespace {

TEST(ScopedTempDirTest, MakesAFreshFolderPerObjectUnderTheTestTempDir) {
  ScopedTempDir a("scoped_temp_dir_test");
  ScopedTempDir b("scoped_temp_dir_test");
  EXPECT_TRUE(std::filesystem::is_directory(a.path()));
  EXPECT_TRUE(std::filesystem::is_directory(b.path()));
  EXPECT_NE(a.path(), b.path());
  EXPECT_TRUE(absl::StartsWith(a.path(), ::testing::TempDir() + "scoped_temp_dir_test_"))
      << a.path();
  EXPECT_EQ(a.Sub("x/y.pem"), a.path() + "/x/y.pem");
}

TEST(ScopedTempDirTest, RemovesTheFolderAndEverythingInItWhenDestroyed) {
  std::string path;
  {
    ScopedTempDir dir("scoped_temp_dir_test");
    path = dir.path();
    std::filesystem::create_directories(dir.Sub("nested/deeper"));
    ASSERT_OK(WriteFileAtomic(dir.Sub("nested/deeper/file"), "contents"));
  }
  EXPECT_FALSE(std::filesystem::exists(path)) << path;
}

TEST(ScopedTempDirTest, AFolderThatCannotBeMadeFailsTheTestWithTheReason) {
  EXPECT_NONFATAL_FAILURE(ScopedTempDir dir("scoped_temp_dir_test_absent/inner"),
                          "No such file or directory");
}

}  // namespace
}  // namespace fedshare::testing
