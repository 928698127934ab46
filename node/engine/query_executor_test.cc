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
#include "node/engine/block_scan.h"
#include "node/engine/query_executor_fixture.h"
#include "node/engine/row_scan.h"
#include "node/engine/scan_plan.h"
#include "node/engine/scan_pool.h"
#include "node/storage/column_block.h"
#include "policy/query_rules.h"

namespace fedshare::engine {
namespace {

using executor_fixture::Csv;
using executor_fixture::ExpectSameExecution;
using executor_fixture::kPrograms;
using executor_fixture::kRegions;
using executor_fixture::MakeRows;
using executor_fixture::QueryExecutorTest;
using executor_fixture::Row;

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
    // SUM and AVG of score share one column: a value per subject, not three.
    EXPECT_EQ(c.stats.subject_contributions.size(), ordinals.size());
    for (size_t s = 0; s < ordinals.size(); ++s) {
      EXPECT_DOUBLE_EQ(c.stats.Contribution(s, 1, 3), contributions[s]);
      EXPECT_DOUBLE_EQ(c.stats.Contribution(s, 2, 3), contributions[s]);  // AVG: SUM's
      EXPECT_EQ(c.stats.Contribution(s, 0, 3), 0.0);                      // COUNT has none
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

// The predicate-removal figures are counted up to the cap the answerer gives
// (its k): exact below it, the cap from there on, on every path. Two ranges
// of a parallel scan each drop subjects 1, 2 and 4 in program beta (3 owners
// together, not 6), and 1, 2, 4 then 5, 7, 8 in gamma (6 owners, counted as
// the cap of 5); the filter drops 6 owners in all.
TEST_F(QueryExecutorTest, RemovalFiguresAreCountedUpToTheCap) {
  constexpr int kRangeRows = 10 * static_cast<int>(storage::kBlockRows);
  auto row = [](int subject, int program, int64_t year) {
    Row r;
    r.subject = subject;
    r.program = program;
    r.region = subject % 4;
    r.year = year;
    r.score = 50.0;
    r.visits = 1;
    return r;
  };
  auto dropped = [&](std::initializer_list<int> beta, std::initializer_list<int> gamma) {
    for (int s : beta) rows_.push_back(row(s, 1, 2019));
    for (int s : gamma) rows_.push_back(row(s, 2, 2019));
  };
  dropped({1, 2, 4}, {1, 2, 4});
  for (int i = 0; static_cast<int>(rows_.size()) < kRangeRows; ++i) {
    rows_.push_back(row(100 + (i / 3) % 3000, i % 3, 2020));
  }
  dropped({1, 2, 4}, {5, 7, 8});
  for (int i = 0; static_cast<int>(rows_.size()) < 2 * kRangeRows; ++i) {
    rows_.push_back(row(100 + (i / 3) % 3000, i % 3, 2021));
  }
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_EQ(reader_->blocks(), 20u);
  const std::string q = R"pb(where {
                               field: "year"
                               op: GE
                               values { int_value: 2020 }
                             }
                             group_by: "program"
                             aggregates { kind: COUNT })pb";
  using ::testing::ElementsAre;
  using ::testing::UnorderedElementsAre;
  auto expect_figures = [](const Execution& e, int64_t all, int64_t beta, int64_t gamma) {
    EXPECT_THAT(e.removed_by_predicate, ElementsAre(all));
    ASSERT_EQ(e.removed_in_cells.size(), 1u);
    EXPECT_THAT(e.removed_in_cells[0], UnorderedElementsAre(beta, gamma));
  };
  ASSERT_OK_AND_ASSIGN(Execution exact, Run(q));
  expect_figures(exact, 6, 3, 6);
  ASSERT_OK_AND_ASSIGN(Execution capped, Run(q, 0, 5));
  expect_figures(capped, 5, 3, 5);
  ASSERT_OK_AND_ASSIGN(Execution by_row, Run(q, 1 << 30, 5));
  expect_figures(by_row, 5, 3, 5);
  // Just above a count, the count; at it, the count.
  ASSERT_OK_AND_ASSIGN(Execution at_four, Run(q, 0, 4));
  expect_figures(at_four, 4, 3, 4);
  ASSERT_OK_AND_ASSIGN(Execution at_six, Run(q, 0, 6));
  expect_figures(at_six, 6, 3, 6);

  ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(2));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_NE(reader_->scan_pool(), nullptr);
  ASSERT_OK_AND_ASSIGN(Execution parallel, Run(q, 0, 5));
  expect_figures(parallel, 5, 3, 5);
  ASSERT_OK_AND_ASSIGN(Execution parallel_exact, Run(q));
  expect_figures(parallel_exact, 6, 3, 6);
  ExpectSameExecution(parallel_exact, exact);
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

// Two predicates with dense group ids, and a grid of years with a variance
// and histograms: asked by both tests that compare two ways of scanning.
constexpr char kTwoPredicatesQuestion[] =
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
         aggregates { kind: HISTOGRAM field: "score" lo: 0 hi: 100 bins: 4 })pb";
