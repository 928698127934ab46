#include "node/common/files.h"

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"

namespace fedshare {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

int ModeOf(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

TEST(AtomicFileWriterTest, PiecesArriveWholeUnderTheNameOnlyAtCommit) {
  testing::ScopedTempDir dir("files_test");
  const std::string path = dir.Sub("out.csv");
  ASSERT_OK(WriteFileAtomic(path, "old\n"));
  ASSERT_OK_AND_ASSIGN(auto out, AtomicFileWriter::Open(path, path + ".partial", 0600));
  ASSERT_OK(out->Append("a,b\n"));
  ASSERT_OK(out->Append("1,2\n"));
  EXPECT_EQ(ReadFile(path).value_or("<none>"), "old\n");
  ASSERT_OK(out->Commit());
  EXPECT_EQ(ReadFile(path).value_or("<none>"), "a,b\n1,2\n");
  EXPECT_EQ(ModeOf(path), 0600);
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  EXPECT_THAT(out->Append("more"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is closed")));
}

TEST(AtomicFileWriterTest, WithoutACommitNothingIsLeft) {
  testing::ScopedTempDir dir("files_test");
  const std::string path = dir.Sub("out.csv");
  {
    ASSERT_OK_AND_ASSIGN(auto out, AtomicFileWriter::Open(path, path + ".partial", 0600));
    ASSERT_OK(out->Append("half"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

// A temp file a crashed run left, readable by all, or a link planted there:
// the writer starts a new file with its own mode, and writes nowhere else.
TEST(AtomicFileWriterTest, ALeftoverTempFileOrLinkIsReplacedNotReused) {
  testing::ScopedTempDir dir("files_test");
  const std::string path = dir.Sub("out.csv");
  ASSERT_OK(WriteFileAtomic(path + ".partial", "left by a crash\n", 0644));
  {
    ASSERT_OK_AND_ASSIGN(auto out, AtomicFileWriter::Open(path, path + ".partial", 0600));
    EXPECT_EQ(ModeOf(path + ".partial"), 0600);
    ASSERT_OK(out->Append("new\n"));
    ASSERT_OK(out->Commit());
  }
  EXPECT_EQ(ReadFile(path).value_or("<none>"), "new\n");

  const std::string victim = dir.Sub("victim");
  ASSERT_OK(WriteFileAtomic(victim, "keep\n"));
  std::filesystem::create_symlink(victim, path + ".partial");
  {
    ASSERT_OK_AND_ASSIGN(auto out, AtomicFileWriter::Open(path, path + ".partial", 0600));
    ASSERT_OK(out->Append("data\n"));
    ASSERT_OK(out->Commit());
  }
  EXPECT_EQ(ReadFile(victim).value_or("<none>"), "keep\n");
  EXPECT_EQ(ReadFile(path).value_or("<none>"), "data\n");
}

TEST(AtomicFileWriterTest, AnUnwritableFolderIsNamed) {
  EXPECT_THAT(AtomicFileWriter::Open("/nonexistent/out.csv", "/nonexistent/out.csv.partial", 0600),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cannot create /nonexistent/out.csv.partial")));
}

}  // namespace
}  // namespace fedshare
