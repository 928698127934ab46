// Ingests large enough that their write moves to staged table files
// (storage::BulkWrite): a refused one changes nothing, store or memory, and
// an accepted one (a replace included) is whole after a restart.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_macros.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/engine/engine.h"
#include "node/engine/engine_internal.h"
#include "node/engine/ingest.h"
#include "node/storage/fault_injector.h"
#include "node/storage/keys.h"

namespace fedshare::engine {
namespace {

using ::fedshare::testing::ScopedTempDir;

constexpr char kSchema[] = R"pb(
  name: "visits"
  fields { name: "pid" type: CATEGORY role: SUBJECT }
  fields { name: "site" type: CATEGORY role: DIMENSION }
  fields { name: "score" type: INT64 role: MEASURE lower: 0 upper: 100 }
  fields { name: "weight" type: DOUBLE role: MEASURE lower: 0 upper: 1000 }
)pb";

// Rows [from, to): each a new subject, so the staged write grows by its
// subject keys as well as its blocks.
std::string Rows(int from, int to) {
  std::string out = "pid,site,score,weight\n";
  for (int i = from; i < to; ++i) {
    absl::StrAppend(&out, "subject-", i, ",site", i % 7, ",", i % 101, ",", i % 997, ".25\n");
  }
  return out;
}

class IngestStagingTest : public ::testing::Test {
 protected:
  // Enough rows for several times storage::kBulkSpillBytes of staged write.
  static constexpr int kRows = 120000;

  void SetUp() override { ASSERT_OK(Open()); }
  void TearDown() override {
    reader_.reset();
    engine_.reset();
    storage_.reset();
  }

  absl::Status Open() {
    reader_.reset();  // its snapshot goes before the store
    engine_.reset();
    storage_.reset();
    storage::StorageOptions storage_options;
    storage_options.fault_injector = &faults_;
    FEDSHARE_ASSIGN_OR_RETURN(storage_, storage::Storage::Create(dir_.path(), storage_options));
    EngineOptions options;
    v1::DatasetSchema schema;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(kSchema, &schema));
    options.datasets = {schema};
    FEDSHARE_ASSIGN_OR_RETURN(engine_, Engine::Create(storage_.get(), options));
    return absl::OkStatus();
  }

  // Streams `csv` in 1 MiB slices; `staged` says whether the write moved to
  // table files (which the folder shows only now and then: they are written
  // on threads of the write's own, and some only during Finish).
  absl::StatusOr<v1::IngestResponse> Ingest(const std::string& csv, bool* staged = nullptr,
                                            IngestControl control = {}) {
    const uint64_t spills = storage_->bulk_writes_spilled();
    auto session = engine_->StartIngest("visits", v1::CSV, false, std::move(control));
    if (!session.ok()) return session.status();
    for (size_t pos = 0; pos < csv.size(); pos += size_t{1} << 20) {
      absl::Status s = (*session)->Append(absl::string_view(csv).substr(pos, size_t{1} << 20));
      if (!s.ok()) return s;
    }
    absl::StatusOr<v1::IngestResponse> response = (*session)->Finish();
    if (staged != nullptr) *staged = storage_->bulk_writes_spilled() > spills;
    return response;
  }

  size_t StagedFiles() const {
    std::error_code ec;
    size_t n = 0;
    for (auto it = std::filesystem::directory_iterator(dir_.Sub("staging"), ec);
         !ec && it != std::filesystem::directory_iterator(); ++it) {
      ++n;
    }
    return n;
  }

  DatasetReader* Reader() {
    auto reader = engine_->OpenReader("visits");
    EXPECT_OK(reader);
    reader_ = reader.ok() ? *std::move(reader) : nullptr;
    return reader_.get();
  }

  ScopedTempDir dir_{"ingest_staging_test"};
  storage::FaultInjector faults_;  // fails nothing unless a test says so
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<DatasetReader> reader_;
};

TEST_F(IngestStagingTest, ABadRowLateInAStagedFileChangesNothing) {
  ASSERT_OK(Ingest(Rows(0, 100)).status());
  const std::string bad = absl::StrCat(Rows(100, kRows), "subject-x,site1,500,1\n");
  bool staged = false;
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse r, Ingest(bad, &staged));
  EXPECT_TRUE(staged);
  EXPECT_EQ(r.rows_written(), 0);
  EXPECT_EQ(r.rows_rejected(), 1);
  ASSERT_EQ(r.errors_size(), 1);
  EXPECT_EQ(r.errors(0).line(), kRows - 100 + 2);
  EXPECT_EQ(r.errors(0).column(), "score");
  EXPECT_EQ(StagedFiles(), 0u);
  EXPECT_EQ(Reader()->rows(), 100u);
  EXPECT_EQ(reader_->subject_count(), 100u);
  // The refused file's subjects are unknown again, in memory and after a
  // restart, and their ordinals are given afresh.
  ASSERT_OK_AND_ASSIGN(r, Ingest("pid,site,score,weight\nsubject-5000,site1,5,1\n"));
  EXPECT_EQ(r.new_subjects(), 1);
  EXPECT_EQ(Reader()->subject_count(), 101u);
  ASSERT_OK(Open());
  EXPECT_EQ(Reader()->rows(), 101u);
  EXPECT_EQ(reader_->subject_count(), 101u);
}