constexpr char kVarianceQuestion[] =
    R"pb(where {
           field: "score"
           op: LT
           values { double_value: 50 }
         }
         group_by: "year"
         aggregates { kind: VARIANCE field: "score" }
         aggregates { kind: HISTOGRAM field: "visits" lo: 0 hi: 200 bins: 5 })pb";

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
      kTwoPredicatesQuestion,
      kVarianceQuestion,
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
    ExpectSameExecution(block, row);
  }
}

TEST_F(QueryExecutorTest, TwoFiltersMatchingNothingReadNoBlock) {
  rows_ = MakeRows(3 * storage::kBlockRows + 100, 3000, 5);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_EQ(reader_->blocks(), 4u);
  const std::string q = R"pb(where {
                               field: "year"
                               op: GT
                               values { int_value: 3000 }
                             }
                             where {
                               field: "visits"
                               op: GT
                               values { int_value: 500 }
                             }
                             group_by: "program"
                             aggregates { kind: COUNT })pb";
  const uint64_t before = reader_->blocks_decoded();
  ASSERT_OK_AND_ASSIGN(Execution block, Run(q, 0));
  EXPECT_EQ(reader_->blocks_decoded(), before) << "a block was read";
  EXPECT_EQ(block.rows_scanned, static_cast<int64_t>(rows_.size()));
  EXPECT_EQ(block.rows_counted, 0);
  EXPECT_TRUE(block.cells.empty());
  // Every record fails both filters: none is dropped by one alone.
  EXPECT_THAT(block.removed_by_predicate, ::testing::ElementsAre(0, 0));
  ASSERT_OK_AND_ASSIGN(Execution row, Run(q, 1 << 30));
  EXPECT_EQ(reader_->blocks_decoded(), before + 4) << "the row path reads every block";
  ExpectSameExecution(block, row);

  // One filter matching nothing must still read every block: the owners of
  // the records it alone drops are what the predicate-removal rule checks.
  ASSERT_OK_AND_ASSIGN(Execution one, Run(R"pb(where {
                                                 field: "year"
                                                 op: GT
                                                 values { int_value: 3000 }
                                               }
                                               aggregates { kind: COUNT })pb"));
  EXPECT_EQ(reader_->blocks_decoded(), before + 8);
  EXPECT_GT(one.removed_by_predicate[0], 0);
}

