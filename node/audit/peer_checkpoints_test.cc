#include "node/audit/peer_checkpoints.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/audit/audit_log.h"
#include "node/common/clock.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"

namespace fedshare::audit {
namespace {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<storage::Storage> OpenStorage(const ScopedTempDir& dir) {
  auto storage = storage::Storage::Create(dir.path(), storage::StorageOptions());
  EXPECT_OK(storage.status());
  return std::move(storage).value();
}

// Partners' audit logs, each in its own store, and the asking node's
// PeerCheckpoints in another.
class PeerCheckpointsTest : public ::testing::Test {
 protected:
  // The receipt of a new entry in `org`'s log, proving consistency from what
  // the asking node holds of it (as a partner answers).
  // `known`: the size the partner was told instead.
  v1::Receipt Answer(const std::string& org, std::optional<uint64_t> known = std::nullopt) {
    Partner& p = partners_[org];
    if (p.log == nullptr) {
      p.storage = OpenStorage(p.dir);
      auto log = AuditLog::Open(p.storage.get(), Clock::Real(), org);
      EXPECT_OK(log.status());
      p.log = std::move(log).value();
    }
    v1::AuditEntry entry;
    entry.set_caller("spiffe://fedshare.test/org/foundation/node");
    entry.set_method("PeerService.Aggregate");
    entry.set_decision(v1::AuditEntry::ANSWERED);
    auto appended = p.log->Append(entry, known.value_or(held_.KnownSize(org)));
    EXPECT_OK(appended.status());
    return appended->receipt;
  }

  static absl::StatusOr<std::vector<std::string>> NoFetch(uint64_t, uint64_t) {
    return absl::UnavailableError("no proof fetched in this test");
  }

