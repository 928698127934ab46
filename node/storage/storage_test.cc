#include "node/storage/storage.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/storage/keys.h"

namespace fedshare::storage {
namespace {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Optional;

class StorageTest : public ::testing::Test {
 protected:
  ScopedTempDir dir_{"storage_test"};
};

TEST_F(StorageTest, PutGetSurvivesReopen) {
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
    ASSERT_OK(db->Put(ColumnFamily::kAudit, "k1", "v1"));
    ASSERT_OK_AND_ASSIGN(auto v, db->Get(ColumnFamily::kAudit, "k1"));
    EXPECT_THAT(v, Optional(std::string("v1")));
    ASSERT_OK_AND_ASSIGN(auto missing, db->Get(ColumnFamily::kMeta, "k1"));
    EXPECT_FALSE(missing.has_value());
  }
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  ASSERT_OK_AND_ASSIGN(auto v, db->Get(ColumnFamily::kAudit, "k1"));
  EXPECT_THAT(v, Optional(std::string("v1")));
}

// Bytes of write-ahead log files (*.log) in `dir`.
uint64_t WalBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".log") total += entry.file_size();
  }
  return total;
}

TEST_F(StorageTest, ABulkWriteIsNotReplayedFromTheLogAfterAClose) {
  const std::string value(128 << 10, 'x');
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
    WriteBatch batch;
    for (int i = 0; i < 100; ++i) batch.Put(ColumnFamily::kRecords, absl::StrCat("k", i), value);
    ASSERT_GE(batch.ApproximateSize(), Storage::kFlushAfterBatchBytes);
    ASSERT_OK(db->Write(batch));
    EXPECT_GE(WalBytes(dir_.path()), 100u * value.size());  // synced to the log first
  }
  // Flushed at close: the next open has (almost) no log to replay.
  EXPECT_LT(WalBytes(dir_.path()), 64u << 10);
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  EXPECT_EQ(db->GetStats().memtable_bytes < (1u << 20), true);
  ASSERT_OK_AND_ASSIGN(auto v, db->Get(ColumnFamily::kRecords, "k99"));
  EXPECT_THAT(v, Optional(value));
}

// Write-ahead log files (*.log) in `dir`.
int WalFiles(const std::string& dir) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    files += entry.path().extension() == ".log" ? 1 : 0;
  }
  return files;
}

TEST_F(StorageTest, RestartsWithoutWritesDoNotPileUpLogFiles) {
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
    ASSERT_OK(db->Put(ColumnFamily::kAudit, "k1", "v1"));
  }
  const int after_first = WalFiles(dir_.path());
  for (int restart = 0; restart < 5; ++restart) {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  }
  EXPECT_LE(WalFiles(dir_.path()), std::max(after_first, 1));
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  ASSERT_OK_AND_ASSIGN(auto v, db->Get(ColumnFamily::kAudit, "k1"));
  EXPECT_THAT(v, Optional(std::string("v1")));
}

