// Erasure's block rewrites and retention's purges (Engine::EraseSubject,
// Engine::PurgeExpired) over a real store, checked against exports.
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/engine/engine.h"
#include "node/engine/engine_internal.h"
#include "node/engine/ingest.h"

namespace fedshare::engine {
namespace {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kSchema[] = R"pb(
  name: "people"
  fields { name: "pid" type: CATEGORY role: SUBJECT }
  fields { name: "program" type: CATEGORY role: DIMENSION categories: "alpha" categories: "beta" }
  fields { name: "age" type: INT64 role: DIMENSION }
  fields { name: "score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
)pb";
constexpr char kHeader[] = "pid,program,age,score\n";

v1::DatasetSchema Schema(const std::string& name, int retention_days = 0) {
  v1::DatasetSchema schema;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(kSchema, &schema));
  schema.set_name(name);
  schema.set_retention_days(retention_days);
  return schema;
}

// One row per subject id, in order; row i has age i and a null score when i % 3 == 0.
std::string Rows(const std::vector<std::string>& subjects, int first_age = 0) {
  std::string csv = kHeader;
  for (size_t i = 0; i < subjects.size(); ++i) {
    const int age = first_age + static_cast<int>(i);
    absl::StrAppend(&csv, subjects[i], ",", age % 2 == 0 ? "alpha" : "", ",", age, ",",
                    age % 3 == 0 ? "" : absl::StrCat(age % 100), "\n");
  }
  return csv;
}

// The export's lines without the header, minus those of `subject`.
std::vector<std::string> LinesWithout(const std::string& csv, const std::string& subject) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(csv, '\n', absl::SkipEmpty())) {
    if (line == absl::string_view(kHeader).substr(0, sizeof(kHeader) - 2)) continue;
    if (absl::StartsWith(line, subject + ",")) continue;
    lines.emplace_back(line);
  }
  return lines;
}

