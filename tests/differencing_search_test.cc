// Issue 8: a brute-force differencing search through a real node.
//
// The test generates people with 1-5 records each spread over regions,
// programs, cohorts and completion (seeded), loads them into an in-process
// node, and asks as the peer every question of a small grammar: up to one
// predicate on each of region, cohort_year and completed, GROUP BY nothing,
// program, region or completed, and COUNT(*) with SUM or HISTOGRAM. For every
// pair of questions that differ by one predicate and are both answered, it
// checks with its own copy of the records that in each cell (and histogram
// bin) released in both, the records that predicate drops belong to no one or
// to at least k people: the difference of the two answers is never a figure
// over 1..k-1 people. It also checks that the node refuses exactly the
// questions the predicate-removal rule names, and that the search is not
// vacuous: many pairs compared with non-zero differences, and pairs the rule
// before issue 8 (counting only people removed entirely) would have answered
// with a difference over 1..k-1 people in a cell big enough to release.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "query/sql.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

constexpr char kTrustDomain[] = "fedshare.test";
constexpr int kK = 5;
constexpr int kPeople = 90;
constexpr const char* kRegions[] = {"north", "south", "east", "west", "central"};
constexpr const char* kPrograms[] = {"literacy", "numeracy", "mentoring", "employment"};
// HISTOGRAM(sessions_attended, 0, 20, 4).
constexpr int kBins = 4;

struct Record {
  std::string subject;
  std::string program;
  std::string region;
  int64_t cohort_year = 0;
  bool completed = false;
  int64_t sessions = 0;
};

std::vector<Record> Generate() {
  std::mt19937 rng(8);
  std::vector<Record> records;
  const int region_weights[] = {40, 25, 15, 12, 8};
  std::discrete_distribution<int> home_region(std::begin(region_weights), std::end(region_weights));
  for (int p = 0; p < kPeople; ++p) {
    const int home = home_region(rng);
    const int program = static_cast<int>(rng() % 4);
    const int n = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < n; ++i) {
      Record r;
      r.subject = absl::StrCat("p", p);
      r.region = kRegions[rng() % 5 < 4 ? home : rng() % 5];
      r.program = kPrograms[rng() % 10 < 7 ? program : rng() % 4];
      r.cohort_year = 2019 + static_cast<int64_t>(rng() % 5);
      r.completed = rng() % 3 == 0;
      r.sessions = static_cast<int64_t>(rng() % 21);
      records.push_back(r);
    }
  }
  return records;
}

struct Predicate {
  std::string field;
  std::string sql;
  std::function<bool(const Record&)> matches;
};

// Per dimension, the predicates the grammar may put on it.
std::vector<std::vector<Predicate>> Grammar() {
  return {
      {{"region", "region = 'north'", [](const Record& r) { return r.region == "north"; }},
       {"region", "region != 'north'", [](const Record& r) { return r.region != "north"; }},
       {"region", "region IN ('east', 'north')",
        [](const Record& r) { return r.region == "north" || r.region == "east"; }}},
      {{"cohort_year", "cohort_year >= 2021",
        [](const Record& r) { return r.cohort_year >= 2021; }},
       {"cohort_year", "cohort_year < 2022", [](const Record& r) { return r.cohort_year < 2022; }},
       {"cohort_year", "cohort_year != 2020",
        [](const Record& r) { return r.cohort_year != 2020; }}},
      {{"completed", "completed = TRUE", [](const Record& r) { return r.completed; }},
       {"completed", "completed = FALSE", [](const Record& r) { return !r.completed; }}},
  };
}

const char* const kGroupBys[] = {"", "program", "region", "completed"};

struct Question {
  std::vector<int> choice;  // per dimension: index into its predicates, -1 for none
  int group_by = 0;
  bool histogram = false;  // COUNT(*) with HISTOGRAM, else with SUM
};

