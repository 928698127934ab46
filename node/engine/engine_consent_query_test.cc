// The engine's consent import and what its executor measures for disclosure
// control, over a real store (engine_test_fixture.h).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/engine/engine_test_fixture.h"

namespace fedshare::engine::engine_test {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

TEST_F(EngineTest, ConsentImportIsIdempotentAndDrivesCoverage) {
  Ingest(kCanonicalCsv);
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse first, engine_->ImportConsent(kConsent));
  EXPECT_EQ(first.events_read(), 8);
  EXPECT_EQ(first.events_new(), 8);
  EXPECT_EQ(first.events_rejected(), 0) << first.DebugString();
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse again, engine_->ImportConsent(kConsent));
  EXPECT_EQ(again.events_read(), 8);
  EXPECT_EQ(again.events_new(), 0);

  policy::ConsentQuestion q{"program-evaluation", "partner-a", clock_.Now()};
  ASSERT_OK_AND_ASSIGN(policy::ConsentBitmap bitmap, engine_->ConsentFor("people", q));
  EXPECT_EQ(bitmap.size(), 7u);  // six subjects with records and one seen only in consent
  // Ordinals follow first appearance: p1..p6 = 0..5, only-consent = 6.
  EXPECT_TRUE(bitmap.Test(0));   // given
  EXPECT_TRUE(bitmap.Test(1));   // given for the parent purpose, scope includes us
  EXPECT_FALSE(bitmap.Test(2));  // withdrawn
  EXPECT_FALSE(bitmap.Test(3));  // refused
  EXPECT_FALSE(bitmap.Test(4));  // expired
  EXPECT_FALSE(bitmap.Test(5));  // scope excludes us
  EXPECT_TRUE(bitmap.Test(6));
  EXPECT_EQ(bitmap.Count(), 3u);

  ASSERT_OK_AND_ASSIGN(v1::ListDatasetsResponse list, engine_->ListDatasets({}));
  ASSERT_EQ(list.datasets_size(), 1);
  const v1::DatasetInfo& info = list.datasets(0);
  EXPECT_EQ(info.name(), "people");
  EXPECT_EQ(info.rows(), 7);
  EXPECT_EQ(info.subjects(), 6);
  EXPECT_EQ(info.blocks(), 1);
  ASSERT_EQ(info.coverage_size(), 2);
  EXPECT_EQ(info.coverage(0).purpose(), "research");
  EXPECT_EQ(info.coverage(0).subjects_counted(), 1);  // p2
  EXPECT_EQ(info.coverage(1).purpose(), "program-evaluation");
  EXPECT_EQ(info.coverage(1).subjects_counted(), 2);  // p1, p2

  // p2's consent expires on 2026-06-01: the cached bitmap is not reused past it.
  clock_.Set(absl::FromUnixSeconds(1780272000));  // 2026-06-01
  ASSERT_OK_AND_ASSIGN(
      bitmap, engine_->ConsentFor("people", {"program-evaluation", "partner-a", clock_.Now()}));
  EXPECT_FALSE(bitmap.Test(1));

  // Consent survives reopen; re-importing still adds nothing.
  ASSERT_OK(Open());
  ASSERT_OK_AND_ASSIGN(again, engine_->ImportConsent(kConsent));
  EXPECT_EQ(again.events_new(), 0);
}

