// The block path folds each cell's records per subject as they arrive while
// subjects come in ascending ordinal order, and sorts the rest
// (cell_stats.h BlockCell). These tests give it subjects in order, out of
// order and both in one cell, and subjects whose records straddle blocks and
// the ranges of a parallel scan; each answer must equal the row path's, and
// the per-subject figures the ones computed record by record here.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/engine/query_executor_fixture.h"
#include "node/engine/question_memory.h"
#include "node/storage/column_block.h"

namespace fedshare::engine {
namespace {

using executor_fixture::ExpectSameExecution;
using executor_fixture::QueryExecutorTest;
using executor_fixture::Row;

constexpr char kByProgram[] = R"pb(group_by: "program"
                                   aggregates { kind: COUNT }
                                   aggregates { kind: SUM field: "score" }
                                   aggregates { kind: AVG field: "score" }
                                   aggregates { kind: STDDEV field: "visits" })pb";

// Per ordinal, each aggregate's contribution (|measure| summed in file
// order) over the consented records of program `program`.
std::map<uint32_t, std::vector<double>> ContributionsByHand(const std::vector<Row>& rows,
                                                           const std::map<int, uint32_t>& ordinal,
                                                           int program) {
  std::map<uint32_t, std::vector<double>> by_subject;
  for (const Row& r : rows) {
    if (r.subject % 3 == 0 || r.program != program) continue;
    std::vector<double>& c = by_subject[ordinal.at(r.subject)];
    c.resize(4, 0.0);
    if (r.score) {
      c[1] += std::fabs(*r.score);
      c[2] += std::fabs(*r.score);
    }
    c[3] += std::fabs(static_cast<double>(r.visits));
  }
  return by_subject;
}

// The cell of `program` in `e`, which groups by program only.
const ExecutedCell* CellOf(const Execution& e, const char* program) {
  for (const ExecutedCell& c : e.cells) {
    if (c.key[0].string_value() == program) return &c;
  }
  return nullptr;
}

void ExpectContributions(const ExecutedCell& cell,
                         const std::map<uint32_t, std::vector<double>>& want) {
  ASSERT_EQ(cell.stats.subjects, static_cast<int64_t>(want.size()));
  ASSERT_EQ(cell.stats.subject_ordinals.size(), want.size());
  size_t i = 0;
  for (const auto& [ordinal, contributions] : want) {
    ASSERT_EQ(cell.stats.subject_ordinals[i], ordinal) << i;
    for (size_t a = 0; a < contributions.size(); ++a) {
      EXPECT_EQ(cell.stats.Contribution(i, a, contributions.size()), contributions[a])
          << "subject " << ordinal << " aggregate " << a;
    }
    ++i;
  }
}

// Ordinals are given in order of first sight, so the first 1,000 records give
// subjects 0..999 their ordinals in ascending order. Then program beta gets
// every subject twice in a row in descending order (the first two records
// extend the ordered run, the rest arrive below it), and program alpha, which
// saw every subject once in order, gets more records in a scattered order
// (subjects both in the run and out of it).
std::vector<Row> InAndOutOfOrder(int people) {
  std::vector<Row> rows;
  auto row = [](int subject, int program, int i) {
    Row r;
    r.subject = subject;
    r.program = program;
    r.region = i % 4;
    r.year = 2020;
    if (i % 7 != 0) r.score = static_cast<double>((i * 37) % 1001) / 10.0;
    r.visits = (i * 13) % 201;
    return r;
  };
  for (int s = 0; s < people; ++s) rows.push_back(row(s, 0, s));
  for (int s = people - 1; s >= 0; --s) {
    rows.push_back(row(s, 1, s + 5));
    rows.push_back(row(s, 1, s + 11));
  }
  for (int i = 0; i < 2 * people; ++i) rows.push_back(row((i * 7919) % people, 0, i + 3));
  return rows;
}

TEST_F(QueryExecutorTest, SubjectsInAndOutOfOrderFoldAsTheRowPathFoldsThem) {
  constexpr int kPeople = 1000;
  rows_ = InAndOutOfOrder(kPeople);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  for (int s = 0; s < kPeople; ++s) ASSERT_EQ(ordinal_.at(s), static_cast<uint32_t>(s));

  ASSERT_OK_AND_ASSIGN(Execution block, Run(kByProgram, 0));
  ASSERT_OK_AND_ASSIGN(Execution by_row, Run(kByProgram, 1 << 30));
  ExpectSameExecution(block, by_row);
  const ExecutedCell* alpha = CellOf(block, "alpha");
  const ExecutedCell* beta = CellOf(block, "beta");
  ASSERT_NE(alpha, nullptr);
  ASSERT_NE(beta, nullptr);
  ExpectContributions(*alpha, ContributionsByHand(rows_, ordinal_, 0));
  ExpectContributions(*beta, ContributionsByHand(rows_, ordinal_, 1));
  // Two records per subject in beta, all counted.
  EXPECT_EQ(beta->values[0].value(), 2.0 * beta->stats.subjects);
}

// The fold is compiled apart for questions without a measure field and
// with one (cell_stats.cc, FixedSlots); with two it runs the general loop
// (kByProgram, above). Each must fold records in and out of order as the
// row path does, serially and over the ranges of a parallel scan.
TEST_F(QueryExecutorTest, QuestionsWithNoneOrOneMeasureFieldFoldAsTheRowPath) {
  // 5 records per person: 14,000 people fill 18 blocks, enough for two ranges.
  rows_ = InAndOutOfOrder(14000);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  constexpr const char* kQuestions[] = {
      R"pb(group_by: "program"
           aggregates { kind: COUNT })pb",
      R"pb(group_by: "program"
           aggregates { kind: COUNT }
           aggregates { kind: SUM field: "score" }
           aggregates { kind: AVG field: "score" })pb",
      R"pb(group_by: "program"
           aggregates { kind: STDDEV field: "visits" })pb",
  };
  std::vector<Execution> serial;
  for (const char* question : kQuestions) {
    SCOPED_TRACE(question);
    ASSERT_OK_AND_ASSIGN(Execution block, Run(question, 0));
    ASSERT_OK_AND_ASSIGN(Execution by_row, Run(question, 1 << 30));
    ExpectSameExecution(block, by_row);
    const ExecutedCell* beta = CellOf(block, "beta");
    ASSERT_NE(beta, nullptr);
    // Every subject once in beta, though each came twice and out of order.
    EXPECT_EQ(beta->stats.subject_ordinals.size(), static_cast<size_t>(beta->stats.subjects));
    EXPECT_TRUE(
        std::is_sorted(beta->stats.subject_ordinals.begin(), beta->stats.subject_ordinals.end()));
    EXPECT_EQ(std::adjacent_find(beta->stats.subject_ordinals.begin(),
                                 beta->stats.subject_ordinals.end()),
              beta->stats.subject_ordinals.end());
    serial.push_back(std::move(block));
  }
  ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(2));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_GE(reader_->blocks(), 16u);  // two ranges of 8 blocks at least (block_scan.cc)
  for (size_t q = 0; q < std::size(kQuestions); ++q) {
    SCOPED_TRACE(kQuestions[q]);
    ASSERT_OK_AND_ASSIGN(Execution parallel, Run(kQuestions[q], 0));
    ExpectSameExecution(parallel, serial[q]);
  }
}

