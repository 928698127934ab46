// Issue 4: a real node's answers against a brute-force computation in the test.
//
// The test generates ~500 subjects with 1-3 records each and varied consent
// histories (seeded, so every run sees the same data), loads them into an
// in-process node through the operator client, and asks the node as the peer
// "foundation" more than 20 varied questions. For each question it computes,
// from its own copy of the records and consents and independently of the
// node's code, the answer the documented rules give:
//   - which subjects count (policy/consent.h, purpose program-evaluation with
//     parent research, asker foundation);
//   - the filter, with range bounds snapped as policy/query_rules.h says;
//   - the predicate-removal rule (each predicate drops records of no subject
//     or of >= k, overall and in each non-empty cell and histogram bin),
//     which refuses the whole question;
//   - exact figures per cell (measures clamped, AVG over non-null values,
//     sample variance with n-1);
//   - the cell rules of policy/disclosure.h (min-subjects, dominance,
//     secondary, margin and interval-audit suppression, histogram bins),
//     applied by policy::ApplyCellRules to the per-cell figures computed
//     here: since issue 8 those rules are checked independently by the
//     attacker oracle (tests/attacker_oracle_test.cc), which asks whether
//     they protect, not whether they pick particular cells.
// It then compares: released cells by key, in key order, with counts exact and
// other figures within 1e-9 relative; withheld cells listed by key with their
// rule when every GROUP BY field has public values, otherwise only their
// number; the withholdings per rule; refusals by code and rule. Finally it
// checks that every rule was exercised, so the comparison cannot pass
// vacuously.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/sql.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "policy/disclosure.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr char kAsker[] = "foundation";
constexpr int kK = 10;  // DisclosureParams defaults (policy/agreement.h)

// Every consent event is dated in 2025; every validity ends in 2025 or in
// 2099. So the decision is the same at any time in between, and the brute
// force decides at a fixed time rather than the wall clock the node uses.
const absl::Time kDecisionTime = absl::FromCivil(absl::CivilDay(2030, 1, 1), absl::UTCTimeZone());

struct Record {
  std::string subject;
  std::string program;
  std::string region;
  int64_t cohort_year = 0;
  int64_t age = 0;
  bool completed = false;
  std::optional<double> outcome_score;
  int64_t sessions_attended = 0;
  double income = 0;
};

struct ConsentRow {
  std::string purpose;
  std::string event;  // GIVEN, RENEWED, WITHDRAWN, REFUSED, EXPIRED
  absl::Time time;
  std::optional<absl::Time> valid_until;
  std::string scope;  // "*" or orgs separated by ';'
};