TEST(CopyRowsWithoutTest, KeepsOtherRowsWithTheirValuesAndNulls) {
  ColumnBlock in;
  in.Reset(3);
  in.rows = 130;
  for (uint32_t r = 0; r < in.rows; ++r) {
    in.subjects.push_back(r % 4 == 1 ? 1000 : r);
    in.columns[1].ints.push_back(r * 10);
    in.columns[2].doubles.push_back(r + 0.5);
    if (r % 5 == 0) in.columns[2].SetNull(r, in.rows);
  }
  ColumnBlock out;
  EXPECT_EQ(CopyRowsWithout(in, 1000, &out), 33u);
  ASSERT_EQ(out.rows, 97u);
  uint32_t k = 0;
  for (uint32_t r = 0; r < in.rows; ++r) {
    if (r % 4 == 1) continue;
    EXPECT_EQ(out.subjects[k], r);
    EXPECT_EQ(out.columns[1].ints[k], static_cast<int64_t>(r) * 10);
    EXPECT_EQ(out.columns[2].doubles[k], r + 0.5);
    EXPECT_EQ(out.columns[2].IsNull(k), r % 5 == 0) << r;
    EXPECT_FALSE(out.columns[1].IsNull(k));
    ++k;
  }
  EXPECT_TRUE(out.columns[0].ints.empty());  // the SUBJECT column has no values

  ColumnBlock only;
  only.Reset(3);
  only.rows = 2;
  only.subjects = {7, 7};
  only.columns[1].ints = {1, 2};
  only.columns[2].doubles = {1, 2};
  EXPECT_EQ(CopyRowsWithout(only, 7, &out), 2u);
  EXPECT_EQ(out.rows, 0u);
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(Open({Schema("people", 2), Schema("visits")})); }
  void TearDown() override {
    engine_.reset();
    storage_.reset();
  }

  absl::Status Open(std::vector<v1::DatasetSchema> datasets) {
    engine_.reset();
    storage_.reset();
    auto storage = storage::Storage::Create(dir_.path(), storage::StorageOptions());
    if (!storage.ok()) return storage.status();
    storage_ = *std::move(storage);
    EngineOptions options;
    options.org_id = "partner-a";
    v1::Purpose purpose;
    purpose.set_id("program-evaluation");
    options.purposes = {purpose};
    options.datasets = std::move(datasets);
    options.clock = &clock_;
    auto engine = Engine::Create(storage_.get(), options);
    if (!engine.ok()) return engine.status();
    engine_ = *std::move(engine);
    return absl::OkStatus();
  }

  void Ingest(const std::string& dataset, const std::string& csv) {
    IngestControl control;
    control.allow_duplicate = true;
    absl::StatusOr<v1::IngestResponse> r = engine_->Ingest(dataset, v1::CSV, false, csv, control);
    ASSERT_OK(r);
    ASSERT_EQ(r->rows_rejected(), 0) << r->DebugString();
  }

  std::string Export(const std::string& dataset) {
    std::string out;
    EXPECT_OK(engine_->Export(dataset, v1::CSV, [&](absl::string_view chunk, int64_t) {
      out.append(chunk.data(), chunk.size());
      return absl::OkStatus();
    }));
    return out;
  }

  struct Counts {
    uint64_t rows;
    uint32_t blocks;
    uint32_t subjects;
  };
  Counts CountsOf(const std::string& dataset) {
    auto reader = engine_->OpenReader(dataset);
    EXPECT_OK(reader);
    if (!reader.ok()) return {};
    return {(*reader)->rows(), (*reader)->blocks(), (*reader)->subjects()};
  }

  absl::StatusOr<Erasure> Erase(const std::string& id) {
    return engine_->EraseSubject(id, [](const Erasure&) { return absl::OkStatus(); });
  }

  ScopedTempDir dir_{"lifecycle_test"};
  FakeClock clock_{absl::FromUnixSeconds(1780000000)};  // 2026-05-28T20:26:40Z
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(LifecycleTest, ErasureRewritesEveryBlockAcrossDatasetsAndKeepsCountersExact) {
  // Block 0: "gone" is every row; block 1: mixed, with "gone" in its tail rows.
  std::vector<std::string> first(storage::kBlockRows, "gone");
  Ingest("people", Rows(first));
  std::vector<std::string> second;
  for (int i = 0; i < 100; ++i) second.push_back(absl::StrCat("s", i % 7));
  second.push_back("gone");
  second.push_back("gone");
  Ingest("people", Rows(second, 5000));
  Ingest("visits", Rows({"s1", "gone", "s2", "gone", "s1"}));
  ASSERT_OK(
      engine_->ImportConsent("subject,purpose,event,time\n"
                             "gone,program-evaluation,GIVEN,2026-01-01\n"
                             "gone,program-evaluation,WITHDRAWN,2026-02-01\n"
                             "s1,program-evaluation,GIVEN,2026-01-01\n"));
  const std::string people_before = Export("people");
  const std::string visits_before = Export("visits");
  EXPECT_EQ(CountsOf("people").blocks, 2u);

  ASSERT_OK_AND_ASSIGN(Erasure erased, Erase("gone"));
  EXPECT_EQ(erased.records, storage::kBlockRows + 2 + 2);
  EXPECT_EQ(erased.consent_events, 2);
  ASSERT_EQ(erased.datasets.size(), 2u);
  EXPECT_EQ(erased.datasets[0], std::make_pair(std::string("people"), int64_t{4098}));
  EXPECT_EQ(erased.datasets[1], std::make_pair(std::string("visits"), int64_t{2}));
  EXPECT_OK(erased.physical);

  // Exactly the other rows, in order, in both datasets.
  EXPECT_EQ(LinesWithout(Export("people"), "gone"), LinesWithout(people_before, "gone"));
  EXPECT_EQ(LinesWithout(Export("visits"), "gone"), LinesWithout(visits_before, "gone"));
  EXPECT_FALSE(absl::StrContains(Export("people"), "gone"));
  Counts people = CountsOf("people");
  EXPECT_EQ(people.rows, 100u);
  EXPECT_EQ(people.blocks, 1u);  // block 0 held only "gone" and is deleted
  EXPECT_EQ(people.subjects, 7u);
  EXPECT_EQ(CountsOf("visits").rows, 3u);
  EXPECT_EQ(CountsOf("visits").subjects, 2u);
  std::string consent;
  ASSERT_OK(engine_->ExportConsent(v1::CONSENT_FORMAT_CSV, [&](absl::string_view c, int64_t) {
    consent.append(c.data(), c.size());
    return absl::OkStatus();
  }));
  EXPECT_FALSE(absl::StrContains(consent, "gone"));
  EXPECT_TRUE(absl::StrContains(consent, "s1"));

  // Erased again: unknown, and nothing is written.
  EXPECT_THAT(Erase("gone").status(), StatusIs(absl::StatusCode::kNotFound, ::testing::_));

  // Later ingests append after the surviving tail, counters stay exact, and
  // the id is a new subject with a new ordinal.
  Ingest("people", Rows({"gone", "s1"}, 9000));
  people = CountsOf("people");
  EXPECT_EQ(people.rows, 102u);
  EXPECT_EQ(people.blocks, 1u);
  EXPECT_EQ(people.subjects, 8u);
  EXPECT_THAT(Export("people"), HasSubstr("gone,alpha,9000,"));

  // The same holds after reopening the store.
  ASSERT_OK(Open({Schema("people", 2), Schema("visits")}));
  EXPECT_EQ(CountsOf("people").rows, 102u);
  EXPECT_EQ(CountsOf("visits").subjects, 2u);
}

