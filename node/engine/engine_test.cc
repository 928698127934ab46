#include "node/engine/engine.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_macros.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/engine/engine_test_fixture.h"
#include "node/engine/ingest.h"
#include "node/engine/query_executor.h"
#include "node/storage/fault_injector.h"
#include "policy/query_rules.h"

namespace fedshare::engine::engine_test {
namespace {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

TEST_F(EngineTest, CsvRoundTripsExactly) {
  v1::IngestResponse r = Ingest(kCanonicalCsv);
  EXPECT_EQ(r.rows_written(), 7);
  EXPECT_EQ(r.rows_rejected(), 0);
  EXPECT_EQ(r.errors_size(), 0) << r.DebugString();
  EXPECT_EQ(r.new_subjects(), 6);
  EXPECT_EQ(Export(v1::CSV), kCanonicalCsv);
}

TEST_F(EngineTest, JsonlRoundTripsExactly) {
  const std::string jsonl =
      "{\"pid\":\"p1\",\"name\":\"Ana \\\"A\\\" \\\\ x\",\"program\":\"alpha\",\"age\":34,"
      "\"score\":71.5,\"visits\":12,\"active\":true,\"joined\":\"2024-03-01\"}\n"
      "{\"pid\":\"p2\",\"name\":\"line\\u000anext, comma é 🙂\",\"program\":null,\"age\":null,"
      "\"score\":null,\"visits\":null,\"active\":null,\"joined\":null}\n"
      "{\"pid\":\"p3\",\"name\":\"\",\"program\":\"beta\",\"age\":-1,\"score\":0.30000000000000004,"
      "\"visits\":200,\"active\":false,\"joined\":\"1970-01-01\"}\n";
  v1::IngestResponse r = Ingest(jsonl, v1::JSONL);
  EXPECT_EQ(r.rows_written(), 3) << r.DebugString();
  EXPECT_EQ(Export(v1::JSONL), jsonl);
  // The same records as CSV: the empty string stays distinct from null.
  EXPECT_EQ(Export(v1::CSV), std::string(kHeader) +
                                 "p1,\"Ana \"\"A\"\" \\ x\",alpha,34,71.5,12,true,2024-03-01\n"
                                 "p2,\"line\nnext, comma é 🙂\",,,,,,\n"
                                 "p3,\"\",beta,-1,0.30000000000000004,200,false,1970-01-01\n");
}

TEST_F(EngineTest, CsvExportReimportsAsJsonlAndBack) {
  Ingest(kCanonicalCsv);
  std::string jsonl = Export(v1::JSONL);
  ASSERT_OK(Open());
  // A second dataset with the same schema under another name.
  v1::DatasetSchema copy = Schema();
  copy.set_name("copy");
  ASSERT_OK(Open({Schema(), copy}));
  ASSERT_OK_AND_ASSIGN(auto r, engine_->Ingest("copy", v1::JSONL, false, jsonl));
  EXPECT_EQ(r.rows_written(), 7) << r.DebugString();
  EXPECT_EQ(Export(v1::CSV, "copy"), kCanonicalCsv);
}

TEST_F(EngineTest, OneBadRowChangesNothingAndIsNamed) {
  Ingest(std::string(kHeader) + "p0,Old,alpha,1,1,1,true,2020-01-01\n");
  const std::string before = Export(v1::CSV);
  v1::IngestResponse r = Ingest(std::string(kHeader) +
                                "p1,A,alpha,1,1,1,true,2020-01-01\n"
                                "p2,\"multi\nline\",beta,2,2,2,false,2020-01-02\n"
                                "p3,C,alpha,x3,3,3,true,2020-01-03\n"
                                "p4,D,beta,4,4,4,false,2020-01-04\n");
  EXPECT_EQ(r.rows_written(), 0);
  EXPECT_EQ(r.rows_rejected(), 1);
  EXPECT_EQ(r.rejected_rows(), "");
  ASSERT_EQ(r.errors_size(), 1);
  EXPECT_EQ(r.errors(0).line(), 5);  // the row after the two-line row
  EXPECT_EQ(r.errors(0).column(), "age");
  EXPECT_THAT(r.errors(0).reason(), HasSubstr("wrong type: expected INT64, got 'x3'"));
  EXPECT_EQ(Export(v1::CSV), before);
  EXPECT_EQ(Rows(), 1u);
}

TEST_F(EngineTest, SkipInvalidWritesExactlyTheGoodRows) {
  const std::string bad1 = "p2,B,gamma,2,2,2,false,2020-01-02\n";
  const std::string bad2 = "p4,D,beta,4,4\n";
  v1::IngestResponse r =
      Ingest(std::string(kHeader) + "p1,A,alpha,1,1,1,true,2020-01-01\n" + bad1 +
                 "p3,C,alpha,3,3,3,true,2020-01-03\n" + bad2 + "p5,E,beta,5,5,5,false,2020-01-05",
             v1::CSV, /*skip_invalid=*/true);
  EXPECT_EQ(r.rows_written(), 3);
  EXPECT_EQ(r.rows_rejected(), 2);
  EXPECT_EQ(r.rejected_rows(), std::string(kHeader) + bad1 + bad2);
  ASSERT_EQ(r.errors_size(), 2);
  EXPECT_EQ(r.errors(0).line(), 3);
  EXPECT_EQ(r.errors(1).line(), 5);
  EXPECT_EQ(Export(v1::CSV), std::string(kHeader) +
                                 "p1,A,alpha,1,1,1,true,2020-01-01\n"
                                 "p3,C,alpha,3,3,3,true,2020-01-03\n"
                                 "p5,E,beta,5,5,5,false,2020-01-05\n");
}

TEST_F(EngineTest, SkipInvalidJsonlReturnsBadLines) {
  const std::string good = "{\"pid\":\"p1\",\"age\":1}\n";
  const std::string bad = "{\"pid\":\"p2\",\"age\":\"one\"}\n";
  v1::IngestResponse r = Ingest(good + bad + "\n" + "not json\n", v1::JSONL, true);
  EXPECT_EQ(r.rows_written(), 1);
  EXPECT_EQ(r.rows_rejected(), 2);
  EXPECT_EQ(r.rejected_rows(), bad + "not json\n");
  ASSERT_EQ(r.errors_size(), 2);
  EXPECT_EQ(r.errors(0).line(), 2);
  EXPECT_EQ(r.errors(0).column(), "age");
  EXPECT_EQ(r.errors(1).line(), 4);
  EXPECT_THAT(r.errors(1).reason(), HasSubstr("invalid JSON"));
}

struct BadCase {
  const char* row;
  const char* column;
  const char* reason;
};

TEST_F(EngineTest, EveryBadRowReasonIsReported) {
  const BadCase cases[] = {
      {"p1,A,alpha,1.5,1,1,true,2020-01-01", "age", "wrong type: expected INT64"},
      {"p1,A,alpha,1,abc,1,true,2020-01-01", "score", "wrong type: expected DOUBLE"},
      {"p1,A,alpha,1,1,1,maybe,2020-01-01", "active", "wrong type: expected BOOL"},
      {"p1,A,alpha,1,1,1,true,2020-02-30", "joined", "wrong type: expected DATE"},
      {"p1,A,alpha,1,100.5,1,true,2020-01-01", "score", "out of bounds: 100.5 is outside [0, 100]"},
      {"p1,A,alpha,1,1,201,true,2020-01-01", "visits", "out of bounds: 201"},
      {"p1,A,gamma,1,1,1,true,2020-01-01", "program", "unknown category: 'gamma'"},
      {",A,alpha,1,1,1,true,2020-01-01", "pid", "missing subject"},
      {"p1,A,alpha,1,1,1,true", "", "wrong number of fields: expected 8, got 7"},
      {"p1,A,alpha,1,1,1,true,2020-01-01,extra", "", "wrong number of fields"},
      {"p1,A\"B,alpha,1,1,1,true,2020-01-01", "", "malformed CSV"},
  };
  for (const BadCase& c : cases) {
    v1::IngestResponse r = Ingest(std::string(kHeader) + c.row + "\n");
    EXPECT_EQ(r.rows_written(), 0) << c.row;
    ASSERT_EQ(r.errors_size(), 1) << c.row << r.DebugString();
    EXPECT_EQ(r.errors(0).line(), 2) << c.row;
    EXPECT_EQ(r.errors(0).column(), c.column) << c.row;
    EXPECT_THAT(r.errors(0).reason(), HasSubstr(c.reason)) << c.row;
  }
  // Unknown columns: in a CSV header (the file is refused at line 1) and a JSONL key.
  v1::IngestResponse header = Ingest("pid,shoe_size\np1,9\n");
  EXPECT_EQ(header.rows_written(), 0);
  ASSERT_EQ(header.errors_size(), 1);
  EXPECT_EQ(header.errors(0).line(), 1);
  EXPECT_EQ(header.errors(0).column(), "shoe_size");
  EXPECT_THAT(header.errors(0).reason(), HasSubstr("unknown column"));
  v1::IngestResponse no_subject = Ingest("age\n1\n");
  ASSERT_EQ(no_subject.errors_size(), 1);
  EXPECT_THAT(no_subject.errors(0).reason(), HasSubstr("missing subject"));
  v1::IngestResponse json =
      Ingest("{\"pid\":\"p\",\"shoe_size\":9,\"age\":\"1\"}\n{\"age\":1}\n", v1::JSONL);
  ASSERT_EQ(json.errors_size(), 3) << json.DebugString();
  EXPECT_EQ(json.errors(0).column(), "shoe_size");
  EXPECT_THAT(json.errors(0).reason(), HasSubstr("unknown column"));
  EXPECT_EQ(json.errors(1).column(), "age");
  EXPECT_THAT(json.errors(1).reason(), HasSubstr("wrong type: expected INT64, got a string"));
  EXPECT_EQ(json.errors(2).line(), 2);
  EXPECT_THAT(json.errors(2).reason(), HasSubstr("missing subject"));
  EXPECT_EQ(Rows(), 0u);
  EXPECT_THAT(engine_->Ingest("nope", v1::CSV, false, kHeader),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("people")));
}

TEST_F(EngineTest, DataSurvivesCloseAndReopen) {
  Ingest(kCanonicalCsv);
  ASSERT_OK(Open());
  EXPECT_EQ(Export(v1::CSV), kCanonicalCsv);
  // Dictionaries and subjects carry on where they were.
  Ingest(std::string(kHeader) + "p1,Ana,beta,1,1,1,true,2020-01-01\np9,New,alpha,1,1,1,true,\n");
  ASSERT_OK_AND_ASSIGN(auto reader, engine_->OpenReader("people"));
  EXPECT_EQ(reader->rows(), 9u);
  EXPECT_EQ(reader->subjects(), 7u);
  EXPECT_EQ(reader->subject_count(), 7u);
  EXPECT_EQ(reader->dictionary(1).size(), 7u);  // names: Ana Smith She two Zoë "" New
  EXPECT_EQ(reader->CategoryCode(2, "beta"), 1);
  EXPECT_EQ(reader->CategoryCode(2, "gamma"), std::nullopt);
}

TEST_F(EngineTest, TheNodeSecretIsMadeOnceAndKeptAcrossRestarts) {
  const std::string first = engine_->node_secret();
  ASSERT_EQ(first.size(), static_cast<size_t>(Engine::kNodeSecretBytes));
  EXPECT_NE(first, std::string(Engine::kNodeSecretBytes, '\0'));
  ASSERT_OK(Open());
  EXPECT_EQ(engine_->node_secret(), first);
  // Another node's store gets its own secret.
  ScopedTempDir other_dir("engine_test");
  ASSERT_OK_AND_ASSIGN(auto other_storage, storage::Storage::Create(other_dir.path(), {}));
  EngineOptions options;
  options.org_id = "partner-b";
  options.purposes = Purposes();
  options.datasets = {Schema()};
  options.clock = &clock_;
  ASSERT_OK_AND_ASSIGN(auto other, Engine::Create(other_storage.get(), options));
  EXPECT_NE(other->node_secret(), first);
}

std::string MakeRows(int from, int to) {
  std::string out;
  for (int i = from; i < to; ++i) {
    absl::StrAppend(&out, "s", i % 1000, ",n", i, ",", i % 2 ? "alpha" : "beta", ",", i, ",",
                    (i % 1000) / 10.0, ",", i % 200, ",", i % 3 == 0 ? "true" : "false",
                    ",2024-01-01\n");
  }
  return out;
}

TEST_F(EngineTest, AppendsFillTheTailBlockAcrossTheBoundary) {
  EXPECT_EQ(Ingest(kHeader + MakeRows(0, 4000)).rows_written(), 4000);
  EXPECT_EQ(Ingest(kHeader + MakeRows(4000, 4100)).rows_written(), 100);
  EXPECT_EQ(Ingest(kHeader + MakeRows(4100, 8200)).rows_written(), 4100);
  ASSERT_OK_AND_ASSIGN(auto reader, engine_->OpenReader("people"));
  EXPECT_EQ(reader->rows(), 8200u);
  EXPECT_EQ(reader->blocks(), 3u);
  EXPECT_EQ(reader->subjects(), 1000u);
  std::vector<uint32_t> sizes;
  int64_t age_sum = 0;
  ASSERT_OK(reader->ForEachBlock([&](const ColumnBlock& block) {
    sizes.push_back(block.rows);
    for (uint32_t r = 0; r < block.rows; ++r) age_sum += block.columns[3].ints[r];
    return absl::OkStatus();
  }));
  EXPECT_THAT(sizes, ::testing::ElementsAre(4096, 4096, 8));
  EXPECT_EQ(age_sum, int64_t{8199} * 8200 / 2);
  EXPECT_EQ(Export(v1::CSV), kHeader + MakeRows(0, 8200));
}

TEST_F(EngineTest, ExportStreamsChunksWithRowCounts) {
  Ingest(kHeader + MakeRows(0, 5000));
  std::string out;
  std::vector<int64_t> counts;
  ASSERT_OK(engine_->Export(
      "people", v1::CSV,
      [&](absl::string_view chunk, int64_t rows) {
        out.append(chunk.data(), chunk.size());
        counts.push_back(rows);
        return absl::OkStatus();
      },
      /*chunk_bytes=*/16 << 10));
  EXPECT_GT(counts.size(), 5u);
  EXPECT_TRUE(std::is_sorted(counts.begin(), counts.end()));
  EXPECT_EQ(counts.back(), 5000);
  EXPECT_EQ(out, kHeader + MakeRows(0, 5000));
  EXPECT_THAT(engine_->Export("people", v1::CSV,
                              [](absl::string_view, int64_t) {
                                return absl::CancelledError("client went away");
                              }),
              StatusIs(absl::StatusCode::kCancelled, "client went away"));
}

TEST_F(EngineTest, SchemaMayGainFieldsButNotChangeTypes) {
  Ingest(std::string(kHeader) + "p1,A,alpha,1,1,1,true,2020-01-01\n");
  v1::DatasetSchema grown = Schema();
  v1::FieldSchema* added = grown.add_fields();
  added->set_name("city");
  added->set_type(v1::FieldSchema::CATEGORY);
  added->set_role(v1::FieldSchema::DIMENSION);
  ASSERT_OK(Open({grown}));
  Ingest("pid,city\np2,Lyon\n");
  EXPECT_EQ(Export(v1::CSV),
            "pid,name,program,age,score,visits,active,joined,city\n"
            "p1,A,alpha,1,1,1,true,2020-01-01,\n"
            "p2,,,,,,,,Lyon\n");

  v1::DatasetSchema changed = grown;
  changed.mutable_fields(3)->set_type(v1::FieldSchema::DOUBLE);
  EXPECT_THAT(Open({changed}), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("age")));
  ASSERT_OK(Open({grown}));
  EXPECT_EQ(Rows(), 2u);
}