absl::Time Day(int month, int day, int hour = 12) {
  return absl::FromCivil(absl::CivilSecond(2025, month, day, hour, 0, 0), absl::UTCTimeZone());
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// --- Consent, as DESIGN §6 and policy/consent.h state it (OPT_IN). ---------

bool IsNegative(const std::string& event) {
  return event == "WITHDRAWN" || event == "REFUSED" || event == "EXPIRED";
}

bool ScopeIncludes(const std::string& scope, const std::string& org) {
  if (scope.empty() || scope == "*") return true;
  for (absl::string_view s : absl::StrSplit(scope, ';')) {
    if (s == org) return true;
  }
  return false;
}

// A subject counts iff some purpose covering program-evaluation (itself or
// research) has as its latest events a valid, in-scope GIVEN/RENEWED, and no
// covering purpose's latest events include a negative one.
bool Consents(const std::vector<ConsentRow>& rows) {
  bool positive = false;
  for (const char* purpose : {"program-evaluation", "research"}) {
    std::optional<absl::Time> latest;
    for (const ConsentRow& r : rows) {
      if (r.purpose == purpose && r.time <= kDecisionTime && (!latest || r.time > *latest)) {
        latest = r.time;
      }
    }
    if (!latest) continue;
    for (const ConsentRow& r : rows) {
      if (r.purpose != purpose || r.time != *latest) continue;
      if (IsNegative(r.event)) return false;
      bool valid = !r.valid_until || *r.valid_until > kDecisionTime;
      if (valid && ScopeIncludes(r.scope, kAsker)) positive = true;
    }
  }
  return positive;
}

// --- Generated data. --------------------------------------------------------

struct Data {
  std::vector<Record> records;
  std::map<std::string, std::vector<ConsentRow>> consent;  // by subject
  std::set<std::string> counting;                          // subjects whose consent counts
};

ConsentRow Given(const std::string& purpose, absl::Time t, const std::string& scope = "*",
                 std::optional<absl::Time> until = std::nullopt) {
  return ConsentRow{purpose, "GIVEN", t, until, scope};
}
ConsentRow Event(const std::string& purpose, const std::string& event, absl::Time t) {
  return ConsentRow{purpose, event, t, std::nullopt, "*"};
}

// One of the consent histories below, chosen by r in [0, 100).
std::vector<ConsentRow> ConsentHistory(int r, std::mt19937& rng) {
  const std::string pe = "program-evaluation";
  const absl::Time t = Day(1 + static_cast<int>(rng() % 4), 1 + static_cast<int>(rng() % 28));
  const absl::Time later = t + absl::Hours(24 * (30 + rng() % 120));
  const absl::Time far = absl::FromCivil(absl::CivilDay(2099, 12, 31), absl::UTCTimeZone());
  if (r < 55) return {Given(pe, t)};
  if (r < 62) return {Given("research", t)};  // the parent purpose covers the question
  if (r < 66) return {Event(pe, "REFUSED", t)};
  if (r < 71) return {Given(pe, t), Event(pe, "WITHDRAWN", later)};
  if (r < 75) return {Given(pe, t, "*", Day(9, 30))};  // expired
  if (r < 79) return {Given(pe, t, "other-org")};      // not for the asker
  if (r < 82) return {Given(pe, t, "foundation")};
  if (r < 84) return {Given(pe, t, "other-org;foundation")};
  if (r < 88) return {};                                                   // never asked
  if (r < 90) return {Given(pe, t), Event("research", "REFUSED", later)};  // broader "no" wins
  if (r < 92) {
    return {Given(pe, t), Event(pe, "WITHDRAWN", later),
            ConsentRow{pe, "RENEWED", later + absl::Hours(48), std::nullopt, "*"}};
  }
  if (r < 94) return {Given(pe, t, "*", far)};
  if (r < 96) return {Given(pe, t), Event(pe, "EXPIRED", later)};
  if (r < 98) return {Given(pe, t), Event(pe, "WITHDRAWN", t)};  // a tie: the "no" wins
  if (r < 99) return {Given("research", t, "other-org"), Given(pe, later)};
  return {Given("marketing", t)};
}

double Score(std::mt19937& rng) {
  // Two decimals, so the CSV text round-trips to the same double.
  return std::stod(absl::StrFormat("%.2f", (rng() % 10001) / 100.0));
}

Data Generate() {
  std::mt19937 rng(20250415);
  Data data;
  const char* programs[] = {"literacy", "numeracy", "mentoring", "employment"};
  const char* regions[] = {"north", "south", "east", "west"};
  auto add_subject = [&](const std::string& id, std::vector<ConsentRow> history) {
    if (Consents(history)) data.counting.insert(id);
    data.consent[id] = std::move(history);
  };
  auto record = [&](const std::string& id, const std::string& program, const std::string& region,
                    int64_t cohort, int64_t age, int64_t sessions) {
    Record r;
    r.subject = id;
    r.program = program;
    r.region = region;
    r.cohort_year = cohort;
    r.age = age;
    r.completed = rng() % 10 < 6;
    if (rng() % 100 >= 5) r.outcome_score = Score(rng);
    r.sessions_attended = sessions;
    r.income = 1000.0 * (rng() % 90);
    data.records.push_back(r);
  };
  int n = 0;
  auto next_id = [&] { return absl::StrFormat("p%04d", n++); };

  // The bulk: four regions, cohorts 2020-2024, mostly one program per person.
  for (int i = 0; i < 467; ++i) {
    const std::string id = next_id();
    const std::string region = regions[rng() % 4];
    const int64_t age = 18 + rng() % 55;
    const int p = rng() % 20;
    const std::string primary = programs[p < 6 ? 0 : p < 12 ? 1 : p < 17 ? 2 : 3];
    const int roll = rng() % 100;
    const int records = roll < 50 ? 1 : roll < 85 ? 2 : 3;
    for (int j = 0; j < records; ++j) {
      const std::string program = rng() % 5 == 0 ? programs[rng() % 4] : primary;
      record(id, program, region, 2020 + rng() % 5, age, rng() % 61);
    }
    add_subject(id, ConsentHistory(static_cast<int>(rng() % 100), rng));
  }
  // A rare region: 11 people, of whom 8 count (too few for a cell).
  for (int i = 0; i < 11; ++i) {
    const std::string id = next_id();
    const int64_t age = 18 + rng() % 55;
    const int records = 1 + rng() % 2;
    for (int j = 0; j < records; ++j) {
      record(id, programs[rng() % 4], "central", 2020 + rng() % 5, age, rng() % 61);
    }
    add_subject(id,
                i < 8 ? std::vector<ConsentRow>{Given("program-evaluation", Day(2, 1))}
                      : std::vector<ConsentRow>{Event("program-evaluation", "REFUSED", Day(2, 1))});
  }
  // A rare program/cohort: 6 employment participants of 2019.
  for (int i = 0; i < 6; ++i) {
    const std::string id = next_id();
    record(id, "employment", regions[rng() % 4], 2019, 18 + rng() % 55, rng() % 61);
    add_subject(id, {Given("program-evaluation", Day(3, 1))});
  }
  // Literacy 2018: 14 people, one of whom attended 200 sessions and the
  // others 2 to 8, so any sum or mean of sessions there is dominated by one.
  for (int i = 0; i < 14; ++i) {
    const std::string id = next_id();
    record(id, "literacy", regions[rng() % 4], 2018, 18 + rng() % 55, i == 0 ? 200 : 2 + rng() % 7);
    add_subject(id, {Given("program-evaluation", Day(3, 2))});
  }
  return data;
}

std::string RecordsCsv(const Data& data) {
  std::string csv =
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n";
  for (const Record& r : data.records) {
    absl::StrAppend(&csv, r.subject, ",", r.program, ",", r.region, ",", r.cohort_year, ",", r.age,
                    ",", r.completed ? "true" : "false", ",",
                    r.outcome_score ? absl::StrFormat("%.2f", *r.outcome_score) : "", ",",
                    r.sessions_attended, ",", r.income, "\n");
  }
  return csv;
}

std::string ConsentCsv(const Data& data) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (const auto& [subject, rows] : data.consent) {
    for (const ConsentRow& r : rows) {
      absl::StrAppend(&csv, subject, ",", r.purpose, ",", r.event, ",", Rfc3339(r.time), ",",
                      r.valid_until ? Rfc3339(*r.valid_until) : "", ",", r.scope, "\n");
    }
  }
  return csv;
}

