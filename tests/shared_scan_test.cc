// Issue 11: the same question asked again by the same org while it is being
// scanned takes that scan's figures (node/engine/shared_scans.h), through a
// real node over mTLS. The first question is asked of the node's answerer in
// process, so that the test can hold its scan open (its `cancelled` callback
// is asked before each block) while the second comes over gRPC from
// foundation's node: which question joins which is decided by the test, not
// by timing.
#include <atomic>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/engine/answerer.h"
#include "query/sql.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

constexpr char kTrustDomain[] = "fedshare.test";
constexpr char kQuestion[] =
    "SELECT region, COUNT(*), SUM(outcome_score) FROM program_outcomes WHERE cohort_year >= 2019 "
    "GROUP BY region PURPOSE 'program-evaluation'";

class SharedScanTest : public ::testing::Test {
 protected:
  // `unshared`: limits.unshared_scans; `max_answer_cells`:
  // limits.max_answer_cells (0: the default).
  void Start(bool unshared = false, int max_answer_cells = 0) {
    v1::NodeConfig config = partner_.Config();
    config.mutable_limits()->set_scan_threads(1);  // one answer slot
    config.mutable_limits()->set_unshared_scans(unshared);
    if (max_answer_cells > 0) config.mutable_limits()->set_max_answer_cells(max_answer_cells);
    config.set_metrics_address("127.0.0.1:0");
    *config.add_agreements() = OpenAgreement("open", "foundation");
    *config.add_agreements() = OpenAgreement("open-other", "other-org");
    ASSERT_OK(partner_.Start(config));
    ASSERT_OK(partner_.Load(Rows(0, 300), 300, Subjects(0, 300)));
  }

  // fedshare_shared_scan_questions_total on the node's /metrics.
  double SharedOnMetrics() {
    return Sum(HttpGet(partner_.node().metrics_port(), "/metrics"),
               "fedshare_shared_scan_questions_total");
  }

  static std::string Rows(int first, int end) {
    std::string csv = kProgramOutcomesCsvHeader;
    for (int i = first; i < end; ++i) {
      absl::StrAppend(&csv, "p", i, ",mentoring,", i % 2 == 0 ? "north" : "south", ",",
                      2018 + i % 5, ",30,false,", 40 + i % 17, ",", i % 40, ",0\n");
    }
    return csv;
  }
  static std::set<std::string> Subjects(int first, int end) {
    std::set<std::string> subjects;
    for (int i = first; i < end; ++i) subjects.insert(absl::StrCat("p", i));
    return subjects;
  }

  engine::Answerer& answerer() { return partner_.node().answerer(); }

  // Asks kQuestion as `org` of the node's answerer on a thread of its own,
  // holding its scan open from the first block until Release(); returns once
  // the scan is running. `cancel` makes the held scan end CANCELLED.
  void AskAndHold(const std::string& org, bool cancel = false) {
    held_ = std::thread([this, org, cancel] {
      engine::Caller caller;
      caller.org_id = org;
      caller.spiffe_id = absl::StrCat("spiffe://", kTrustDomain, "/org/", org, "/node");
      held_answer_ = answerer().Answer(caller, *ParseSql(kQuestion), [this, cancel] {
        // Asked first on entering the line (under the line's lock), which
        // is free; next by the scan, before its first block (the data is one
        // block); last after the answer is built.
        if (hook_calls_++ != 1) return false;
        scanning_.Notify();
        release_.WaitForNotification();
        return cancel;
      });
    });
    scanning_.WaitForNotification();
  }
  void Release() {
    release_.Notify();
    held_.join();
  }

  // Asks kQuestion over gRPC as foundation on a thread of its own; returns
  // once it has joined the held scan or waits for the answer slot.
  void AskOverGrpc() {
    asker_ = std::thread([this] {
      v1::AggregateRequest request;
      *request.mutable_query() = *ParseSql(kQuestion);
      asked_answer_ = partner_.peer().Aggregate(request);
    });
    const uint64_t joined = answerer().shared_scans().joined();
    while (answerer().shared_scans().joined() == joined && answerer().queue().waiting() == 0) {
      std::this_thread::yield();
    }
  }

  // AskOverGrpc, for a question that must not join the held scan: it waits
  // for its own turn, and once the held one is released both are answered.
  void AskOverGrpcAndExpectAScanOfItsOwn() {
    AskOverGrpc();
    EXPECT_EQ(answerer().shared_scans().joined(), 0u);
    EXPECT_EQ(answerer().queue().waiting(), 1) << "it should wait for its own turn to scan";
    Release();
    asker_.join();
    ASSERT_OK(held_answer_.status());
    ASSERT_OK(asked_answer_.status());
  }

  static int64_t Count(const v1::AggregateResult& result) {
    int64_t n = 0;
    for (const v1::Cell& cell : result.cells()) n += static_cast<int64_t>(cell.values(0).value());
    return n;
  }

  // The decision of each audit entry, in log order.
  std::vector<v1::AuditEntry::Decision> Decisions() {
    std::vector<v1::AuditEntry::Decision> decisions;
    absl::StatusOr<v1::ListAuditResponse> audit = partner_.admin().ListAudit(0, 100);
    EXPECT_OK(audit.status());
    if (!audit.ok()) return decisions;
    EXPECT_TRUE(audit->chain_valid()) << audit->chain_error();
    for (const v1::AuditEntry& e : audit->entries()) {
      if (e.method() == "PeerService.Aggregate") decisions.push_back(e.decision());
    }
    return decisions;
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (held_.joinable()) held_.join();
    if (asker_.joinable()) asker_.join();
  }

