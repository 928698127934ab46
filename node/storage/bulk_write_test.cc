// BulkWrite: a write staged in table files commits all at once or not at
// all, and what an unfinished one leaves behind is gone when the store opens.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/storage/fault_injector.h"
#include "node/storage/keys.h"
#include "node/storage/storage.h"

namespace fedshare::storage {
namespace {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::Optional;

std::string Key(int i) { return absl::StrCat("k", EncodeFixed32BE(static_cast<uint32_t>(i))); }

size_t StagedFiles(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir + "/staging", ec)) return 0;
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir + "/staging")) {
    (void)entry;
    ++n;
  }
  return n;
}

uint64_t CountKeys(const Storage& db, ColumnFamily cf, const Snapshot* snapshot = nullptr) {
  uint64_t n = 0;
  EXPECT_OK(db.ScanPrefix(
      cf, "k",
      [&](absl::string_view, absl::string_view) {
        ++n;
        return absl::OkStatus();
      },
      snapshot));
  return n;
}

class BulkWriteTest : public ::testing::Test {
 protected:
  // Rows enough to move a write to files (several times kBulkSpillBytes).
  static constexpr int kSpillingRows = 40000;
  static std::string Value(int i) { return absl::StrCat(std::string(300, 'v'), i); }

  ScopedTempDir dir_{"bulk_write_test"};
};

TEST_F(BulkWriteTest, SmallWriteCommitsAsOneBatch) {
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BulkWrite> write, db->NewBulkWrite());
  const int records = write->AddTable(ColumnFamily::kRecords);
  const int meta = write->AddTable(ColumnFamily::kMeta);
  ASSERT_OK(db->Put(ColumnFamily::kMeta, "k-old", "x"));
  ASSERT_OK(write->Put(records, "k1", "a"));
  ASSERT_OK(write->Put(records, "k2", "b"));
  ASSERT_OK(write->Delete(meta, "k-old"));
  EXPECT_THAT(write->Put(records, "k2", "again"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords), 0u);
  ASSERT_OK(db->Commit(std::move(write)));
  EXPECT_EQ(StagedFiles(dir_.path()), 0u);
  EXPECT_THAT(*db->Get(ColumnFamily::kRecords, "k2"), Optional(std::string("b")));
  EXPECT_EQ(*db->Get(ColumnFamily::kMeta, "k-old"), std::nullopt);
}

TEST_F(BulkWriteTest, LargeWriteIsInvisibleUntilCommitThenWholeAndDurable) {
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
    ASSERT_OK(db->Put(ColumnFamily::kRecords, Key(5), "old"));
    ASSERT_OK(db->Put(ColumnFamily::kRecords, Key(kSpillingRows + 5), "old, deleted"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<BulkWrite> write, db->NewBulkWrite());
    const int records = write->AddTable(ColumnFamily::kRecords);
    const int subjects = write->AddTable(ColumnFamily::kSubjects);
    for (int i = 0; i < kSpillingRows; ++i) {
      ASSERT_OK(write->Put(records, Key(i), Value(i)));
      ASSERT_OK(write->Put(subjects, Key(i), "s"));
    }
    ASSERT_OK(write->Delete(records, Key(kSpillingRows + 5)));
    EXPECT_GT(StagedFiles(dir_.path()), 0u);
    EXPECT_LT(write->held_bytes(), kBulkSpillBytes);
    // Staged rows are not visible, even to a read after the files exist.
    EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords), 2u);
    EXPECT_EQ(CountKeys(*db, ColumnFamily::kSubjects), 0u);
    std::unique_ptr<Snapshot> before = db->GetSnapshot();
    ASSERT_OK(db->Commit(std::move(write)));
    EXPECT_EQ(StagedFiles(dir_.path()), 0u);
    EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords, before.get()), 2u);
    EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords), static_cast<uint64_t>(kSpillingRows));
  }
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords), static_cast<uint64_t>(kSpillingRows));
  EXPECT_EQ(CountKeys(*db, ColumnFamily::kSubjects), static_cast<uint64_t>(kSpillingRows));
  EXPECT_THAT(*db->Get(ColumnFamily::kRecords, Key(5)), Optional(Value(5)));
  EXPECT_EQ(*db->Get(ColumnFamily::kRecords, Key(kSpillingRows + 5)), std::nullopt);
}