std::string Sql(const Question& q, const std::vector<std::vector<Predicate>>& grammar) {
  const std::string group = kGroupBys[q.group_by];
  std::string sql = "SELECT ";
  if (!group.empty()) absl::StrAppend(&sql, group, ", ");
  absl::StrAppend(&sql, "COUNT(*), ",
                  q.histogram ? "HISTOGRAM(sessions_attended, 0, 20, 4)" : "SUM(sessions_attended)",
                  " FROM program_outcomes");
  std::vector<std::string> where;
  for (size_t d = 0; d < q.choice.size(); ++d) {
    if (q.choice[d] >= 0) where.push_back(grammar[d][q.choice[d]].sql);
  }
  if (!where.empty()) absl::StrAppend(&sql, " WHERE ", absl::StrJoin(where, " AND "));
  if (!group.empty()) absl::StrAppend(&sql, " GROUP BY ", group);
  return sql + " PURPOSE 'program-evaluation'";
}

std::string CellOf(const Record& r, int group_by) {
  const std::string group = kGroupBys[group_by];
  if (group == "program") return r.program;
  if (group == "region") return r.region;
  if (group == "completed") return r.completed ? "true" : "false";
  return "";
}

std::string CellOf(const v1::Cell& cell) {
  if (cell.key_size() == 0) return "";
  const v1::Value& v = cell.key(0);
  if (v.kind_case() == v1::Value::kBoolValue) return v.bool_value() ? "true" : "false";
  return v.string_value();
}

int BinOf(const Record& r) {
  return std::clamp(static_cast<int>(std::floor(r.sessions / 5.0)), 0, kBins - 1);
}

// Ground truth of one question: per cell, its people and records, per bin
// its people; and per predicate the owners of the records it alone drops,
// overall, per cell and per bin.
struct Truth {
  std::map<std::string, std::set<std::string>> cell_people;
  std::map<std::string, int64_t> cell_records;
  std::map<std::string, std::vector<std::set<std::string>>> bin_people;
  std::vector<std::set<std::string>> dropped;  // per predicate
  std::vector<std::map<std::string, std::set<std::string>>> dropped_in_cell;
  std::vector<std::map<std::string, int64_t>> dropped_records_in_cell;
  std::vector<std::map<std::string, std::vector<std::set<std::string>>>> dropped_in_bin;
  std::vector<std::string> fields;  // per predicate
};

Truth Compute(const std::vector<Record>& records, const Question& q,
              const std::vector<std::vector<Predicate>>& grammar) {
  std::vector<const Predicate*> preds;
  Truth t;
  for (size_t d = 0; d < q.choice.size(); ++d) {
    if (q.choice[d] < 0) continue;
    preds.push_back(&grammar[d][q.choice[d]]);
    t.fields.push_back(grammar[d][q.choice[d]].field);
  }
  t.dropped.resize(preds.size());
  t.dropped_in_cell.resize(preds.size());
  t.dropped_records_in_cell.resize(preds.size());
  t.dropped_in_bin.resize(preds.size());
  for (const Record& r : records) {
    std::vector<size_t> failed;
    for (size_t i = 0; i < preds.size(); ++i) {
      if (!preds[i]->matches(r)) failed.push_back(i);
    }
    const std::string cell = CellOf(r, q.group_by);
    if (failed.empty()) {
      t.cell_people[cell].insert(r.subject);
      ++t.cell_records[cell];
      auto& bins = t.bin_people[cell];
      bins.resize(kBins);
      bins[BinOf(r)].insert(r.subject);
    } else if (failed.size() == 1) {
      const size_t i = failed[0];
      t.dropped[i].insert(r.subject);
      t.dropped_in_cell[i][cell].insert(r.subject);
      ++t.dropped_records_in_cell[i][cell];
      auto& bins = t.dropped_in_bin[i][cell];
      bins.resize(kBins);
      bins[BinOf(r)].insert(r.subject);
    }
  }
  return t;
}

bool Handful(size_t n) { return n > 0 && n < static_cast<size_t>(kK); }

