#include "node/federation/combine.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace fedshare::federation {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;

template <typename T>
T Parse(const std::string& text) {
  T message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

v1::Value Str(const std::string& s) {
  v1::Value v;
  v.set_string_value(s);
  return v;
}

// SELECT program, COUNT(*), SUM(score), AVG(score), VARIANCE(score),
//        STDDEV(score), COUNT(DISTINCT subject) ... GROUP BY program
v1::AggregateQuery StatsQuery() {
  return Parse<v1::AggregateQuery>(R"pb(
    query_id: "q1"
    dataset: "program_outcomes"
    purpose: "program-evaluation"
    group_by: "program"
    aggregates { kind: COUNT }
    aggregates { kind: SUM field: "score" }
    aggregates { kind: AVG field: "score" }
    aggregates { kind: VARIANCE field: "score" }
    aggregates { kind: STDDEV field: "score" }
    aggregates { kind: COUNT_SUBJECTS }
  )pb");
}

// What one node reports for `values` (one record per subject), computed as
// the engine does: sufficient statistics plus its own value per aggregate.
v1::Cell NodeCell(const std::string& program, const std::vector<double>& values) {
  double n = values.size(), s = 0, q = 0;
  for (double v : values) {
    s += v;
    q += v * v;
  }
  const double variance = n >= 2 ? (q - s * s / n) / (n - 1) : 0;
  v1::Cell cell;
  *cell.add_key() = Str(program);
  auto add = [&](double value) {
    v1::AggregateValue* out = cell.add_values();
    out->set_value(value);
    out->set_count(n);
    out->set_sum(s);
    out->set_sum_squares(q);
  };
  add(n);
  add(s);
  add(s / n);
  add(variance);
  add(std::sqrt(variance));
  add(n);
  return cell;
}

v1::AggregateResult Answer(const std::string& org, std::vector<v1::Cell> cells) {
  v1::AggregateResult r;
  r.set_org_id(org);
  r.add_columns("program");
  for (const char* c : {"count", "sum(score)", "avg(score)", "variance(score)", "stddev(score)",
                        "count_subjects"}) {
    r.add_columns(c);
  }
  for (v1::Cell& c : cells) *r.add_cells() = std::move(c);
  return r;
}

v1::Cell WithheldCell(const std::string& program, const std::string& rule) {
  v1::Cell cell;
  *cell.add_key() = Str(program);
  cell.set_withheld(true);
  cell.set_withheld_rule(rule);
  return cell;
}

// The two-pass textbook computation over the union of all raw values.
struct Pooled {
  double n = 0, mean = 0, variance = 0;
};
Pooled PooledOver(const std::vector<std::vector<double>>& parts) {
  std::vector<double> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  Pooled out;
  out.n = all.size();
  for (double v : all) out.mean += v / out.n;
  for (double v : all) out.variance += (v - out.mean) * (v - out.mean);
  out.variance = out.n >= 2 ? out.variance / (out.n - 1) : 0;
  return out;
}

TEST(CombineTest, TwoPartnersMatchHandComputedFigures) {
  // arts: {1, 2, 3} at a and {4, 5} at b -> n 5, sum 15, mean 3,
  // sample variance ((1-3)²+(2-3)²+0+(4-3)²+(5-3)²)/4 = 10/4 = 2.5.
  const std::vector<v1::AggregateResult> answers = {
      Answer("a", {NodeCell("arts", {1, 2, 3})}),
      Answer("b", {NodeCell("arts", {4, 5})}),
  };
  v1::AggregateResult r = CombineResults(StatsQuery(), answers, 2);
  EXPECT_EQ(r.query_id(), "q1");
  ASSERT_EQ(r.cells_size(), 1);
  const v1::Cell& c = r.cells(0);
  EXPECT_EQ(c.partners(), 2);
  EXPECT_FALSE(c.partial());
  EXPECT_FALSE(c.withheld());
  ASSERT_EQ(c.values_size(), 6);
  EXPECT_DOUBLE_EQ(c.values(0).value(), 5);
  EXPECT_DOUBLE_EQ(c.values(1).value(), 15);
  EXPECT_DOUBLE_EQ(c.values(2).value(), 3);
  EXPECT_DOUBLE_EQ(c.values(3).value(), 2.5);
  EXPECT_DOUBLE_EQ(c.values(4).value(), std::sqrt(2.5));
  EXPECT_DOUBLE_EQ(c.values(5).value(), 5);
  // The statistics travel on, so a further combination stays exact.
  EXPECT_DOUBLE_EQ(c.values(3).count(), 5);
  EXPECT_DOUBLE_EQ(c.values(3).sum(), 15);
  EXPECT_DOUBLE_EQ(c.values(3).sum_squares(), 55);
}

TEST(CombineTest, ThreePartnersEqualThePooledComputationOnTheUnion) {
  const std::vector<double> a_arts = {71.5, 80, 64.25, 90, 55.5, 77};
  const std::vector<double> b_arts = {60, 62.5, 99, 81.75};
  const std::vector<double> c_arts = {45, 88.5, 70, 70, 66.25, 93, 58};
  const std::vector<double> a_sport = {10, 20, 30};
  const std::vector<double> c_sport = {5, 15, 25, 35, 45};
  const std::vector<v1::AggregateResult> answers = {
      Answer("a", {NodeCell("arts", a_arts), NodeCell("sport", a_sport)}),
      Answer("b", {NodeCell("arts", b_arts)}),
      Answer("c", {NodeCell("sport", c_sport), NodeCell("arts", c_arts)}),
  };
  v1::AggregateResult r = CombineResults(StatsQuery(), answers, 3);
  ASSERT_EQ(r.cells_size(), 2);
  EXPECT_THAT(r.columns(), ElementsAre("program", "count", "sum(score)", "avg(score)",
                                       "variance(score)", "stddev(score)", "count_subjects"));

  const v1::Cell& arts = r.cells(0);
  EXPECT_EQ(arts.key(0).string_value(), "arts");
  const Pooled p_arts = PooledOver({a_arts, b_arts, c_arts});
  EXPECT_EQ(arts.partners(), 3);
  EXPECT_DOUBLE_EQ(arts.values(0).value(), p_arts.n);
  EXPECT_THAT(arts.values(2).value(), DoubleNear(p_arts.mean, 1e-9));
  EXPECT_THAT(arts.values(3).value(), DoubleNear(p_arts.variance, 1e-9));
  EXPECT_THAT(arts.values(4).value(), DoubleNear(std::sqrt(p_arts.variance), 1e-9));

  const v1::Cell& sport = r.cells(1);
  EXPECT_EQ(sport.key(0).string_value(), "sport");
  const Pooled p_sport = PooledOver({a_sport, c_sport});
  EXPECT_EQ(sport.partners(), 2);
  // b has no sport group and withheld nothing: the cell is complete.
  EXPECT_FALSE(sport.partial());
  EXPECT_DOUBLE_EQ(sport.values(0).value(), 8);
  EXPECT_DOUBLE_EQ(sport.values(1).value(), 185);
  EXPECT_THAT(sport.values(2).value(), DoubleNear(p_sport.mean, 1e-9));
  EXPECT_THAT(sport.values(3).value(), DoubleNear(p_sport.variance, 1e-9));
  // COUNT(DISTINCT subject) adds across partners (pseudonyms are per org).
  EXPECT_DOUBLE_EQ(sport.values(5).value(), 8);
}

TEST(CombineTest, VarianceOfFewerThanTwoValuesIsZero) {
  const std::vector<v1::AggregateResult> answers = {Answer("a", {NodeCell("arts", {42})})};
  v1::AggregateResult r = CombineResults(StatsQuery(), answers, 3);
  ASSERT_EQ(r.cells_size(), 1);
  EXPECT_DOUBLE_EQ(r.cells(0).values(2).value(), 42);
  EXPECT_DOUBLE_EQ(r.cells(0).values(3).value(), 0);
  EXPECT_DOUBLE_EQ(r.cells(0).values(4).value(), 0);
}

TEST(CombineTest, OnePerturbedPartnerMakesTheCombinedCountsPerturbed) {
  std::vector<v1::AggregateResult> answers = {Answer("a", {NodeCell("arts", {42})}),
                                              Answer("b", {NodeCell("arts", {40})})};
  answers[0].set_count_precision(v1::AggregateResult::EXACT);
  answers[1].set_count_precision(v1::AggregateResult::EXACT);
  EXPECT_EQ(CombineResults(StatsQuery(), answers, 2).count_precision(), v1::AggregateResult::EXACT);
  for (int perturbed : {0, 1}) {
    std::vector<v1::AggregateResult> mixed = answers;
    mixed[perturbed].set_count_precision(v1::AggregateResult::PERTURBED);
    EXPECT_EQ(CombineResults(StatsQuery(), mixed, 2).count_precision(),
              v1::AggregateResult::PERTURBED)
        << perturbed;
  }
}

TEST(CombineTest, ListedWithheldCellMakesReleasedCellPartial) {
  std::vector<v1::AggregateResult> answers = {
      Answer("a", {NodeCell("arts", {1, 2, 3}), NodeCell("music", {7, 8})}),
      Answer("b", {NodeCell("arts", {4, 5}), WithheldCell("music", "min-subjects")}),
  };
  answers[1].add_withholdings()->set_rule("min-subjects");
  answers[1].mutable_withholdings(0)->set_cells(1);
  v1::AggregateResult r = CombineResults(StatsQuery(), answers, 2);
  ASSERT_EQ(r.cells_size(), 2);
  EXPECT_EQ(r.cells(0).key(0).string_value(), "arts");
  EXPECT_FALSE(r.cells(0).partial());
  const v1::Cell& music = r.cells(1);
  EXPECT_EQ(music.key(0).string_value(), "music");
  EXPECT_FALSE(music.withheld());  // someone released it ...
  EXPECT_TRUE(music.partial());    // ... but not everyone's share is in it
  EXPECT_EQ(music.partners(), 1);
  EXPECT_DOUBLE_EQ(music.values(1).value(), 15);
  ASSERT_EQ(r.withholdings_size(), 1);
  EXPECT_EQ(r.withholdings(0).cells(), 1);
}

TEST(CombineTest, UnlistedWithholdingMakesMissingCellsPartial) {
  std::vector<v1::AggregateResult> answers = {
      Answer("a", {NodeCell("arts", {1, 2}), NodeCell("music", {3, 4})}),
      Answer("b", {NodeCell("arts", {5, 6})}),
      Answer("c", {NodeCell("arts", {7, 8}), NodeCell("music", {9, 10})}),
  };
  answers[1].set_unlisted_withheld_cells(2);  // b may hold a hidden music share
  answers[2].set_unlisted_withheld_cells(1);  // c released both keys: no effect
  v1::AggregateResult r = CombineResults(StatsQuery(), answers, 3);
  ASSERT_EQ(r.cells_size(), 2);
  EXPECT_FALSE(r.cells(0).partial());  // arts: all three released it
  EXPECT_EQ(r.cells(0).partners(), 3);
  EXPECT_TRUE(r.cells(1).partial());  // music: b lacks it and withheld something
  EXPECT_EQ(r.cells(1).partners(), 2);
  EXPECT_EQ(r.unlisted_withheld_cells(), 3);
}

TEST(CombineTest, CellWithheldEverywhereStaysListedAndWithholdingsMergeByRule) {
  std::vector<v1::AggregateResult> answers = {
      Answer("a", {NodeCell("arts", {1, 2}), WithheldCell("music", "min-subjects")}),
      Answer("b", {NodeCell("arts", {3, 4}), WithheldCell("music", "dominance"),
                   WithheldCell("dance", "min-subjects")}),
  };
  answers[0].add_withholdings()->CopyFrom(Parse<v1::Withholding>(R"pb(rule: "min-subjects"
                                                                      reason: "fewer than 10"
                                                                      cells: 1)pb"));
  answers[1].add_withholdings()->CopyFrom(Parse<v1::Withholding>(R"pb(rule: "min-subjects"
                                                                      reason: "fewer than 5"
                                                                      cells: 1)pb"));
  answers[1].add_withholdings()->CopyFrom(Parse<v1::Withholding>(R"pb(rule: "dominance"
                                                                      reason: "one dominates"
                                                                      cells: 1)pb"));
  v1::AggregateResult r = CombineResults(StatsQuery(), answers, 2);
  ASSERT_EQ(r.cells_size(), 3);
  EXPECT_EQ(r.cells(0).key(0).string_value(), "arts");
  EXPECT_FALSE(r.cells(0).withheld());
  // Withheld cells come after released ones, sorted by key.
  EXPECT_EQ(r.cells(1).key(0).string_value(), "dance");
  EXPECT_TRUE(r.cells(1).withheld());
  EXPECT_EQ(r.cells(1).withheld_rule(), "min-subjects");
  EXPECT_EQ(r.cells(2).key(0).string_value(), "music");
  EXPECT_TRUE(r.cells(2).withheld());
  EXPECT_EQ(r.cells(2).withheld_rule(), "min-subjects,dominance");
  EXPECT_EQ(r.cells(2).partners(), 0);
  EXPECT_EQ(r.cells(2).values_size(), 0);  // no figures for a withheld cell
  ASSERT_EQ(r.withholdings_size(), 2);
  EXPECT_EQ(r.withholdings(0).rule(), "dominance");
  EXPECT_EQ(r.withholdings(0).cells(), 1);
  EXPECT_EQ(r.withholdings(1).rule(), "min-subjects");
  EXPECT_EQ(r.withholdings(1).cells(), 2);
  EXPECT_EQ(r.withholdings(1).reason(), "fewer than 10");
}

TEST(CombineTest, HistogramBinsAddAndWithheldBinsPropagate) {
  v1::AggregateQuery query = Parse<v1::AggregateQuery>(R"pb(
    aggregates { kind: HISTOGRAM field: "age" lo: 0 hi: 40 bins: 4 }
  )pb");
  std::vector<v1::AggregateResult> answers = {
      Parse<v1::AggregateResult>(R"pb(
        columns: "histogram(age)"
        cells {
          values {
            value: 30
            count: 30
            bins: [ 10, 5, 15, 0 ]
            withheld_bins: 3
          }
        }
      )pb"),
      Parse<v1::AggregateResult>(R"pb(
        columns: "histogram(age)"
        cells {
          values {
            value: 40
            count: 40
            bins: [ 12, 0, 20, 8 ]
            withheld_bins: 1
          }
        }
      )pb"),
      Parse<v1::AggregateResult>(R"pb(
        columns: "histogram(age)"
        cells {
          values {
            value: 11
            count: 11
            bins: [ 1, 2, 3, 5 ]
          }
        }
      )pb"),
  };
  v1::AggregateResult r = CombineResults(query, answers, 3);
  ASSERT_EQ(r.cells_size(), 1);
  const v1::AggregateValue& h = r.cells(0).values(0);
  EXPECT_THAT(h.bins(), ElementsAre(23, 7, 38, 13));
  EXPECT_THAT(h.withheld_bins(), ElementsAre(1, 3));
  EXPECT_DOUBLE_EQ(h.value(), 81);
  EXPECT_DOUBLE_EQ(h.count(), 81);
  EXPECT_TRUE(r.cells(0).partial());
  EXPECT_EQ(r.cells(0).partners(), 3);
}

TEST(CombineTest, HistogramWithoutWithheldBinsIsComplete) {
  v1::AggregateQuery query = Parse<v1::AggregateQuery>(R"pb(
    aggregates { kind: HISTOGRAM field: "age" lo: 0 hi: 20 bins: 2 }
  )pb");
  std::vector<v1::AggregateResult> answers = {
      Parse<v1::AggregateResult>(R"pb(cells {
                                        values {
                                          value: 3
                                          count: 3
                                          bins: [ 1, 2 ]
                                        }
                                      })pb"),
      Parse<v1::AggregateResult>(R"pb(cells {
                                        values {
                                          value: 4
                                          count: 4
                                          bins: [ 4, 0 ]
                                        }
                                      })pb"),
  };
  v1::AggregateResult r = CombineResults(query, answers, 2);
  ASSERT_EQ(r.cells_size(), 1);
  EXPECT_THAT(r.cells(0).values(0).bins(), ElementsAre(5, 2));
  EXPECT_FALSE(r.cells(0).partial());
  // No answer named the columns, so they come from the query.
  EXPECT_THAT(r.columns(), ElementsAre("histogram(age)"));
}

TEST(CombineTest, NoAnswersGiveAnEmptyResultWithColumnsFromTheQuery) {
  v1::AggregateResult r = CombineResults(StatsQuery(), {}, 3);
  EXPECT_EQ(r.cells_size(), 0);
  EXPECT_EQ(r.withholdings_size(), 0);
  EXPECT_EQ(r.unlisted_withheld_cells(), 0);
  EXPECT_THAT(r.columns(), ElementsAre("program", "count", "sum(score)", "avg(score)",
                                       "variance(score)", "stddev(score)", "count_subjects"));
}

TEST(CombineTest, KeysMatchExactlyAndSortByKindThenValue) {
  v1::AggregateQuery query = Parse<v1::AggregateQuery>(R"pb(
    group_by: "year"
    aggregates { kind: COUNT }
  )pb");
  std::vector<v1::AggregateResult> answers = {
      Parse<v1::AggregateResult>(R"pb(
        cells {
          key { int_value: 2021 }
          values { value: 10 count: 10 }
        }
        cells {
          key { int_value: 2020 }
          values { value: 11 count: 11 }
        }
      )pb"),
      Parse<v1::AggregateResult>(R"pb(
        cells {
          key { int_value: 2020 }
          values { value: 12 count: 12 }
        }
        cells {
          key { double_value: 2020 }
          values { value: 13 count: 13 }
        }
        cells {
          key { string_value: "2020" }
          values { value: 14 count: 14 }
        }
      )pb"),
  };
  v1::AggregateResult r = CombineResults(query, answers, 2);
  ASSERT_EQ(r.cells_size(), 4);
  EXPECT_EQ(r.cells(0).key(0).int_value(), 2020);
  EXPECT_DOUBLE_EQ(r.cells(0).values(0).value(), 23);
  EXPECT_EQ(r.cells(0).partners(), 2);
  EXPECT_EQ(r.cells(1).key(0).int_value(), 2021);
  EXPECT_EQ(r.cells(2).key(0).double_value(), 2020);
  EXPECT_DOUBLE_EQ(r.cells(2).values(0).value(), 13);
  EXPECT_EQ(r.cells(3).key(0).string_value(), "2020");
}

TEST(CombineTest, MultiFieldKeysAndNoGroupBy) {
  v1::AggregateQuery query = Parse<v1::AggregateQuery>(R"pb(
    aggregates { kind: SUM field: "x" }
  )pb");
  std::vector<v1::AggregateResult> answers = {
      Parse<v1::AggregateResult>(R"pb(cells { values { value: 2.5 count: 1 sum: 2.5 } })pb"),
      Parse<v1::AggregateResult>(R"pb(cells { values { value: 4 count: 2 sum: 4 } })pb"),
  };
  v1::AggregateResult r = CombineResults(query, answers, 2);
  ASSERT_EQ(r.cells_size(), 1);
  EXPECT_EQ(r.cells(0).key_size(), 0);
  EXPECT_DOUBLE_EQ(r.cells(0).values(0).value(), 6.5);
  EXPECT_DOUBLE_EQ(r.cells(0).values(0).count(), 3);

  v1::AggregateQuery by_two = Parse<v1::AggregateQuery>(R"pb(
    group_by: [ "a", "b" ]
    aggregates { kind: COUNT }
  )pb");
  answers = {
      Parse<v1::AggregateResult>(R"pb(
        cells {
          key { string_value: "x" }
          key { bool_value: true }
          values { value: 1 }
        }
        cells {
          key { string_value: "x" }
          key { bool_value: false }
          values { value: 2 }
        }
      )pb"),
      Parse<v1::AggregateResult>(R"pb(
        cells {
          key { string_value: "x" }
          key { bool_value: true }
          values { value: 4 }
        }
      )pb"),
  };
  r = CombineResults(by_two, answers, 2);
  ASSERT_EQ(r.cells_size(), 2);
  EXPECT_FALSE(r.cells(0).key(1).bool_value());
  EXPECT_DOUBLE_EQ(r.cells(0).values(0).value(), 2);
  EXPECT_TRUE(r.cells(1).key(1).bool_value());
  EXPECT_DOUBLE_EQ(r.cells(1).values(0).value(), 5);
}

TEST(CombineTest, NoisyFiguresAddTheirVariancesIntoTheInterval) {
  v1::AggregateQuery query = Parse<v1::AggregateQuery>(R"pb(
    aggregates { kind: COUNT }
    aggregates { kind: AVG field: "x" }
    aggregates { kind: HISTOGRAM field: "x" lo: 0 hi: 10 bins: 2 }
  )pb");
  std::vector<v1::AggregateResult> answers = {
      Parse<v1::AggregateResult>(R"pb(cells {
                                        values {
                                          value: 10
                                          count: 10
                                          noise { stddev: 3 }
                                        }
                                        values {
                                          value: 2
                                          count: 10
                                          sum: 20
                                          noise { stddev: 1 }
                                        }
                                        values {
                                          value: 9
                                          bins: [ 4, 5 ]
                                          bin_noise { stddev: 1 }
                                          bin_noise { stddev: 2 }
                                        }
                                      })pb"),
      Parse<v1::AggregateResult>(R"pb(cells {
                                        values {
                                          value: 20
                                          count: 20
                                          noise { stddev: 4 }
                                        }
                                        values {
                                          value: 5
                                          count: 30
                                          sum: 150
                                          noise { stddev: 1 }
                                        }
                                        values {
                                          value: 3
                                          bins: [ 1, 2 ]
                                          bin_noise { stddev: 2 }
                                          bin_noise { stddev: 1 }
                                        }
                                      })pb"),
  };
  v1::AggregateResult r = CombineResults(query, answers, 2);
  ASSERT_EQ(r.cells_size(), 1);
  const v1::AggregateValue& count = r.cells(0).values(0);
  EXPECT_DOUBLE_EQ(count.value(), 30);
  EXPECT_DOUBLE_EQ(count.noise().stddev(), 5);  // sqrt(3^2 + 4^2)
  EXPECT_DOUBLE_EQ(count.noise().ci_low(), 30 - 1.96 * 5);
  EXPECT_DOUBLE_EQ(count.noise().ci_high(), 30 + 1.96 * 5);
  const v1::AggregateValue& avg = r.cells(0).values(1);
  EXPECT_DOUBLE_EQ(avg.value(), 170.0 / 40);
  // sqrt(10^2 * 1 + 30^2 * 1) / 40
  EXPECT_NEAR(avg.noise().stddev(), std::sqrt(1000.0) / 40, 1e-12);
  const v1::AggregateValue& hist = r.cells(0).values(2);
  ASSERT_EQ(hist.bin_noise_size(), 2);
  EXPECT_NEAR(hist.bin_noise(0).stddev(), std::sqrt(5.0), 1e-12);
  EXPECT_NEAR(hist.bin_noise(1).stddev(), std::sqrt(5.0), 1e-12);
}