// Blocks whose year and region rule out a match are skipped, including one
// where both are null in every row, and the answer is the row path's to the
// last bit; a block written before zone maps is read.
TEST_F(QueryExecutorTest, ZoneMapSkipsGiveTheAnswerOfReadingEveryBlock) {
  const size_t block_rows = storage::kBlockRows;
  rows_ = MakeRows(static_cast<int>(4 * block_rows + 300), 6000, 6);
  for (size_t i = 0; i < rows_.size(); ++i) {
    Row& r = rows_[i];
    const size_t b = i / block_rows;
    r.year = 2015 + static_cast<int64_t>(b);  // block b holds year 2015 + b only
    if (b == 0) r.region = 0;                 // block 0: north only
    if (b == 2) {                             // block 2: both null
      r.year.reset();
      r.region.reset();
    }
  }
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_EQ(reader_->blocks(), 5u);
  const std::string q =
      R"pb(where {
             field: "year"
             op: LT
             values { int_value: 2015 }
           }
           where {
             field: "region"
             op: IN
             values { string_value: "south" }
             values { string_value: "east" }
           }
           where {
             field: "score"
             op: GE
             values { double_value: 20 }
           }
           group_by: "program"
           group_by: "active"
           aggregates { kind: COUNT }
           aggregates { kind: SUM field: "score" }
           aggregates { kind: HISTOGRAM field: "visits" lo: 0 hi: 200 bins: 4 })pb";
  // year < 2015 fails every row; region fails every row of blocks 0 and 2:
  // those two blocks are skipped, the others carry predicate removals.
  uint64_t before = reader_->blocks_decoded();
  ASSERT_OK_AND_ASSIGN(Execution block, Run(q, 0));
  EXPECT_EQ(reader_->blocks_decoded() - before, 3u);
  ASSERT_OK_AND_ASSIGN(Execution row, Run(q, 1 << 30));
  ExpectSameExecution(block, row);

  // The same with year >= 2016 (block 0 fails it and region; block 2 is
  // null in both): rows are counted in blocks 1, 3 and 4.
  std::string counted = q;
  counted.replace(counted.find("op: LT"), 6, "op: GE");
  counted.replace(counted.find("2015"), 4, "2016");
  before = reader_->blocks_decoded();
  ASSERT_OK_AND_ASSIGN(Execution block2, Run(counted, 0));
  EXPECT_EQ(reader_->blocks_decoded() - before, 3u);
  EXPECT_GT(block2.rows_counted, 0);
  ASSERT_OK_AND_ASSIGN(Execution row2, Run(counted, 1 << 30));
  ExpectSameExecution(block2, row2);

  // Block 0 rewritten as a block from before zone maps: it is read again.
  std::string key, value;
  ASSERT_OK(storage_->ScanPrefix(storage::ColumnFamily::kRecords, "",
                                 [&](absl::string_view k, absl::string_view v) {
                                   if (key.empty()) {
                                     key = std::string(k);
                                     value = std::string(v);
                                   }
                                   return absl::OkStatus();
                                 }));
  // The schema's stored types, as the engine derives them.
  std::vector<storage::StoredType> types;
  for (const v1::FieldSchema& f : schema_.fields()) {
    types.push_back(f.role() == v1::FieldSchema::SUBJECT
                        ? storage::StoredType::kNone
                        : static_cast<storage::StoredType>(f.type()));
  }
  storage::ColumnBlock decoded;
  ASSERT_OK(storage::DecodeColumnBlock(value, types, &decoded));
  value = storage::EncodeColumnBlockInFormat(decoded, types, storage::kBlockFormatNoZoneMap);
  storage::WriteBatch batch;
  batch.Put(storage::ColumnFamily::kRecords, key, value);
  ASSERT_OK(storage_->Write(batch));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_OK_AND_ASSIGN(Execution old_block, Run(q, 0));
  EXPECT_EQ(reader_->blocks_decoded(), 4u);
  ExpectSameExecution(old_block, row);
}

// A tail block filled by a later ingest gets the zone map of all its rows:
// the rows appended after the first zone map was written are found.
TEST_F(QueryExecutorTest, TailBlockAppendedAfterItsZoneMapIsStillFound) {
  rows_ = MakeRows(400, 300, 7);
  for (size_t i = 0; i < rows_.size(); ++i) {
    rows_[i].year = i < 200 ? 2015 : 2024;
    rows_[i].region = i < 200 ? 0 : 1;  // north, then south
  }
  ASSERT_NO_FATAL_FAILURE(Ingest(0, 200));
  ASSERT_NO_FATAL_FAILURE(Ingest(200, 400));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_EQ(reader_->blocks(), 1u);
  const std::string q = R"pb(where {
                               field: "year"
                               op: GE
                               values { int_value: 2024 }
                             }
                             where {
                               field: "region"
                               op: EQ
                               values { string_value: "south" }
                             }
                             aggregates { kind: COUNT })pb";
  ASSERT_OK_AND_ASSIGN(Execution block, Run(q, 0));
  EXPECT_EQ(reader_->blocks_decoded(), 1u);
  int64_t expected = 0;
  for (size_t i = 200; i < rows_.size(); ++i) expected += Consented(rows_[i]);
  EXPECT_EQ(block.rows_counted, expected);
  ASSERT_OK_AND_ASSIGN(Execution row, Run(q, 1 << 30));
  ExpectSameExecution(block, row);
}

// Question Q1's shape (docs/performance.md): a filter, two category groups,
// a count, a sum and a mean of one field.
constexpr char kQ1Question[] =
    R"pb(where {
           field: "year"
           op: GE
           values { int_value: 2020 }
         }
         group_by: "program"
         group_by: "region"
         aggregates { kind: COUNT }
         aggregates { kind: SUM field: "score" }
         aggregates { kind: AVG field: "score" })pb";

