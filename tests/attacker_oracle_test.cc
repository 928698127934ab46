// Issue 8: an attacker oracle for exact-mode disclosure control.
//
// For generated 2- and 3-way tables (many seeds, skewed sizes, people with 1-5
// records spread over several cells), the attacker takes as known the
// released cells of the answer and of every lower-dimensional question over
// the same filters (the same question grouped by fewer fields, or none), and
// computes by linear programming over non-negative cells the feasible
// interval of each withheld cell's COUNT(*) and, for cells withheld for
// dominance, its SUM. The solver is GLPK, independent of the node's own audit
// (COIN-OR CLP). Protected, in the spirit of tau-ARGUS protection intervals:
// the COUNT interval is at least k wide; the SUM interval reaches at least 10%
// of the true value below and above it. Every cell withheld by a primary rule
// (min-subjects, dominance) must be protected; a cell withheld only to
// protect others holds at least k people and passes dominance, so it needs no
// interval.
//
// A test of the test: the same oracle over the rules as they were before
// issue 8 (pools counted in person-cells, only the grand total protected)
// finds unprotected cells.
//
// The sweep applies policy::ApplyCellRules to figures computed in the test;
// a few seeds also go through a real node and the real client.
#include <glpk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "policy/disclosure.h"
#include "query/sql.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;

constexpr int kK = 10;  // the default min_subjects

struct Record {
  uint32_t person;
  std::vector<int> dims;  // one value per dimension
  double measure;         // non-negative
};

struct Table {
  std::vector<int> sizes;  // values per dimension
  std::vector<Record> records;
};

// Skewed sizes: value v of a dimension is drawn with weight 1 / (v + 1)^1.3;
// each person has 1-5 records, each either in the person's previous cell or
// one dimension moved; measures are mostly small with a few large ones, so
// dominance occurs.
Table Generate(uint32_t seed, std::vector<int> sizes, int people) {
  std::mt19937 rng(seed);
  Table t;
  t.sizes = sizes;
  std::vector<std::discrete_distribution<int>> pick;
  for (int n : sizes) {
    std::vector<double> w;
    for (int v = 0; v < n; ++v) w.push_back(1.0 / std::pow(v + 1.0, 1.3));
    pick.emplace_back(w.begin(), w.end());
  }
  std::uniform_int_distribution<int> records_of(1, 5);
  std::uniform_real_distribution<double> u(0, 1);
  for (int p = 0; p < people; ++p) {
    std::vector<int> dims;
    for (auto& d : pick) dims.push_back(d(rng));
    const double base = u(rng) < 0.04 ? 150 + 50 * u(rng) : 1 + 9 * u(rng);
    const int n = records_of(rng);
    for (int r = 0; r < n; ++r) {
      if (r > 0 && u(rng) < 0.6) {
        const size_t d = static_cast<size_t>(rng() % dims.size());
        dims[d] = pick[d](rng);
      }
      t.records.push_back(
          {static_cast<uint32_t>(p + 1), dims, std::min(200.0, std::round(base * (0.5 + u(rng))))});
    }
  }
  return t;
}

// One cell of a grouping: its key (values of the grouped dimensions), true
// COUNT(*) and SUM, and the figures disclosure control decides on.
struct TrueCell {
  std::vector<int> key;
  double count = 0;
  double sum = 0;
  policy::CellStats stats;
};

// A question grouped by `dims` (indices into the table's dimensions), with
// aggregates COUNT(*) and SUM(measure).
v1::AggregateQuery Question(const std::vector<int>& dims) {
  v1::AggregateQuery q;
  q.set_dataset("d");
  q.set_purpose("p");
  for (int d : dims) q.add_group_by(absl::StrCat("f", d));
  q.add_aggregates()->set_kind(v1::COUNT);
  v1::Aggregate* sum = q.add_aggregates();
  sum->set_kind(v1::SUM);
  sum->set_field("m");
  return q;
}

