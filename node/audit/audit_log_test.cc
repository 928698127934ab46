#include "node/audit/audit_log.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/storage/fault_injector.h"

namespace fedshare::audit {
namespace {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

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
    auto storage = storage::Storage::Create(dir_.path(), options);
    ASSERT_OK(storage.status());
    storage_ = std::move(storage).value();
    auto log = AuditLog::Open(storage_.get(), &clock_);
    ASSERT_OK(log.status());
    log_ = std::move(log).value();
  }

  static std::string Key(char prefix, uint64_t n) {
    std::string key(1, prefix);
    for (int i = 0; i < 8; ++i) key.push_back(static_cast<char>(n >> (56 - 8 * i)));
    return key;
  }

  // The stored leaf `index`, as someone with the disk reads it.
  std::string StoredLeaf(uint64_t index) {
    auto value = storage_->Get(storage::ColumnFamily::kAudit, Key('l', index));
    EXPECT_OK(value.status());
    return value.ok() && value->has_value() ? **value : std::string();
  }

  // Rewrites stored leaf `index` re-encoded with `mutate` applied, bypassing the log.
  void Tamper(uint64_t index, const std::function<void(v1::AuditEntry&)>& mutate) {
    ASSERT_OK_AND_ASSIGN(v1::AuditEntry entry, DecodeLeaf(StoredLeaf(index)));
    mutate(entry);
    ASSERT_OK(storage_->Put(storage::ColumnFamily::kAudit, Key('l', index), EncodeLeaf(entry)));
  }

  ScopedTempDir dir_{"audit_log_test"};  // outlives the store below
  FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  storage::FaultInjector faults_;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(AuditLogTest, AppendsLeavesInOrderEachWithAVerifiableReceipt) {
  ASSERT_OK_AND_ASSIGN(auto a,
                       log_->Append(Entry("spiffe://td/org/a/node", v1::AuditEntry::ANSWERED)));
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(auto b,
                       log_->Append(Entry("spiffe://td/org/b/node", v1::AuditEntry::REFUSED), 1));
  EXPECT_EQ(a.index, 0u);
  EXPECT_EQ(b.index, 1u);
  EXPECT_EQ(log_->size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto entries, log_->List(0, 10));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(EntryHash(entries[1]), b.entry_hash);
  EXPECT_EQ(LeafHash(StoredLeaf(1)), b.entry_hash);
  EXPECT_EQ(entries[1].time_unix_ms(), entries[0].time_unix_ms() + 1000);
  EXPECT_OK(VerifyReceipt(a.receipt, log_->public_key()));
  EXPECT_OK(VerifyReceipt(b.receipt, log_->public_key()));
  EXPECT_EQ(b.receipt.checkpoint().tree_size(), 2u);
  EXPECT_EQ(b.receipt.consistency_from(), 1u);
  EXPECT_OK(VerifyReceiptConsistency(b.receipt, a.receipt.checkpoint()));
  EXPECT_OK(log_->Verify());
}

TEST_F(AuditLogTest, TreeContinuesAfterReopenWithTheSameKey) {
  ASSERT_OK_AND_ASSIGN(auto a, log_->Append(Entry("c", v1::AuditEntry::ANSWERED)));
  const std::string key = log_->public_key();
  Open();
  EXPECT_EQ(log_->public_key(), key);
  ASSERT_OK_AND_ASSIGN(auto b, log_->Append(Entry("c", v1::AuditEntry::ANSWERED), 1));
  EXPECT_EQ(b.index, 1u);
  EXPECT_OK(VerifyReceipt(b.receipt, key));
  EXPECT_OK(VerifyReceiptConsistency(b.receipt, a.receipt.checkpoint()));
  EXPECT_OK(log_->Verify());
}

TEST_F(AuditLogTest, FlippingAnyByteOfAStoredLeafStopsAppendsAfterReopen) {
  std::vector<AuditLog::Appended> appended;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(auto a, log_->Append(Entry("c", v1::AuditEntry::ANSWERED)));
    appended.push_back(a);
  }
  const std::string original = StoredLeaf(2);
  for (size_t byte = 0; byte < original.size(); ++byte) {
    std::string flipped = original;
    flipped[byte] = static_cast<char>(flipped[byte] ^ 0x01);
    ASSERT_OK(storage_->Put(storage::ColumnFamily::kAudit, Key('l', 2), flipped));
    // The flipped leaf is not in the tree its receipt's checkpoint signs.
    EXPECT_THAT(VerifyInclusion(2, 5, LeafHash(flipped),
                                {appended[4].receipt.inclusion_proof().begin(),
                                 appended[4].receipt.inclusion_proof().end()},
                                appended[4].receipt.checkpoint().root_hash()),
                StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
    EXPECT_THAT(log_->Verify(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("leaf 2")))
        << "byte " << byte;
  }
  Open();
  EXPECT_THAT(log_->health(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("leaf 2")));
  EXPECT_THAT(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("leaf 2")));
}

TEST_F(AuditLogTest, ReencodedLeafIsNamedByTheFirstCheckpointOverIt) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)).status());
  }
  Tamper(2, [](v1::AuditEntry& e) { e.set_reason("rewritten"); });
  EXPECT_THAT(log_->Verify(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("leaf 2")));
}

