// Engine::EraseSubject: a subject's records, consent and id removed in one
// write, then compacted out of the files (DESIGN §6; docs/operators.md).

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "node/common/status_macros.h"
#include "node/engine/engine_internal.h"

namespace fedshare::engine {

using storage::ColumnFamily;

namespace {

bool TestBit(const std::vector<uint64_t>& bits, uint32_t o) {
  return o / 64 < bits.size() && ((bits[o / 64] >> (o % 64)) & 1u) != 0;
}

// What replaces an erased id in text the node keeps (ingest outcomes).
constexpr absl::string_view kErasedMark = "[erased]";

}  // namespace

uint32_t CopyRowsWithout(const ColumnBlock& in, uint32_t ordinal, ColumnBlock* out) {
  out->Reset(in.columns.size());
  for (uint32_t r = 0; r < in.rows; ++r) {
    if (in.subjects[r] == ordinal) continue;
    const uint32_t row = out->rows++;
    out->subjects.push_back(in.subjects[r]);
    for (size_t c = 0; c < in.columns.size(); ++c) {
      const ColumnBlock::Column& from = in.columns[c];
      ColumnBlock::Column& to = out->columns[c];
      if (!from.ints.empty()) to.ints.push_back(from.ints[r]);
      if (!from.doubles.empty()) to.doubles.push_back(from.doubles[r]);
      if (from.IsNull(r)) to.SetNull(row, row + 1);
    }
  }
  return in.rows - out->rows;
}

absl::StatusOr<Erasure> Engine::EraseSubject(
    absl::string_view subject_id,
    const std::function<absl::Status(const Erasure&)>& before_commit) {
  std::vector<storage::Storage::KeyRange> ranges;
  Erasure erasure;
  {
    absl::MutexLock lock(&write_mu_);
    FEDSHARE_ASSIGN_OR_RETURN(erasure, EraseLocked(subject_id, before_commit, &ranges));
  }
  // Outside the writer's lock: ingests go on while the files are rewritten.
  erasure.physical = storage_->CompactAway(ranges);
  return erasure;
}

absl::StatusOr<Erasure> Engine::EraseLocked(
    absl::string_view subject_id, const std::function<absl::Status(const Erasure&)>& before_commit,
    std::vector<storage::Storage::KeyRange>* ranges) {
  if (check_only_) return absl::FailedPreconditionError("this engine only checks the store");
  WriterState& w = *writer_;
  FEDSHARE_RETURN_IF_ERROR(w.LoadSubjects(*storage_));
  const std::string id(subject_id);
  const std::optional<uint32_t> found = w.subjects.Find(id);
  // The message never repeats the id: it goes to the node's log.
  if (!found.has_value()) {
    return absl::NotFoundError(
        "no subject with this id is stored (no record and no consent event names it); nothing "
        "was erased. Ids match exactly, letter case and spaces included");
  }
  const uint32_t ordinal = *found;

  storage::WriteBatch batch;
  Erasure erasure;
  std::vector<storage::DatasetStats> stats = w.stats;
  std::vector<std::vector<uint64_t>> present;
  {
    absl::MutexLock lock(&state_mu_);
    present = present_;
  }
  for (size_t ds = 0; ds < datasets_.size(); ++ds) {
    if (!TestBit(present[ds], ordinal)) continue;
    const DatasetDef& def = *datasets_[ds];
    FEDSHARE_ASSIGN_OR_RETURN(int64_t removed,
                              EraseFromDataset(def, ordinal, &stats[ds], &batch, ranges));
    present[ds][ordinal / 64] &= ~(uint64_t{1} << (ordinal % 64));
    stats[ds].rows -= std::min<uint64_t>(stats[ds].rows, static_cast<uint64_t>(removed));
    if (stats[ds].subjects > 0) --stats[ds].subjects;
    batch.Put(ColumnFamily::kMeta, storage::MetaDatasetStatsKey(def.id),
              storage::EncodeDatasetStats(stats[ds]));
    batch.Put(ColumnFamily::kMeta, storage::MetaDatasetSubjectsKey(def.id),
              storage::EncodeSubjectBitmap(present[ds]));
    // Stores written before meta 0x16 may still index the subject's blocks.
    std::string legacy = storage::SubjectBlockDatasetPrefix(def.id);
    storage::AppendFixed32BE(&legacy, ordinal);
    FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(ColumnFamily::kSubjects, legacy,
                                                  [&](absl::string_view key, absl::string_view) {
                                                    batch.Delete(ColumnFamily::kSubjects, key);
                                                    return absl::OkStatus();
                                                  }));
    erasure.records += removed;
    erasure.datasets.emplace_back(def.schema.name(), removed);
  }