// A scan split into block ranges on a pool and merged in block order gives
// the serial scan's answer to the last bit: figures, per-subject statistics,
// cell order, the removal figures in their order, and with record keys the
// sums cell-key perturbation takes.
TEST_F(QueryExecutorTest, ParallelScanEqualsSerialScanBitForBit) {
  rows_ = MakeRows(static_cast<int>(40 * storage::kBlockRows + 123), 30000, 8);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  const std::vector<std::string> questions = {
      kQ1Question,
      kTwoPredicatesQuestion,
      kVarianceQuestion,
      R"pb(aggregates { kind: COUNT }
           aggregates { kind: SUM field: "visits" })pb",
  };
  auto run_all = [&](std::vector<Execution>* out, std::vector<uint32_t> keys) {
    ASSERT_NO_FATAL_FAILURE(OpenReader());
    for (const std::string& q : questions) {
      ASSERT_OK(Normalize(q));
      ASSERT_OK_AND_ASSIGN(Execution e, ExecuteQuery(*reader_, query_, consent_, 0, nullptr, keys));
      out->push_back(std::move(e));
    }
  };
  std::vector<uint32_t> keys(30000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = static_cast<uint32_t>(i * 2654435761u);
  std::vector<Execution> serial, parallel;
  ASSERT_NO_FATAL_FAILURE(run_all(&serial, keys));
  ASSERT_EQ(reader_->scan_pool(), nullptr);
  ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(3));
  ASSERT_NO_FATAL_FAILURE(run_all(&parallel, keys));
  ASSERT_NE(reader_->scan_pool(), nullptr);
  ASSERT_EQ(reader_->blocks(), 41u);
  // While two other questions hold shares of the three threads, each
  // question gets one and scans on its own thread.
  std::vector<Execution> sharing;
  {
    const ScanPool::Share first(reader_->scan_pool()), second(reader_->scan_pool());
    ASSERT_EQ(second.threads(), 1);
    ASSERT_NO_FATAL_FAILURE(run_all(&sharing, keys));
  }
  for (size_t i = 0; i < questions.size(); ++i) {
    SCOPED_TRACE(questions[i]);
    const Execution& a = serial[i];
    EXPECT_GT(a.rows_counted, 0);
    for (const Execution* b : {&parallel[i], &sharing[i]}) {
      ExpectSameExecution(*b, a);
      EXPECT_EQ(b->removed_in_cells, a.removed_in_cells);  // in the same order too
      for (size_t c = 0; c < a.cells.size() && c < b->cells.size(); ++c) {
        EXPECT_EQ(b->cells[c].record_key_sum, a.cells[c].record_key_sum);
        EXPECT_EQ(b->cells[c].bin_key_sums, a.cells[c].bin_key_sums);
      }
    }
  }
}

TEST_F(QueryExecutorTest, MoreCellsThanTheBoundStopTheQuestionOnEveryPath) {
  rows_ = MakeRows(static_cast<int>(40 * storage::kBlockRows), 30000, 9);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  const std::string question = R"pb(group_by: "program"
                                    group_by: "region"
                                    group_by: "year"
                                    aggregates { kind: COUNT })pb";
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_OK_AND_ASSIGN(Execution all, Run(question));
  const int cells = static_cast<int>(all.cells.size());
  ASSERT_GT(cells, 100);
  // Serial and parallel block scans, and the row path (a record bound).
  for (int threads : {0, 3}) {
    for (int bound : {0, 2}) {
      SCOPED_TRACE(absl::StrCat(threads, " scan threads, record bound ", bound));
      for (int max_cells : {cells - 1, cells / 3, 1}) {
        ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(threads, max_cells));
        ASSERT_NO_FATAL_FAILURE(OpenReader());
        EXPECT_THAT(Run(question, bound),
                    fedshare::testing::StatusIs(
                        absl::StatusCode::kResourceExhausted,
                        ::testing::HasSubstr(
                            absl::StrCat("more than ", max_cells,
                                         " cells, over limits.max_answer_cells = ", max_cells))));
        // The block scan stops at the block that passes the bound: the first
        // block alone has more than one cell.
        if (threads == 0 && bound == 0 && max_cells == 1) {
          EXPECT_EQ(reader_->blocks_decoded(), 1u);
        }
      }
      ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(threads, cells));
      ASSERT_NO_FATAL_FAILURE(OpenReader());
      ASSERT_OK_AND_ASSIGN(Execution exactly, Run(question, bound));
      EXPECT_EQ(exactly.cells.size(), all.cells.size());
    }
  }
}