TEST_F(EngineTest, ConsentRowErrorsWriteNothing) {
  const std::string csv =
      "subject,purpose,event,time,valid_until,scope\n"
      "p1,program-evaluation,GIVEN,2025-01-01,,\n"
      "p2,fishing,GIVEN,2025-01-01,,\n"
      "p3,research,MAYBE,2025-01-01,,\n"
      "p4,research,GIVEN,yesterday,,\n"
      ",research,GIVEN,2025-01-01,,\n"
      "p5,research,GIVEN,2025-01-01,,Bad Org\n";
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse r, engine_->ImportConsent(csv));
  EXPECT_EQ(r.events_read(), 6);
  EXPECT_EQ(r.events_new(), 0);
  EXPECT_EQ(r.events_rejected(), 5);
  ASSERT_EQ(r.errors_size(), 5);
  EXPECT_EQ(r.errors(0).line(), 3);
  EXPECT_EQ(r.errors(0).column(), "purpose");
  EXPECT_THAT(r.errors(0).reason(), HasSubstr("unknown purpose 'fishing'"));
  EXPECT_EQ(r.errors(1).column(), "event");
  EXPECT_EQ(r.errors(2).column(), "time");
  EXPECT_EQ(r.errors(3).column(), "subject");
  EXPECT_EQ(r.errors(4).column(), "scope");
  ASSERT_OK_AND_ASSIGN(auto reader, engine_->OpenReader("people"));
  EXPECT_EQ(reader->subject_count(), 0u);
  // A conflicting re-statement of a stored event is refused.
  ASSERT_OK_AND_ASSIGN(r, engine_->ImportConsent("subject,purpose,event,time,valid_until\n"
                                                 "p1,research,GIVEN,2025-01-01,\n"));
  EXPECT_EQ(r.events_new(), 1);
  ASSERT_OK_AND_ASSIGN(r, engine_->ImportConsent("subject,purpose,event,time,valid_until\n"
                                                 "p1,research,GIVEN,2025-01-01,2027-01-01\n"));
  EXPECT_EQ(r.events_new(), 0);
  ASSERT_EQ(r.errors_size(), 1);
  EXPECT_THAT(r.errors(0).reason(), HasSubstr("conflicting event"));
}

// Issue 8: what the executor measures for disclosure control.
constexpr char kGridSchema[] = R"pb(
  name: "grid"
  fields { name: "pid" type: CATEGORY role: SUBJECT }
  fields { name: "program" type: CATEGORY role: DIMENSION categories: "alpha" categories: "beta" }
  fields { name: "age" type: INT64 role: DIMENSION granularity: 5 }
  fields { name: "visits" type: INT64 role: MEASURE lower: 0 upper: 200 }
  fields { name: "joined" type: DATE role: DIMENSION granularity: 30 }
)pb";

absl::StatusOr<Execution> Execute(Engine& engine, const char* query_text) {
  v1::AggregateQuery query;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(query_text, &query));
  FEDSHARE_ASSIGN_OR_RETURN(v1::AggregateQuery normalized,
                            policy::NormalizeQuery(Schema(kGridSchema), query));
  FEDSHARE_ASSIGN_OR_RETURN(std::unique_ptr<DatasetReader> reader, engine.OpenReader("grid"));
  return ExecuteQuery(*reader, normalized, policy::ConsentBitmap(100, true), 0);
}

void IngestGrid(Engine& engine, absl::string_view csv) {
  absl::StatusOr<v1::IngestResponse> r = engine.Ingest("grid", v1::CSV, false, csv);
  ASSERT_OK(r);
  EXPECT_EQ(r->rows_rejected(), 0) << r->DebugString();
}