std::vector<TrueCell> Cells(const Table& t, const std::vector<int>& dims) {
  std::map<std::vector<int>, std::map<uint32_t, std::pair<double, double>>> by_key;
  for (const Record& r : t.records) {
    std::vector<int> key;
    for (int d : dims) key.push_back(r.dims[d]);
    auto& [n, s] = by_key[key][r.person];
    n += 1;
    s += r.measure;
  }
  if (dims.empty() && by_key.empty()) by_key[{}];
  std::vector<TrueCell> out;
  for (const auto& [key, people] : by_key) {
    TrueCell c;
    c.key = key;
    policy::CellStats& s = c.stats;
    s.subjects = static_cast<int64_t>(people.size());
    std::vector<double> contributions;
    for (const auto& [person, figures] : people) {
      c.count += figures.first;
      c.sum += figures.second;
      s.subject_ordinals.push_back(person);
      s.subject_contributions.push_back(0);               // COUNT
      s.subject_contributions.push_back(figures.second);  // SUM
      contributions.push_back(figures.second);
    }
    std::sort(contributions.rbegin(), contributions.rend());
    if (contributions.size() > static_cast<size_t>(policy::kMaxDominanceN)) {
      contributions.resize(policy::kMaxDominanceN);
    }
    s.top_contributions = {{}, contributions};
    s.abs_totals = {0, c.sum};
    s.bin_subjects = {{}, {}};
    for (int v : key) s.key.push_back(absl::StrCat(v));
    out.push_back(std::move(c));
  }
  return out;
}

// The rules as they were before issue 8: secondary suppression over the
// grand total only, with pools counted in person-cells.
std::vector<policy::CellVerdict> OldRules(const policy::DisclosureParams& params,
                                          const v1::AggregateQuery& query,
                                          const std::vector<policy::CellStats>& cells) {
  auto dominated = [&](const std::vector<double>& top, double total) {
    for (const auto& rule : params.dominance) {
      double largest = 0;
      for (int i = 0; i < rule.n && i < static_cast<int>(top.size()); ++i) largest += top[i];
      if (largest > rule.percent / 100.0 * total) return true;
    }
    return false;
  };
  std::vector<policy::CellVerdict> v(cells.size());
  std::vector<bool> withheld(cells.size());
  for (size_t c = 0; c < cells.size(); ++c) {
    if (cells[c].subjects < params.min_subjects) {
      v[c].rule = "min-subjects";
    } else if (dominated(cells[c].top_contributions[1], cells[c].abs_totals[1])) {
      v[c].rule = "dominance";
    }
    withheld[c] = !v[c].rule.empty();
  }
  auto pool_safe = [&] {
    int64_t subjects = 0;
    std::vector<double> top;
    double total = 0;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (!withheld[c]) continue;
      subjects += cells[c].subjects;
      top.insert(top.end(), cells[c].top_contributions[1].begin(),
                 cells[c].top_contributions[1].end());
      total += cells[c].abs_totals[1];
    }
    std::sort(top.rbegin(), top.rend());
    return subjects >= params.min_subjects && !dominated(top, total);
  };
  if (std::find(withheld.begin(), withheld.end(), true) != withheld.end()) {
    std::vector<size_t> order;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (!withheld[c]) order.push_back(c);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return cells[a].subjects < cells[b].subjects; });
    for (size_t c : order) {
      if (pool_safe()) break;
      withheld[c] = true;
      v[c].rule = "secondary-suppression";
    }
  }
  (void)query;
  for (size_t c = 0; c < cells.size(); ++c) v[c].released = !withheld[c];
  return v;
}

using Rules = std::function<std::vector<policy::CellVerdict>(
    const policy::DisclosureParams&, const v1::AggregateQuery&,
    const std::vector<policy::CellStats>&)>;

// A released figure of some question: the sum over the full table's cells
// whose key projects onto `key` on `dims`.
struct Released {
  std::vector<int> dims;
  std::vector<int> key;
  double count = 0;
  double sum = 0;
};