  TempDir tmp_{"shared-scan"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
  std::atomic<int> hook_calls_{0};
  absl::Notification scanning_;
  absl::Notification release_;
  std::thread held_;
  std::thread asker_;
  absl::StatusOr<v1::AggregateResult> held_answer_ = absl::UnknownError("not asked");
  absl::StatusOr<v1::AggregateResult> asked_answer_ = absl::UnknownError("not asked");
};

TEST_F(SharedScanTest, TheSameQuestionAskedDuringItsScanGetsTheSameFiguresAndItsOwnReceipt) {
  ASSERT_NO_FATAL_FAILURE(Start());
  AskAndHold("foundation");
  AskOverGrpc();
  EXPECT_EQ(answerer().shared_scans().joined(), 1u) << "the second question should have joined";
  EXPECT_EQ(answerer().queue().waiting(), 0);
  Release();
  asker_.join();
  ASSERT_OK(held_answer_.status());
  ASSERT_OK(asked_answer_.status());
  EXPECT_EQ(Count(*held_answer_), 60 + 60 + 60 + 60);  // cohorts 2019 to 2022 of 300
  ASSERT_EQ(asked_answer_->cells_size(), held_answer_->cells_size());
  for (int i = 0; i < held_answer_->cells_size(); ++i) {
    EXPECT_EQ(asked_answer_->cells(i).SerializeAsString(),
              held_answer_->cells(i).SerializeAsString());
  }
  // Each question is audited and answered on its own.
  EXPECT_NE(asked_answer_->receipt().audit_index(), held_answer_->receipt().audit_index());
  EXPECT_THAT(Decisions(),
              ::testing::ElementsAre(v1::AuditEntry::ANSWERED, v1::AuditEntry::ANSWERED));
  EXPECT_EQ(SharedOnMetrics(), 1) << "the joined question is counted, the scanning one not";
}

TEST_F(SharedScanTest, AQuestionAskedAfterAWriteIsScannedAgainAndSeesTheWrite) {
  ASSERT_NO_FATAL_FAILURE(Start());
  AskAndHold("foundation");
  // 10 more records of people already there, 8 in the cohorts the question
  // counts: the consent bitmap stays the same, only the data moved on.
  ASSERT_OK(partner_.Ingest(Rows(0, 10), 10));
  ASSERT_NO_FATAL_FAILURE(AskOverGrpcAndExpectAScanOfItsOwn());
  EXPECT_EQ(Count(*held_answer_), 240) << "the held scan's snapshot is from before the write";
  EXPECT_EQ(Count(*asked_answer_), 248);
  EXPECT_EQ(SharedOnMetrics(), 0);
}

TEST_F(SharedScanTest, AnotherOrgsSameQuestionIsNotShared) {
  ASSERT_NO_FATAL_FAILURE(Start());
  AskAndHold("other-org");
  ASSERT_NO_FATAL_FAILURE(AskOverGrpcAndExpectAScanOfItsOwn());
  EXPECT_EQ(Count(*asked_answer_), Count(*held_answer_));
}

TEST_F(SharedScanTest, WithUnsharedScansConfiguredTheSameQuestionWaitsForItsOwnTurn) {
  ASSERT_NO_FATAL_FAILURE(Start(/*unshared=*/true));
  AskAndHold("foundation");
  ASSERT_NO_FATAL_FAILURE(AskOverGrpcAndExpectAScanOfItsOwn());
  EXPECT_EQ(Count(*asked_answer_), Count(*held_answer_));
  EXPECT_EQ(SharedOnMetrics(), 0);
}

TEST_F(SharedScanTest, WhenTheScanningQuestionIsCancelledTheJoinedOneScansItself) {
  ASSERT_NO_FATAL_FAILURE(Start());
  AskAndHold("foundation", /*cancel=*/true);
  AskOverGrpc();
  EXPECT_EQ(answerer().shared_scans().joined(), 1u);
  Release();
  asker_.join();
  EXPECT_EQ(held_answer_.status().code(), absl::StatusCode::kCancelled) << held_answer_.status();
  ASSERT_OK(asked_answer_.status());
  EXPECT_EQ(Count(*asked_answer_), 240);
  EXPECT_EQ(answerer().queue().turns(), 2u) << "the joined question should have scanned itself";
  EXPECT_THAT(Decisions(),
              ::testing::UnorderedElementsAre(v1::AuditEntry::ANSWERED, v1::AuditEntry::CANCELLED));
}

// kQuestion groups the records into two regions. With one cell allowed, the
// held scan is refused past the bound; the question that joined it is
// refused the same way for what it asks, without a scan of its own: the
// node's line gave one turn in all.
TEST_F(SharedScanTest, WhenTheScanRefusesTheQuestionTheJoinedOneIsRefusedWithoutScanning) {
  ASSERT_NO_FATAL_FAILURE(Start(/*unshared=*/false, /*max_answer_cells=*/1));
  AskAndHold("foundation");
  AskOverGrpc();
  EXPECT_EQ(answerer().shared_scans().joined(), 1u);
  Release();
  asker_.join();
  EXPECT_EQ(held_answer_.status().code(), absl::StatusCode::kResourceExhausted)
      << held_answer_.status();
  EXPECT_EQ(asked_answer_.status().code(), absl::StatusCode::kResourceExhausted)
      << asked_answer_.status();
  EXPECT_THAT(std::string(asked_answer_.status().message()),
              ::testing::HasSubstr("limits.max_answer_cells"));
  EXPECT_EQ(answerer().queue().turns(), 1u) << "the joined question should not scan again";
  EXPECT_THAT(Decisions(),
              ::testing::ElementsAre(v1::AuditEntry::REFUSED, v1::AuditEntry::REFUSED));
  EXPECT_EQ(SharedOnMetrics(), 0) << "it took no figures";
}

}  // namespace
}  // namespace fedshare::testing