// --- The brute force. --------------------------------------------------------

// A predicate in normal form: ranges on INT64 fields as half-open bounds on
// the field's granularity grid (policy/query_rules.h).
struct Filter {
  std::string field;
  v1::Predicate::Op op;  // EQ, NE, IN, LT or GE
  std::vector<v1::Value> values;
  std::string Text() const {
    std::vector<std::string> v;
    for (const v1::Value& x : values) v.push_back(x.ShortDebugString());
    return absl::StrCat(field, " ", v1::Predicate::Op_Name(op), " ", absl::StrJoin(v, ","));
  }
};

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

std::vector<Filter> Normalize(const v1::DatasetSchema& schema, const v1::AggregateQuery& q) {
  std::map<std::string, Filter> unique;  // by text: equal predicates once
  auto add = [&](Filter f) { unique.emplace(f.Text(), std::move(f)); };
  for (const v1::Predicate& p : q.where()) {
    int64_t g = 1;
    for (const v1::FieldSchema& f : schema.fields()) {
      if (f.name() == p.field() && f.granularity() > 1) g = static_cast<int64_t>(f.granularity());
    }
    auto snap = [&](v1::Predicate::Op op, int64_t v) {
      // LT v -> LT floor(v/g)g; LE v -> LT floor((v+1)/g)g; GE, GT alike.
      const bool add_unit = op == v1::Predicate::LE || op == v1::Predicate::GT;
      Filter f{p.field(),
               op == v1::Predicate::LT || op == v1::Predicate::LE ? v1::Predicate::LT
                                                                  : v1::Predicate::GE,
               {}};
      f.values.emplace_back().set_int_value(FloorDiv(v + (add_unit ? 1 : 0), g) * g);
      add(std::move(f));
    };
    switch (p.op()) {
      case v1::Predicate::LT:
      case v1::Predicate::LE:
      case v1::Predicate::GT:
      case v1::Predicate::GE:
        snap(p.op(), p.values(0).int_value());
        break;
      case v1::Predicate::BETWEEN:
        snap(v1::Predicate::GE, p.values(0).int_value());
        snap(v1::Predicate::LE, p.values(1).int_value());
        break;
      default:
        add(Filter{p.field(), p.op(), {p.values().begin(), p.values().end()}});
    }
  }
  std::vector<Filter> out;
  for (auto& [text, f] : unique) out.push_back(std::move(f));
  return out;
}

bool Matches(const Filter& f, const Record& r) {
  if (f.field == "program" || f.field == "region") {
    const std::string& x = f.field == "program" ? r.program : r.region;
    bool any = false;
    for (const v1::Value& v : f.values) any = any || v.string_value() == x;
    return f.op == v1::Predicate::NE ? !any : any;
  }
  if (f.field == "completed") {
    bool any = false;
    for (const v1::Value& v : f.values) any = any || v.bool_value() == r.completed;
    return f.op == v1::Predicate::NE ? !any : any;
  }
  const int64_t x = f.field == "age" ? r.age : r.cohort_year;
  switch (f.op) {
    case v1::Predicate::LT:
      return x < f.values[0].int_value();
    case v1::Predicate::GE:
      return x >= f.values[0].int_value();
    default: {
      bool any = false;
      for (const v1::Value& v : f.values) any = any || v.int_value() == x;
      return f.op == v1::Predicate::NE ? !any : any;
    }
  }
}

std::string KeyPart(const Record& r, const std::string& field) {
  if (field == "program") return r.program;
  if (field == "region") return r.region;
  if (field == "completed") return r.completed ? "true" : "false";
  return absl::StrCat(r.cohort_year);  // four digits: text order is numeric order
}

