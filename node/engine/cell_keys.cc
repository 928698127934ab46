#include "node/engine/cell_keys.h"

#include <algorithm>

#include "node/common/status_macros.h"
#include "node/storage/keys.h"

namespace fedshare::engine {

absl::StatusOr<std::shared_ptr<const std::vector<uint32_t>>> RecordKeys::For(uint32_t table_size,
                                                                             uint32_t n) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const std::vector<uint32_t>>& cached = by_table_[table_size];
  if (cached != nullptr && cached->size() >= n) return cached;
  // Grown by copy, so a question holding the old vector keeps it intact.
  auto grown = std::make_shared<std::vector<uint32_t>>();
  if (cached != nullptr) *grown = *cached;
  grown->reserve(n);
  for (uint32_t ordinal = static_cast<uint32_t>(grown->size()); ordinal < n; ++ordinal) {
    FEDSHARE_ASSIGN_OR_RETURN(
        uint32_t key, policy::RecordKey(secret_, storage::EncodeFixed32BE(ordinal), table_size));
    grown->push_back(key);
  }
  cached = grown;
  return cached;
}

absl::StatusOr<policy::PTable> AgreementPTable(const v1::Disclosure& disclosure) {
  if (disclosure.ptable().empty()) return policy::DefaultPTable();
  return policy::PTable::Parse(disclosure.ptable());
}

void PerturbCounts(const policy::PTable& table, absl::Span<const uint32_t> keys,
                   const v1::Aggregate& agg, const ExecutedCell& cell,
                   const policy::CellStats& stats, size_t a, v1::AggregateValue& value) {
  const uint32_t size = table.table_size();
  auto perturbed = [&](double count, uint64_t key_sum) {
    return static_cast<double>(
        table.Perturb(static_cast<int64_t>(count), static_cast<uint32_t>(key_sum % size)));
  };
  switch (agg.kind()) {
    case v1::COUNT: {
      const double released = perturbed(value.value(), cell.record_key_sum);
      value.set_value(released);
      value.set_count(released);
      break;
    }
    case v1::COUNT_SUBJECTS: {
      uint64_t key_sum = 0;
      for (uint32_t ordinal : stats.subject_ordinals) {
        key_sum += ordinal < keys.size() ? keys[ordinal] : 0;
      }
      const double released = perturbed(value.value(), key_sum);
      value.set_value(released);
      value.set_count(released);
      break;
    }
    case v1::HISTOGRAM: {
      double total = 0;
      for (int b = 0; b < value.bins_size(); ++b) {
        const bool withheld = std::find(value.withheld_bins().begin(), value.withheld_bins().end(),
                                        b) != value.withheld_bins().end();
        if (withheld || a >= cell.bin_key_sums.size() ||
            static_cast<size_t>(b) >= cell.bin_key_sums[a].size()) {
          continue;
        }
        value.set_bins(b, perturbed(value.bins(b), cell.bin_key_sums[a][b]));
        total += value.bins(b);
      }
      value.set_value(total);
      value.set_count(total);
      break;
    }
    default:
      break;
  }
}

}  // namespace fedshare::engine