// Many blocks, fed in many small slices as a client streams them, then a
// restart, then appends that fill the tail block: every row, subject and
// ordinal carries on exactly.
TEST_F(EngineTest, BulkIngestInManySlicesSurvivesRestartAndAppends) {
  const std::string first = kHeader + MakeRows(0, 10000);  // 3 blocks, the last short
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<IngestSession> session,
                       engine_->StartIngest("people", v1::CSV, false, {}));
  for (size_t pos = 0; pos < first.size(); pos += 37) {
    ASSERT_OK(session->Append(absl::string_view(first).substr(pos, 37)));
  }
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse r, session->Finish());
  session.reset();
  EXPECT_EQ(r.rows_written(), 10000);
  EXPECT_EQ(r.new_subjects(), 1000);

  ASSERT_OK(Open());
  // The first write after the start loads the subject map: known subjects
  // keep their ordinals, so none is new and the count stays.
  r = Ingest(kHeader + MakeRows(10000, 12300));
  EXPECT_EQ(r.rows_written(), 2300);
  EXPECT_EQ(r.new_subjects(), 0);
  ASSERT_OK_AND_ASSIGN(auto reader, engine_->OpenReader("people"));
  EXPECT_EQ(reader->rows(), 12300u);
  EXPECT_EQ(reader->blocks(), 4u);
  EXPECT_EQ(reader->subjects(), 1000u);
  EXPECT_EQ(reader->subject_count(), 1000u);
  std::vector<uint32_t> sizes;
  ASSERT_OK(reader->ForEachBlock([&](const ColumnBlock& block) {
    sizes.push_back(block.rows);
    return absl::OkStatus();
  }));
  EXPECT_THAT(sizes, ::testing::ElementsAre(4096, 4096, 4096, 12));
  EXPECT_EQ(Export(v1::CSV), kHeader + MakeRows(0, 12300));

  // A subject new to the node after the restart gets the next ordinal.
  r = Ingest(std::string(kHeader) + "fresh,F,alpha,1,1,1,true,2020-01-01\n");
  EXPECT_EQ(r.new_subjects(), 1);
  reader.reset();  // its snapshot belongs to the store being closed
  ASSERT_OK(Open());
  ASSERT_OK_AND_ASSIGN(reader, engine_->OpenReader("people"));
  EXPECT_EQ(reader->subject_count(), 1001u);
  EXPECT_EQ(reader->subjects(), 1001u);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, reader->SubjectIds());
  EXPECT_EQ(ids[1000], "fresh");
}