std::string KeyPart(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kStringValue:
      return v.string_value();
    case v1::Value::kIntValue:
      return absl::StrCat(v.int_value());
    case v1::Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    default:
      return "<" + v.ShortDebugString() + ">";
  }
}

using Key = std::vector<std::string>;

std::optional<double> MeasureOf(const Record& r, const std::string& field) {
  // Ingest refuses values outside the declared bounds, so clamping to
  // [0, 100] and [0, 200] leaves the generated values as they are.
  if (field == "outcome_score") return r.outcome_score;
  return static_cast<double>(r.sessions_attended);
}

struct ExpectedValue {
  double value = 0;
  double count = 0;
  double sum = 0;
  double sum_squares = 0;
  std::vector<double> bins;
  std::vector<int32_t> withheld_bins;
};

struct ExpectedCell {
  Key key;
  int64_t subjects = 0;
  std::vector<ExpectedValue> values;
  bool withheld = false;
  std::string rule;
};

struct Expected {
  bool refused = false;
  std::string refused_field;        // a field whose predicate leaves out 1..k-1 subjects
  std::vector<ExpectedCell> cells;  // key order
  std::map<std::string, int> withholdings;
};

bool IsDominanceKind(v1::AggregateKind kind) {
  return kind == v1::SUM || kind == v1::AVG || kind == v1::STDDEV || kind == v1::VARIANCE;
}

// The predicate-removal rule: the field of a predicate that drops, among the
// records every other predicate keeps, records of 1..k-1 distinct people,
// whether or not they keep other records in the answer. Counted over the
// whole answer, and per cell (by the dropped record's group key) and per
// HISTOGRAM bin wherever that cell or bin is non-empty in the answer.
std::optional<std::string> PredicateRemovalRefusal(const Data& data, const v1::AggregateQuery& q,
                                                   const std::vector<Filter>& filters) {
  // Places a record falls in: its cell ("c" + key) and its histogram bins.
  auto places = [&](const Record& r) {
    std::string cell = "c";
    for (const std::string& g : q.group_by()) absl::StrAppend(&cell, KeyPart(r, g), "|");
    std::vector<std::string> out = {cell};
    for (int i = 0; i < q.aggregates_size(); ++i) {
      const v1::Aggregate& agg = q.aggregates(i);
      if (agg.kind() != v1::HISTOGRAM) continue;
      std::optional<double> v = MeasureOf(r, agg.field());
      if (!v) continue;
      const double width = (agg.hi() - agg.lo()) / agg.bins();
      const int bin =
          std::clamp(static_cast<int>(std::floor((*v - agg.lo()) / width)), 0, agg.bins() - 1);
      out.push_back(absl::StrCat(cell, "#", i, "#", bin));
    }
    return out;
  };
  std::set<std::string> answered_places;
  std::vector<std::set<std::string>> dropped(filters.size());
  std::vector<std::map<std::string, std::set<std::string>>> dropped_in(filters.size());
  for (const Record& r : data.records) {
    if (!data.counting.count(r.subject)) continue;
    std::vector<size_t> failed;
    for (size_t i = 0; i < filters.size(); ++i) {
      if (!Matches(filters[i], r)) failed.push_back(i);
    }
    if (failed.empty()) {
      for (const std::string& place : places(r)) answered_places.insert(place);
    } else if (failed.size() == 1) {
      dropped[failed[0]].insert(r.subject);
      for (const std::string& place : places(r)) dropped_in[failed[0]][place].insert(r.subject);
    }
  }
  auto handful = [](size_t n) { return n > 0 && n < static_cast<size_t>(kK); };
  for (size_t i = 0; i < filters.size(); ++i) {
    if (handful(dropped[i].size())) return filters[i].field;
    for (const auto& [place, subjects] : dropped_in[i]) {
      if (answered_places.count(place) && handful(subjects.size())) return filters[i].field;
    }
  }
  return std::nullopt;
}

