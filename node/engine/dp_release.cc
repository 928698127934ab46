#include "node/engine/dp_release.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "node/common/status_macros.h"
#include "policy/dp_partition.h"
#include "policy/query_rules.h"

namespace fedshare::engine {
namespace {

void SetNoise(const policy::NoisyRelease& r, v1::Noise* noise) {
  noise->set_laplace_scale(r.laplace_scale);
  noise->set_stddev(r.stddev);
  noise->set_ci_low(r.ci_low);
  noise->set_ci_high(r.ci_high);
  noise->set_granularity(r.granularity);
}

// What bounding kept of one cell.
struct BoundedCell {
  int64_t records = 0;
  absl::flat_hash_set<uint32_t> subjects;
  std::vector<policy::BoundedMoments> moments;  // per aggregate
  std::vector<std::vector<int64_t>> bins;       // per aggregate (HISTOGRAM)
};

bool TakesMoments(v1::AggregateKind kind) {
  return kind == v1::SUM || kind == v1::AVG || kind == v1::STDDEV || kind == v1::VARIANCE;
}

const v1::FieldSchema* Field(const v1::DatasetSchema& schema, const std::string& name) {
  for (const v1::FieldSchema& f : schema.fields()) {
    if (f.name() == name) return &f;
  }
  return nullptr;
}

BoundedCell NewCell(const v1::AggregateQuery& query, const v1::DatasetSchema& schema) {
  BoundedCell cell;
  for (const v1::Aggregate& agg : query.aggregates()) {
    const v1::FieldSchema* f = Field(schema, agg.field());
    cell.moments.emplace_back(f ? f->lower() : 0, f ? f->upper() : 0);
    cell.bins.emplace_back(agg.kind() == v1::HISTOGRAM ? agg.bins() : 0, 0);
  }
  return cell;
}

// Every combination of the group fields' declared values, in key order.
std::vector<std::vector<v1::Value>> DeclaredKeys(const v1::AggregateQuery& query,
                                                 const v1::DatasetSchema& schema) {
  std::vector<std::vector<v1::Value>> keys = {{}};
  for (const std::string& name : query.group_by()) {
    std::vector<std::string> values(Field(schema, name)->categories().begin(),
                                    Field(schema, name)->categories().end());
    std::sort(values.begin(), values.end());
    std::vector<std::vector<v1::Value>> next;
    for (const std::vector<v1::Value>& prefix : keys) {
      for (const std::string& value : values) {
        next.push_back(prefix);
        next.back().emplace_back().set_string_value(value);
      }
    }
    keys = std::move(next);
  }
  return keys;
}

std::string KeyBytes(const std::vector<v1::Value>& key) {
  std::string out;
  for (const v1::Value& v : key) {
    const std::string bytes = v.SerializeAsString();
    out += std::to_string(bytes.size());
    out += ':';
    out += bytes;
  }
  return out;
}

absl::Status ReleaseValue(const v1::Aggregate& agg, const BoundedCell& cell, size_t a,
                          const policy::DpParams& params, policy::RandomSource& rng,
                          v1::AggregateValue* value) {
  const policy::BoundedMoments& m = cell.moments[a];
  switch (agg.kind()) {
    case v1::COUNT: {
      FEDSHARE_ASSIGN_OR_RETURN(policy::NoisyRelease r,
                                policy::ReleaseCount(cell.records, params, rng));
      value->set_value(r.value);
      value->set_count(r.value);
      SetNoise(r, value->mutable_noise());
      return absl::OkStatus();
    }
    case v1::COUNT_SUBJECTS: {
      FEDSHARE_ASSIGN_OR_RETURN(
          policy::NoisyRelease r,
          policy::ReleaseDistinctCount(static_cast<int64_t>(cell.subjects.size()), params, rng));
      value->set_value(r.value);
      value->set_count(r.value);
      SetNoise(r, value->mutable_noise());
      return absl::OkStatus();
    }
    case v1::SUM: {
      FEDSHARE_ASSIGN_OR_RETURN(policy::NoisyRelease r, policy::ReleaseSum(m, params, rng));
      value->set_value(r.value);
      value->set_sum(r.value);
      SetNoise(r, value->mutable_noise());
      return absl::OkStatus();
    }
    case v1::AVG: {
      FEDSHARE_ASSIGN_OR_RETURN(policy::MeanRelease r, policy::ReleaseMean(m, params, rng));
      value->set_value(r.mean.value);
      value->set_count(r.count.value);
      value->set_sum(m.midpoint() * r.count.value + r.centred_sum.value);
      SetNoise(r.mean, value->mutable_noise());
      return absl::OkStatus();
    }
    case v1::VARIANCE:
    case v1::STDDEV: {
      FEDSHARE_ASSIGN_OR_RETURN(policy::VarianceRelease r, policy::ReleaseVariance(m, params, rng));
      const policy::NoisyRelease& shown = agg.kind() == v1::STDDEV ? r.stddev : r.variance;
      const double mid = m.midpoint();
      const double c = r.count.value;
      const double s = r.centred_sum.value;
      value->set_value(shown.value);
      value->set_count(c);
      value->set_sum(mid * c + s);
      value->set_sum_squares(r.centred_sum_sq.value + 2 * mid * s + mid * mid * c);
      SetNoise(shown, value->mutable_noise());
      return absl::OkStatus();
    }
    case v1::HISTOGRAM: {
      FEDSHARE_ASSIGN_OR_RETURN(std::vector<policy::NoisyRelease> bins,
                                policy::ReleaseHistogram(cell.bins[a], params, rng));
      double total = 0;
      double variance = 0;
      for (const policy::NoisyRelease& b : bins) {
        value->add_bins(b.value);
        SetNoise(b, value->add_bin_noise());
        total += b.value;
        variance += b.stddev * b.stddev;
      }
      // The total is derived from the bins: a normal approximation.
      value->set_value(total);
      value->set_count(total);
      v1::Noise* noise = value->mutable_noise();
      noise->set_stddev(std::sqrt(variance));
      noise->set_ci_low(total - 1.96 * noise->stddev());
      noise->set_ci_high(total + 1.96 * noise->stddev());
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError("aggregate kind not supported under differential privacy");
  }
}

}  // namespace

DpPlan PlanDp(const v1::AggregateQuery& query, const v1::DatasetSchema& schema,
              const policy::DpSettings& settings) {
  DpPlan plan;
  if (query.group_by_size() > 0) {
    bool enumerable = true;
    size_t cells = 1;
    for (const std::string& name : query.group_by()) {
      const v1::FieldSchema* f = Field(schema, name);
      if (f == nullptr || !f->public_values() || f->type() != v1::FieldSchema::CATEGORY ||
          f->categories().empty()) {
        enumerable = false;
        break;
      }
      cells *= static_cast<size_t>(f->categories_size());
      if (cells > kMaxEnumeratedCells) enumerable = false;
    }
    plan.enumerate_keys = enumerable;
    plan.select_partitions = !enumerable;
  }
  const int parts = query.aggregates_size() + (plan.select_partitions ? 1 : 0);
  plan.epsilon_per_part = settings.epsilon_per_question / std::max(1, parts);
  return plan;
}

absl::StatusOr<std::vector<bool>> BoundRecords(const ScannedRecords& records,
                                               const policy::ContributionBounds& bounds,
                                               policy::RandomSource& rng) {
  return policy::SelectBoundedRecords(records.refs, bounds, rng);
}

absl::StatusOr<std::vector<v1::Cell>> ReleaseDpCells(
    const v1::AggregateQuery& query, const v1::DatasetSchema& schema, const Execution& execution,
    const ScannedRecords& records, const policy::DpSettings& settings, policy::RandomSource& rng) {
  const DpPlan plan = PlanDp(query, schema, settings);
  const size_t n_aggs = static_cast<size_t>(query.aggregates_size());

  // The answer's cells in key order, and where each scanned cell goes.
  std::vector<std::vector<v1::Value>> keys;
  std::vector<int64_t> position_of_scan(execution.cells.size(), -1);
  if (plan.enumerate_keys) {
    keys = DeclaredKeys(query, schema);
    std::map<std::string, size_t> position;
    for (size_t i = 0; i < keys.size(); ++i) position[KeyBytes(keys[i])] = i;
    // Records whose group value is empty fall in no declared cell.
    for (const ExecutedCell& cell : execution.cells) {
      auto it = position.find(KeyBytes(cell.key));
      if (it != position.end())
        position_of_scan[cell.scan_index] = static_cast<int64_t>(it->second);
    }
  } else {
    for (size_t i = 0; i < execution.cells.size(); ++i) {
      keys.push_back(execution.cells[i].key);
      position_of_scan[execution.cells[i].scan_index] = static_cast<int64_t>(i);
    }
  }

  std::vector<policy::RecordRef> refs;
  std::vector<size_t> source;  // index into records.refs of each ref kept here
  refs.reserve(records.refs.size());
  for (size_t i = 0; i < records.refs.size(); ++i) {
    const int64_t pos = position_of_scan[records.refs[i].cell];
    if (pos < 0) continue;
    refs.push_back({records.refs[i].subject, static_cast<uint32_t>(pos)});
    source.push_back(i);
  }
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<bool> kept,
                            policy::SelectBoundedRecords(refs, settings.bounds, rng));