// One bad row in the middle of a file of several blocks refuses the whole
// file: no block, subject, dictionary value or counter changes, before or
// after a restart.
TEST_F(EngineTest, BadRowInTheMiddleOfManyBlocksChangesNothing) {
  ASSERT_EQ(Ingest(kHeader + MakeRows(0, 5000)).rows_written(), 5000);
  const std::string before = Export(v1::CSV);
  std::string file =
      kHeader + MakeRows(5000, 9000) + "new-subject,N,gamma,1,1,1,true,\n" + MakeRows(9000, 14000);
  absl::StatusOr<v1::IngestResponse> r = engine_->Ingest("people", v1::CSV, false, file);
  ASSERT_OK(r);
  EXPECT_EQ(r->rows_written(), 0);
  EXPECT_EQ(r->rows_rejected(), 1);
  ASSERT_EQ(r->errors_size(), 1);
  EXPECT_EQ(r->errors(0).line(), 4002);
  for (int pass = 0; pass < 2; ++pass) {
    {
      ASSERT_OK_AND_ASSIGN(auto reader, engine_->OpenReader("people"));
      EXPECT_EQ(reader->rows(), 5000u);
      EXPECT_EQ(reader->blocks(), 2u);
      EXPECT_EQ(reader->subjects(), 1000u);
      EXPECT_EQ(reader->subject_count(), 1000u);
      EXPECT_EQ(reader->dictionary(1).size(), 5000u);
    }
    EXPECT_EQ(Export(v1::CSV), before);
    ASSERT_OK(Open());
  }
  // The same file without the bad row is taken whole.
  EXPECT_EQ(Ingest(kHeader + MakeRows(5000, 14000)).rows_written(), 9000);
  EXPECT_EQ(Export(v1::CSV), kHeader + MakeRows(0, 14000));
}