Expected BruteForce(const Data& data, const v1::DatasetSchema& schema,
                    const v1::AggregateQuery& q) {
  Expected out;
  const std::vector<Filter> filters = Normalize(schema, q);

  if (std::optional<std::string> field = PredicateRemovalRefusal(data, q, filters)) {
    out.refused = true;
    out.refused_field = *field;
  }
  if (out.refused) return out;

  // Cells: figures per key, and per subject the absolute contributions.
  struct Acc {
    std::set<std::string> subjects;
    std::vector<std::vector<double>> measures;                // per aggregate, non-null values
    std::vector<std::map<std::string, double>> contribution;  // per aggregate, by subject
    std::vector<std::vector<std::set<std::string>>> bin_subjects;
    int64_t records = 0;
  };
  const int n_aggs = q.aggregates_size();
  std::map<Key, Acc> accs;
  auto fresh = [&] {
    Acc a;
    a.measures.resize(n_aggs);
    a.contribution.resize(n_aggs);
    a.bin_subjects.resize(n_aggs);
    for (int i = 0; i < n_aggs; ++i) a.bin_subjects[i].resize(q.aggregates(i).bins());
    return a;
  };
  if (q.group_by().empty()) accs.emplace(Key{}, fresh());
  for (const Record& r : data.records) {
    if (!data.counting.count(r.subject)) continue;
    bool pass = true;
    for (const Filter& f : filters) pass = pass && Matches(f, r);
    if (!pass) continue;
    Key key;
    for (const std::string& g : q.group_by()) key.push_back(KeyPart(r, g));
    auto it = accs.find(key);
    if (it == accs.end()) it = accs.emplace(key, fresh()).first;
    Acc& acc = it->second;
    acc.subjects.insert(r.subject);
    ++acc.records;
    for (int i = 0; i < n_aggs; ++i) {
      const v1::Aggregate& agg = q.aggregates(i);
      if (agg.kind() == v1::COUNT || agg.kind() == v1::COUNT_SUBJECTS) continue;
      std::optional<double> v = MeasureOf(r, agg.field());
      if (!v) continue;
      acc.measures[i].push_back(*v);
      acc.contribution[i][r.subject] += std::fabs(*v);
      if (agg.kind() == v1::HISTOGRAM) {
        const double width = (agg.hi() - agg.lo()) / agg.bins();
        int bin = static_cast<int>(std::floor((*v - agg.lo()) / width));
        bin = std::clamp(bin, 0, agg.bins() - 1);
        acc.bin_subjects[i][bin].insert(r.subject);
      }
    }
  }

  // The figures disclosure control decides on, per cell, with subjects
  // numbered in one order across cells.
  std::map<std::string, uint32_t> ordinal;
  for (const Record& r : data.records) ordinal.emplace(r.subject, 0);
  uint32_t next = 0;
  for (auto& [subject, o] : ordinal) o = next++;
  std::vector<policy::CellStats> stats;
  for (auto& [key, acc] : accs) {
    ExpectedCell cell;
    cell.key = key;
    cell.subjects = static_cast<int64_t>(acc.subjects.size());
    for (int i = 0; i < n_aggs; ++i) {
      const v1::Aggregate& agg = q.aggregates(i);
      const std::vector<double>& xs = acc.measures[i];
      ExpectedValue v;
      double sum = 0, sum_squares = 0;
      for (double x : xs) sum += x, sum_squares += x * x;
      const double n = static_cast<double>(xs.size());
      switch (agg.kind()) {
        case v1::COUNT:
          v.value = v.count = static_cast<double>(acc.records);
          break;
        case v1::COUNT_SUBJECTS:
          v.value = v.count = static_cast<double>(cell.subjects);
          break;
        case v1::SUM:
          v.value = v.sum = sum;
          v.count = n;
          break;
        case v1::AVG:
          v.value = n > 0 ? sum / n : 0;
          v.sum = sum;
          v.count = n;
          break;
        case v1::STDDEV:
        case v1::VARIANCE: {
          double variance = 0;
          if (n >= 2) {
            const double mean = sum / n;
            for (double x : xs) variance += (x - mean) * (x - mean);
            variance /= n - 1;
          }
          v.value = agg.kind() == v1::STDDEV ? std::sqrt(variance) : variance;
          v.sum = sum;
          v.sum_squares = sum_squares;
          v.count = n;
          break;
        }
        case v1::HISTOGRAM: {
          v.bins.assign(agg.bins(), 0.0);
          for (double x : xs) {
            const double width = (agg.hi() - agg.lo()) / agg.bins();
            v.bins[std::clamp(static_cast<int>(std::floor((x - agg.lo()) / width)), 0,
                              agg.bins() - 1)] += 1;
          }
          v.value = v.count = n;
          break;
        }
        default:
          break;
      }
      cell.values.push_back(std::move(v));
    }
    policy::CellStats st;
    st.subjects = cell.subjects;
    st.key = key;
    for (const std::string& s : acc.subjects) st.subject_ordinals.push_back(ordinal.at(s));
    std::sort(st.subject_ordinals.begin(), st.subject_ordinals.end());
    st.subject_contributions.assign(st.subject_ordinals.size() * n_aggs, 0.0);
    st.top_contributions.resize(n_aggs);
    st.abs_totals.assign(n_aggs, 0.0);
    st.bin_subjects.resize(n_aggs);
    st.bin_subject_ordinals.resize(n_aggs);
    for (int i = 0; i < n_aggs; ++i) {
      if (IsDominanceKind(q.aggregates(i).kind())) {
        std::vector<double> top;
        for (const auto& [subject, c] : acc.contribution[i]) {
          const size_t slot =
              static_cast<size_t>(std::lower_bound(st.subject_ordinals.begin(),
                                                   st.subject_ordinals.end(), ordinal.at(subject)) -
                                  st.subject_ordinals.begin());
          st.subject_contributions[slot * n_aggs + i] = c;
          st.abs_totals[i] += c;
          top.push_back(c);
        }
        std::sort(top.rbegin(), top.rend());
        if (top.size() > static_cast<size_t>(policy::kMaxDominanceN)) {
          top.resize(policy::kMaxDominanceN);
        }
        st.top_contributions[i] = std::move(top);
      }
      if (q.aggregates(i).kind() == v1::HISTOGRAM) {
        for (const auto& bin : acc.bin_subjects[i]) {
          st.bin_subjects[i].push_back(static_cast<int64_t>(bin.size()));
          std::vector<uint32_t> named;
          for (const std::string& s : bin) named.push_back(ordinal.at(s));
          std::sort(named.begin(), named.end());
          st.bin_subject_ordinals[i].push_back(std::move(named));
        }
      }
    }
    stats.push_back(std::move(st));
    out.cells.push_back(std::move(cell));
  }
  const std::vector<policy::CellVerdict> verdicts =
      policy::ApplyCellRules(policy::DisclosureParams(), q, stats);

  // Histogram bins of released cells, as the rules withheld them.
  for (size_t c = 0; c < out.cells.size(); ++c) {
    ExpectedCell& cell = out.cells[c];
    const policy::CellVerdict& verdict = verdicts[c];
    cell.withheld = !verdict.released;
    cell.rule = verdict.rule;
    if (cell.withheld) {
      ++out.withholdings[cell.rule];
      continue;
    }
    bool any_bin = false;
    for (int i = 0; i < n_aggs; ++i) {
      if (q.aggregates(i).kind() != v1::HISTOGRAM) continue;
      ExpectedValue& v = cell.values[i];
      for (int32_t b : verdict.withheld_bins[i]) {
        v.value -= v.bins[b];
        v.count -= v.bins[b];
        v.bins[b] = 0;
        v.withheld_bins.push_back(b);
        any_bin = true;
      }
    }
    if (any_bin) ++out.withholdings["histogram-bin"];
  }
  return out;
}

