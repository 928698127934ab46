// The query executor tests' fixture: a dataset of generated records with
// nulls, ingested through a real engine over a real RocksDB store in a temp
// folder, a reader with a consent bitmap, and the check that the block path's
// answer equals the row path's to the last bit. Test-only.
#ifndef FEDSHARE_NODE_ENGINE_QUERY_EXECUTOR_FIXTURE_H_
#define FEDSHARE_NODE_ENGINE_QUERY_EXECUTOR_FIXTURE_H_

#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/engine/query_executor.h"
#include "node/storage/column_block.h"
#include "policy/query_rules.h"

namespace fedshare::engine::executor_fixture {

using ::fedshare::testing::ScopedTempDir;

constexpr char kSchema[] = R"pb(
  name: "t"
  fields { name: "pid" type: CATEGORY role: SUBJECT }
  fields {
    name: "program"
    type: CATEGORY
    role: DIMENSION
    categories: "alpha"
    categories: "beta"
    categories: "gamma"
  }
  fields { name: "region" type: CATEGORY role: DIMENSION }
  fields { name: "year" type: INT64 role: DIMENSION }
  fields { name: "age" type: INT64 role: DIMENSION granularity: 5 }
  fields { name: "active" type: BOOL role: DIMENSION }
  fields { name: "score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
  fields { name: "visits" type: INT64 role: MEASURE lower: 0 upper: 200 }
)pb";

// One generated record; nullopt is an empty CSV cell.
struct Row {
  int subject = 0;
  std::optional<int> program;  // index into kPrograms
  std::optional<int> region;
  std::optional<int64_t> year;
  int64_t age = 0;
  bool active = false;
  std::optional<double> score;
  int64_t visits = 0;
};

constexpr const char* kPrograms[] = {"alpha", "beta", "gamma"};
constexpr const char* kRegions[] = {"north", "south", "east", "west"};

// Deterministic records: `subjects` people, some with several records, and
// nulls in program, region, year and score (measures within their bounds,
// as ingest requires).
inline std::vector<Row> MakeRows(int n, int subjects, uint64_t seed) {
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&state](uint64_t below) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (state >> 33) % below;
  };
  std::vector<Row> rows;
  for (int i = 0; i < n; ++i) {
    Row r;
    r.subject = i < subjects ? i : static_cast<int>(next(subjects));
    if (next(20) != 0) r.program = static_cast<int>(next(3));
    if (next(15) != 0) r.region = static_cast<int>(next(4));
    if (next(25) != 0) r.year = 2015 + static_cast<int64_t>(next(10));
    r.age = 18 + static_cast<int64_t>(next(60));
    r.active = next(2) == 1;
    // One decimal, so the CSV text parses back to the same double.
    if (next(10) != 0) r.score = static_cast<double>(next(1001)) / 10.0;
    r.visits = static_cast<int64_t>(next(201));
    rows.push_back(r);
  }
  return rows;
}

inline std::string Csv(const std::vector<Row>& rows, size_t from, size_t to) {
  std::string csv = "pid,program,region,year,age,active,score,visits\n";
  for (size_t i = from; i < to; ++i) {
    const Row& r = rows[i];
    absl::StrAppend(&csv, "p", r.subject, ",", r.program ? kPrograms[*r.program] : "", ",",
                    r.region ? kRegions[*r.region] : "", ",", r.year ? absl::StrCat(*r.year) : "",
                    ",", r.age, ",", r.active ? "true" : "false", ",",
                    r.score ? absl::StrCat(*r.score) : "", ",", r.visits, "\n");
  }
  return csv;
}

class QueryExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(storage_,
                         storage::Storage::Create(dir_.path(), storage::StorageOptions()));
    EngineOptions options;
    options.org_id = "partner-a";
    v1::Purpose p;
    p.set_id("p");
    options.purposes = {p};
    v1::DatasetSchema schema;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(kSchema, &schema));
    schema_ = schema;
    options.datasets = {schema};
    options_ = options;
    ASSERT_OK_AND_ASSIGN(engine_, Engine::Create(storage_.get(), options));
  }

  // Reopens the engine on the same store with a scan pool of `threads`
  // (and limits.max_answer_cells and limits.query_memory_budget_bytes, 0:
  // none).
  void ReopenWithScanThreads(int threads, int max_answer_cells = 0,
                             int64_t query_memory_budget_bytes = 0) {
    reader_.reset();
    engine_.reset();
    EngineOptions options = options_;
    options.scan_threads = threads;
    options.max_answer_cells = max_answer_cells;
    options.query_memory_budget_bytes = query_memory_budget_bytes;
    ASSERT_OK_AND_ASSIGN(engine_, Engine::Create(storage_.get(), options));
  }
  void TearDown() override {
    reader_.reset();
    engine_.reset();
    storage_.reset();
  }

  // Ingests rows[from, to) as one file.
  void Ingest(size_t from, size_t to) {
    ASSERT_OK_AND_ASSIGN(v1::IngestResponse r,
                         engine_->Ingest("t", v1::CSV, false, Csv(rows_, from, to)));
    ASSERT_EQ(r.rows_written(), static_cast<int64_t>(to - from)) << r.DebugString();
  }

  // Opens a reader and maps subject numbers to ordinals; consent is given by
  // subjects whose number is not a multiple of 3.
  void OpenReader() {
    ASSERT_OK_AND_ASSIGN(reader_, engine_->OpenReader("t"));
    ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, reader_->SubjectIds());
    consent_ = policy::ConsentBitmap(static_cast<uint32_t>(ids.size()));
    ordinal_.clear();
    for (uint32_t o = 0; o < ids.size(); ++o) {
      const int subject = std::stoi(ids[o].substr(1));
      ordinal_[subject] = o;
      consent_.Set(o, subject % 3 != 0);
    }
  }

  // Parses and normalizes `query_text` into query_.
  absl::Status Normalize(const std::string& query_text) {
    v1::AggregateQuery query;
    if (!google::protobuf::TextFormat::ParseFromString(query_text, &query)) {
      return absl::InvalidArgumentError("bad query text");
    }
    query.set_dataset("t");
    query.set_purpose("p");
    absl::StatusOr<v1::AggregateQuery> normalized = policy::NormalizeQuery(schema_, query);
    if (!normalized.ok()) return normalized.status();
    query_ = *normalized;
    return absl::OkStatus();
  }

  absl::StatusOr<Execution> Run(const std::string& query_text, int bound = 0,
                                int64_t removal_cap = std::numeric_limits<int64_t>::max()) {
    if (absl::Status s = Normalize(query_text); !s.ok()) return s;
    return ExecuteQuery(*reader_, query_, consent_, bound, nullptr, {}, removal_cap);
  }

  bool Consented(const Row& r) const { return r.subject % 3 != 0; }

  ScopedTempDir dir_{"query_executor_test"};
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<Engine> engine_;
  EngineOptions options_;
  v1::DatasetSchema schema_;
  std::vector<Row> rows_;
  std::unique_ptr<DatasetReader> reader_;
  policy::ConsentBitmap consent_;
  std::map<int, uint32_t> ordinal_;
  v1::AggregateQuery query_;
};

// The block path's answer `block` equals the row path's `row` to the last bit.
inline void ExpectSameExecution(const Execution& block, const Execution& row) {
  EXPECT_EQ(block.rows_scanned, row.rows_scanned);
  EXPECT_EQ(block.rows_counted, row.rows_counted);
  EXPECT_EQ(block.removed_by_predicate, row.removed_by_predicate);
  ASSERT_EQ(block.removed_in_cells.size(), row.removed_in_cells.size());
  for (size_t i = 0; i < block.removed_in_cells.size(); ++i) {
    EXPECT_THAT(block.removed_in_cells[i],
                ::testing::UnorderedElementsAreArray(row.removed_in_cells[i]));
  }
  ASSERT_EQ(block.cells.size(), row.cells.size());
  for (size_t i = 0; i < block.cells.size(); ++i) {
    const ExecutedCell& b = block.cells[i];
    const ExecutedCell& r = row.cells[i];
    ASSERT_EQ(b.key.size(), r.key.size());
    for (size_t k = 0; k < b.key.size(); ++k) {
      EXPECT_EQ(b.key[k].SerializeAsString(), r.key[k].SerializeAsString());
    }
    EXPECT_EQ(b.scan_index, r.scan_index);
    ASSERT_EQ(b.values.size(), r.values.size());
    for (size_t a = 0; a < b.values.size(); ++a) {
      EXPECT_EQ(b.values[a].SerializeAsString(), r.values[a].SerializeAsString()) << a;
    }
    EXPECT_EQ(b.stats.subjects, r.stats.subjects);
    EXPECT_EQ(b.stats.subject_ordinals, r.stats.subject_ordinals);
    // The layouts may differ (the block path keeps a column per measure
    // field); each subject's contribution to each aggregate may not.
    const size_t n_aggs = b.values.size();
    ASSERT_EQ(b.stats.subject_contributions.size(),
              b.stats.subject_ordinals.size() * b.stats.ContributionStride(n_aggs));
    ASSERT_EQ(r.stats.subject_contributions.size(),
              r.stats.subject_ordinals.size() * r.stats.ContributionStride(n_aggs));
    for (size_t s = 0; s < b.stats.subject_ordinals.size() && s < r.stats.subject_ordinals.size();
         ++s) {
      for (size_t a = 0; a < n_aggs; ++a) {
        EXPECT_EQ(b.stats.Contribution(s, a, n_aggs), r.stats.Contribution(s, a, n_aggs))
            << "subject " << s << " aggregate " << a;
      }
    }
    EXPECT_EQ(b.stats.top_contributions, r.stats.top_contributions);
    EXPECT_EQ(b.stats.abs_totals, r.stats.abs_totals);
    EXPECT_EQ(b.stats.bin_subjects, r.stats.bin_subjects);
    EXPECT_EQ(b.stats.bin_subject_ordinals, r.stats.bin_subject_ordinals);
  }
}


}  // namespace fedshare::engine::executor_fixture

#endif  // FEDSHARE_NODE_ENGINE_QUERY_EXECUTOR_FIXTURE_H_