// The feasible interval [lo, hi] of `objective` over non-negative x with
// fixed[i] (when set) and every released figure's constraint, by GLPK.
struct GlpkInterval {
  double lo = 0;
  double hi = 0;
};

GlpkInterval Solve(const std::vector<TrueCell>& full, const std::vector<int>& full_dims,
                   const std::vector<bool>& known, const std::vector<Released>& released, bool sum,
                   size_t target) {
  glp_prob* lp = glp_create_prob();
  const int n = static_cast<int>(full.size());
  glp_add_cols(lp, n);
  for (int i = 0; i < n; ++i) {
    const double v = sum ? full[i].sum : full[i].count;
    if (known[i]) {
      glp_set_col_bnds(lp, i + 1, GLP_FX, v, v);
    } else {
      glp_set_col_bnds(lp, i + 1, GLP_LO, 0, 0);
    }
  }
  std::vector<int> ia = {0}, ja = {0};
  std::vector<double> ar = {0};
  for (const Released& r : released) {
    const int row = glp_add_rows(lp, 1);
    const double v = sum ? r.sum : r.count;
    glp_set_row_bnds(lp, row, GLP_FX, v, v);
    for (int i = 0; i < n; ++i) {
      bool in = true;
      for (size_t j = 0; j < r.dims.size(); ++j) {
        const size_t pos = static_cast<size_t>(
            std::find(full_dims.begin(), full_dims.end(), r.dims[j]) - full_dims.begin());
        in = in && full[i].key[pos] == r.key[j];
      }
      if (!in) continue;
      ia.push_back(row);
      ja.push_back(i + 1);
      ar.push_back(1.0);
    }
  }
  glp_load_matrix(lp, static_cast<int>(ia.size()) - 1, ia.data(), ja.data(), ar.data());
  glp_set_obj_coef(lp, static_cast<int>(target) + 1, 1.0);
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.presolve = GLP_OFF;
  GlpkInterval out;
  for (int dir : {GLP_MIN, GLP_MAX}) {
    glp_set_obj_dir(lp, dir);
    const int rc = glp_simplex(lp, &parm);
    const int status = glp_get_status(lp);
    double value;
    if (rc == 0 && status == GLP_UNBND && dir == GLP_MAX) {
      value = std::numeric_limits<double>::infinity();
    } else {
      EXPECT_EQ(rc, 0);
      EXPECT_EQ(status, GLP_OPT);
      value = glp_get_obj_val(lp);
    }
    (dir == GLP_MIN ? out.lo : out.hi) = value;
  }
  glp_delete_prob(lp);
  return out;
}

bool Dominated(const policy::DisclosureParams& params, const policy::CellStats& s) {
  for (const auto& rule : params.dominance) {
    double largest = 0;
    for (int i = 0; i < rule.n && i < static_cast<int>(s.top_contributions[1].size()); ++i) {
      largest += s.top_contributions[1][i];
    }
    if (largest > rule.percent / 100.0 * s.abs_totals[1]) return true;
  }
  return false;
}

// What the oracle found over one family of questions. A withheld cell that
// the lower-dimensional answers pin down by themselves, without any cell of
// the answer (e.g. the three 2-way tables of a 3-way one), is listed apart:
// no cell of the answer could protect it, and each of those answers is
// audited only against its own margins (docs/privacy-model.md, "What
// remains").
struct Finding {
  int audited_counts = 0;
  int audited_sums = 0;
  std::vector<std::string> unprotected;
  std::vector<std::string> pinned_by_lower_answers;
};

// The family of `dims`: the question itself and every lower-dimensional one.
std::vector<std::vector<int>> Family(const std::vector<int>& dims) {
  std::vector<std::vector<int>> family;
  for (uint32_t mask = 0; mask < (1u << dims.size()); ++mask) {
    std::vector<int> sub;
    for (size_t d = 0; d < dims.size(); ++d) {
      if (mask & (1u << d)) sub.push_back(dims[d]);
    }
    family.push_back(sub);
  }
  return family;
}