// A cleared table takes keys from scratch, smaller ones included; what was
// put into it before (in memory, or in a file once spilled) is not written,
// and its file is gone. The other tables keep everything.
TEST_F(BulkWriteTest, ClearedTableKeepsOnlyWhatComesAfter) {
  for (const bool spill : {false, true}) {
    SCOPED_TRACE(spill ? "spilled" : "in memory");
    const std::string dir = dir_.Sub(spill ? "spilled" : "in-memory");
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir, StorageOptions()));
    ASSERT_OK(db->Put(ColumnFamily::kSubjects, Key(3), "old"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<BulkWrite> write, db->NewBulkWrite());
    const int records = write->AddTable(ColumnFamily::kRecords);
    const int subjects = write->AddTable(ColumnFamily::kSubjects);
    const int n = spill ? kSpillingRows : 100;
    for (int i = 0; i < n; ++i) {
      ASSERT_OK(write->Put(records, Key(i), Value(i)));
      ASSERT_OK(write->Put(subjects, Key(2 * i + 1), "dropped"));
    }
    const uint64_t count_before = write->count();
    ASSERT_OK(write->ClearTable(subjects));
    EXPECT_EQ(write->count(), count_before - static_cast<uint64_t>(n));
    // Spilled: the records' file stays, the subjects' is gone.
    EXPECT_EQ(StagedFiles(dir), spill ? 1u : 0u);
    for (int i = 0; i < n; i += 2) ASSERT_OK(write->Put(subjects, Key(i), "kept"));
    EXPECT_THAT(write->Put(subjects, Key(0), "again"),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
    ASSERT_OK(db->Commit(std::move(write)));
    EXPECT_EQ(StagedFiles(dir), 0u);
    EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords), static_cast<uint64_t>(n));
    EXPECT_THAT(*db->Get(ColumnFamily::kRecords, Key(n - 1)), Optional(Value(n - 1)));
    // Keys 0, 2, 4, ... from after the clear, and key 3 as before the write.
    EXPECT_EQ(CountKeys(*db, ColumnFamily::kSubjects), static_cast<uint64_t>(n / 2 + 1));
    EXPECT_THAT(*db->Get(ColumnFamily::kSubjects, Key(2)), Optional(std::string("kept")));
    EXPECT_THAT(*db->Get(ColumnFamily::kSubjects, Key(3)), Optional(std::string("old")));
    EXPECT_EQ(*db->Get(ColumnFamily::kSubjects, Key(1)), std::nullopt);
  }
}

// An encrypted store keeps a large write in memory and commits it as one
// batch (RocksDB 7.8 records an ingested file's size there without its
// encryption prefix, and the store would no longer open).
TEST_F(BulkWriteTest, LargeWriteInAnEncryptedStoreCommitsAsOneBatch) {
  StorageOptions options;
  options.encryption_key = std::string(32, 'k');
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), options));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<BulkWrite> write, db->NewBulkWrite());
    const int records = write->AddTable(ColumnFamily::kRecords);
    for (int i = 0; i < kSpillingRows; ++i) ASSERT_OK(write->Put(records, Key(i), Value(i)));
    EXPECT_EQ(StagedFiles(dir_.path()), 0u);
    EXPECT_GT(write->held_bytes(), kBulkSpillBytes);
    ASSERT_OK(db->Commit(std::move(write)));
  }
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), options));
  EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords), static_cast<uint64_t>(kSpillingRows));
  EXPECT_THAT(*db->Get(ColumnFamily::kRecords, Key(kSpillingRows - 1)),
              Optional(Value(kSpillingRows - 1)));
}

TEST_F(BulkWriteTest, UncommittedWriteChangesNothingAndLeavesNoFile) {
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<BulkWrite> write, db->NewBulkWrite());
    const int records = write->AddTable(ColumnFamily::kRecords);
    for (int i = 0; i < kSpillingRows; ++i) ASSERT_OK(write->Put(records, Key(i), Value(i)));
    EXPECT_GT(StagedFiles(dir_.path()), 0u);
  }
  EXPECT_EQ(StagedFiles(dir_.path()), 0u);
  EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords), 0u);
}

// A process killed while staging leaves files in the staging folder: the
// next open deletes them, and none of their keys is visible.
TEST_F(BulkWriteTest, FilesOfAWriteCutShortAreRemovedAtOpen) {
  const ScopedTempDir kept("bulk_write_test_kept");
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<BulkWrite> write, db->NewBulkWrite());
    const int records = write->AddTable(ColumnFamily::kRecords);
    for (int i = 0; i < kSpillingRows; ++i) ASSERT_OK(write->Put(records, Key(i), Value(i)));
    ASSERT_GT(StagedFiles(dir_.path()), 0u);
    // What a crash would leave: the staged files as they are now.
    std::filesystem::copy(dir_.Sub("staging"), kept.Sub("staging"));
  }
  std::filesystem::copy(kept.Sub("staging"), dir_.Sub("staging"));
  ASSERT_GT(StagedFiles(dir_.path()), 0u);
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  EXPECT_EQ(StagedFiles(dir_.path()), 0u);
  EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords), 0u);
}

// Once spilled, the files are written on the write's own thread: an I/O
// error there comes back from a later Put or from Commit, and the write
// changes nothing and leaves no file.
TEST_F(BulkWriteTest, FileErrorOnTheWritingThreadFailsTheWholeWrite) {
  FaultInjector faults;
  StorageOptions options;
  options.fault_injector = &faults;
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), options));
  ASSERT_OK(db->Put(ColumnFamily::kRecords, Key(5), "old"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BulkWrite> write, db->NewBulkWrite());
  const int records = write->AddTable(ColumnFamily::kRecords);
  faults.SetFailWrites(true);
  absl::Status s;
  for (int i = 0; i < kSpillingRows && s.ok(); ++i) s = write->Put(records, Key(i), Value(i));
  if (s.ok()) {
    s = db->Commit(std::move(write));
  } else {
    write.reset();
  }
  faults.SetFailWrites(false);
  EXPECT_FALSE(s.ok());
  EXPECT_GT(faults.injected_failures(), 0);
  EXPECT_EQ(StagedFiles(dir_.path()), 0u);
  EXPECT_EQ(CountKeys(*db, ColumnFamily::kRecords), 1u);
  EXPECT_THAT(*db->Get(ColumnFamily::kRecords, Key(5)), Optional(std::string("old")));
}

}  // namespace
}  // namespace fedshare::storage