TEST_F(AuditLogTest, RemovedNewestLeafStopsFurtherAppends) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)).status());
  }
  ASSERT_OK(storage_->Delete(storage::ColumnFamily::kAudit, Key('l', 2)));
  Open();
  EXPECT_EQ(log_->size(), 2u);
  EXPECT_THAT(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("leaves were removed")));
  EXPECT_THAT(log_->Verify(), StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
}

TEST_F(AuditLogTest, ForgedCheckpointIsRejectedAtOpen) {
  ASSERT_OK_AND_ASSIGN(auto a, log_->Append(Entry("c", v1::AuditEntry::ANSWERED)));
  v1::SignedCheckpoint forged = a.receipt.checkpoint();
  forged.set_time_unix_ms(forged.time_unix_ms() + 1);
  EXPECT_THAT(VerifyCheckpoint(forged, ""),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad signature")));
  ASSERT_OK(storage_->Put(storage::ColumnFamily::kAudit, Key('c', 1), forged.SerializeAsString()));
  Open();
  EXPECT_THAT(log_->health(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("does not verify")));
}

TEST_F(AuditLogTest, ServesInclusionProofsOnlyToTheOrgWhoseEntryItIs) {
  ASSERT_OK(log_->Append(Entry("spiffe://td/org/a/node", v1::AuditEntry::ANSWERED)).status());
  ASSERT_OK(log_->Append(Entry("spiffe://td/org/b/node", v1::AuditEntry::ANSWERED)).status());
  v1::AuditProofRequest request;
  request.set_inclusion(true);
  request.set_leaf_index(0);
  request.set_from_tree_size(1);
  ASSERT_OK_AND_ASSIGN(v1::AuditProofResponse proof, log_->Proof(request, "a"));
  const v1::SignedCheckpoint& cp = proof.checkpoint();
  EXPECT_OK(VerifyCheckpoint(cp, log_->public_key()));
  EXPECT_OK(VerifyInclusion(0, cp.tree_size(), LeafHash(proof.leaf()),
                            {proof.inclusion_proof().begin(), proof.inclusion_proof().end()},
                            cp.root_hash()));
  EXPECT_THAT(log_->Proof(request, "b"),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_OK(log_->Proof(request, "").status());  // an operator
}

TEST_F(AuditLogTest, FailedWriteAppendsNothing) {
  ASSERT_OK(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)).status());
  faults_.SetFailWrites(true);
  EXPECT_THAT(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("audit log unavailable")));
  faults_.SetFailWrites(false);
  EXPECT_EQ(log_->size(), 1u);
  EXPECT_EQ(log_->checkpoint().tree_size(), 1u);
  Open();
  EXPECT_EQ(log_->size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto b, log_->Append(Entry("c", v1::AuditEntry::ANSWERED)));
  EXPECT_OK(VerifyReceipt(b.receipt, log_->public_key()));
  EXPECT_OK(log_->Verify());
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

TEST_F(AuditLogTest, QuestionAndOnBehalfOfAreCoveredByTheLeaf) {
  v1::AuditEntry e = Entry("spiffe://td/org/a/node", v1::AuditEntry::ANSWERED);
  const std::string without = EntryHash(e);
  e.set_on_behalf_of("spiffe://td/org/a/analyst/ana");
  e.mutable_question()->set_purpose("program-evaluation");
  e.set_applied_where_text("age >= 15");
  e.add_applied_where()->set_field("age");
  EXPECT_NE(EntryHash(e), without);
  ASSERT_OK(log_->Append(e).status());
  ASSERT_OK(log_->Append(e).status());
  ASSERT_OK(log_->Verify());
  ASSERT_OK_AND_ASSIGN(v1::AuditEntry decoded, DecodeLeaf(StoredLeaf(0)));
  EXPECT_EQ(decoded.on_behalf_of(), e.on_behalf_of());
  EXPECT_EQ(decoded.applied_where_size(), 1);
  Tamper(0, [](v1::AuditEntry& entry) { entry.set_on_behalf_of("spiffe://td/org/a/analyst/x"); });
  EXPECT_THAT(log_->Verify(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("leaf 0")));
  Tamper(0, [](v1::AuditEntry& entry) {
    entry.set_on_behalf_of("spiffe://td/org/a/analyst/ana");
    entry.set_applied_where_text("age >= 20");
  });
  EXPECT_THAT(log_->Verify(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("leaf 0")));
}

TEST_F(AuditLogTest, AHashChainedLogIsConvertedToLeavesAtOpen) {
  log_.reset();
  // Two entries as the hash-chained log stored them (protobuf under 'e').
  for (uint64_t i = 0; i < 2; ++i) {
    v1::AuditEntry e = Entry("spiffe://td/org/a/node", v1::AuditEntry::ANSWERED);
    e.set_index(i);
    e.set_previous_hash(std::string(32, static_cast<char>(i)));
    ASSERT_OK(storage_->Put(storage::ColumnFamily::kAudit, Key('e', i), e.SerializeAsString()));
  }
  ASSERT_OK(storage_->Put(storage::ColumnFamily::kAudit, "h", "head"));
  Open();
  EXPECT_OK(log_->health());
  EXPECT_EQ(log_->size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto entries, log_->List(0, 10));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].previous_hash(), std::string(32, '\1'));
  ASSERT_OK(log_->Append(Entry("c", v1::AuditEntry::ANSWERED)).status());
  EXPECT_OK(log_->Verify());
}

}  // namespace
}  // namespace fedshare::audit