// The rule since issue 8: overall, and in every cell (and, for histograms,
// bin) non-empty in the answer.
bool RuleRefuses(const Truth& t, bool histogram) {
  for (size_t i = 0; i < t.dropped.size(); ++i) {
    if (Handful(t.dropped[i].size())) return true;
    for (const auto& [cell, people] : t.dropped_in_cell[i]) {
      if (!t.cell_people.count(cell)) continue;
      if (Handful(people.size())) return true;
      if (!histogram) continue;
      const auto& bins = t.dropped_in_bin[i].at(cell);
      for (int b = 0; b < kBins; ++b) {
        if (!t.bin_people.at(cell)[b].empty() && Handful(bins[b].size())) return true;
      }
    }
  }
  return false;
}

// The rule before issue 8: people a predicate alone removes entirely.
bool OldRuleRefuses(const Truth& t) {
  std::set<std::string> answered;
  for (const auto& [cell, people] : t.cell_people) answered.insert(people.begin(), people.end());
  for (const std::set<std::string>& dropped : t.dropped) {
    size_t removed = 0;
    for (const std::string& s : dropped) removed += !answered.count(s);
    if (Handful(removed)) return true;
  }
  return false;
}

class DifferencingSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::NodeConfig config = partner_.Config();
    v1::Agreement agreement = OpenAgreement("search", "foundation");
    agreement.mutable_disclosure()->set_min_subjects(kK);
    agreement.mutable_disclosure()->set_repeat_limit(100000);
    agreement.mutable_disclosure()->set_repeat_window_seconds(60);
    *config.add_agreements() = agreement;
    // The search is a patient asker whose questions are often refused; the
    // refusal throttle (issue 9) would turn it away before it is done.
    config.mutable_limits()->set_refusals_per_window(1 << 20);
    ASSERT_OK(partner_.Start(config));

    records_ = Generate();
    std::string csv = kProgramOutcomesCsvHeader;
    std::set<std::string> people;
    for (const Record& r : records_) {
      absl::StrAppend(&csv, r.subject, ",", r.program, ",", r.region, ",", r.cohort_year, ",30,",
                      r.completed ? "true" : "false", ",50,", r.sessions, ",0\n");
      people.insert(r.subject);
    }
    ASSERT_OK(partner_.Load(csv, static_cast<int64_t>(records_.size()), people));
  }

  TempDir tmp_{"differencing"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
  std::vector<Record> records_;
};

const v1::Cell* Released(const v1::AggregateResult& r, const std::string& cell) {
  for (const v1::Cell& c : r.cells()) {
    if (!c.withheld() && CellOf(c) == cell) return &c;
  }
  return nullptr;
}

bool BinReleased(const v1::Cell& c, int bin) {
  const v1::AggregateValue& v = c.values(1);
  return std::find(v.withheld_bins().begin(), v.withheld_bins().end(), bin) ==
         v.withheld_bins().end();
}