  std::string consent_prefix = storage::ConsentPrefix();
  storage::AppendFixed32BE(&consent_prefix, ordinal);
  FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(ColumnFamily::kConsent, consent_prefix,
                                                [&](absl::string_view key, absl::string_view) {
                                                  batch.Delete(ColumnFamily::kConsent, key);
                                                  ++erasure.consent_events;
                                                  return absl::OkStatus();
                                                }));
  ranges->push_back(
      {ColumnFamily::kConsent, consent_prefix, storage::PrefixSuccessor(consent_prefix)});

  batch.Delete(ColumnFamily::kSubjects, storage::SubjectOrdinalByIdKey(id));
  batch.Delete(ColumnFamily::kSubjects, storage::SubjectIdByOrdinalKey(ordinal));
  // Whole column families: a range bounded by the id would put it in
  // RocksDB's log lines. Both are small (one or two keys per subject or
  // dataset).
  ranges->push_back({ColumnFamily::kSubjects, "", ""});
  ranges->push_back({ColumnFamily::kMeta, "", ""});

  // A stored ingest outcome's row errors quote input text, which may hold
  // the id: the id is replaced there.
  const std::string outcomes(1, static_cast<char>(storage::MetaTag::kIngestOutcome));
  FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(
      ColumnFamily::kMeta, outcomes, [&](absl::string_view key, absl::string_view value) {
        if (!absl::StrContains(value, id)) return absl::OkStatus();
        v1::IngestResponse outcome;
        if (!outcome.ParseFromString(std::string(value))) {
          return absl::DataLossError("a stored ingest outcome does not parse");
        }
        for (v1::RowError& e : *outcome.mutable_errors()) {
          e.set_column(absl::StrReplaceAll(e.column(), {{id, kErasedMark}}));
          e.set_reason(absl::StrReplaceAll(e.reason(), {{id, kErasedMark}}));
        }
        batch.Put(ColumnFamily::kMeta, key, outcome.SerializeAsString());
        return absl::OkStatus();
      }));

  if (before_commit) FEDSHARE_RETURN_IF_ERROR(before_commit(erasure));
  const absl::Status written = storage_->Write(std::move(batch));
  data_generation_.fetch_add(1, std::memory_order_acq_rel);
  FEDSHARE_RETURN_IF_ERROR(written);

  // Committed: forget the subject everywhere it is held in memory.
  w.stats = std::move(stats);
  w.subjects.Erase(id);
  {
    absl::MutexLock lock(&state_mu_);
    present_ = std::move(present);
    ++consent_generation_;
  }
  {
    absl::MutexLock lock(&cache_mu_);
    consent_cache_.clear();
  }
  return erasure;
}

absl::StatusOr<int64_t> Engine::EraseFromDataset(
    const DatasetDef& def, uint32_t ordinal, storage::DatasetStats* stats,
    storage::WriteBatch* batch, std::vector<storage::Storage::KeyRange>* ranges) const {
  const std::string prefix = storage::RecordsDatasetPrefix(def.id);
  const std::vector<bool> subjects_only(def.types.size(), false);
  ColumnBlock block, kept;
  int64_t removed = 0;
  std::string first, last;
  std::unique_ptr<storage::Iterator> it = storage_->NewIterator(ColumnFamily::kRecords, prefix);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const uint32_t number = storage::DecodeRecordsBlockNumber(it->key());
    auto malformed = [&](const absl::Status& s) {
      return absl::DataLossError(
          absl::StrCat("dataset '", def.schema.name(), "' block ", number, ": ", s.message()));
    };
    absl::Status s = storage::DecodeColumnBlock(it->value(), def.types, &block, &subjects_only);
    if (!s.ok()) return malformed(s);
    if (std::find(block.subjects.begin(), block.subjects.end(), ordinal) == block.subjects.end()) {
      continue;
    }
    s = storage::DecodeColumnBlock(it->value(), def.types, &block);
    if (!s.ok()) return malformed(s);
    removed += CopyRowsWithout(block, ordinal, &kept);
    if (kept.rows == 0) {
      batch->Delete(ColumnFamily::kRecords, it->key());
      batch->Delete(ColumnFamily::kMeta, storage::MetaBlockLoadDayKey(def.id, number));
      if (stats->blocks > 0) --stats->blocks;
    } else {
      batch->Put(ColumnFamily::kRecords, it->key(), storage::EncodeColumnBlock(kept, def.types));
    }
    if (first.empty()) first = std::string(it->key());
    last = std::string(it->key());
  }
  FEDSHARE_RETURN_IF_ERROR(it->status());
  if (!first.empty()) {
    ranges->push_back({ColumnFamily::kRecords, first, storage::PrefixSuccessor(last)});
  }
  return removed;
}

}  // namespace fedshare::engine
