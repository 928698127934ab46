#include "bench/synthetic.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/engine/engine.h"
#include "policy/schema.h"

namespace fedshare::synthetic {
namespace {

TEST(SyntheticTest, SameSeedSameDataOtherSeedOtherData) {
  Options a;
  a.rows = 500;
  Options b = a;
  b.seed = 2;
  EXPECT_EQ(RecordsCsv(a), RecordsCsv(a));
  EXPECT_EQ(ConsentCsv(a), ConsentCsv(a));
  EXPECT_NE(RecordsCsv(a), RecordsCsv(b));
  // Any range can be generated on its own.
  std::string pieces;
  AppendRecordsHeader(&pieces);
  AppendRecords(a, 0, 123, &pieces);
  AppendRecords(a, 123, 500, &pieces);
  EXPECT_EQ(pieces, RecordsCsv(a));
  EXPECT_OK(policy::ValidateSchema(ProgramOutcomesSchema()));
}

TEST(SyntheticTest, IngestsCleanlyAndRoundTrips) {
  const ::fedshare::testing::ScopedTempDir dir("synthetic_test");
  {
    ASSERT_OK_AND_ASSIGN(auto storage,
                         storage::Storage::Create(dir.path(), storage::StorageOptions()));
    FakeClock clock(absl::FromUnixSeconds(1767225600));
    engine::EngineOptions options;
    options.org_id = "foundation";
    options.purposes = Purposes();
    options.datasets = {ProgramOutcomesSchema()};
    options.clock = &clock;
    ASSERT_OK_AND_ASSIGN(auto engine, engine::Engine::Create(storage.get(), options));

    Options gen;
    gen.rows = 3000;
    const std::string records = RecordsCsv(gen);
    ASSERT_OK_AND_ASSIGN(v1::IngestResponse r,
                         engine->Ingest("program_outcomes", v1::CSV, false, records));
    EXPECT_EQ(r.rows_written(), 3000) << r.DebugString();
    EXPECT_EQ(r.new_subjects(), 2000);
    ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse c, engine->ImportConsent(ConsentCsv(gen)));
    EXPECT_EQ(c.events_rejected(), 0) << c.DebugString();
    EXPECT_GT(c.events_new(), 1500);

    std::string exported;
    ASSERT_OK(engine->Export("program_outcomes", v1::CSV, [&](absl::string_view chunk, int64_t) {
      exported.append(chunk.data(), chunk.size());
      return absl::OkStatus();
    }));
    EXPECT_EQ(exported, records);

    ASSERT_OK_AND_ASSIGN(v1::ListDatasetsResponse list,
                         engine->ListDatasets({"program-evaluation", "marketing"}));
    ASSERT_EQ(list.datasets_size(), 1);
    const int64_t evaluation = list.datasets(0).coverage(0).subjects_counted();
    const int64_t marketing = list.datasets(0).coverage(1).subjects_counted();
    EXPECT_GT(evaluation, 2000 * 0.55);
    EXPECT_LT(evaluation, 2000 * 0.80);
    EXPECT_GT(marketing, 0);
    EXPECT_LT(marketing, 2000 * 0.06);
  }
}

}  // namespace
}  // namespace fedshare::synthetic