// What the questions exercised, so the comparison cannot pass vacuously.
struct Coverage {
  int answered = 0;
  int refused_predicate_removal = 0;
  int released_cells = 0;
  int listed_withheld = 0;
  int unlisted_withheld = 0;
  std::map<std::string, int> rules;  // withholdings by rule, over all answers
};

void ExpectNear(double actual, double expected, const std::string& what) {
  const double tolerance = 1e-9 * std::max(1.0, std::fabs(expected));
  EXPECT_NEAR(actual, expected, tolerance) << what;
}

class QueryBruteForceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string node_identity = pki_.Issue("partner-a", Role::kNode);
    const std::string operator_identity = pki_.Issue("partner-a", Role::kOperator, "olga");
    const std::string foundation = pki_.Issue(kAsker, Role::kNode);
    v1::NodeConfig config =
        BaseNodeConfig("partner-a", kTrustDomain, tmp_.Sub("data"), node_identity);
    *config.add_datasets() = schema_;
    *config.add_agreements() = OpenAgreement("foundation-eval", kAsker);
    ASSERT_OK(server::ValidateNodeConfig(config));
    ASSERT_OK_AND_ASSIGN(node_, server::Node::Create(config, server::NodeOptions()));

    auto admin = Connect(node_->local_address(), operator_identity, kTrustDomain);
    ASSERT_NE(admin, nullptr);
    ASSERT_OK_AND_ASSIGN(v1::IngestResponse ingested,
                         admin->Ingest("program_outcomes", v1::CSV, false, RecordsCsv(data_)));
    ASSERT_EQ(ingested.rows_written(), static_cast<int64_t>(data_.records.size()))
        << ingested.DebugString();
    ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse consented,
                         admin->ImportConsent(ConsentCsv(data_)));
    ASSERT_EQ(consented.events_rejected(), 0) << consented.DebugString();
    peer_ = Connect(node_->peer_address(), foundation, kTrustDomain, "partner-a");
    ASSERT_NE(peer_, nullptr);
  }

  // Asks `sql`, computes the brute-force answer and compares the two.
  void AskAndCompare(const std::string& sql) {
    SCOPED_TRACE(sql);
    ASSERT_OK_AND_ASSIGN(v1::AggregateQuery query, client::ParseSql(sql));
    const Expected expected = BruteForce(data_, schema_, query);
    absl::StatusOr<v1::AggregateResult> answer = peer_->Aggregate(query);
    if (expected.refused) {
      ++coverage_.refused_predicate_removal;
      EXPECT_THAT(answer, StatusIs(absl::StatusCode::kPermissionDenied,
                                   ::testing::AllOf(::testing::HasSubstr("predicate-removal"),
                                                    ::testing::HasSubstr(expected.refused_field))));
      return;
    }
    ASSERT_OK(answer.status());
    ++coverage_.answered;
    const v1::AggregateResult& result = *answer;

    bool keys_public = query.group_by_size() > 0;
    for (const std::string& g : query.group_by()) {
      for (const v1::FieldSchema& f : schema_.fields()) {
        if (f.name() == g && !f.public_values()) keys_public = false;
      }
    }

    std::vector<const ExpectedCell*> released, listed;
    int unlisted = 0;
    for (const ExpectedCell& cell : expected.cells) {
      if (!cell.withheld) {
        released.push_back(&cell);
      } else if (keys_public) {
        listed.push_back(&cell);
      } else {
        ++unlisted;
      }
    }
    coverage_.released_cells += static_cast<int>(released.size());
    coverage_.listed_withheld += static_cast<int>(listed.size());
    coverage_.unlisted_withheld += unlisted;
    for (const auto& [rule, cells] : expected.withholdings) coverage_.rules[rule] += cells;

    // Released cells first, in key order, then listed withheld cells in key order.
    ASSERT_EQ(result.cells_size(), static_cast<int>(released.size() + listed.size()))
        << result.DebugString();
    EXPECT_EQ(result.unlisted_withheld_cells(), unlisted);
    for (size_t i = 0; i < released.size(); ++i) {
      const v1::Cell& got = result.cells(static_cast<int>(i));
      const ExpectedCell& want = *released[i];
      Key key;
      for (const v1::Value& v : got.key()) key.push_back(KeyPart(v));
      const std::string where = absl::StrCat("cell [", absl::StrJoin(want.key, ","), "]");
      ASSERT_EQ(key, want.key) << where;
      EXPECT_FALSE(got.withheld()) << where;
      ASSERT_EQ(got.values_size(), static_cast<int>(want.values.size())) << where;
      for (size_t a = 0; a < want.values.size(); ++a) {
        const v1::AggregateValue& g = got.values(static_cast<int>(a));
        const ExpectedValue& w = want.values[a];
        const std::string what = absl::StrCat(where, " aggregate ", a);
        const v1::AggregateKind kind = query.aggregates(static_cast<int>(a)).kind();
        if (kind == v1::COUNT || kind == v1::COUNT_SUBJECTS || kind == v1::HISTOGRAM) {
          EXPECT_EQ(g.value(), w.value) << what;
        } else {
          ExpectNear(g.value(), w.value, what);
        }
        EXPECT_EQ(g.count(), w.count) << what;
        ExpectNear(g.sum(), w.sum, what + " sum");
        ExpectNear(g.sum_squares(), w.sum_squares, what + " sum_squares");
        EXPECT_THAT(g.bins(), ::testing::ElementsAreArray(w.bins)) << what;
        EXPECT_THAT(g.withheld_bins(), ::testing::ElementsAreArray(w.withheld_bins)) << what;
      }
    }
    for (size_t i = 0; i < listed.size(); ++i) {
      const v1::Cell& got = result.cells(static_cast<int>(released.size() + i));
      Key key;
      for (const v1::Value& v : got.key()) key.push_back(KeyPart(v));
      EXPECT_EQ(key, listed[i]->key);
      EXPECT_TRUE(got.withheld());
      EXPECT_EQ(got.withheld_rule(), listed[i]->rule) << absl::StrJoin(key, ",");
      EXPECT_EQ(got.values_size(), 0) << "a withheld cell shows no figures";
    }
    std::map<std::string, int> withholdings;
    for (const v1::Withholding& w : result.withholdings()) withholdings[w.rule()] = w.cells();
    EXPECT_EQ(withholdings, expected.withholdings);
  }

  TempDir tmp_{"bruteforce"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  const v1::DatasetSchema schema_ = ProgramOutcomesSchema();
  const Data data_ = Generate();
  std::unique_ptr<server::Node> node_;
  std::unique_ptr<client::NodeClient> peer_;
  Coverage coverage_;
};

