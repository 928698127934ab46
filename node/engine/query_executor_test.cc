#include "node/engine/query_executor.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/storage/column_block.h"
#include "policy/query_rules.h"

namespace fedshare::engine {
namespace {

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
std::vector<Row> MakeRows(int n, int subjects, uint64_t seed) {
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

std::string Csv(const std::vector<Row>& rows, size_t from, size_t to) {
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
    std::string tmpl = ::testing::TempDir() + "/query_executor_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ASSERT_OK_AND_ASSIGN(storage_, storage::Storage::Create(dir_, storage::StorageOptions()));
    EngineOptions options;
    options.org_id = "partner-a";
    v1::Purpose p;
    p.set_id("p");
    options.purposes = {p};
    v1::DatasetSchema schema;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(kSchema, &schema));
    schema_ = schema;
    options.datasets = {schema};
    ASSERT_OK_AND_ASSIGN(engine_, Engine::Create(storage_.get(), options));
  }
  void TearDown() override {
    reader_.reset();
    engine_.reset();
    storage_.reset();
    std::filesystem::remove_all(dir_);
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

  absl::StatusOr<Execution> Run(const std::string& query_text, int bound = 0) {
    v1::AggregateQuery query;
    if (!google::protobuf::TextFormat::ParseFromString(query_text, &query)) {
      return absl::InvalidArgumentError("bad query text");
    }
    query.set_dataset("t");
    query.set_purpose("p");
    absl::StatusOr<v1::AggregateQuery> normalized = policy::NormalizeQuery(schema_, query);
    if (!normalized.ok()) return normalized.status();
    query_ = *normalized;
    return ExecuteQuery(*reader_, query_, consent_, bound);
  }

  bool Consented(const Row& r) const { return r.subject % 3 != 0; }

  std::string dir_;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<Engine> engine_;
  v1::DatasetSchema schema_;
  std::vector<Row> rows_;
  std::unique_ptr<DatasetReader> reader_;
  policy::ConsentBitmap consent_;
  std::map<int, uint32_t> ordinal_;
  v1::AggregateQuery query_;
};

// What a cell should hold, computed record by record in file order.
struct Expected {
  double count = 0;
  double score_n = 0;
  double score_sum = 0;
  std::map<uint32_t, double> contribution;  // ordinal -> |score| summed
};

TEST_F(QueryExecutorTest, TailBlockAppendedAcrossIngestsCountsEveryRow) {
  // Two full blocks and a partial one, written by two ingests: the second
  // completes the first one's tail block and starts a new one.
  const size_t n = 2 * storage::kBlockRows + 17;
  rows_ = MakeRows(static_cast<int>(n), 5000, 1);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, storage::kBlockRows + 100));
  ASSERT_NO_FATAL_FAILURE(Ingest(storage::kBlockRows + 100, n));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  EXPECT_EQ(reader_->blocks(), 3u);
  ASSERT_OK_AND_ASSIGN(Execution e, Run(R"pb(
                         group_by: "program"
                         aggregates { kind: COUNT }
                         aggregates { kind: SUM field: "score" }
                         aggregates { kind: AVG field: "score" })pb"));
  std::map<std::string, Expected> expected;  // "" for null
  for (const Row& r : rows_) {
    if (!Consented(r)) continue;
    Expected& x = expected[r.program ? kPrograms[*r.program] : ""];
    x.count += 1;
    if (r.score) {
      const double v = std::clamp(*r.score, 0.0, 100.0);
      x.score_n += 1;
      x.score_sum += v;
      x.contribution[ordinal_.at(r.subject)] += std::fabs(v);
    } else {
      x.contribution[ordinal_.at(r.subject)] += 0;
    }
  }
  EXPECT_EQ(e.rows_scanned, static_cast<int64_t>(n));
  ASSERT_EQ(e.cells.size(), expected.size());
  int64_t counted = 0;
  for (const ExecutedCell& c : e.cells) {
    const Expected& x = expected.at(c.key[0].string_value());
    SCOPED_TRACE(c.key[0].DebugString());
    EXPECT_EQ(c.values[0].value(), x.count);
    EXPECT_DOUBLE_EQ(c.values[1].value(), x.score_sum);
    EXPECT_EQ(c.values[2].count(), x.score_n);
    EXPECT_DOUBLE_EQ(c.values[2].value(), x.score_sum / x.score_n);
    ASSERT_EQ(c.stats.subjects, static_cast<int64_t>(x.contribution.size()));
    std::vector<uint32_t> ordinals;
    std::vector<double> contributions;
    for (const auto& [o, v] : x.contribution) {
      ordinals.push_back(o);
      contributions.push_back(v);
    }
    EXPECT_EQ(c.stats.subject_ordinals, ordinals);
    for (size_t s = 0; s < ordinals.size(); ++s) {
      EXPECT_DOUBLE_EQ(c.stats.subject_contributions[s * 3 + 1], contributions[s]);
      EXPECT_EQ(c.stats.subject_contributions[s * 3 + 0], 0.0);  // COUNT has none
    }
    std::sort(contributions.rbegin(), contributions.rend());
    contributions.resize(std::min<size_t>(contributions.size(), policy::kMaxDominanceN));
    EXPECT_EQ(c.stats.top_contributions[1], contributions);
    counted += static_cast<int64_t>(x.count);
  }
  EXPECT_EQ(e.rows_counted, counted);
}

TEST_F(QueryExecutorTest, FilterMatchingNothingKeepsTheOneCellAndCountsEveryoneAsRemoved) {
  rows_ = MakeRows(3000, 1000, 2);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_OK_AND_ASSIGN(Execution e, Run(R"pb(
                         where {
                           field: "year"
                           op: GT
                           values { int_value: 3000 }
                         }
                         aggregates { kind: COUNT }
                         aggregates { kind: SUM field: "visits" })pb"));
  ASSERT_EQ(e.cells.size(), 1u);
  EXPECT_EQ(e.cells[0].values[0].value(), 0);
  EXPECT_EQ(e.cells[0].values[1].value(), 0);
  EXPECT_EQ(e.cells[0].stats.subjects, 0);
  EXPECT_EQ(e.rows_counted, 0);
  // Everyone consented with a record fails the one predicate (a null year
  // fails it too).
  std::set<int> consented;
  for (const Row& r : rows_) {
    if (Consented(r)) consented.insert(r.subject);
  }
  EXPECT_THAT(e.removed_by_predicate,
              ::testing::ElementsAre(static_cast<int64_t>(consented.size())));
  // No cell is non-empty in the answer, so no per-cell figure.
  EXPECT_THAT(e.removed_in_cells, ::testing::ElementsAre(::testing::IsEmpty()));

  ASSERT_OK_AND_ASSIGN(Execution grouped, Run(R"pb(
                         where {
                           field: "region"
                           op: EQ
                           values { string_value: "nowhere" }
                         }
                         group_by: "program"
                         aggregates { kind: COUNT })pb"));
  EXPECT_TRUE(grouped.cells.empty());
  EXPECT_EQ(grouped.rows_scanned, 3000);
}

TEST_F(QueryExecutorTest, NullsGroupApartFailPredicatesAndSkipMeasures) {
  rows_ = MakeRows(6000, 2500, 3);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_OK_AND_ASSIGN(Execution e, Run(R"pb(
                         where {
                           field: "year"
                           op: GE
                           values { int_value: 2019 }
                         }
                         group_by: "region"
                         group_by: "active"
                         aggregates { kind: COUNT }
                         aggregates { kind: AVG field: "score" })pb"));
  struct Figures {
    double count = 0, n = 0, sum = 0;
  };
  std::map<std::pair<std::string, bool>, Figures> expected;
  std::set<int> removed;
  std::map<std::pair<std::string, bool>, std::set<int>> removed_in;
  for (const Row& r : rows_) {
    if (!Consented(r)) continue;
    const std::pair<std::string, bool> key{r.region ? kRegions[*r.region] : "", r.active};
    if (!r.year || *r.year < 2019) {
      removed.insert(r.subject);
      removed_in[key].insert(r.subject);
      continue;
    }
    Figures& f = expected[key];
    f.count += 1;
    if (r.score) {
      f.n += 1;
      f.sum += std::clamp(*r.score, 0.0, 100.0);
    }
  }
  ASSERT_EQ(e.cells.size(), expected.size());
  EXPECT_FALSE(e.cells[0].key[0].has_string_value());  // the null region sorts first
  for (const ExecutedCell& c : e.cells) {
    const Figures& f = expected.at({c.key[0].string_value(), c.key[1].bool_value()});
    EXPECT_EQ(c.values[0].value(), f.count);
    EXPECT_EQ(c.values[1].count(), f.n);
    EXPECT_DOUBLE_EQ(c.values[1].sum(), f.sum);
  }
  EXPECT_THAT(e.removed_by_predicate, ::testing::ElementsAre(static_cast<int64_t>(removed.size())));
  std::vector<int64_t> per_cell;
  for (const auto& [key, subjects] : removed_in) {
    if (expected.count(key)) per_cell.push_back(static_cast<int64_t>(subjects.size()));
  }
  ASSERT_EQ(e.removed_in_cells.size(), 1u);
  EXPECT_THAT(e.removed_in_cells[0], ::testing::UnorderedElementsAreArray(per_cell));
}

// The block path (no record bound) and the row path (a bound no subject
// reaches) must give the same figures, to the last bit, for every kind of
// question: dense and hashed group ids, grid buckets, histograms, two
// predicates, no GROUP BY.
TEST_F(QueryExecutorTest, BlockPathEqualsRowPath) {
  rows_ = MakeRows(3 * storage::kBlockRows + 500, 4000, 4);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  const std::vector<std::string> questions = {
      R"pb(group_by: "program"
           group_by: "region"
           aggregates { kind: COUNT }
           aggregates { kind: SUM field: "score" }
           aggregates { kind: AVG field: "score" })pb",
      R"pb(where {
             field: "year"
             op: BETWEEN
             values { int_value: 2017 }
             values { int_value: 2021 }
           }
           where {
             field: "program"
             op: IN
             values { string_value: "alpha" }
             values { string_value: "gamma" }
           }
           group_by: "age"
           group_by: "active"
           aggregates { kind: COUNT_SUBJECTS }
           aggregates { kind: STDDEV field: "visits" }
           aggregates { kind: HISTOGRAM field: "score" lo: 0 hi: 100 bins: 4 })pb",
      R"pb(where {
             field: "score"
             op: LT
             values { double_value: 50 }
           }
           group_by: "year"
           aggregates { kind: VARIANCE field: "score" }
           aggregates { kind: HISTOGRAM field: "visits" lo: 0 hi: 200 bins: 5 })pb",
      R"pb(where {
             field: "region"
             op: NE
             values { string_value: "east" }
           }
           aggregates { kind: COUNT }
           aggregates { kind: SUM field: "visits" })pb",
  };
  for (const std::string& q : questions) {
    SCOPED_TRACE(q);
    ASSERT_OK_AND_ASSIGN(Execution block, Run(q, 0));
    ASSERT_OK_AND_ASSIGN(Execution row, Run(q, 1 << 30));
    EXPECT_GT(block.rows_counted, 0);
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
      EXPECT_EQ(b.stats.subject_contributions, r.stats.subject_contributions);
      EXPECT_EQ(b.stats.top_contributions, r.stats.top_contributions);
      EXPECT_EQ(b.stats.abs_totals, r.stats.abs_totals);
      EXPECT_EQ(b.stats.bin_subjects, r.stats.bin_subjects);
      EXPECT_EQ(b.stats.bin_subject_ordinals, r.stats.bin_subject_ordinals);
    }
  }
}

}  // namespace
}  // namespace fedshare::engine
