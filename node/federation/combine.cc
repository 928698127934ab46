#include "node/federation/combine.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "policy/query_rules.h"

namespace fedshare::federation {
namespace {

using Key = std::vector<v1::Value>;

struct KeyLess {
  bool operator()(const Key& a, const Key& b) const {
    const size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n; ++i) {
      const int c = CompareValues(a[i], b[i]);
      if (c != 0) return c < 0;
    }
    return a.size() < b.size();
  }
};

struct Sums {
  double value = 0;
  double count = 0;
  double sum = 0;
  double sum_squares = 0;
  std::vector<double> bins;
  std::set<int> withheld_bins;
  // Differential privacy: some partner's figure carries noise.
  bool noisy = false;
  double variance = 0;           // Σ σ², for figures that add
  double weighted_variance = 0;  // Σ (count σ)², for means and variances
  std::vector<double> bin_variance;
};

void SetNormalNoise(double value, double variance, v1::Noise* noise) {
  noise->set_stddev(std::sqrt(variance));
  noise->set_ci_low(value - 1.96 * noise->stddev());
  noise->set_ci_high(value + 1.96 * noise->stddev());
}

struct Combined {
  std::vector<Sums> sums;
  std::set<size_t> released_by;         // answer indices
  std::set<size_t> listed_withheld_by;  // answer indices
  std::vector<std::string> rules;       // distinct, in order seen
};

v1::AggregateValue Finish(v1::AggregateKind kind, const Sums& s) {
  v1::AggregateValue out;
  out.set_count(s.count);
  out.set_sum(s.sum);
  out.set_sum_squares(s.sum_squares);
  switch (kind) {
    case v1::AVG:
      out.set_value(s.count > 0 ? s.sum / s.count : 0.0);
      break;
    case v1::VARIANCE:
    case v1::STDDEV: {
      double variance = 0;
      if (s.count >= 2) {
        variance = std::max(0.0, (s.sum_squares - s.sum * s.sum / s.count) / (s.count - 1));
      }
      out.set_value(kind == v1::STDDEV ? std::sqrt(variance) : variance);
      break;
    }
    default:
      // COUNT, COUNT_SUBJECTS, SUM and HISTOGRAM (whose value is its count)
      // add; so does an unknown kind, which is the least surprising guess.
      out.set_value(s.value);
      break;
  }
  for (double b : s.bins) out.add_bins(b);
  for (int b : s.withheld_bins) out.add_withheld_bins(b);
  if (s.noisy) {
    const bool ratio = kind == v1::AVG || kind == v1::VARIANCE || kind == v1::STDDEV;
    SetNormalNoise(out.value(),
                   ratio && s.count > 0 ? s.weighted_variance / (s.count * s.count) : s.variance,
                   out.mutable_noise());
    for (size_t b = 0; b < s.bins.size(); ++b) {
      SetNormalNoise(s.bins[b], b < s.bin_variance.size() ? s.bin_variance[b] : 0,
                     out.add_bin_noise());
    }
  }
  return out;
}

}  // namespace

int CompareValues(const v1::Value& a, const v1::Value& b) {
  if (a.kind_case() != b.kind_case()) return a.kind_case() < b.kind_case() ? -1 : 1;
  auto three_way = [](const auto& x, const auto& y) { return x < y ? -1 : (y < x ? 1 : 0); };
  switch (a.kind_case()) {
    case v1::Value::kIntValue:
      return three_way(a.int_value(), b.int_value());
    case v1::Value::kDoubleValue: {
      // NaN sorts after every number and equals itself, so keys stay a
      // strict weak order.
      const bool a_nan = std::isnan(a.double_value()), b_nan = std::isnan(b.double_value());
      if (a_nan || b_nan) return three_way(a_nan, b_nan);
      return three_way(a.double_value(), b.double_value());
    }
    case v1::Value::kBoolValue:
      return three_way(a.bool_value(), b.bool_value());
    case v1::Value::kStringValue:
      return a.string_value().compare(b.string_value()) < 0   ? -1
             : a.string_value().compare(b.string_value()) > 0 ? 1
                                                              : 0;
    case v1::Value::KIND_NOT_SET:
      break;
  }
  return 0;
}