// Opening a store reads meta only: no record block and no subject key, however
// much is stored (the subject map waits for the first write).
TEST_F(EngineTest, OpeningAStoreReadsNoBlocksAndNoSubjectKeys) {
  ASSERT_EQ(Ingest(kHeader + MakeRows(0, 9000)).rows_written(), 9000);
  ASSERT_OK(engine_->ImportConsent(kConsent).status());
  ASSERT_OK(Open());
  EXPECT_EQ(storage_->reads(storage::ColumnFamily::kRecords), 0u);
  EXPECT_EQ(storage_->reads(storage::ColumnFamily::kSubjects), 0u);
  // What the start did not read is still known.
  ASSERT_OK_AND_ASSIGN(v1::ListDatasetsResponse list, engine_->ListDatasets({}));
  ASSERT_EQ(list.datasets_size(), 1);
  EXPECT_EQ(list.datasets(0).rows(), 9000);
  EXPECT_EQ(list.datasets(0).subjects(), 1000);
  EXPECT_EQ(Rows(), 9000u);
}

// A store written before the subject bitmap (meta 0x16) kept one key per
// subject and block; it opens with the same subjects, and its next ingest
// writes the bitmap.
TEST_F(EngineTest, AStoreWithTheOldSubjectBlockKeysOpensWithItsSubjects) {
  ASSERT_EQ(Ingest(kHeader + MakeRows(0, 300)).rows_written(), 300);
  ASSERT_EQ(Ingest(std::string(kHeader) + "p1,A,alpha,1,1,1,true,2020-01-01\n").new_subjects(), 1);
  // As an old build stored it: no bitmap, a key per subject (s0..s299 are
  // ordinals 0..299, p1 is 300) and block.
  storage::WriteBatch old;
  old.Delete(storage::ColumnFamily::kMeta, storage::MetaDatasetSubjectsKey(1));
  for (uint32_t ordinal = 0; ordinal <= 300; ++ordinal) {
    old.Put(storage::ColumnFamily::kSubjects, storage::SubjectBlockKey(1, ordinal, 0), "");
  }
  ASSERT_OK(storage_->Write(old));
  ASSERT_OK(Open());
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse unused, engine_->ImportConsent(kConsent));
  (void)unused;
  ASSERT_OK_AND_ASSIGN(v1::ListDatasetsResponse list,
                       engine_->ListDatasets({"program-evaluation"}));
  // p1 has consent for the purpose and, by the old keys, records here.
  EXPECT_EQ(list.datasets(0).coverage(0).subjects_counted(), 1);
  // A replace deletes the old keys and writes the bitmap.
  IngestControl control;
  control.replace = true;
  ASSERT_OK_AND_ASSIGN(
      v1::IngestResponse r,
      engine_->Ingest("people", v1::CSV, false,
                      std::string(kHeader) + "p1,A,alpha,1,1,1,true,2020-01-01\n", control));
  EXPECT_EQ(r.rows_written(), 1);
  int old_keys = 0;
  ASSERT_OK(storage_->ScanPrefix(storage::ColumnFamily::kSubjects,
                                 storage::SubjectBlockDatasetPrefix(1),
                                 [&](absl::string_view, absl::string_view) {
                                   ++old_keys;
                                   return absl::OkStatus();
                                 }));
  EXPECT_EQ(old_keys, 0);
  ASSERT_OK_AND_ASSIGN(
      std::optional<std::string> bitmap,
      storage_->Get(storage::ColumnFamily::kMeta, storage::MetaDatasetSubjectsKey(1)));
  EXPECT_TRUE(bitmap.has_value());
  ASSERT_OK(Open());
  ASSERT_OK_AND_ASSIGN(list, engine_->ListDatasets({"program-evaluation"}));
  EXPECT_EQ(list.datasets(0).subjects(), 1);
  EXPECT_EQ(list.datasets(0).coverage(0).subjects_counted(), 1);
}