  std::vector<BoundedCell> cells;
  cells.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) cells.push_back(NewCell(query, schema));
  for (size_t i = 0; i < refs.size(); ++i) {
    if (!kept[i]) continue;
    BoundedCell& cell = cells[refs[i].cell];
    ++cell.records;
    cell.subjects.insert(refs[i].subject);
    for (size_t a = 0; a < n_aggs; ++a) {
      const double v = records.measures[source[i] * n_aggs + a];
      if (std::isnan(v)) continue;
      const v1::Aggregate& agg = query.aggregates(static_cast<int>(a));
      if (TakesMoments(agg.kind())) cell.moments[a].Add(v);
      if (agg.kind() == v1::HISTOGRAM) ++cell.bins[a][policy::HistogramBin(agg, v)];
    }
  }

  std::vector<bool> released(keys.size(), true);
  if (plan.select_partitions) {
    FEDSHARE_ASSIGN_OR_RETURN(
        policy::PartitionSelector selector,
        policy::PartitionSelector::Create(
            {.epsilon = plan.epsilon_per_part,
             .delta = settings.delta,
             .max_groups_per_subject = settings.bounds.max_groups_per_subject}));
    for (size_t i = 0; i < keys.size(); ++i) {
      FEDSHARE_ASSIGN_OR_RETURN(
          bool keep, selector.ShouldKeep(static_cast<int64_t>(cells[i].subjects.size()), rng));
      released[i] = keep;
    }
  }

  const policy::DpParams params{.epsilon = plan.epsilon_per_part, .bounds = settings.bounds};
  std::vector<v1::Cell> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!released[i]) continue;
    v1::Cell& cell = out.emplace_back();
    for (v1::Value& v : keys[i]) *cell.add_key() = std::move(v);
    for (size_t a = 0; a < n_aggs; ++a) {
      FEDSHARE_RETURN_IF_ERROR(ReleaseValue(query.aggregates(static_cast<int>(a)), cells[i], a,
                                            params, rng, cell.add_values()));
    }
  }
  return out;
}

}  // namespace fedshare::engine