bool CountProtected(const GlpkInterval& iv) { return iv.hi - iv.lo >= kK - 1e-6; }
bool SumProtected(const GlpkInterval& iv, double v) {
  return iv.lo <= 0.9 * v + 1e-6 && iv.hi >= 1.1 * v - 1e-6;
}

// Checks every primary-withheld cell of the full answer. `released_full` says
// which full cells the answer released; `released` holds every released cell
// of every question in the family (full included).
Finding Audit(const policy::DisclosureParams& params, const std::vector<TrueCell>& full,
              const std::vector<int>& dims, const std::vector<bool>& released_full,
              const std::vector<Released>& released) {
  Finding f;
  const std::vector<bool> none(full.size(), false);
  std::vector<Released> lower;
  for (const Released& r : released) {
    if (r.dims.size() < dims.size()) lower.push_back(r);
  }
  for (size_t c = 0; c < full.size(); ++c) {
    if (released_full[c]) continue;
    const bool small = full[c].stats.subjects < params.min_subjects;
    const bool dominated = !small && Dominated(params, full[c].stats);
    if (!small && !dominated) continue;
    const std::string name = absl::StrCat("cell (", absl::StrJoin(full[c].key, ","), ")");
    const GlpkInterval count = Solve(full, dims, released_full, released, false, c);
    ++f.audited_counts;
    if (!CountProtected(count)) {
      const std::string what =
          absl::StrCat(name, " COUNT in [", count.lo, ", ", count.hi, "], true ", full[c].count);
      (CountProtected(Solve(full, dims, none, lower, false, c)) ? f.unprotected
                                                                : f.pinned_by_lower_answers)
          .push_back(what);
    }
    if (dominated) {
      const GlpkInterval sum = Solve(full, dims, released_full, released, true, c);
      ++f.audited_sums;
      const double v = full[c].sum;
      if (!SumProtected(sum, v)) {
        const std::string what =
            absl::StrCat(name, " SUM in [", sum.lo, ", ", sum.hi, "], true ", v);
        (SumProtected(Solve(full, dims, none, lower, true, c), v) ? f.unprotected
                                                                  : f.pinned_by_lower_answers)
            .push_back(what);
      }
    }
  }
  return f;
}

// Applies `rules` to every question of the family over `t` and audits the
// full answer. `rule_counts` collects the rules the full answers applied.
Finding Attack(const Table& t, const std::vector<int>& dims, const Rules& rules,
               std::map<std::string, int>* rule_counts) {
  const policy::DisclosureParams params;
  std::vector<Released> released;
  std::vector<TrueCell> full = Cells(t, dims);
  std::vector<bool> released_full;
  for (const std::vector<int>& sub : Family(dims)) {
    std::vector<TrueCell> cells = sub.size() == dims.size() ? full : Cells(t, sub);
    std::vector<policy::CellStats> stats;
    for (const TrueCell& c : cells) stats.push_back(c.stats);
    const std::vector<policy::CellVerdict> v = rules(params, Question(sub), stats);
    for (size_t c = 0; c < cells.size(); ++c) {
      if (sub.size() == dims.size()) {
        released_full.push_back(v[c].released);
        if (rule_counts != nullptr && !v[c].released) ++(*rule_counts)[v[c].rule];
      }
      if (v[c].released) released.push_back({sub, cells[c].key, cells[c].count, cells[c].sum});
    }
  }
  return Audit(params, full, dims, released_full, released);
}

// The table of `seed` for the seeded tests: 2-way on odd seeds, 3-way on
// even ones, of 2 to 5 values a field and 40 to 339 people.
struct SeededTable {
  std::vector<int> sizes;
  int people = 0;
  Table table;
  std::vector<int> dims;
};
SeededTable TableOfSeed(uint32_t seed) {
  std::mt19937 rng(seed * 7919);
  const bool three = seed % 2 == 0;
  SeededTable s;
  s.sizes = {2 + static_cast<int>(rng() % 4), 2 + static_cast<int>(rng() % 4)};
  if (three) s.sizes.push_back(2 + static_cast<int>(rng() % 2));
  s.people = 40 + static_cast<int>(rng() % 300);
  s.table = Generate(seed, s.sizes, s.people);
  s.dims = three ? std::vector<int>{0, 1, 2} : std::vector<int>{0, 1};
  return s;
}