// The memory bound ExecuteQuery admits questions by covers what each scan
// charges as it goes, on every path (serial and parallel block scans, the
// row path with and without kept records), so a question it admits is never
// refused part-way; and a budget one byte under it refuses the question
// before any block is read.
TEST_F(QueryExecutorTest, TheMemoryBoundCoversWhatEveryScanCharges) {
  rows_ = MakeRows(static_cast<int>(40 * storage::kBlockRows + 123), 30000, 10);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  const std::vector<std::string> questions = {
      kQ1Question,
      kTwoPredicatesQuestion,
      kVarianceQuestion,
      R"pb(aggregates { kind: COUNT })pb",
      R"pb(group_by: "region"
           group_by: "active"
           aggregates { kind: COUNT_SUBJECTS }
           aggregates { kind: SUM field: "visits" }
           aggregates { kind: HISTOGRAM field: "score" lo: 0 hi: 100 bins: 10 })pb",
  };
  for (int threads : {0, 3}) {
    ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(threads));
    ASSERT_NO_FATAL_FAILURE(OpenReader());
    for (const std::string& q : questions) {
      for (int64_t cap : {int64_t{5}, std::numeric_limits<int64_t>::max()}) {
        SCOPED_TRACE(absl::StrCat(threads, " threads, removal cap ", cap, ": ", q));
        ASSERT_OK(Normalize(q));
        ASSERT_OK_AND_ASSIGN(exec::Plan plan, exec::MakePlan(*reader_, query_));
        exec::ScanOptions options;
        options.pool = reader_->scan_pool();
        options.removal_cap = cap;
        options.memory_budget_bytes =
            exec::ByBlockMemoryBound(*reader_, query_, consent_.size(), plan, options);
        ASSERT_GT(options.memory_budget_bytes, 0);
        ASSERT_OK_AND_ASSIGN(Execution by_block,
                             exec::ExecuteByBlock(*reader_, query_, consent_, plan, {}, options));
        EXPECT_GT(by_block.rows_counted, 0);
        ASSERT_OK(exec::ExecuteByRow(*reader_, query_, consent_, plan, 2, nullptr, {},
                                     exec::ByRowMemoryBound(*reader_, query_, plan, false), cap)
                      .status());
        ScannedRecords records;
        ASSERT_OK(exec::ExecuteByRow(*reader_, query_, consent_, plan, 0, &records, {},
                                     exec::ByRowMemoryBound(*reader_, query_, plan, true), cap)
                      .status());
        EXPECT_EQ(records.refs.size(), static_cast<size_t>(by_block.rows_counted));
      }
    }
  }
  // Admission: the first question at its bound, and a byte under it.
  ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(3));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_OK(Normalize(questions[0]));
  ASSERT_OK_AND_ASSIGN(exec::Plan plan, exec::MakePlan(*reader_, query_));
  exec::ScanOptions options;
  options.pool = reader_->scan_pool();
  const int64_t bound = exec::ByBlockMemoryBound(*reader_, query_, consent_.size(), plan, options);
  for (int64_t budget : {bound - 1, bound}) {
    ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(3, 0, budget));
    ASSERT_NO_FATAL_FAILURE(OpenReader());
    absl::StatusOr<Execution> e = Run(questions[0]);
    // AdmitQuery says the same, reading no block (the count below includes it).
    const absl::Status admitted =
        AdmitQuery(*reader_, query_, consent_.size(), /*max_records_per_subject=*/0,
                   /*keeps_records=*/false);
    if (e.ok()) {
      EXPECT_OK(admitted);
    } else {
      EXPECT_EQ(admitted, e.status());
    }
    if (budget < bound) {
      EXPECT_THAT(
          e.status(),
          fedshare::testing::StatusIs(
              absl::StatusCode::kResourceExhausted,
              ::testing::AllOf(::testing::HasSubstr(absl::StrCat(
                                   "limits.query_memory_budget_bytes = ", budget, " allows")),
                               ::testing::HasSubstr("whatever the filter and consent"))));
      EXPECT_EQ(reader_->blocks_decoded(), 0u);
    } else {
      EXPECT_OK(e.status());
    }
  }
}

