#include "node/audit/audit_log.h"

#include <stdlib.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/storage/fault_injector.h"

namespace fedshare::audit {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

std::string MakeTempDir() {
  std::string tmpl = ::testing::TempDir() + "audit_log_test_XXXXXX";
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

v1::AuditEntry Entry(absl::string_view caller, v1::AuditEntry::Decision decision) {
  v1::AuditEntry e;
  e.set_caller(std::string(caller));
  e.set_method("PeerService.Aggregate");
  e.set_dataset("program_outcomes");
  e.set_purpose("program-evaluation");
  e.set_decision(decision);
  e.set_question_hash(std::string(32, 'q'));
  return e;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    log_.reset();
    storage_.reset();
    storage::StorageOptions options;
    options.fault_injector = &faults_;
    auto storage = storage::Storage::Create(dir_, options);
    ASSERT_OK(storage.status());
    storage_ = std::move(storage).value();
    auto log = AuditLog::Open(storage_.get(), &clock_);
    ASSERT_OK(log.status());
    log_ = std::move(log).value();
  }

  // Rewrites stored entry `index` with `mutate` applied, bypassing the log.
  void Tamper(uint64_t index, const std::function<void(v1::AuditEntry&)>& mutate) {
    std::string key(1, 'e');
    for (int i = 0; i < 8; ++i) key.push_back(static_cast<char>(index >> (56 - 8 * i)));
    auto value = storage_->Get(storage::ColumnFamily::kAudit, key);
    ASSERT_OK(value.status());
    ASSERT_TRUE(value->has_value());
    v1::AuditEntry entry;
    ASSERT_TRUE(entry.ParseFromString(**value));
    mutate(entry);
    ASSERT_OK(storage_->Put(storage::ColumnFamily::kAudit, key, entry.SerializeAsString()));
  }

  std::string dir_ = MakeTempDir();
  FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  storage::FaultInjector faults_;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(AuditLogTest, AppendsChainedEntriesInOrder) {
  ASSERT_OK_AND_ASSIGN(auto a,
                       log_->Append(Entry("spiffe://td/org/a/node", v1::AuditEntry::ANSWERED)));
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(auto b,
                       log_->Append(Entry("spiffe://td/org/b/node", v1::AuditEntry::REFUSED)));
  EXPECT_EQ(a.index, 0u);
  EXPECT_EQ(b.index, 1u);
  EXPECT_EQ(log_->size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto entries, log_->List(0, 10));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].previous_hash(), std::string(32, '\0'));
  EXPECT_EQ(entries[1].previous_hash(), a.entry_hash);
  EXPECT_EQ(EntryHash(entries[1]), b.entry_hash);
  EXPECT_EQ(entries[1].time_unix_ms(), entries[0].time_unix_ms() + 1000);
  EXPECT_OK(log_->VerifyChain());
}

TEST_F(AuditLogTest, ChainContinuesAfterReopen) {
  ASSERT_OK_AND_ASSIGN(auto a, log_->Append(Entry("c", v1::AuditEntry::ANSWERED)));
  Open();
  ASSERT_OK_AND_ASSIGN(auto b, log_->Append(Entry("c", v1::AuditEntry::ANSWERED)));
  EXPECT_EQ(b.index, 1u);
  ASSERT_OK_AND_ASSIGN(auto entries, log_->List(1, 1));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].previous_hash(), a.entry_hash);
  EXPECT_OK(log_->VerifyChain());
}

TEST_F(AuditLogTest, AlteredEntryBreaksTheChainThere) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)).status());
  }
  ASSERT_OK(log_->VerifyChain());
  Tamper(2, [](v1::AuditEntry& e) { e.set_decision(v1::AuditEntry::REFUSED); });
  EXPECT_THAT(log_->VerifyChain(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("broken at entry 3")));
}

TEST_F(AuditLogTest, AlteredLastEntryIsDetectedByTheHead) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)).status());
  }
  Tamper(2, [](v1::AuditEntry& e) { e.set_reason("rewritten"); });
  EXPECT_THAT(log_->VerifyChain(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("broken at entry 2")));
}

TEST_F(AuditLogTest, RemovedNewestEntriesStopFurtherAppends) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)).status());
  }
  std::string key(1, 'e');
  for (int i = 0; i < 8; ++i) key.push_back(static_cast<char>(uint64_t{2} >> (56 - 8 * i)));
  ASSERT_OK(storage_->Delete(storage::ColumnFamily::kAudit, key));
  Open();
  EXPECT_EQ(log_->size(), 2u);
  EXPECT_THAT(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("removed or altered")));
  EXPECT_THAT(log_->VerifyChain(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("head")));
}

TEST_F(AuditLogTest, FailedWriteAppendsNothing) {
  ASSERT_OK(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)).status());
  faults_.SetFailWrites(true);
  EXPECT_THAT(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("audit log unavailable")));
  faults_.SetFailWrites(false);
  EXPECT_EQ(log_->size(), 1u);
  Open();
  EXPECT_EQ(log_->size(), 1u);
  EXPECT_OK(log_->VerifyChain());
}

}  // namespace
}  // namespace fedshare::audit