  // Members go in reverse order: each store is closed before its folder is removed.
  struct Partner {
    ScopedTempDir dir{"peer_checkpoints_test"};
    std::unique_ptr<storage::Storage> storage;
    std::unique_ptr<AuditLog> log;
  };
  std::map<std::string, Partner> partners_;
  ScopedTempDir dir_{"peer_checkpoints_test"};
  std::unique_ptr<storage::Storage> storage_ = OpenStorage(dir_);
  PeerCheckpoints held_{storage_.get()};
};

TEST_F(PeerCheckpointsTest, AcceptAllKeepsEveryReceiptAsAcceptWould) {
  const v1::Receipt a1 = Answer("partner-a");
  const v1::Receipt b1 = Answer("partner-b");
  std::vector<absl::Status> first =
      held_.AcceptAll({{"partner-a", &a1, NoFetch}, {"partner-b", &b1, NoFetch}});
  ASSERT_EQ(first.size(), 2u);
  EXPECT_OK(first[0]);
  EXPECT_OK(first[1]);
  EXPECT_EQ(held_.KnownSize("partner-a"), 1u);
  EXPECT_EQ(held_.KnownSize("partner-b"), 1u);

  // A forged checkpoint from b fails b alone, and is kept as evidence.
  v1::Receipt forged = Answer("partner-b");
  forged.mutable_checkpoint()->mutable_signature()->front() ^= 1;
  const v1::Receipt a2 = Answer("partner-a");
  std::vector<absl::Status> second =
      held_.AcceptAll({{"partner-a", &a2, NoFetch}, {"partner-b", &forged, NoFetch}});
  EXPECT_OK(second[0]);
  EXPECT_THAT(second[1], StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad signature")));
  EXPECT_EQ(held_.KnownSize("partner-a"), 2u);
  EXPECT_EQ(held_.KnownSize("partner-b"), 1u);
  EXPECT_FALSE(held_.Error("partner-b").empty());
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Receipt> kept, held_.Receipts("partner-b"));
  EXPECT_EQ(kept.size(), 2u);
}

TEST_F(PeerCheckpointsTest, ASecondReceiptOfOnePeerIsCheckedAgainstTheFirst) {
  ASSERT_OK(held_.Accept("partner-a", Answer("partner-a"), NoFetch));
  // The second receipt proves consistency from the first one's checkpoint,
  // so the first must be held when the second is checked.
  v1::Receipt second = Answer("partner-a");
  ASSERT_OK(held_.Accept("partner-a", second, NoFetch));
  // Two answers of one fan-out-sized batch: the fourth proves consistency
  // from the third's checkpoint (size 3), not from the one held now (2).
  v1::Receipt third = Answer("partner-a");
  v1::Receipt fourth = Answer("partner-a", 3);
  std::vector<absl::Status> checked =
      held_.AcceptAll({{"partner-a", &third, NoFetch}, {"partner-a", &fourth, NoFetch}});
  EXPECT_OK(checked[0]);
  EXPECT_OK(checked[1]);
  EXPECT_EQ(held_.KnownSize("partner-a"), 4u);
}

TEST_F(PeerCheckpointsTest, APrecheckIsUsedOnlyAgainstTheCheckpointItWasMadeAgainst) {
  ASSERT_OK(held_.Accept("partner-a", Answer("partner-a"), NoFetch));
  // Checked as its answer arrives: the receipt proves consistency from the
  // checkpoint held (size 1), so the check is complete.
  v1::Receipt late = Answer("partner-a");
  PeerCheckpoints::Prechecked early_check = held_.Precheck("partner-a", late);
  EXPECT_OK(early_check.status);
  EXPECT_TRUE(early_check.complete);
  // Another answer of the same partner is stored first (size 3 now held)...
  ASSERT_OK(held_.Accept("partner-a", Answer("partner-a"), NoFetch));
  EXPECT_EQ(held_.KnownSize("partner-a"), 3u);
  // ...so the precheck no longer applies: `late` (size 2) is checked again,
  // against size 3, and is caught as a truncation.
  std::vector<absl::Status> checked =
      held_.AcceptAll({{"partner-a", &late, NoFetch, std::move(early_check)}});
  EXPECT_THAT(checked[0], StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
  EXPECT_EQ(held_.KnownSize("partner-a"), 3u);
}

TEST_F(PeerCheckpointsTest, APrecheckThatNeedsTheProofFetchedIsFinishedByAcceptAll) {
  ASSERT_OK(held_.Accept("partner-a", Answer("partner-a"), NoFetch));
  // The partner was told a size it never had, so its receipt carries no
  // proof from the size held: the precheck cannot finish without the peer.
  v1::Receipt receipt = Answer("partner-a", 0);
  PeerCheckpoints::Prechecked prechecked = held_.Precheck("partner-a", receipt);
  EXPECT_FALSE(prechecked.complete);
  std::vector<absl::Status> checked =
      held_.AcceptAll({{"partner-a", &receipt, NoFetch, std::move(prechecked)}});
  EXPECT_THAT(checked[0], StatusIs(absl::StatusCode::kDataLoss, HasSubstr("no consistency proof")));
}

TEST_F(PeerCheckpointsTest, AForgedReceiptFailsItsPrecheckAndIsStillKept) {
  ASSERT_OK(held_.Accept("partner-a", Answer("partner-a"), NoFetch));
  v1::Receipt forged = Answer("partner-a");
  forged.mutable_checkpoint()->mutable_signature()->front() ^= 1;
  PeerCheckpoints::Prechecked prechecked = held_.Precheck("partner-a", forged);
  EXPECT_THAT(prechecked.status, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad signature")));
  std::vector<absl::Status> checked =
      held_.AcceptAll({{"partner-a", &forged, NoFetch, std::move(prechecked)}});
  EXPECT_THAT(checked[0], StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad signature")));
  EXPECT_EQ(held_.KnownSize("partner-a"), 1u);
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Receipt> kept, held_.Receipts("partner-a"));
  EXPECT_EQ(kept.size(), 2u);
}

TEST_F(PeerCheckpointsTest, TheCheckpointHeldIsReadBackFromTheStore) {
  ASSERT_OK(held_.Accept("partner-a", Answer("partner-a"), NoFetch));
  ASSERT_OK(held_.Accept("partner-a", Answer("partner-a"), NoFetch));
  // A node restarted on the same store holds what the last one stored.
  PeerCheckpoints reopened(storage_.get());
  EXPECT_EQ(reopened.KnownSize("partner-a"), 2u);
  EXPECT_EQ(reopened.KnownSize("partner-b"), 0u);
  EXPECT_OK(reopened.Accept("partner-a", Answer("partner-a"), NoFetch));
  EXPECT_EQ(reopened.KnownSize("partner-a"), 3u);
}

}  // namespace
}  // namespace fedshare::audit