namespace {

// The first misfit of one aggregate's figures in cell `c`; OK if none.
absl::Status ValueFits(const v1::Aggregate& agg, int a, int c, const v1::AggregateValue& v) {
  auto misfit = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("cell ", c, ", aggregate ", a, ": ", what));
  };
  for (const double x : {v.value(), v.count(), v.sum(), v.sum_squares()}) {
    if (!std::isfinite(x)) return misfit("a figure is not a finite number");
  }
  const int most_bins = agg.kind() == v1::HISTOGRAM ? std::max(agg.bins(), 0) : 0;
  if (v.bins_size() > most_bins) {
    return misfit(
        absl::StrCat(v.bins_size(), " histogram bins where the question asks for ", most_bins));
  }
  for (const double bin : v.bins()) {
    if (!std::isfinite(bin)) return misfit("a histogram bin is not a finite number");
  }
  for (const int32_t b : v.withheld_bins()) {
    if (b < 0 || b >= v.bins_size()) return misfit(absl::StrCat("withheld bin ", b, " is no bin"));
  }
  if (v.bin_noise_size() > v.bins_size()) return misfit("more bin noise than bins");
  // Only the spread is added up (the interval is made again from it).
  auto noise_fits = [](const v1::Noise& n) { return std::isfinite(n.stddev()) && n.stddev() >= 0; };
  if (v.has_noise() && !noise_fits(v.noise())) {
    return misfit("its noise's spread is not a finite, non-negative number");
  }
  for (const v1::Noise& n : v.bin_noise()) {
    if (!noise_fits(n)) return misfit("a bin's noise spread is not a finite, non-negative number");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AnswerFits(const v1::AggregateQuery& query, const v1::AggregateResult& answer) {
  if (answer.unlisted_withheld_cells() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unlisted_withheld_cells is ", answer.unlisted_withheld_cells()));
  }
  for (const v1::Withholding& w : answer.withholdings()) {
    if (w.cells() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("withholding '", w.rule(), "' counts ", w.cells(), " cells"));
    }
  }
  const int n_aggs = query.aggregates_size();
  for (int c = 0; c < answer.cells_size(); ++c) {
    const v1::Cell& cell = answer.cells(c);
    if (cell.key_size() != query.group_by_size()) {
      return absl::InvalidArgumentError(absl::StrCat("cell ", c, " has ", cell.key_size(),
                                                     " key values for ", query.group_by_size(),
                                                     " group-by fields"));
    }
    if (cell.withheld()) continue;  // its figures, if any, are not added
    if (cell.values_size() != n_aggs) {
      return absl::InvalidArgumentError(absl::StrCat("cell ", c, " has ", cell.values_size(),
                                                     " values for ", n_aggs, " aggregates"));
    }
    for (int a = 0; a < n_aggs; ++a) {
      absl::Status fits = ValueFits(query.aggregates(a), a, c, cell.values(a));
      if (!fits.ok()) return fits;
    }
  }
  return absl::OkStatus();
}