TEST_F(StorageTest, MissingStoreIsNotFoundWithoutCreate) {
  StorageOptions options;
  options.create_if_missing = false;
  EXPECT_THAT(Storage::Create(dir_.Sub("absent"), options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent")));
}

TEST_F(StorageTest, RefusesOtherFormatVersion) {
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
    ASSERT_OK(db->Put(ColumnFamily::kMeta, MetaFormatVersionKey(), EncodeFixed32BE(99)));
  }
  EXPECT_THAT(Storage::Create(dir_.path(), StorageOptions()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("format version 99")));
}

// A store of version 1 (before block format 3) is read; opened for writing it
// is marked version 2 at once, so builds of version 1 refuse it at open
// rather than failing on the blocks this build writes. A read-only open
// leaves it as it was.
TEST_F(StorageTest, OlderFormatVersionIsReadAndMarkedCurrentWhenOpenedForWriting) {
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
    ASSERT_OK(db->Put(ColumnFamily::kMeta, MetaFormatVersionKey(), EncodeFixed32BE(1)));
    ASSERT_OK(db->Put(ColumnFamily::kMeta, "kept", "v"));
  }
  {
    StorageOptions read_only;
    read_only.read_only = true;
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), read_only));
    ASSERT_OK_AND_ASSIGN(auto version, db->Get(ColumnFamily::kMeta, MetaFormatVersionKey()));
    EXPECT_THAT(version, Optional(EncodeFixed32BE(1)));
  }
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
    ASSERT_OK_AND_ASSIGN(auto version, db->Get(ColumnFamily::kMeta, MetaFormatVersionKey()));
    EXPECT_THAT(version, Optional(EncodeFixed32BE(kFormatVersion)));
    ASSERT_OK_AND_ASSIGN(auto kept, db->Get(ColumnFamily::kMeta, "kept"));
    EXPECT_THAT(kept, Optional(std::string("v")));
  }
  EXPECT_EQ(kFormatVersion, 2u);
  {
    ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
    ASSERT_OK(db->Put(ColumnFamily::kMeta, MetaFormatVersionKey(), EncodeFixed32BE(0)));
  }
  EXPECT_THAT(Storage::Create(dir_.path(), StorageOptions()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("versions 1 to 2")));
}

TEST_F(StorageTest, BatchSpansColumnFamilies) {
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  WriteBatch batch;
  batch.Put(ColumnFamily::kRecords, "r", "1");
  batch.Put(ColumnFamily::kSubjects, "s", "2");
  batch.Put(ColumnFamily::kQueries, "q", "3");
  batch.Delete(ColumnFamily::kQueries, "absent");
  EXPECT_EQ(batch.Count(), 4);
  ASSERT_OK(db->Write(batch));
  ASSERT_OK_AND_ASSIGN(auto r, db->Get(ColumnFamily::kRecords, "r"));
  ASSERT_OK_AND_ASSIGN(auto s, db->Get(ColumnFamily::kSubjects, "s"));
  ASSERT_OK_AND_ASSIGN(auto q, db->Get(ColumnFamily::kQueries, "q"));
  EXPECT_THAT(r, Optional(std::string("1")));
  EXPECT_THAT(s, Optional(std::string("2")));
  EXPECT_THAT(q, Optional(std::string("3")));
  ASSERT_OK(db->Delete(ColumnFamily::kQueries, "q"));
  ASSERT_OK_AND_ASSIGN(auto gone, db->Get(ColumnFamily::kQueries, "q"));
  EXPECT_FALSE(gone.has_value());
}

TEST_F(StorageTest, PrefixScanAndLastKey) {
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  WriteBatch batch;
  for (std::string k :
       std::vector<std::string>{"a1", "a2", "a3", "b1", std::string("a\xff", 2), "\xff\xff"}) {
    batch.Put(ColumnFamily::kAudit, k, "v" + k);
  }
  ASSERT_OK(db->Write(batch));
  std::vector<std::string> keys;
  ASSERT_OK(
      db->ScanPrefix(ColumnFamily::kAudit, "a", [&](absl::string_view k, absl::string_view v) {
        EXPECT_EQ(v, "v" + std::string(k));
        keys.emplace_back(k);
        return absl::OkStatus();
      }));
  EXPECT_THAT(keys, ::testing::ElementsAre("a1", "a2", "a3", std::string("a\xff", 2)));
  ASSERT_OK_AND_ASSIGN(auto last, db->LastWithPrefix(ColumnFamily::kAudit, "a"));
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->first, std::string("a\xff", 2));
  ASSERT_OK_AND_ASSIGN(auto last_all, db->LastWithPrefix(ColumnFamily::kAudit, ""));
  ASSERT_TRUE(last_all.has_value());
  EXPECT_EQ(last_all->first, "\xff\xff");
  ASSERT_OK_AND_ASSIGN(auto last_ff, db->LastWithPrefix(ColumnFamily::kAudit, "\xff"));
  ASSERT_TRUE(last_ff.has_value());
  EXPECT_EQ(last_ff->first, "\xff\xff");
  ASSERT_OK_AND_ASSIGN(auto none, db->LastWithPrefix(ColumnFamily::kAudit, "c"));
  EXPECT_FALSE(none.has_value());

  // Stopping early returns fn's status.
  int seen = 0;
  EXPECT_THAT(db->ScanPrefix(ColumnFamily::kAudit, "",
                             [&](absl::string_view, absl::string_view) {
                               return ++seen == 2 ? absl::CancelledError("stop") : absl::OkStatus();
                             }),
              StatusIs(absl::StatusCode::kCancelled, "stop"));
  EXPECT_EQ(seen, 2);

  std::unique_ptr<Iterator> it = db->NewIterator(ColumnFamily::kAudit, "a");
  it->SeekForPrev("a25");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a2");
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a1");
  it->Prev();
  EXPECT_FALSE(it->Valid());
  EXPECT_OK(it->status());
}