TEST_F(IngestStagingTest, StagedIngestAndReplaceAreWholeAfterARestart) {
  bool staged = false;
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse r, Ingest(Rows(0, kRows), &staged));
  EXPECT_TRUE(staged);
  EXPECT_EQ(r.rows_written(), kRows);
  EXPECT_EQ(r.new_subjects(), kRows);
  EXPECT_EQ(StagedFiles(), 0u);
  ASSERT_OK(Open());
  EXPECT_EQ(Reader()->rows(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(reader_->subject_count(), static_cast<uint32_t>(kRows));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, reader_->SubjectIds());
  EXPECT_EQ(ids[kRows - 1], absl::StrCat("subject-", kRows - 1));

  // A replace by fewer rows: old blocks past the new ones are deleted.
  IngestControl replace;
  replace.replace = true;
  ASSERT_OK_AND_ASSIGN(r, Ingest(Rows(kRows / 2, kRows / 2 + 70000), &staged, replace));
  EXPECT_TRUE(staged);
  EXPECT_TRUE(r.replaced());
  EXPECT_EQ(r.rows_removed(), kRows);
  EXPECT_EQ(r.rows_written(), 70000);
  EXPECT_EQ(r.new_subjects(), 70000 - kRows / 2);
  ASSERT_OK(Open());
  DatasetReader* reader = Reader();
  EXPECT_EQ(reader->rows(), 70000u);
  EXPECT_EQ(reader->subjects(), 70000u);
  uint64_t rows = 0, blocks = 0;
  ASSERT_OK(reader->ForEachBlock([&](const ColumnBlock& block) {
    rows += block.rows;
    ++blocks;
    return absl::OkStatus();
  }));
  EXPECT_EQ(rows, 70000u);
  EXPECT_EQ(blocks, reader->blocks());
  // The store knows every subject once: the first file's and the new ones.
  ASSERT_OK_AND_ASSIGN(r, Ingest("pid,site,score,weight\nsubject-0,site1,5,1\n"));
  EXPECT_EQ(r.new_subjects(), 1);  // new to the dataset, known to the store
  EXPECT_EQ(Reader()->subject_count(), static_cast<uint32_t>(kRows / 2 + 70000));
}

// New subjects' ordinal-by-id keys are staged as the rows come while the new
// ids increase, and all at the end once one does not: either way each new
// id has its key, with its ordinal, after a restart.
TEST_F(IngestStagingTest, NewSubjectsAreKeptByIdWhetherTheyCameInOrderOrNot) {
  auto padded = [](int i) { return absl::StrFormat("s%07d", i); };
  std::string in_order = "pid,site,score,weight\n";
  for (int i = 0; i < kRows; ++i) absl::StrAppend(&in_order, padded(i), ",site1,5,1\n");
  // The same ids again but the last, then ids that break the order only
  // after the write has moved to files (one of them lower than every other).
  std::string late_break = "pid,site,score,weight\n";
  for (int i = kRows; i < 2 * kRows; ++i) absl::StrAppend(&late_break, padded(i), ",site2,6,2\n");
  absl::StrAppend(&late_break, "a-first,site2,6,2\n", padded(0), ",site2,6,2\n",
                  padded(kRows + 5), ",site2,6,2\nzz-last,site2,6,2\n");
  for (const std::string* file : {&in_order, &late_break}) {
    bool staged = false;
    ASSERT_OK_AND_ASSIGN(v1::IngestResponse r, Ingest(*file, &staged));
    EXPECT_TRUE(staged);
    EXPECT_EQ(r.new_subjects(), file == &in_order ? kRows : kRows + 2);
  }
  ASSERT_OK(Open());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, Reader()->SubjectIds());
  ASSERT_EQ(ids.size(), 2u * kRows + 2);
  uint64_t keys = 0;
  ASSERT_OK(storage_->ScanPrefix(storage::ColumnFamily::kSubjects,
                                 storage::SubjectOrdinalByIdPrefix(),
                                 [&](absl::string_view key, absl::string_view value) {
                                   const uint32_t ordinal = storage::DecodeFixed32BE(value);
                                   EXPECT_LT(ordinal, ids.size());
                                   if (ordinal < ids.size()) {
                                     EXPECT_EQ(ids[ordinal], key.substr(1));
                                   }
                                   ++keys;
                                   return absl::OkStatus();
                                 }));
  EXPECT_EQ(keys, ids.size());
  EXPECT_EQ(ids[2 * kRows], "a-first");
  EXPECT_EQ(ids[2 * kRows + 1], "zz-last");
  // Known after the restart: none is new to the store.
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse r,
                       Ingest(absl::StrCat("pid,site,score,weight\n", padded(7), ",site1,1,1\n",
                                           padded(kRows + 7), ",site1,1,1\na-first,site1,1,1\n")));
  EXPECT_EQ(r.new_subjects(), 0);
  EXPECT_EQ(Reader()->subject_count(), 2u * kRows + 2);
}