v1::AggregateResult CombineResults(const v1::AggregateQuery& query,
                                   absl::Span<const v1::AggregateResult> answers,
                                   int /*partners_asked*/) {
  const int n_aggs = query.aggregates_size();
  std::map<Key, Combined, KeyLess> cells;
  // By rule: the first answer's withholding (its reason is kept) and the
  // cells of all. Cell counts add in 64 bits: thousands of partners' int32
  // counts can pass what one holds (they are capped at its largest when set).
  std::map<std::string, std::pair<v1::Withholding, int64_t>> withholdings;
  int64_t unlisted_withheld = 0;
  v1::AggregateResult result;
  result.set_query_id(query.query_id());

  for (size_t i = 0; i < answers.size(); ++i) {
    const v1::AggregateResult& answer = answers[i];
    if (result.columns_size() == 0) *result.mutable_columns() = answer.columns();
    if (result.group_buckets_size() == 0) *result.mutable_group_buckets() = answer.group_buckets();
    unlisted_withheld += answer.unlisted_withheld_cells();
    // The least exact partner's precision (an unset one is exact).
    const v1::AggregateResult::CountPrecision precision =
        answer.count_precision() == v1::AggregateResult::COUNT_PRECISION_UNSPECIFIED
            ? v1::AggregateResult::EXACT
            : answer.count_precision();
    result.set_count_precision(std::max(result.count_precision(), precision));
    for (const v1::Withholding& w : answer.withholdings()) {
      withholdings.try_emplace(w.rule(), w, 0).first->second.second += w.cells();
    }
    for (const v1::Cell& cell : answer.cells()) {
      Combined& c = cells[Key(cell.key().begin(), cell.key().end())];
      if (cell.withheld()) {
        c.listed_withheld_by.insert(i);
        if (std::find(c.rules.begin(), c.rules.end(), cell.withheld_rule()) == c.rules.end()) {
          c.rules.push_back(cell.withheld_rule());
        }
        continue;
      }
      // A partner that repeats a key is malformed; count its first cell only
      // rather than doubling its figures.
      if (!c.released_by.insert(i).second) continue;
      c.sums.resize(n_aggs);
      for (int a = 0; a < n_aggs && a < cell.values_size(); ++a) {
        const v1::AggregateValue& v = cell.values(a);
        Sums& s = c.sums[a];
        s.value += v.value();
        s.count += v.count();
        s.sum += v.sum();
        s.sum_squares += v.sum_squares();
        if (s.bins.size() < static_cast<size_t>(v.bins_size())) s.bins.resize(v.bins_size(), 0);
        for (int b = 0; b < v.bins_size(); ++b) s.bins[b] += v.bins(b);
        s.withheld_bins.insert(v.withheld_bins().begin(), v.withheld_bins().end());
        if (v.has_noise() || v.bin_noise_size() > 0) {
          const double sd = v.noise().stddev();
          s.noisy = true;
          s.variance += sd * sd;
          s.weighted_variance += v.count() * v.count() * sd * sd;
          if (s.bin_variance.size() < static_cast<size_t>(v.bin_noise_size())) {
            s.bin_variance.resize(v.bin_noise_size(), 0);
          }
          for (int b = 0; b < v.bin_noise_size(); ++b) {
            s.bin_variance[b] += v.bin_noise(b).stddev() * v.bin_noise(b).stddev();
          }
        }
      }
    }
  }
  if (result.columns_size() == 0) {
    for (const std::string& g : query.group_by()) result.add_columns(g);
    for (const v1::Aggregate& a : query.aggregates())
      result.add_columns(policy::AggregateColumnName(a));
  }

  std::vector<v1::Cell> withheld_cells;
  for (const auto& [key, c] : cells) {
    v1::Cell cell;
    for (const v1::Value& k : key) *cell.add_key() = k;
    if (c.released_by.empty()) {
      cell.set_withheld(true);
      cell.set_withheld_rule(absl::StrJoin(c.rules, ","));
      withheld_cells.push_back(std::move(cell));
      continue;
    }
    bool partial = !c.listed_withheld_by.empty();
    for (size_t i = 0; i < answers.size() && !partial; ++i) {
      partial = !c.released_by.count(i) && answers[i].unlisted_withheld_cells() > 0;
    }
    for (int a = 0; a < n_aggs; ++a) {
      partial |= !c.sums[a].withheld_bins.empty();
      *cell.add_values() = Finish(query.aggregates(a).kind(), c.sums[a]);
    }
    cell.set_partial(partial);
    cell.set_partners(static_cast<int>(c.released_by.size()));
    *result.add_cells() = std::move(cell);
  }
  for (v1::Cell& cell : withheld_cells) *result.add_cells() = std::move(cell);
  constexpr int64_t kMostCells = std::numeric_limits<int32_t>::max();
  result.set_unlisted_withheld_cells(static_cast<int32_t>(std::min(unlisted_withheld, kMostCells)));
  for (auto& [rule, w] : withholdings) {
    w.first.set_cells(static_cast<int32_t>(std::min(w.second, kMostCells)));
    *result.add_withholdings() = std::move(w.first);
  }
  return result;
}

}  // namespace fedshare::federation
