#include "testing/bruteforce_reference.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "policy/disclosure.h"

namespace fedshare::testing::bruteforce {
namespace {

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

std::optional<double> MeasureOf(const Record& r, const std::string& field) {
  // Ingest refuses values outside the declared bounds, so clamping to
  // [0, 100] and [0, 200] leaves the generated values as they are.
  if (field == "outcome_score") return r.outcome_score;
  return static_cast<double>(r.sessions_attended);
}

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

}  // namespace

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

}  // namespace fedshare::testing::bruteforce