TEST_F(LifecycleTest, ErasingTheOnlyRowsOfTheTailBlockLetsTheNextIngestStartANewOne) {
  std::vector<std::string> full;
  for (uint32_t i = 0; i < storage::kBlockRows; ++i) full.push_back(absl::StrCat("s", i % 50));
  Ingest("people", Rows(full));
  Ingest("people", Rows({"tail", "tail"}, 7000));
  EXPECT_EQ(CountsOf("people").blocks, 2u);
  ASSERT_OK_AND_ASSIGN(Erasure erased, Erase("tail"));
  EXPECT_EQ(erased.records, 2);
  EXPECT_EQ(CountsOf("people").blocks, 1u);
  Ingest("people", Rows({"s1"}, 8000));
  Counts counts = CountsOf("people");
  EXPECT_EQ(counts.rows, storage::kBlockRows + 1);
  EXPECT_EQ(counts.blocks, 2u);
  EXPECT_THAT(Export("people"), HasSubstr("s1,alpha,8000,"));
}

TEST_F(LifecycleTest, AnErasureAskedDuringAnIngestRunsAfterItAndRemovesItsRowsToo) {
  Ingest("people", Rows({"x", "a", "x"}));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<IngestSession> session,
                       engine_->StartIngest("people", v1::CSV, false, IngestControl()));
  ASSERT_OK(session->Append(Rows({"b", "x", "c"}, 10)));
  // The session holds the writer: the erasure waits for its commit, whenever
  // the thread gets to it.
  absl::StatusOr<Erasure> erased;
  std::thread eraser([&] { erased = Erase("x"); });
  ASSERT_OK(session->Append(Rows({"x", "d"}, 20).substr(sizeof(kHeader) - 1)));
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse written, session->Finish());
  EXPECT_EQ(written.rows_written(), 5);
  session.reset();
  eraser.join();
  ASSERT_OK(erased.status());
  EXPECT_EQ(erased->records, 4);
  EXPECT_FALSE(absl::StrContains(Export("people"), "x,"));
  Counts counts = CountsOf("people");
  EXPECT_EQ(counts.rows, 4u);
  EXPECT_EQ(counts.subjects, 4u);
  EXPECT_EQ(LinesWithout(Export("people"), "x").size(), 4u);
}