TEST_F(QueryBruteForceTest, AnswersEqualBruteForceOverGeneratedRecordsAndConsents) {
  // Each question is distinct: the node refuses a sixth identical one a day.
  const std::vector<std::string> questions = {
      // No GROUP BY.
      "SELECT COUNT(*) FROM program_outcomes",
      "SELECT COUNT(DISTINCT subject), COUNT(*), AVG(outcome_score) FROM program_outcomes",
      "SELECT COUNT(*), AVG(outcome_score) FROM program_outcomes WHERE age > 39 AND "
      "cohort_year <= 2022",
      "SELECT COUNT(DISTINCT subject) FROM program_outcomes WHERE region IN ('central')",
      "SELECT HISTOGRAM(sessions_attended, 0, 200, 8) FROM program_outcomes",
      "SELECT SUM(sessions_attended), STDDEV(sessions_attended) FROM program_outcomes WHERE "
      "cohort_year = 2018",
      // One field.
      "SELECT program, COUNT(*) FROM program_outcomes GROUP BY program",
      "SELECT region, COUNT(DISTINCT subject) FROM program_outcomes GROUP BY region",
      "SELECT cohort_year, SUM(sessions_attended) FROM program_outcomes GROUP BY cohort_year",
      "SELECT program, AVG(outcome_score) FROM program_outcomes WHERE region = 'central' "
      "GROUP BY program",
      "SELECT completed, AVG(outcome_score), STDDEV(outcome_score) FROM program_outcomes "
      "GROUP BY completed",
      "SELECT program, VARIANCE(outcome_score) FROM program_outcomes WHERE age BETWEEN 25 AND 44 "
      "GROUP BY program",
      "SELECT program, HISTOGRAM(outcome_score, 0, 100, 10) FROM program_outcomes "
      "GROUP BY program",
      "SELECT region, SUM(outcome_score) FROM program_outcomes WHERE program IN ('literacy', "
      "'numeracy') GROUP BY region",
      "SELECT program, COUNT(*) FROM program_outcomes WHERE cohort_year >= 2021 AND "
      "completed = TRUE GROUP BY program",
      "SELECT cohort_year, AVG(sessions_attended) FROM program_outcomes WHERE age < 40 "
      "GROUP BY cohort_year",
      "SELECT program, SUM(sessions_attended) FROM program_outcomes WHERE cohort_year = 2018 "
      "GROUP BY program",
      "SELECT completed, COUNT(*) FROM program_outcomes WHERE program != 'employment' "
      "GROUP BY completed",
      "SELECT program, HISTOGRAM(sessions_attended, 0, 100, 5), COUNT(DISTINCT subject) FROM "
      "program_outcomes WHERE cohort_year < 2020 GROUP BY program",
      "SELECT region, VARIANCE(sessions_attended), COUNT(*) FROM program_outcomes WHERE "
      "age <= 41 GROUP BY region",
      // Two and three fields.
      "SELECT program, cohort_year, COUNT(*) FROM program_outcomes GROUP BY program, cohort_year",
      "SELECT program, completed, STDDEV(sessions_attended) FROM program_outcomes WHERE "
      "age >= 30 GROUP BY program, completed",
      "SELECT region, cohort_year, COUNT(DISTINCT subject) FROM program_outcomes WHERE "
      "cohort_year BETWEEN 2021 AND 2023 GROUP BY region, cohort_year",
      "SELECT program, region, completed, COUNT(*) FROM program_outcomes "
      "GROUP BY program, region, completed",
      "SELECT program, region, cohort_year, AVG(outcome_score) FROM program_outcomes WHERE "
      "completed != FALSE GROUP BY program, region, cohort_year",
      // Predicates that leave out a handful of people.
      "SELECT COUNT(*) FROM program_outcomes WHERE region != 'central'",
      "SELECT program, COUNT(*) FROM program_outcomes WHERE cohort_year != 2019 "
      "GROUP BY program",
      // Unfiltered, so that enough questions are answered now that predicate
      // removal counts every dropped record's owner (issue 8).
      "SELECT region, COUNT(*), AVG(outcome_score) FROM program_outcomes GROUP BY region",
      "SELECT completed, HISTOGRAM(sessions_attended, 0, 60, 6) FROM program_outcomes "
      "GROUP BY completed",
  };
  for (const std::string& q : questions) {
    AskAndCompare(absl::StrCat(q, " PURPOSE 'program-evaluation'"));
  }

  EXPECT_GE(questions.size(), 20u);
  EXPECT_GE(coverage_.answered, 20);
  EXPECT_GE(coverage_.refused_predicate_removal, 2);
  EXPECT_GE(coverage_.released_cells, 35);  // margins and the interval audit withhold more
  EXPECT_GE(coverage_.listed_withheld, 3);
  EXPECT_GE(coverage_.unlisted_withheld, 3);
  for (const char* rule : {"min-subjects", "dominance", "secondary-suppression",
                           "margin-suppression", "interval-audit", "histogram-bin"}) {
    EXPECT_GE(coverage_.rules[rule], 1) << rule << " never applied";
  }
}

// The generated consents must discriminate: people with records whose
// consent does not count are many and of every kind above, so a node that
// ignored consent (or one kind of it) would fail the comparison.
TEST_F(QueryBruteForceTest, GeneratedConsentsLeaveOutManyPeopleWithRecords) {
  std::set<std::string> with_records;
  for (const Record& r : data_.records) with_records.insert(r.subject);
  int excluded = 0;
  for (const std::string& s : with_records) excluded += !data_.counting.count(s);
  EXPECT_GE(excluded, 100);
  EXPECT_GE(static_cast<int>(data_.counting.size()), 300);
  AskAndCompare(
      "SELECT COUNT(DISTINCT subject) FROM program_outcomes "
      "PURPOSE 'program-evaluation'");
}

}  // namespace
}  // namespace fedshare::testing