TEST_F(DifferencingSearchTest, NoPairOfAnswersDiffersByAFigureOverFewerThanKPeople) {
  const std::vector<std::vector<Predicate>> grammar = Grammar();
  // Every question of the grammar, asked once.
  std::map<std::string, absl::StatusOr<v1::AggregateResult>> answers;
  std::vector<Question> questions;
  for (int r = -1; r < 3; ++r) {
    for (int c = -1; c < 3; ++c) {
      for (int d = -1; d < 2; ++d) {
        for (int g = 0; g < 4; ++g) {
          for (bool histogram : {false, true}) questions.push_back({{r, c, d}, g, histogram});
        }
      }
    }
  }
  int refused = 0;
  for (const Question& q : questions) {
    const std::string sql = Sql(q, grammar);
    ASSERT_OK_AND_ASSIGN(v1::AggregateQuery query, ParseSql(sql));
    absl::StatusOr<v1::AggregateResult> answer = partner_.peer().Aggregate(query);
    const Truth truth = Compute(records_, q, grammar);
    if (RuleRefuses(truth, q.histogram)) {
      EXPECT_THAT(answer.status(), StatusIs(absl::StatusCode::kPermissionDenied,
                                            ::testing::HasSubstr("predicate-removal")))
          << sql;
      ++refused;
    } else {
      EXPECT_OK(answer.status()) << sql;
    }
    answers.emplace(sql, std::move(answer));
  }

  int pairs_compared = 0, cells_compared = 0, nonzero_differences = 0, bins_compared = 0;
  int old_rule_leaks = 0;
  for (const Question& b : questions) {
    for (size_t d = 0; d < b.choice.size(); ++d) {
      if (b.choice[d] < 0) continue;
      Question a = b;
      a.choice[d] = -1;
      const absl::StatusOr<v1::AggregateResult>& with = answers.at(Sql(b, grammar));
      const absl::StatusOr<v1::AggregateResult>& without = answers.at(Sql(a, grammar));
      if (!without.ok()) continue;
      const Truth truth = Compute(records_, b, grammar);
      // The index of the predicate on dimension d among b's predicates.
      size_t p = 0;
      for (size_t e = 0; e < d; ++e) p += b.choice[e] >= 0;

      if (!with.ok()) {
        // Would the rule before issue 8 have answered b with a cell that
        // differs from a's by 1..k-1 people and holds k people in both?
        if (OldRuleRefuses(truth)) continue;
        for (const auto& [cell, people] : truth.dropped_in_cell[p]) {
          if (!Handful(people.size())) continue;
          auto in_b = truth.cell_people.find(cell);
          if (in_b == truth.cell_people.end() || in_b->second.size() < kK) continue;
          if (Released(*without, cell) != nullptr) ++old_rule_leaks;
        }
        continue;
      }
      ++pairs_compared;
      for (const v1::Cell& cell : with->cells()) {
        if (cell.withheld()) continue;
        const std::string key = CellOf(cell);
        const v1::Cell* other = Released(*without, key);
        if (other == nullptr) continue;
        ++cells_compared;
        const auto people = truth.dropped_in_cell[p].find(key);
        const size_t dropped = people == truth.dropped_in_cell[p].end() ? 0 : people->second.size();
        const int64_t dropped_records = dropped == 0 ? 0 : truth.dropped_records_in_cell[p].at(key);
        // The ground truth is the node's: the COUNT difference is the dropped records.
        EXPECT_EQ(other->values(0).value() - cell.values(0).value(), dropped_records)
            << Sql(b, grammar) << " cell " << key;
        if (dropped_records > 0) ++nonzero_differences;
        EXPECT_FALSE(Handful(dropped))
            << Sql(a, grammar) << " minus " << Sql(b, grammar) << " in cell '" << key
            << "' is a figure over " << dropped << " people";
        if (!b.histogram || dropped == 0) continue;
        const auto& bins = truth.dropped_in_bin[p].at(key);
        for (int bin = 0; bin < kBins; ++bin) {
          if (!BinReleased(cell, bin) || !BinReleased(*other, bin)) continue;
          ++bins_compared;
          EXPECT_FALSE(Handful(bins[bin].size()))
              << Sql(a, grammar) << " minus " << Sql(b, grammar) << " in cell '" << key << "' bin "
              << bin << " is a figure over " << bins[bin].size() << " people";
        }
      }
    }
  }
  // Not vacuous: the search compared many pairs with real differences, and
  // met pairs that the old rule would have let leak.
  EXPECT_GE(questions.size(), 300u);
  EXPECT_GE(refused, 10);
  EXPECT_GE(pairs_compared, 20);
  EXPECT_GE(cells_compared, 40);
  EXPECT_GE(nonzero_differences, 20);
  EXPECT_GE(bins_compared, 20);
  EXPECT_GE(old_rule_leaks, 1);
  std::cout << "questions " << questions.size() << " refused " << refused << " pairs "
            << pairs_compared << " cells " << cells_compared << " nonzero " << nonzero_differences
            << " bins " << bins_compared << " old-rule leaks " << old_rule_leaks << "\n";
}

}  // namespace
}  // namespace fedshare::testing