TEST_F(LifecycleTest, AFailedAuditOrUnknownSubjectChangesNothing) {
  Ingest("people", Rows({"a", "b", "a"}));
  const std::string before = Export("people");
  absl::StatusOr<Erasure> refused = engine_->EraseSubject(
      "a", [](const Erasure&) { return absl::UnavailableError("audit log unavailable"); });
  EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_EQ(Export("people"), before);
  EXPECT_EQ(CountsOf("people").rows, 3u);
  absl::StatusOr<Erasure> unknown = Erase("nobody");
  EXPECT_THAT(unknown.status(), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_FALSE(absl::StrContains(unknown.status().message(), "nobody"));
  EXPECT_EQ(Export("people"), before);
}

TEST_F(LifecycleTest, IngestRefusesASubjectIdLongerThanAnErasureAccepts) {
  const std::string longest(kDefaultMaxSubjectIdBytes, 's');
  const std::string over(kDefaultMaxSubjectIdBytes + 1, 't');
  IngestControl control;
  absl::StatusOr<v1::IngestResponse> r =
      engine_->Ingest("people", v1::CSV, /*skip_invalid=*/true, Rows({longest, over, "short"}),
                      control);
  ASSERT_OK(r);
  EXPECT_EQ(r->rows_written(), 2);
  EXPECT_EQ(r->rows_rejected(), 1);
  ASSERT_EQ(r->errors_size(), 1);
  EXPECT_EQ(r->errors(0).line(), 3);
  EXPECT_THAT(r->errors(0).reason(), HasSubstr("the subject id is 257 bytes, over "
                                               "limits.max_string_bytes = 256"));
  EXPECT_THAT(Export("people"), ::testing::Not(HasSubstr(over)));

  // Consent import is held to the same bound: the whole file is refused.
  ASSERT_OK_AND_ASSIGN(
      v1::ConsentImportResponse consent,
      engine_->ImportConsent(absl::StrCat("subject,purpose,event,time,valid_until\n", longest,
                                          ",program-evaluation,GIVEN,2026-01-01,\n", over,
                                          ",program-evaluation,GIVEN,2026-01-01,\n")));
  EXPECT_EQ(consent.events_new(), 0);
  ASSERT_EQ(consent.errors_size(), 1);
  EXPECT_EQ(consent.errors(0).line(), 3);
  EXPECT_THAT(consent.errors(0).reason(), HasSubstr("the subject id is 257 bytes"));

  // The longest accepted id can be erased, which is why the bound is the erasure's.
  ASSERT_OK_AND_ASSIGN(Erasure erased, Erase(longest));
  EXPECT_EQ(erased.records, 1);
  EXPECT_EQ(CountsOf("people").rows, 1u);

  // A node configured with a larger limit passes it down.
  control.max_subject_id_bytes = over.size();
  r = engine_->Ingest("people", v1::CSV, false, Rows({over}), control);
  ASSERT_OK(r);
  EXPECT_EQ(r->rows_written(), 1);
}

TEST_F(LifecycleTest, RetentionPurgesExactlyTheRecordsLoadedBeforeTheCutoff) {
  Ingest("people", Rows({"old1", "old2", "both"}));  // day D
  Ingest("visits", Rows({"old1"}));                  // no retention: kept
  clock_.Advance(absl::Hours(24));
  Ingest("people", Rows({"new1", "both"}, 100));  // day D + 1, a block of its own
  EXPECT_EQ(CountsOf("people").blocks, 2u);
  Ingest("people", Rows({"new2"}, 200));  // same day: fills that block
  EXPECT_EQ(CountsOf("people").blocks, 2u);

  // Day D + 2: retention 2 keeps everything loaded on D and after.
  clock_.Advance(absl::Hours(24));
  std::vector<RetentionPurge> audited;
  auto audit = [&](const RetentionPurge& p) {
    audited.push_back(p);
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(std::vector<RetentionPurge> none, engine_->PurgeExpired(audit));
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].records_purged, 0);
  EXPECT_EQ(none[0].records_kept, 6);
  EXPECT_TRUE(audited.empty());

  // Day D + 3: what was loaded on D is older than 2 days.
  clock_.Advance(absl::Hours(24));
  const std::string before = Export("people");
  ASSERT_OK_AND_ASSIGN(std::vector<RetentionPurge> purged, engine_->PurgeExpired(audit));
  ASSERT_EQ(purged.size(), 1u);
  EXPECT_EQ(purged[0].dataset, "people");
  EXPECT_EQ(purged[0].records_purged, 3);
  EXPECT_EQ(purged[0].blocks_purged, 1u);
  EXPECT_EQ(purged[0].records_kept, 3);
  EXPECT_EQ(purged[0].cutoff, absl::FromUnixSeconds((UtcDay(clock_.Now()) - 2) * 86400));
  ASSERT_EQ(audited.size(), 1u);
  // Exactly the rows loaded on D + 1, in order.
  EXPECT_EQ(Export("people"),
            Rows({"new1", "both"}, 100) + Rows({"new2"}, 200).substr(sizeof(kHeader) - 1));
  EXPECT_NE(before, Export("people"));
  Counts counts = CountsOf("people");
  EXPECT_EQ(counts.rows, 3u);
  EXPECT_EQ(counts.blocks, 1u);
  EXPECT_EQ(counts.subjects, 3u);  // new1, both, new2
  EXPECT_EQ(CountsOf("visits").rows, 1u);

  // A failed audit leaves the dataset as it was.
  clock_.Advance(absl::Hours(24 * 10));
  EXPECT_THAT(engine_
                  ->PurgeExpired([](const RetentionPurge&) {
                    return absl::UnavailableError("audit log unavailable");
                  })
                  .status(),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_EQ(CountsOf("people").rows, 3u);
}

TEST_F(LifecycleTest, BlocksWithoutALoadDayAreNeverPurged) {
  Ingest("people", Rows({"a", "b"}));
  // A store written before load days were kept: the block has none.
  ASSERT_OK(storage_->Delete(storage::ColumnFamily::kMeta,
                             storage::MetaBlockLoadDayKey(engine_->FindDataset("people")->id, 0)));
  // Rows loaded later do not join a block of unknown day.
  Ingest("people", Rows({"c"}, 10));
  EXPECT_EQ(CountsOf("people").blocks, 2u);
  clock_.Advance(absl::Hours(24 * 30));
  ASSERT_OK_AND_ASSIGN(
      std::vector<RetentionPurge> purged,
      engine_->PurgeExpired([](const RetentionPurge&) { return absl::OkStatus(); }));
  ASSERT_EQ(purged.size(), 1u);
  EXPECT_EQ(purged[0].records_purged, 1);
  EXPECT_EQ(purged[0].records_kept, 2);
  EXPECT_EQ(purged[0].records_without_load_day, 2);
  EXPECT_EQ(CountsOf("people").rows, 2u);
}

}  // namespace
}  // namespace fedshare::engine