TEST_F(StorageTest, SnapshotSeesOnlyEarlierWrites) {
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), StorageOptions()));
  ASSERT_OK(db->Put(ColumnFamily::kRecords, "k", "old"));
  std::unique_ptr<Snapshot> snap = db->GetSnapshot();
  ASSERT_OK(db->Put(ColumnFamily::kRecords, "k", "new"));
  ASSERT_OK(db->Put(ColumnFamily::kRecords, "k2", "x"));
  ASSERT_OK_AND_ASSIGN(auto v, db->Get(ColumnFamily::kRecords, "k", snap.get()));
  EXPECT_THAT(v, Optional(std::string("old")));
  int n = 0;
  ASSERT_OK(db->ScanPrefix(
      ColumnFamily::kRecords, "k",
      [&](absl::string_view, absl::string_view) {
        ++n;
        return absl::OkStatus();
      },
      snap.get()));
  EXPECT_EQ(n, 1);
  ASSERT_OK_AND_ASSIGN(auto latest, db->Get(ColumnFamily::kRecords, "k"));
  EXPECT_THAT(latest, Optional(std::string("new")));
}

TEST_F(StorageTest, InjectedWriteFaultFailsAndLeavesNothingVisible) {
  FaultInjector faults;
  StorageOptions options;
  options.fault_injector = &faults;
  ASSERT_OK_AND_ASSIGN(auto db, Storage::Create(dir_.path(), options));
  ASSERT_OK(db->Put(ColumnFamily::kMeta, "before", "1"));

  faults.SetFailWrites(true);
  WriteBatch batch;
  batch.Put(ColumnFamily::kRecords, "r", "1");
  batch.Put(ColumnFamily::kAudit, "a", "2");
  EXPECT_THAT(db->Write(batch), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("injected")));
  EXPECT_GT(faults.injected_failures(), 0);
  ASSERT_OK_AND_ASSIGN(auto r, db->Get(ColumnFamily::kRecords, "r"));
  ASSERT_OK_AND_ASSIGN(auto a, db->Get(ColumnFamily::kAudit, "a"));
  EXPECT_FALSE(r.has_value());
  EXPECT_FALSE(a.has_value());

  // Once the disk works again, a reopened store has everything acknowledged,
  // nothing of the failed batch, and accepts writes.
  faults.SetFailWrites(false);
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Storage::Create(dir_.path(), StorageOptions()));
  ASSERT_OK(db->Put(ColumnFamily::kMeta, "after", "2"));
  ASSERT_OK_AND_ASSIGN(auto before, db->Get(ColumnFamily::kMeta, "before"));
  ASSERT_OK_AND_ASSIGN(auto after, db->Get(ColumnFamily::kMeta, "after"));
  ASSERT_OK_AND_ASSIGN(auto r2, db->Get(ColumnFamily::kRecords, "r"));
  EXPECT_TRUE(before.has_value());
  EXPECT_TRUE(after.has_value());
  EXPECT_FALSE(r2.has_value());
}