TEST(CombineTest, ExactFiguresCarryNoNoise) {
  v1::AggregateQuery query = Parse<v1::AggregateQuery>(R"pb(aggregates { kind: COUNT })pb");
  std::vector<v1::AggregateResult> answers = {
      Parse<v1::AggregateResult>(R"pb(cells { values { value: 12 count: 12 } })pb")};
  EXPECT_FALSE(CombineResults(query, answers, 1).cells(0).values(0).has_noise());
}

TEST(CombineTest, CellCountsOfManyPartnersAddWithoutOverflowCappedAtTheLargest) {
  std::vector<v1::AggregateResult> answers = {Answer("a", {}), Answer("b", {}), Answer("c", {})};
  for (v1::AggregateResult& a : answers) {
    a.set_unlisted_withheld_cells(std::numeric_limits<int32_t>::max());
    v1::Withholding* w = a.add_withholdings();
    w->set_rule("min-subjects");
    w->set_cells(std::numeric_limits<int32_t>::max() - 1);
  }
  v1::AggregateResult r = CombineResults(StatsQuery(), answers, 3);
  EXPECT_EQ(r.unlisted_withheld_cells(), std::numeric_limits<int32_t>::max());
  ASSERT_EQ(r.withholdings_size(), 1);
  EXPECT_EQ(r.withholdings(0).cells(), std::numeric_limits<int32_t>::max());
  answers[0].set_unlisted_withheld_cells(5);
  answers[1].set_unlisted_withheld_cells(6);
  answers[0].mutable_withholdings(0)->set_cells(2);
  answers[1].mutable_withholdings(0)->set_cells(3);
  r = CombineResults(StatsQuery(), {answers[0], answers[1]}, 2);
  EXPECT_EQ(r.unlisted_withheld_cells(), 11);
  EXPECT_EQ(r.withholdings(0).cells(), 5);
}