// A subject whose records straddle every block boundary, so some straddle
// the boundaries between the ranges of a parallel scan (41 blocks on 3
// threads: 3 ranges). The parallel answer equals the serial one and the row
// path's to the last bit, with each straddler counted once in its cell.
TEST_F(QueryExecutorTest, SubjectsStraddlingBlocksAndScanRangesFoldOnce) {
  constexpr uint32_t kBlocks = 41;
  rows_ = executor_fixture::MakeRows(static_cast<int>((kBlocks - 1) * storage::kBlockRows + 123),
                                     30000, 9);
  for (uint32_t b = 1; b < kBlocks; ++b) {
    for (size_t i = b * storage::kBlockRows - 2; i < b * storage::kBlockRows + 2; ++i) {
      Row& r = rows_[i];
      r.subject = 40000 + static_cast<int>(b);
      r.program = 2;
      r.score = 2.0 * b + static_cast<double>(i % 4) / 10.0;
    }
  }
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_EQ(reader_->blocks(), kBlocks);
  ASSERT_OK_AND_ASSIGN(Execution serial, Run(kByProgram, 0));
  ASSERT_OK_AND_ASSIGN(Execution by_row, Run(kByProgram, 1 << 30));
  ExpectSameExecution(serial, by_row);

  ASSERT_NO_FATAL_FAILURE(ReopenWithScanThreads(3));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  ASSERT_NE(reader_->scan_pool(), nullptr);
  ASSERT_OK_AND_ASSIGN(Execution parallel, Run(kByProgram, 0));
  ExpectSameExecution(parallel, serial);
  const ExecutedCell* gamma = CellOf(parallel, "gamma");
  ASSERT_NE(gamma, nullptr);
  ExpectContributions(*gamma, ContributionsByHand(rows_, ordinal_, 2));
  for (uint32_t b = 1; b < kBlocks; ++b) {
    const int subject = 40000 + static_cast<int>(b);
    if (subject % 3 == 0) continue;
    const std::vector<uint32_t>& ordinals = gamma->stats.subject_ordinals;
    EXPECT_EQ(std::count(ordinals.begin(), ordinals.end(), ordinal_.at(subject)), 1) << b;
  }
}

// An answer gives its per-subject statistics to SpareBuffers when destroyed,
// and the next question writes its own into that memory: the figures must
// not change (no value of the past answer may survive in them).
TEST_F(QueryExecutorTest, AnAnswerWrittenIntoAPastAnswersMemoryIsTheSame) {
  // Cells of about 6,000 subjects: statistics larger than SpareBuffers'
  // smallest kept buffer.
  rows_ = executor_fixture::MakeRows(30000, 30000, 4);
  ASSERT_NO_FATAL_FAILURE(Ingest(0, rows_.size()));
  ASSERT_NO_FATAL_FAILURE(OpenReader());
  std::optional<Execution> first;
  ASSERT_OK_AND_ASSIGN(first, Run(kByProgram, 0));
  const Execution kept = *first;
  size_t largest = 0;
  for (const ExecutedCell& c : kept.cells) {
    largest = std::max(largest, c.stats.subject_contributions.size());
  }
  ASSERT_GT(largest * sizeof(double), SpareBuffers::kMinBytes);
  first.reset();
  // The destroyed answer's buffers are kept.
  std::vector<double> taken = SpareBuffers::Get().Take<double>(largest);
  EXPECT_GE(taken.capacity(), largest);
  SpareBuffers::Get().Give(taken);

  ASSERT_OK_AND_ASSIGN(Execution again, Run(kByProgram, 0));
  ExpectSameExecution(again, kept);
  ASSERT_OK_AND_ASSIGN(Execution by_row, Run(kByProgram, 1 << 30));
  ExpectSameExecution(again, by_row);
}

}  // namespace
}  // namespace fedshare::engine
