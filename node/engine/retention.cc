// Engine::PurgeExpired: records past their dataset's retention_days go, one
// dataset per write (DESIGN §6; docs/storage-format.md, meta 0x17).

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"
#include "node/engine/engine_internal.h"

namespace fedshare::engine {

using storage::ColumnFamily;

int64_t UtcDay(absl::Time t) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  return seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
}

absl::StatusOr<std::vector<RetentionPurge>> Engine::PurgeExpired(
    const std::function<absl::Status(const RetentionPurge&)>& before_commit) {
  if (check_only_) return absl::FailedPreconditionError("this engine only checks the store");
  absl::MutexLock lock(&write_mu_);
  const int64_t today = UtcDay(clock_->Now());
  std::vector<RetentionPurge> purges;
  for (size_t ds = 0; ds < datasets_.size(); ++ds) {
    if (datasets_[ds]->schema.retention_days() <= 0) continue;
    FEDSHARE_ASSIGN_OR_RETURN(RetentionPurge purge, PurgeDataset(ds, today, before_commit));
    purges.push_back(std::move(purge));
  }
  return purges;
}

absl::StatusOr<RetentionPurge> Engine::PurgeDataset(
    size_t ds, int64_t today,
    const std::function<absl::Status(const RetentionPurge&)>& before_commit) {
  const DatasetDef& def = *datasets_[ds];
  RetentionPurge purge;
  purge.dataset = def.schema.name();
  purge.retention_days = def.schema.retention_days();
  // Loaded on day D, a record is older than retention_days from 00:00 UTC of
  // day D + retention_days + 1 on.
  const int64_t first_kept_day = today - purge.retention_days;
  purge.cutoff = absl::FromUnixSeconds(first_kept_day * 86400);

  absl::flat_hash_map<uint32_t, int64_t> load_day;
  FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(
      ColumnFamily::kMeta, storage::MetaBlockLoadDayPrefix(def.id),
      [&](absl::string_view key, absl::string_view value) {
        if (value.size() != 4) return absl::DataLossError("malformed block load day");
        load_day[storage::DecodeMetaBlockLoadDayBlock(key)] = storage::DecodeFixed32BE(value);
        return absl::OkStatus();
      }));

  storage::WriteBatch batch;
  const std::vector<bool> subjects_only(def.types.size(), false);
  ColumnBlock block;
  std::vector<uint64_t> present;
  uint64_t kept_blocks = 0;
  const std::string prefix = storage::RecordsDatasetPrefix(def.id);
  std::unique_ptr<storage::Iterator> it = storage_->NewIterator(ColumnFamily::kRecords, prefix);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const uint32_t number = storage::DecodeRecordsBlockNumber(it->key());
    absl::Status s = storage::DecodeColumnBlock(it->value(), def.types, &block, &subjects_only);
    if (!s.ok()) {
      return absl::DataLossError(
          absl::StrCat("dataset '", def.schema.name(), "' block ", number, ": ", s.message()));
    }
    auto day = load_day.find(number);
    if (day != load_day.end() && day->second < first_kept_day) {
      batch.Delete(ColumnFamily::kRecords, it->key());
      batch.Delete(ColumnFamily::kMeta, storage::MetaBlockLoadDayKey(def.id, number));
      purge.records_purged += block.rows;
      ++purge.blocks_purged;
      continue;
    }
    if (day == load_day.end()) purge.records_without_load_day += block.rows;
    purge.records_kept += block.rows;
    ++kept_blocks;
    for (uint32_t o : block.subjects) {
      if (o / 64 >= present.size()) present.resize(o / 64 + 1, 0);
      present[o / 64] |= uint64_t{1} << (o % 64);
    }
  }
  FEDSHARE_RETURN_IF_ERROR(it->status());
  if (purge.records_purged == 0) return purge;

  storage::DatasetStats stats;
  stats.rows = static_cast<uint64_t>(purge.records_kept);
  stats.blocks = static_cast<uint32_t>(kept_blocks);
  for (uint64_t word : present) stats.subjects += __builtin_popcountll(word);
  WriterState& w = *writer_;
  present.resize((uint64_t{w.subject_count} + 63) / 64, 0);
  batch.Put(ColumnFamily::kMeta, storage::MetaDatasetStatsKey(def.id),
            storage::EncodeDatasetStats(stats));
  batch.Put(ColumnFamily::kMeta, storage::MetaDatasetSubjectsKey(def.id),
            storage::EncodeSubjectBitmap(present));
  if (before_commit) FEDSHARE_RETURN_IF_ERROR(before_commit(purge));
  const absl::Status written = storage_->Write(std::move(batch));
  data_generation_.fetch_add(1, std::memory_order_acq_rel);
  FEDSHARE_RETURN_IF_ERROR(written);
  w.stats[ds] = stats;
  absl::MutexLock lock(&state_mu_);
  present_[ds] = std::move(present);
  return purge;
}

}  // namespace fedshare::engine