TEST_F(EngineTest, FailedWriteLeavesNothingVisible) {
  storage::FaultInjector faults;
  ASSERT_OK(Open({Schema()}, &faults));
  Ingest(std::string(kHeader) + "p1,A,alpha,1,1,1,true,2020-01-01\n");
  const std::string before = Export(v1::CSV);
  faults.SetFailWrites(true);
  EXPECT_THAT(engine_->Ingest("people", v1::CSV, false, kHeader + MakeRows(0, 5000)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("injected")));
  EXPECT_THAT(engine_->ImportConsent(kConsent),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_EQ(Export(v1::CSV), before);
  faults.SetFailWrites(false);
  ASSERT_OK(Open());
  EXPECT_EQ(Export(v1::CSV), before);
  ASSERT_OK_AND_ASSIGN(auto reader, engine_->OpenReader("people"));
  EXPECT_EQ(reader->subject_count(), 1u);
  // The engine's own state was not advanced by the failed batch either.
  EXPECT_EQ(Ingest(std::string(kHeader) + "p2,B,beta,2,2,2,false,2020-01-02\n").new_subjects(), 1);
  EXPECT_EQ(Rows(), 2u);
}

TEST_F(EngineTest, ReplaceSwapsEveryRowInOneWriteOrNone) {
  storage::FaultInjector faults;
  ASSERT_OK(Open({Schema()}, &faults));
  ASSERT_EQ(Ingest(kHeader + MakeRows(0, 9000)).rows_written(), 9000);  // three blocks
  const std::string before = Export(v1::CSV);
  IngestControl replace;
  replace.replace = true;
  std::vector<IngestReplace> seen;
  replace.before_replace = [&](const IngestReplace& r) {
    seen.push_back(r);
    return absl::OkStatus();
  };

  // A failed write, or a refusal just before it, leaves the old rows.
  faults.SetFailWrites(true);
  EXPECT_THAT(engine_->Ingest("people", v1::CSV, false, kHeader + MakeRows(20000, 20010), replace),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  faults.SetFailWrites(false);
  ASSERT_OK(Open());  // the store stays read-only after a failed write until reopened
  EXPECT_EQ(Export(v1::CSV), before);
  IngestControl refused = replace;
  refused.before_replace = [](const IngestReplace&) {
    return absl::UnavailableError("audit log unavailable");
  };
  EXPECT_THAT(engine_->Ingest("people", v1::CSV, false, kHeader + MakeRows(20000, 20010), refused),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("audit")));
  EXPECT_EQ(Export(v1::CSV), before);

  // 5000 rows of which subjects s0..s999 were held before: no new subjects.
  ASSERT_OK_AND_ASSIGN(
      v1::IngestResponse r,
      engine_->Ingest("people", v1::CSV, false, kHeader + MakeRows(1000, 6000), replace));
  EXPECT_TRUE(r.replaced());
  EXPECT_EQ(r.rows_removed(), 9000);
  EXPECT_EQ(r.rows_written(), 5000);
  EXPECT_EQ(r.new_subjects(), 0);
  ASSERT_EQ(seen.size(), 2u);  // the failed write's and this one's
  EXPECT_EQ(seen.back().rows_removed, 9000);
  EXPECT_EQ(seen.back().rows_written, 5000);
  EXPECT_EQ(seen.back().file_sha256.size(), 32u);
  EXPECT_EQ(Export(v1::CSV), kHeader + MakeRows(1000, 6000));
  ASSERT_OK(Open());
  EXPECT_EQ(Export(v1::CSV), kHeader + MakeRows(1000, 6000));
  ASSERT_OK_AND_ASSIGN(auto reader, engine_->OpenReader("people"));
  EXPECT_EQ(reader->rows(), 5000u);
  EXPECT_EQ(reader->blocks(), 2u);
  EXPECT_EQ(reader->subjects(), 1000u);
  // Appending after a replace continues the new tail block.
  EXPECT_EQ(Ingest(kHeader + MakeRows(6000, 6001)).rows_written(), 1);
  EXPECT_EQ(Export(v1::CSV), kHeader + MakeRows(1000, 6001));
}

TEST_F(EngineTest, TheSameFileTwiceIsRefusedUnlessAllowed) {
  const std::string file = kHeader + MakeRows(0, 10);
  Ingest(file);
  EXPECT_THAT(engine_->Ingest("people", v1::CSV, false, file),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already loaded into dataset 'people'")));
  IngestControl allow;
  allow.allow_duplicate = true;
  ASSERT_OK(engine_->Ingest("people", v1::CSV, false, file, allow));
  EXPECT_EQ(Rows(), 20u);
  ASSERT_OK(Open());
  EXPECT_THAT(engine_->Ingest("people", v1::CSV, false, file),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
}

TEST_F(EngineTest, ReadersSeeWholeBatchesWhileWritersRun) {
  std::thread writer([&] {
    for (int i = 0; i < 20; ++i) {
      auto r =
          engine_->Ingest("people", v1::CSV, false, kHeader + MakeRows(i * 300, i * 300 + 300));
      EXPECT_OK(r);
    }
  });
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK_AND_ASSIGN(auto reader, engine_->OpenReader("people"));
    uint64_t seen = 0;
    ASSERT_OK(reader->ForEachBlock([&](const ColumnBlock& b) {
      seen += b.rows;
      return absl::OkStatus();
    }));
    EXPECT_EQ(seen, reader->rows());
    EXPECT_EQ(seen % 300, 0u);
  }
  writer.join();
  EXPECT_EQ(Rows(), 6000u);
}

namespace streamed {

// Ingests `data` into a fresh store, fed in slices of `slice` bytes, and
// returns the response (or status) followed by the export.
std::string IngestInSlices(absl::string_view data, v1::DataFormat format, size_t slice) {
  const ScopedTempDir dir("engine_test");
  std::string out;
  {
    auto storage = storage::Storage::Create(dir.path(), storage::StorageOptions());
    EXPECT_OK(storage);
    if (!storage.ok()) return "";
    FakeClock clock(absl::FromUnixSeconds(1767225600));
    EngineOptions options;
    options.purposes = Purposes();
    options.datasets = {Schema()};
    options.clock = &clock;
    auto engine = Engine::Create(storage->get(), options);
    EXPECT_OK(engine);
    if (!engine.ok()) return "";
    auto session = (*engine)->StartIngest("people", format, /*skip_invalid=*/true, {});
    EXPECT_OK(session);
    if (!session.ok()) return "";
    for (size_t pos = 0; pos < data.size(); pos += slice) {
      EXPECT_OK((*session)->Append(data.substr(pos, slice)));
    }
    absl::StatusOr<v1::IngestResponse> r = (*session)->Finish();
    session->reset();
    out = r.ok() ? r->DebugString() : r.status().ToString();
    EXPECT_OK((*engine)->Export("people", v1::CSV, [&](absl::string_view chunk, int64_t) {
      out.append(chunk.data(), chunk.size());
      return absl::OkStatus();
    }));
  }
  return out;
}

}  // namespace streamed

TEST(StreamedIngestTest, AnySlicingGivesTheWholeFilesResult) {
  // BOM, CRLF, a lone CR, blank lines (also CRLF ones), a quoted field with
  // CR, LF and CRLF inside, multibyte UTF-8, bad rows (their line numbers
  // count the lines before them), a last line without terminator.
  const std::string csv =
      "\xEF\xBB\xBFpid;name;program;age;score;visits;active;joined\r\n"
      "p1;Ana;alpha;34;71.5;12;true;2024-03-01\r\n"
      "\r\n\n"
      "p2;\"two\nlines\r\nand\rmore\";beta;-3;0.1;0;false;1969-12-31\r"
      "p3;Zoë 名前 🙂;gamma;1;2;3;true;2024-01-01\n"
      "p4;x\"y;alpha;1;2;3;true;2024-01-01\r\n"
      "\r\n"
      "p5;x;alpha;1;2;3;true;2024-01-01\r\n"
      "p6;y;beta;not-a-number;2;3;true;2024-01-01\r"
      "p7;z;beta;1;2;3;true;2024-01-01\n"
      "p8;\"unterminated;alpha;1;2;3;true;2024-01-01\r\n";
  const std::string jsonl =
      "{\"pid\":\"p1\",\"name\":\"Zoë 🙂\",\"program\":\"alpha\",\"age\":3}\r\n"
      "\n"
      "{\"pid\":\"p2\",\"program\":\"gamma\"}\n"
      "  \n"
      "{not json}\n"
      "{\"pid\":\"p3\",\"score\":50.5}";
  for (const auto& [data, format] :
       {std::pair<std::string, v1::DataFormat>{csv, v1::CSV}, {jsonl, v1::JSONL}}) {
    const std::string whole = streamed::IngestInSlices(data, format, data.size());
    EXPECT_THAT(whole, HasSubstr("rows_written"));
    EXPECT_THAT(whole, HasSubstr("line: "));
    for (size_t slice : {1, 2, 3, 5, 7, 13, 64}) {
      EXPECT_EQ(streamed::IngestInSlices(data, format, slice), whole)
          << "slices of " << slice << " bytes";
    }
  }
}

TEST_F(EngineTest, IngestOverItsMemoryBudgetWritesNothing) {
  std::string csv = kHeader;
  for (int i = 0; i < 20000; ++i) {
    absl::StrAppend(&csv, "p", i, ",n", i, ",alpha,", i % 90, ",", i % 100, ",1,true,2024-01-01\n");
  }
  IngestControl control;
  control.memory_budget_bytes = 256 << 10;
  control.idempotency_key = "k1";
  absl::StatusOr<v1::IngestResponse> r = engine_->Ingest("people", v1::CSV, false, csv, control);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kResourceExhausted,
                          HasSubstr("limits.ingest_memory_budget_bytes = 262144")));
  EXPECT_THAT(r.status().message(), HasSubstr("nothing was written"));
  EXPECT_EQ(Rows(), 0u);

  // Nothing of it stayed: with room, the same file and key write it whole.
  control.memory_budget_bytes = 64 << 20;
  r = engine_->Ingest("people", v1::CSV, false, csv, control);
  ASSERT_OK(r);
  EXPECT_EQ(r->rows_written(), 20000);
  EXPECT_FALSE(r->replayed());
  EXPECT_EQ(Rows(), 20000u);
}