TEST_F(EngineTest, GroupByCoarseFieldGroupsByGridBucket) {
  ASSERT_OK(Open({Schema(), Schema(kGridSchema)}));
  // joined: 1970-01-31 is day 30, 1970-03-01 day 59, 1970-03-02 day 60.
  IngestGrid(*engine_,
             "pid,program,age,visits,joined\n"
             "a,alpha,-1,1,1970-01-31\n"
             "b,alpha,4,1,1970-03-01\n"
             "c,beta,5,1,1970-03-02\n"
             "d,beta,9,1,\n");
  ASSERT_OK_AND_ASSIGN(Execution by_age, Execute(*engine_, R"pb(
                         dataset: "grid"
                         purpose: "p"
                         group_by: "age"
                         aggregates { kind: COUNT })pb"));
  std::vector<std::pair<int64_t, double>> ages;
  for (const ExecutedCell& c : by_age.cells) {
    ages.emplace_back(c.key[0].int_value(), c.values[0].value());
  }
  EXPECT_THAT(ages, ::testing::ElementsAre(std::pair<int64_t, double>{-5, 1},
                                           std::pair<int64_t, double>{0, 1},
                                           std::pair<int64_t, double>{5, 2}));
  ASSERT_OK_AND_ASSIGN(Execution by_date, Execute(*engine_, R"pb(
                         dataset: "grid"
                         purpose: "p"
                         group_by: "joined"
                         aggregates { kind: COUNT })pb"));
  std::vector<std::string> dates;
  for (const ExecutedCell& c : by_date.cells) dates.push_back(c.key[0].string_value());
  // Null first, then the buckets starting on days 30 and 60.
  EXPECT_THAT(dates, ::testing::ElementsAre("", "1970-01-31", "1970-03-02"));
  EXPECT_EQ(by_date.cells[1].values[0].value(), 2);
}

TEST_F(EngineTest, ExecutorNamesPeopleAndCountsOwnersOfDroppedRecords) {
  ASSERT_OK(Open({Schema(), Schema(kGridSchema)}));
  // Ordinals follow first appearance: c=0, a=1, b=2.
  IngestGrid(*engine_,
             "pid,program,age,visits,joined\n"
             "c,alpha,30,5,\n"
             "a,alpha,30,7,\n"
             "a,alpha,50,9,\n"
             "b,beta,30,3,\n"
             "a,beta,30,150,\n");
  ASSERT_OK_AND_ASSIGN(
      Execution e, Execute(*engine_, R"pb(
        dataset: "grid"
        purpose: "p"
        group_by: "program"
        where {
          field: "age"
          op: LT
          values { int_value: 40 }
        }
        aggregates { kind: COUNT }
        aggregates { kind: SUM field: "visits" }
        aggregates { kind: HISTOGRAM field: "visits" lo: 0 hi: 200 bins: 2 })pb"));
  ASSERT_EQ(e.cells.size(), 2u);
  const policy::CellStats& alpha = e.cells[0].stats;
  EXPECT_EQ(alpha.subjects, 2);
  EXPECT_THAT(alpha.subject_ordinals, ::testing::ElementsAre(0u, 1u));
  // One column, SUM's: COUNT and HISTOGRAM carry no contribution.
  EXPECT_THAT(alpha.contribution_column, ::testing::ElementsAre(-1, 0, -1));
  EXPECT_THAT(alpha.subject_contributions, ::testing::ElementsAre(5, 7));
  ASSERT_EQ(alpha.bin_subject_ordinals.size(), 3u);
  EXPECT_TRUE(alpha.bin_subject_ordinals[0].empty());
  EXPECT_THAT(alpha.bin_subject_ordinals[2],
              ::testing::ElementsAre(::testing::ElementsAre(0u, 1u), ::testing::IsEmpty()));
  const policy::CellStats& beta = e.cells[1].stats;
  EXPECT_THAT(beta.subject_ordinals, ::testing::ElementsAre(1u, 2u));
  EXPECT_THAT(beta.subject_contributions, ::testing::ElementsAre(150, 3));
  EXPECT_THAT(beta.bin_subjects[2], ::testing::ElementsAre(1, 1));
  // age < 40 drops a's age-50 record although a stays in the answer: one
  // owner overall and in the alpha cell, whose bin 0 holds it too.
  EXPECT_THAT(e.removed_by_predicate, ::testing::ElementsAre(1));
  ASSERT_EQ(e.removed_in_cells.size(), 1u);
  EXPECT_THAT(e.removed_in_cells[0], ::testing::ElementsAre(1, 1));
}

// ---- Streamed ingest (ingest.h)

}  // namespace
}  // namespace fedshare::engine::engine_test
