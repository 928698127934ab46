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

TEST_F(AuditLogTest, FindFiltersByCallerDecisionAndTime) {
  v1::AuditEntry on_behalf = Entry("spiffe://td/org/foundation/node", v1::AuditEntry::ANSWERED);
  on_behalf.set_on_behalf_of("spiffe://td/org/foundation/analyst/ana");
  ASSERT_OK(log_->Append(on_behalf).status());  // 0 at t0
  clock_.Advance(absl::Seconds(10));
  ASSERT_OK(log_->Append(Entry("spiffe://td/org/other/node", v1::AuditEntry::REFUSED)).status());
  clock_.Advance(absl::Seconds(10));
  ASSERT_OK(
      log_->Append(Entry("spiffe://td/org/foundation/node", v1::AuditEntry::REFUSED)).status());
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  auto indexes = [&](const AuditLog::Filter& filter) {
    std::vector<uint64_t> out;
    absl::StatusOr<AuditLog::Page> page = log_->Find(0, filter, 100, 100);
    EXPECT_OK(page.status());
    if (!page.ok()) return out;
    EXPECT_EQ(page->next_index, 3u);
    for (const v1::AuditEntry& e : page->entries) out.push_back(e.index());
    return out;
  };
  using ::testing::ElementsAre;
  AuditLog::Filter f;
  EXPECT_THAT(indexes(f), ElementsAre(0, 1, 2));
  f.caller = "foundation";
  EXPECT_THAT(indexes(f), ElementsAre(0, 2));
  f.caller = "spiffe://td/org/foundation/analyst/ana";
  EXPECT_THAT(indexes(f), ElementsAre(0));
  f.caller = "spiffe://td/org/other/node";
  EXPECT_THAT(indexes(f), ElementsAre(1));
  f = AuditLog::Filter();
  f.decision = v1::AuditEntry::REFUSED;
  EXPECT_THAT(indexes(f), ElementsAre(1, 2));
  f = AuditLog::Filter();
  f.since = t0 + absl::Seconds(10);
  EXPECT_THAT(indexes(f), ElementsAre(1, 2));
  f.until = t0 + absl::Seconds(20);
  EXPECT_THAT(indexes(f), ElementsAre(1));
}

TEST_F(AuditLogTest, FindExaminesAtMostItsBoundAndSaysWhereToContinue) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(log_->Append(Entry("spiffe://td/org/a/node", v1::AuditEntry::ANSWERED)).status());
  }
  AuditLog::Filter refused;
  refused.decision = v1::AuditEntry::REFUSED;
  ASSERT_OK_AND_ASSIGN(AuditLog::Page page, log_->Find(1, refused, 100, 2));
  EXPECT_TRUE(page.entries.empty());
  EXPECT_EQ(page.next_index, 3u);
  ASSERT_OK_AND_ASSIGN(page, log_->Find(0, AuditLog::Filter(), 2, 100));
  ASSERT_EQ(page.entries.size(), 2u);
  EXPECT_EQ(page.next_index, 2u);
}

TEST_F(AuditLogTest, QuestionAndOnBehalfOfAreCoveredByTheChain) {
  v1::AuditEntry e = Entry("spiffe://td/org/a/node", v1::AuditEntry::ANSWERED);
  const std::string without = EntryHash(e);
  e.set_on_behalf_of("spiffe://td/org/a/analyst/ana");
  e.mutable_question()->set_purpose("program-evaluation");
  e.set_applied_where_text("age >= 15");
  EXPECT_NE(EntryHash(e), without);
  ASSERT_OK(log_->Append(e).status());
  ASSERT_OK(log_->Append(e).status());
  ASSERT_OK(log_->VerifyChain());
  Tamper(0, [](v1::AuditEntry& entry) { entry.set_on_behalf_of("spiffe://td/org/a/analyst/x"); });
  EXPECT_THAT(log_->VerifyChain(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("entry 0")));
  Tamper(0, [](v1::AuditEntry& entry) {
    entry.set_on_behalf_of("spiffe://td/org/a/analyst/ana");
    entry.set_applied_where_text("age >= 20");
  });
  EXPECT_THAT(log_->VerifyChain(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("entry 0")));
}

}  // namespace
}  // namespace fedshare::audit