// A bad row drops what was staged, and the memory budget, checked at the end
// of each slice, counts what is held then: not the staged write the bad row
// dropped, even when that write had grown past the budget within the slice.
TEST_F(IngestStagingTest, ABadRowDropsTheStagedWriteFromTheBudget) {
  IngestControl control;
  control.memory_budget_bytes = size_t{1} << 20;
  // One slice: 20,000 new subjects (over 2 MiB staged), then the bad row.
  const std::string csv = absl::StrCat(Rows(0, 20000), "subject-x,site1,500,1\n");
  ASSERT_LT(csv.size(), size_t{1} << 20);
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse r, Ingest(csv, nullptr, control));
  EXPECT_EQ(r.rows_written(), 0);
  EXPECT_EQ(r.rows_rejected(), 1);
  ASSERT_EQ(r.errors_size(), 1);
  EXPECT_EQ(r.errors(0).column(), "score");
  EXPECT_EQ(StagedFiles(), 0u);
}

// A write error while full blocks are staged on the writer's own thread
// fails the ingest, which writes nothing: no row, no subject.
TEST_F(IngestStagingTest, AWriteErrorWhileBlocksAreStagedWritesNothing) {
  ASSERT_OK(Ingest(Rows(0, 100)).status());
  const std::string csv = Rows(100, kRows);
  auto session = engine_->StartIngest("visits", v1::CSV, false, {});
  ASSERT_OK(session.status());
  absl::Status failed;
  for (size_t pos = 0; pos < csv.size() && failed.ok(); pos += size_t{1} << 20) {
    if (StagedFiles() > 0) faults_.SetFailWrites(true);  // the write has moved to files
    failed = (*session)->Append(absl::string_view(csv).substr(pos, size_t{1} << 20));
  }
  if (failed.ok()) failed = (*session)->Finish().status();
  EXPECT_TRUE(faults_.fail_writes());
  EXPECT_GT(faults_.injected_failures(), 0);
  EXPECT_FALSE(failed.ok());
  session->reset();
  faults_.SetFailWrites(false);
  EXPECT_EQ(StagedFiles(), 0u);
  EXPECT_EQ(Reader()->rows(), 100u);
  EXPECT_EQ(reader_->subject_count(), 100u);
  ASSERT_OK(Open());
  EXPECT_EQ(Reader()->rows(), 100u);
  EXPECT_EQ(reader_->subject_count(), 100u);
}

// The values a staging remembers first give the codes the dictionary and
// the staged values give: known ones keep theirs, new ones are numbered
// after them in order of first appearance, more than it remembers included.
TEST(DictionaryStagingTest, CodesAreTheDictionarysThenNewInOrder) {
  Dictionary dict;
  dict.Add("north");
  dict.Add("south");
  DictionaryStaging staging(dict);
  std::vector<std::string> values = {"south", "east", "north", "east"};
  for (int i = 0; i < 30; ++i) values.push_back(absl::StrCat("v", i % 12));
  std::map<std::string, uint32_t> expected = {{"north", 0}, {"south", 1}};
  for (const std::string& v : values) {
    expected.emplace(v, static_cast<uint32_t>(expected.size()));
    EXPECT_EQ(staging.Code(v), expected[v]) << v;
  }
  EXPECT_EQ(staging.first_new_code(), 2u);
  ASSERT_EQ(staging.new_values().size(), 13u);
  EXPECT_EQ(staging.new_values()[0], "east");
  EXPECT_EQ(staging.new_values()[12], "v11");
  EXPECT_EQ(staging.Code("v11"), 14u);
  EXPECT_EQ(staging.Code("south"), 1u);
}

}  // namespace
}  // namespace fedshare::engine
