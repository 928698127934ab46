// Issue 11: questions beyond limits.scan_threads wait their turn, through a
// real node over mTLS. The test holds the node's one answer slot itself
// (standing for a long question), so which question waits is decided by the
// test, not by timing. (The order of turns is AnswerQueue's own test; the
// audit appends of questions come after their turns and may interleave.)
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/engine/answerer.h"
#include "query/sql.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kTrustDomain[] = "fedshare.test";

class AnswerQueueTest : public ::testing::Test {
 protected:
  // One question answered at once; `max_concurrent` held in all.
  void Start(int max_concurrent, const v1::Agreement& agreement) {
    v1::NodeConfig config = partner_.Config();
    config.mutable_limits()->set_scan_threads(1);
    config.mutable_limits()->set_max_calls_per_caller(16);
    config.set_max_concurrent_questions(max_concurrent);
    *config.add_agreements() = agreement;
    ASSERT_OK(partner_.Start(config));
    std::string csv = kProgramOutcomesCsvHeader;
    std::set<std::string> subjects;
    for (int i = 0; i < 200; ++i) {
      absl::StrAppend(&csv, "p", i, ",mentoring,north,", 2018 + i % 5, ",30,false,50,", i % 40,
                      ",0\n");
      subjects.insert(absl::StrCat("p", i));
    }
    ASSERT_OK(partner_.Load(csv, 200, subjects));
  }

  engine::AnswerQueue& queue() { return partner_.node().answerer().queue(); }

  // A question asked for analyst `name` of the asking org, so its audit
  // entry says which it was.
  v1::AggregateRequest Question(const std::string& name) {
    v1::AggregateRequest request;
    *request.mutable_query() =
        *ParseSql("SELECT COUNT(*) FROM program_outcomes PURPOSE 'program-evaluation'");
    request.set_on_behalf_of(
        absl::StrCat("spiffe://", kTrustDomain, "/org/foundation/analyst/", name));
    return request;
  }

  // Asks `Question(name)` on a thread of its own once the questions before
  // it wait, and returns when it waits too.
  void AskInLine(const std::string& name, absl::Status* outcome) {
    const int before = queue().waiting();
    askers_.emplace_back(
        [this, name, outcome] { *outcome = partner_.peer().Aggregate(Question(name)).status(); });
    while (queue().waiting() == before) std::this_thread::yield();
  }

  // Who each audit entry was asked for, in log order.
  std::vector<std::string> AuditedAnalysts() {
    std::vector<std::string> names;
    absl::StatusOr<v1::ListAuditResponse> audit = partner_.admin().ListAudit(0, 100);
    EXPECT_OK(audit.status());
    if (!audit.ok()) return names;
    EXPECT_TRUE(audit->chain_valid()) << audit->chain_error();
    for (const v1::AuditEntry& e : audit->entries()) {
      names.push_back(e.on_behalf_of().substr(e.on_behalf_of().rfind('/') + 1));
    }
    return names;
  }

  void TearDown() override {
    for (std::thread& t : askers_) t.join();
  }

  TempDir tmp_{"answer-queue"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
  std::vector<std::thread> askers_;
};

TEST_F(AnswerQueueTest, QuestionsBeyondTheScanSlotsWaitAndAreAllAnswered) {
  Start(8, OpenAgreement("open", "foundation"));
  ASSERT_OK_AND_ASSIGN(engine::AnswerQueue::Slot long_question, queue().Enter());
  std::vector<absl::Status> outcomes(5, absl::UnknownError("not asked"));
  for (int i = 0; i < 5; ++i) AskInLine(absl::StrCat("a", i), &outcomes[i]);
  EXPECT_THAT(AuditedAnalysts(), ElementsAre());  // waiting, nothing decided yet
  long_question.Release();
  for (std::thread& t : askers_) t.join();
  askers_.clear();
  for (const absl::Status& s : outcomes) EXPECT_OK(s);
  EXPECT_THAT(AuditedAnalysts(), UnorderedElementsAre("a0", "a1", "a2", "a3", "a4"));
}

TEST_F(AnswerQueueTest, OnePastMaxConcurrentQuestionsIsRefusedAtOnceAndNotAudited) {
  Start(3, OpenAgreement("open", "foundation"));
  ASSERT_OK_AND_ASSIGN(engine::AnswerQueue::Slot long_question, queue().Enter());
  // The slot's holder is no question: three may wait.
  std::vector<absl::Status> outcomes(3, absl::UnknownError("not asked"));
  for (int i = 0; i < 3; ++i) AskInLine(absl::StrCat("a", i), &outcomes[i]);
  EXPECT_THAT(
      partner_.peer().Aggregate(Question("late")).status(),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_concurrent_questions = 3")));
  long_question.Release();
  for (std::thread& t : askers_) t.join();
  askers_.clear();
  for (const absl::Status& s : outcomes) EXPECT_OK(s);
  EXPECT_THAT(AuditedAnalysts(), UnorderedElementsAre("a0", "a1", "a2"));
}

TEST_F(AnswerQueueTest, AWaitingQuestionWhoseDeadlinePassesSpendsNothing) {
  v1::Agreement agreement = OpenAgreement("open", "foundation");
  agreement.mutable_rate_limit()->set_queries(1);
  agreement.mutable_rate_limit()->set_window_seconds(3600);
  Start(8, agreement);
  ASSERT_OK(partner_.peer().Describe().status());  // the channel is up: the deadline is the wait's
  ASSERT_OK_AND_ASSIGN(engine::AnswerQueue::Slot long_question, queue().Enter());
  partner_.peer().set_timeout(absl::Seconds(2));
  std::atomic<bool> done{false};
  absl::Status impatient;
  askers_.emplace_back([&] {
    impatient = partner_.peer().Aggregate(Question("impatient")).status();
    done.store(true);
  });
  bool waited = false;
  while (!done.load() && !(waited = queue().waiting() == 1)) std::this_thread::yield();
  EXPECT_TRUE(waited) << "the question should have waited for the held slot";
  askers_.back().join();
  askers_.clear();
  EXPECT_THAT(impatient, StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  // The node notices between two looks at the deadline; then the line is empty.
  while (queue().waiting() > 0) std::this_thread::yield();
  long_question.Release();
  EXPECT_THAT(AuditedAnalysts(), ElementsAre());
  // The rate limit of one question an hour was not spent by it.
  partner_.peer().set_timeout(absl::Seconds(60));
  EXPECT_OK(partner_.peer().Aggregate(Question("patient")).status());
  EXPECT_THAT(partner_.peer().Aggregate(Question("again")).status(),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("rate-limit")));
  EXPECT_THAT(AuditedAnalysts(), ElementsAre("patient", "again"));
}

}  // namespace
}  // namespace fedshare::testing
