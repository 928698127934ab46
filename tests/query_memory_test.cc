// Issue 11: a question whose scan could keep more than
// limits.query_memory_budget_bytes is refused with RESOURCE_EXHAUSTED naming
// the limit, through a real node, whatever its filter, and its dry run is
// told the same; one within it is answered.
#include <cstdint>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/engine/question_memory.h"
#include "query/sql.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

// A partner node (partner_) with limits.query_memory_budget_bytes = bytes
// and an open agreement with the foundation.
class QueryMemoryTest : public ::testing::Test {
 protected:
  void StartWithBudget(int64_t bytes) {
    v1::NodeConfig config = partner_.Config();
    config.mutable_limits()->set_query_memory_budget_bytes(bytes);
    *config.add_agreements() = OpenAgreement("open", "foundation");
    ASSERT_OK(partner_.Start(config));
  }

  TempDir tmp_{"query-memory"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
};

TEST_F(QueryMemoryTest, AQuestionOverItsMemoryBudgetIsRefusedNamingTheLimit) {
  // 10,000 people: about 41 KB kept whatever the question (4 bytes a subject
  // to fold cells, a bitmap of subjects), then 4 bytes a counted record and
  // 8 more for each SUM.
  ASSERT_NO_FATAL_FAILURE(StartWithBudget(128 << 10));
  constexpr int kPeople = 10000;
  std::string csv = kProgramOutcomesCsvHeader;
  std::set<std::string> subjects;
  for (int i = 0; i < kPeople; ++i) {
    absl::StrAppend(&csv, "p", i, ",mentoring,north,2023,", 18 + i % 50, ",false,50,", i % 40,
                    ",0\n");
    subjects.insert(absl::StrCat("p", i));
  }
  ASSERT_OK(partner_.Load(csv, kPeople, subjects));

  auto ask = [&](const std::string& select, const std::string& where = "") {
    absl::StatusOr<v1::AggregateQuery> query =
        ParseSql(select + " FROM program_outcomes " + where + " PURPOSE 'program-evaluation'");
    EXPECT_OK(query.status());
    return partner_.peer().Aggregate(*query);
  };
  // 41 KB + 40 KB: within the budget.
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult counted, ask("SELECT COUNT(*)"));
  ASSERT_EQ(counted.cells_size(), 1);
  EXPECT_EQ(counted.cells(0).values(0).value(), kPeople);
  // 41 KB + 120 KB: refused, saying what to change.
  const absl::Status refused = ask("SELECT COUNT(*), SUM(sessions_attended)").status();
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted,
                                AllOf(HasSubstr("limits.query_memory_budget_bytes = 131072"),
                                      HasSubstr("Raise limits.query_memory_budget_bytes"))));
  // Judged on every record whatever the filter: the same question over the
  // 400 people under 20 (41 KB + 5 KB as the scan would grow) is
  // refused the same way, word for word, so that where a refusal starts
  // cannot be moved by a filter onto one person's records.
  EXPECT_EQ(ask("SELECT COUNT(*), SUM(sessions_attended)", "WHERE age < 20").status(), refused);

  // A dry run is told the same before anything is scanned; one within the
  // budget passes its dry run.
  auto dry_run = [&](const std::string& select) {
    absl::StatusOr<v1::AggregateQuery> query =
        ParseSql(select + " FROM program_outcomes PURPOSE 'program-evaluation'");
    EXPECT_OK(query.status());
    v1::AggregateRequest request;
    *request.mutable_query() = *query;
    request.set_dry_run(true);
    return partner_.peer().Aggregate(request);
  };
  EXPECT_EQ(dry_run("SELECT COUNT(*), SUM(sessions_attended)").status(), refused);
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult dry, dry_run("SELECT COUNT(*)"));
  EXPECT_EQ(dry.cells_size(), 0);
}

// The buffers questions' scans drop are kept for the next question up to one
// question's budget (node.cc, TuneMallocForQuestions): not more, since that
// memory is within what the questions at once may hold.
TEST_F(QueryMemoryTest, TheNodeKeepsItsScansSpareBuffersUpToOneQuestionsBudget) {
  ASSERT_NO_FATAL_FAILURE(StartWithBudget(3 << 20));
  EXPECT_EQ(engine::SpareBuffers::Get().max_bytes(), size_t{3} << 20);
}

}  // namespace
}  // namespace fedshare::testing