TEST(KeysTest, OrderedTimeSortsAndRoundTrips) {
  std::string a, b, c;
  absl::Time t1 = absl::FromUnixSeconds(-100);
  absl::Time t2 = absl::FromUnixSeconds(5);
  AppendOrderedTime(&a, t1);
  AppendOrderedTime(&b, t2);
  AppendOrderedTime(&c, absl::InfiniteFuture());
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(DecodeOrderedTime(a), t1);
  EXPECT_EQ(DecodeOrderedTime(c), absl::InfiniteFuture());
}

TEST(KeysTest, ConsentKeyRoundTrips) {
  ConsentKey key{7, "program-evaluation", absl::FromUnixSeconds(1700000000), 3};
  std::string encoded = EncodeConsentKey(key);
  auto decoded = DecodeConsentKey(encoded);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->ordinal, 7u);
  EXPECT_EQ(decoded->purpose, "program-evaluation");
  EXPECT_EQ(decoded->time, key.time);
  EXPECT_EQ(decoded->event_type, 3);
}

TEST(KeysTest, QueriesWindowKeysAreAsDocumented) {
  // docs/storage-format.md, `queries`: 'l' + org + 00 + agreement id, and
  // 'r' + org + 00 + applied question hash; DP answers start with 01.
  using std::string_literals::operator""s;
  EXPECT_EQ(QueriesRateWindowKey("foundation", "eval-2026"), "lfoundation\0eval-2026"s);
  EXPECT_EQ(QueriesRepeatWindowKey("foundation", "\x01\xff"), "rfoundation\0\x01\xff"s);
  EXPECT_EQ(QueriesDpAnswerKey("foundation", "d", "h"),
            "\x01"
            "foundation\0d\0h"s);
}

TEST(KeysTest, BlockKeysSortByBlockNumber) {
  EXPECT_LT(RecordsBlockKey(1, 255), RecordsBlockKey(1, 256));
  EXPECT_LT(RecordsBlockKey(1, 0xffffffff), RecordsBlockKey(2, 0));
  EXPECT_EQ(DecodeRecordsBlockNumber(RecordsBlockKey(3, 4097)), 4097u);
  EXPECT_EQ(DecodeSubjectBlockOrdinal(SubjectBlockKey(1, 9, 8)), 9u);
  EXPECT_EQ(DecodeSubjectBlockNumber(SubjectBlockKey(1, 9, 8)), 8u);
  EXPECT_EQ(DecodeMetaCategoryCode(MetaCategoryKey(1, 2, 77)), 77u);
}

TEST(KeysTest, SubjectBitmapIsBytesLowBitFirstWithoutTrailingZeros) {
  std::vector<uint64_t> words = {0x0000000000000101, 0, uint64_t{1} << 63, 0, 0};
  const std::string encoded = EncodeSubjectBitmap(words);
  // Ordinals 0, 8 and 191: byte 0 bit 0, byte 1 bit 0, byte 23 bit 7.
  ASSERT_EQ(encoded.size(), 24u);
  EXPECT_EQ(encoded[0], '\x01');
  EXPECT_EQ(encoded[1], '\x01');
  EXPECT_EQ(encoded[23], '\x80');
  std::vector<uint64_t> decoded;
  ASSERT_TRUE(DecodeSubjectBitmap(encoded, 5, &decoded));
  EXPECT_EQ(decoded, words);
  EXPECT_EQ(EncodeSubjectBitmap({0, 0}), "");
  // A bitmap naming an ordinal past the subjects allocated is refused.
  EXPECT_FALSE(DecodeSubjectBitmap(encoded, 2, &decoded));
  EXPECT_TRUE(DecodeSubjectBitmap(encoded.substr(0, 16), 2, &decoded));
}

}  // namespace
}  // namespace fedshare::storage