TEST(AttackerOracleTest, EveryWithheldCellIsProtectedAcrossManySeeds) {
  std::map<std::string, int> rules;
  int counts = 0, sums = 0, tables = 0, pinned_tables = 0;
  for (uint32_t seed = 1; seed <= 120; ++seed) {
    const SeededTable s = TableOfSeed(seed);
    const Finding f = Attack(s.table, s.dims, policy::ApplyCellRules, &rules);
    ++tables;
    counts += f.audited_counts;
    sums += f.audited_sums;
    EXPECT_THAT(f.unprotected, ::testing::IsEmpty())
        << "seed " << seed << " sizes " << absl::StrJoin(s.sizes, "x") << " people " << s.people;
    if (!f.pinned_by_lower_answers.empty()) {
      ++pinned_tables;
      std::cout << "seed " << seed << ": pinned by the lower-dimensional answers alone: "
                << absl::StrJoin(f.pinned_by_lower_answers, "; ") << "\n";
    }
  }
  // The gap the answer cannot close stays rare on these tables.
  EXPECT_LE(pinned_tables, 3);
  // Not vacuous: many withheld cells of both kinds, and every rule at work.
  EXPECT_GT(counts, 200);
  EXPECT_GT(sums, 20);
  EXPECT_GT(rules["min-subjects"], 0);
  EXPECT_GT(rules["dominance"], 0);
  EXPECT_GT(rules["secondary-suppression"], 0);
  EXPECT_GT(rules["margin-suppression"], 0);
  EXPECT_GT(rules["interval-audit"], 0);
  std::cout << tables << " tables, " << counts << " counts and " << sums
            << " sums audited; withheld by rule:";
  for (const auto& [rule, n] : rules) std::cout << " " << rule << "=" << n;
  std::cout << "\n";
}

// A test of the test: before issue 8 the oracle finds cells it can pin down.
TEST(AttackerOracleTest, OracleFindsUnprotectedCellsUnderTheOldRules) {
  int unprotected = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    const SeededTable s = TableOfSeed(seed);
    unprotected += static_cast<int>(Attack(s.table, s.dims, OldRules, nullptr).unprotected.size());
  }
  EXPECT_GT(unprotected, 10);
}

// The same attack through a real node and the real client: the node answers
// the 2- and 3-way questions and every lower-dimensional one; the oracle
// uses only what the answers released.
constexpr char kTrustDomain[] = "fedshare.test";
constexpr const char* kPrograms[] = {"literacy", "numeracy", "mentoring", "employment"};
constexpr const char* kRegions[] = {"north", "south", "east", "west", "central"};
constexpr const char* kFields[] = {"program", "region", "completed"};

std::string ValueName(int dim, int v) {
  if (dim == 0) return kPrograms[v];
  if (dim == 1) return kRegions[v];
  return v ? "true" : "false";
}

class AttackerOracleNodeTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(AttackerOracleNodeTest, EveryWithheldCellIsProtected) {
  const uint32_t seed = GetParam();
  const Table t = Generate(seed, {4, 5, 2}, 160);
  TempDir tmp("attacker_oracle");
  Pki pki(tmp.Sub("pki"), kTrustDomain);
  const std::string node_identity = pki.Issue("partner-a", Role::kNode);
  const std::string operator_identity = pki.Issue("partner-a", Role::kOperator, "olga");
  const std::string foundation = pki.Issue("foundation", Role::kNode);
  v1::NodeConfig config = BaseNodeConfig("partner-a", kTrustDomain, tmp.Sub("data"), node_identity);
  *config.add_datasets() = ProgramOutcomesSchema();
  *config.add_agreements() = OpenAgreement("open", "foundation");
  ASSERT_OK(server::ValidateNodeConfig(config));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<server::Node> node, server::Node::Create(config, {}));

  std::string csv =
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n";
  std::string consents = "subject,purpose,event,time,valid_until,scope\n";
  std::set<uint32_t> people;
  for (const Record& r : t.records) {
    absl::StrAppend(&csv, "p", r.person, ",", ValueName(0, r.dims[0]), ",", ValueName(1, r.dims[1]),
                    ",2020,30,", ValueName(2, r.dims[2]), ",50,", r.measure, ",0\n");
    people.insert(r.person);
  }
  for (uint32_t p : people) {
    absl::StrAppend(&consents, "p", p, ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n");
  }
  auto admin = Connect(node->local_address(), operator_identity, kTrustDomain);
  ASSERT_NE(admin, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse ingested,
                       admin->Ingest("program_outcomes", v1::CSV, false, csv));
  ASSERT_EQ(ingested.rows_written(), static_cast<int64_t>(t.records.size()))
      << ingested.DebugString().substr(0, 600);
  ASSERT_OK(admin->ImportConsent(consents).status());
  auto peer = Connect(node->peer_address(), foundation, kTrustDomain, "partner-a");
  ASSERT_NE(peer, nullptr);

  int audited = 0;
  for (const std::vector<int>& dims : {std::vector<int>{0, 1}, std::vector<int>{0, 1, 2}}) {
    std::vector<TrueCell> full = Cells(t, dims);
    std::vector<bool> released_full(full.size(), false);
    std::vector<Released> released;
    for (const std::vector<int>& sub : Family(dims)) {
      std::vector<std::string> names;
      for (int d : sub) names.push_back(kFields[d]);
      std::string sql = "SELECT ";
      for (const std::string& n : names) absl::StrAppend(&sql, n, ", ");
      absl::StrAppend(&sql, "COUNT(*), SUM(sessions_attended) FROM program_outcomes");
      if (!names.empty()) absl::StrAppend(&sql, " GROUP BY ", absl::StrJoin(names, ", "));
      absl::StrAppend(&sql, " PURPOSE 'program-evaluation'");
      ASSERT_OK_AND_ASSIGN(v1::AggregateQuery q, ParseSql(sql));
      ASSERT_OK_AND_ASSIGN(v1::AggregateResult answer, peer->Aggregate(q));
      for (const v1::Cell& cell : answer.cells()) {
        if (cell.withheld()) continue;
        Released r{sub, {}, cell.values(0).value(), cell.values(1).value()};
        for (size_t j = 0; j < sub.size(); ++j) {
          const v1::Value& v = cell.key(static_cast<int>(j));
          int found = -1;
          const int n = sub[j] == 0 ? 4 : sub[j] == 1 ? 5 : 2;
          for (int x = 0; x < n; ++x) {
            const std::string name = ValueName(sub[j], x);
            if (v.has_bool_value() ? (v.bool_value() == (name == "true"))
                                   : v.string_value() == name) {
              found = x;
            }
          }
          ASSERT_GE(found, 0) << cell.DebugString();
          r.key.push_back(found);
        }
        if (sub.size() == dims.size()) {
          for (size_t c = 0; c < full.size(); ++c) {
            if (full[c].key == r.key) {
              released_full[c] = true;
              EXPECT_EQ(full[c].count, r.count) << sql;
            }
          }
        }
        released.push_back(std::move(r));
      }
    }
    const Finding f = Audit(policy::DisclosureParams(), full, dims, released_full, released);
    audited += f.audited_counts;
    EXPECT_THAT(f.unprotected, ::testing::IsEmpty()) << "dims " << absl::StrJoin(dims, ",");
  }
  EXPECT_GT(audited, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, AttackerOracleNodeTest, ::testing::Values(3u, 11u, 29u));

}  // namespace
}  // namespace fedshare::testing