// Attacker: an asker who knows every record but whether one person
// consented to the purpose, and moves a filter so that that person's one
// record would tip the question over the node's memory budget. Against the
// budget enforced only as the scan grows (the weakened rule: each scan with
// its running charge alone, as ExecuteQuery was before it admitted
// questions by their bound) the refusal says whether they consented; against
// ExecuteQuery, every filter gets the same outcome whether they did or not.
TEST_F(QueryExecutorTest, AMemoryRefusalTellsNothingOfWhoConsented) {
  // 201 people with one record each, visits 0 .. 200; the target has 50.
  for (int i = 0; i <= 200; ++i) {
    Row r;
    r.subject = i;
    r.program = 0;
    r.region = 0;
    r.year = 2020;
    r.age = 30;
    r.score = 10;
    r.visits = i;
    rows_.push_back(r);
  }
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  constexpr int kTarget = 50;
  policy::ConsentBitmap with(consent_.size()), without(consent_.size());
  for (const auto& [subject, ordinal] : ordinal_) {
    with.Set(ordinal, true);
    without.Set(ordinal, subject != kTarget);
  }
  auto question = [](int t) {
    return absl::StrCat(R"pb(where { field: "visits" op: LT
                                     values { int_value:)pb",
                        t, R"pb(}
                                }
                             aggregates { kind: COUNT })pb");
  };
  constexpr int64_t kCap = 5;  // the agreement's k
  for (const bool by_row : {false, true}) {
    SCOPED_TRACE(by_row ? "row path, records kept (differential privacy)" : "block path");
    // The weakened rule: the scan and its running charge alone.
    auto weakened_answers = [&](const policy::ConsentBitmap& consent, int t, int64_t budget) {
      EXPECT_OK(Normalize(question(t)));
      absl::StatusOr<exec::Plan> plan = exec::MakePlan(*reader_, query_);
      EXPECT_OK(plan.status());
      if (by_row) {
        ScannedRecords records;
        return exec::ExecuteByRow(*reader_, query_, consent, *plan, 0, &records, {}, budget, kCap)
            .ok();
      }
      exec::ScanOptions options;
      options.memory_budget_bytes = budget;
      options.removal_cap = kCap;
      return exec::ExecuteByBlock(*reader_, query_, consent, *plan, {}, options).ok();
    };
    // The node's budget: here the charge of visits < 150 without the
    // target (any budget between the narrowest and the widest filter's
    // charge would do), found as the least budget that answers it.
    int64_t lo = 1, hi = int64_t{1} << 30;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (weakened_answers(without, 150, mid)) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    const int64_t budget = lo;
    // The attacker, simulating the world without the target, finds the
    // first filter the budget refuses, and asks the one before it.
    int first_refused = -1;
    for (int t = 0; t <= 201 && first_refused < 0; ++t) {
      if (!weakened_answers(without, t, budget)) first_refused = t;
    }
    ASSERT_EQ(first_refused, 151);
    // Against the weakened rule the answer tells the target's consent.
    EXPECT_FALSE(weakened_answers(with, first_refused - 1, budget));
    EXPECT_TRUE(weakened_answers(without, first_refused - 1, budget));

    // Against ExecuteQuery, at this budget and at one that admits the
    // question: the same outcome for every filter in both worlds.
    for (int64_t node_budget : {budget, int64_t{1} << 30}) {
      ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(0, 0, node_budget));
      ASSERT_NO_FATAL_FAILURE(OpenReader());
      int answered = 0;
      for (int t = 0; t <= 201; ++t) {
        SCOPED_TRACE(absl::StrCat("budget ", node_budget, ", visits < ", t));
        ASSERT_OK(Normalize(question(t)));
        ScannedRecords records_with, records_without;
        const absl::Status outcome_with =
            ExecuteQuery(*reader_, query_, with, 0, by_row ? &records_with : nullptr, {}, kCap)
                .status();
        const absl::Status outcome_without =
            ExecuteQuery(*reader_, query_, without, 0, by_row ? &records_without : nullptr, {},
                         kCap)
                .status();
        EXPECT_EQ(outcome_with.code(), outcome_without.code());
        EXPECT_EQ(outcome_with.message(), outcome_without.message());
        answered += outcome_with.ok();
      }
      // Refused for every filter under the attacker's budget, answered for
      // every filter under the large one.
      EXPECT_EQ(answered, node_budget == budget ? 0 : 202);
    }
    ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(0));
    ASSERT_NO_FATAL_FAILURE(OpenReader());
  }
}

}  // namespace
}  // namespace fedshare::engine