TEST(AnswerFitsTest, WhatTheEngineSendsFitsAndEachMisfitIsNamed) {
  const v1::AggregateQuery stats = StatsQuery();
  v1::AggregateResult honest =
      Answer("a", {NodeCell("arts", {1, 2}), WithheldCell("music", "min-subjects")});
  honest.set_unlisted_withheld_cells(2);
  EXPECT_TRUE(AnswerFits(stats, honest).ok());
  EXPECT_TRUE(AnswerFits(stats, Answer("a", {})).ok());

  auto misfit = [&](const std::function<void(v1::AggregateResult&)>& alter) {
    v1::AggregateResult r = honest;
    alter(r);
    absl::Status fits = AnswerFits(stats, r);
    EXPECT_EQ(fits.code(), absl::StatusCode::kInvalidArgument);
    return std::string(fits.message());
  };
  EXPECT_EQ(misfit([](auto& r) { r.mutable_cells(0)->mutable_values(2)->set_sum(NAN); }),
            "cell 0, aggregate 2: a figure is not a finite number");
  EXPECT_EQ(
      misfit([](auto& r) { r.mutable_cells(0)->mutable_values(3)->set_sum_squares(-INFINITY); }),
      "cell 0, aggregate 3: a figure is not a finite number");
  EXPECT_EQ(misfit([](auto& r) { r.mutable_cells(0)->mutable_values()->RemoveLast(); }),
            "cell 0 has 5 values for 6 aggregates");
  EXPECT_EQ(misfit([](auto& r) { r.mutable_cells(1)->clear_key(); }),
            "cell 1 has 0 key values for 1 group-by fields");
  EXPECT_EQ(misfit([](auto& r) { r.set_unlisted_withheld_cells(-2); }),
            "unlisted_withheld_cells is -2");
  EXPECT_EQ(misfit([](auto& r) { r.mutable_cells(0)->mutable_values(1)->add_bins(1); }),
            "cell 0, aggregate 1: 1 histogram bins where the question asks for 0");
  EXPECT_EQ(misfit([](auto& r) {
              r.mutable_cells(0)->mutable_values(0)->mutable_noise()->set_stddev(-1);
            }),
            "cell 0, aggregate 0: its noise's spread is not a finite, non-negative number");
  // A withheld cell's figures are not added, so they are not checked.
  v1::AggregateResult withheld_with_figures = honest;
  withheld_with_figures.mutable_cells(1)->add_values()->set_value(NAN);
  EXPECT_TRUE(AnswerFits(stats, withheld_with_figures).ok());

  // HISTOGRAM: bins up to the question's, withheld bins among them, noise
  // per bin at most.
  const v1::AggregateQuery histogram = Parse<v1::AggregateQuery>(R"pb(
    aggregates { kind: HISTOGRAM field: "score" lo: 0 hi: 10 bins: 2 }
  )pb");
  v1::AggregateResult h = Parse<v1::AggregateResult>(R"pb(
    cells {
      values {
        value: 5
        count: 5
        bins: [ 3, 2 ]
        withheld_bins: [ 1 ]
      }
    }
  )pb");
  EXPECT_TRUE(AnswerFits(histogram, h).ok());
  v1::AggregateResult more = h;
  more.mutable_cells(0)->mutable_values(0)->add_bins(1);
  EXPECT_EQ(AnswerFits(histogram, more).message(),
            "cell 0, aggregate 0: 3 histogram bins where the question asks for 2");
  v1::AggregateResult no_bin = h;
  no_bin.mutable_cells(0)->mutable_values(0)->add_withheld_bins(-1);
  EXPECT_EQ(AnswerFits(histogram, no_bin).message(),
            "cell 0, aggregate 0: withheld bin -1 is no bin");
  v1::AggregateResult noisy = h;
  for (int b = 0; b < 3; ++b) noisy.mutable_cells(0)->mutable_values(0)->add_bin_noise();
  EXPECT_EQ(AnswerFits(histogram, noisy).message(),
            "cell 0, aggregate 0: more bin noise than bins");
  v1::AggregateResult nan_bin = h;
  nan_bin.mutable_cells(0)->mutable_values(0)->set_bins(0, NAN);
  EXPECT_EQ(AnswerFits(histogram, nan_bin).message(),
            "cell 0, aggregate 0: a histogram bin is not a finite number");
}

}  // namespace
}  // namespace fedshare::federation