TEST_F(EngineTest, IngestSessionHoldsLittleMoreThanOneRecordAndOneBlock) {
  // 40 MB of rows whose long names are two dictionary values: the staged
  // write is a small fraction of the file, and so is what the session holds.
  const std::string pad(1000, 'x');
  std::string rows;
  for (int i = 0; i < 1000; ++i) {
    absl::StrAppend(&rows, "p", i, ",", pad, i % 2, ",alpha,", i % 90, ",1,1,true,2024-01-01\n");
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<IngestSession> session,
                       engine_->StartIngest("people", v1::CSV, false, {}));
  ASSERT_OK(session->Append(kHeader));
  for (int k = 0; k < 40; ++k) ASSERT_OK(session->Append(rows));
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse r, session->Finish());
  EXPECT_EQ(r.rows_written(), 40000);
  EXPECT_LT(session->peak_held_bytes(), size_t{8} << 20);
}

TEST_F(EngineTest, AbandonedIngestSessionWritesNothingAndReleasesTheWriter) {
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<IngestSession> session,
                         engine_->StartIngest("people", v1::CSV, false, {}));
    ASSERT_OK(session->Append(absl::StrCat(kHeader, "p1,Ana,alpha,34,71.5,12,true,2024-03-01\n")));
  }
  EXPECT_EQ(Rows(), 0u);
  EXPECT_EQ(
      Ingest(absl::StrCat(kHeader, "p1,Ana,alpha,34,71.5,12,true,2024-03-01\n")).rows_written(), 1);
}

}  // namespace
}  // namespace fedshare::engine::engine_test