#include "node/engine/ingest_writer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"
#include "node/engine/engine_internal.h"

namespace fedshare::engine {

using storage::ColumnFamily;
using storage::StoredType;

IngestWriter::IngestWriter(Engine* engine, const DatasetDef& def, size_t ds, bool replace)
    : engine_(engine),
      def_(def),
      ds_(ds),
      nfields_(def.schema.fields_size()),
      replace_(replace) {}

// Staged subjects and files go before the engine's lock does (the run
// destroys the writer first).
IngestWriter::~IngestWriter() = default;

absl::Status IngestWriter::Start() {
  engine_->write_mu_.AssertHeld();
  Engine::WriterState& w = *engine_->writer_;
  const storage::Storage& store = *engine_->storage_;
  FEDSHARE_RETURN_IF_ERROR(w.LoadSubjects(store));
  subjects_ = std::make_unique<SubjectStaging>(&w.subjects, &w.subject_count);
  dicts_.resize(nfields_);
  for (int f = 0; f < nfields_; ++f) {
    if (def_.types[f] == StoredType::kCategory) {
      dicts_[f] = std::make_unique<DictionaryStaging>(w.dicts[ds_][f]);
    }
  }
  stats_ = w.stats[ds_];
  {
    absl::MutexLock lock(&engine_->state_mu_);
    present_ = engine_->present_[ds_];
  }
  FEDSHARE_ASSIGN_OR_RETURN(bulk_, engine_->storage_->NewBulkWrite());
  records_table_ = bulk_->AddTable(ColumnFamily::kRecords);
  ordinals_table_ = bulk_->AddTable(ColumnFamily::kSubjects);
  ids_table_ = bulk_->AddTable(ColumnFamily::kSubjects);
  legacy_table_ = bulk_->AddTable(ColumnFamily::kSubjects);
  meta_table_ = bulk_->AddTable(ColumnFamily::kMeta);
  if (replace_) FEDSHARE_RETURN_IF_ERROR(StageReplace());
  block_.Reset(nfields_);
  load_day_ = UtcDay(engine_->clock_->Now());
  if (stats_.blocks == 0) return absl::OkStatus();
  // The tail is the highest-numbered block (an erasure or a purge may have
  // removed others). Rows are added to it only if they share its load day.
  FEDSHARE_ASSIGN_OR_RETURN(
      auto tail,
      store.LastWithPrefix(ColumnFamily::kRecords, storage::RecordsDatasetPrefix(def_.id)));
  if (!tail.has_value()) {
    return absl::DataLossError(absl::StrCat("dataset '", def_.schema.name(), "' counts ",
                                            stats_.blocks, " blocks but none is stored"));
  }
  block_no_ = storage::DecodeRecordsBlockNumber(tail->first);
  FEDSHARE_ASSIGN_OR_RETURN(
      std::optional<std::string> day,
      store.Get(ColumnFamily::kMeta, storage::MetaBlockLoadDayKey(def_.id, block_no_)));
  const bool same_day =
      day.has_value() && day->size() == 4 && storage::DecodeFixed32BE(*day) == load_day_;
  FEDSHARE_RETURN_IF_ERROR(storage::DecodeColumnBlock(tail->second, def_.types, &block_));
  if (block_.rows >= storage::kBlockRows || !same_day) {
    block_.Reset(nfields_);
    ++block_no_;
  } else {
    block_is_new_ = false;
  }
  return absl::OkStatus();
}

// The deletion of every row of the dataset (its blocks, its subject-block
// index of old stores) and of its loaded-file digests and load days, staged
// before the new rows: new blocks are numbered from 0 again and overwrite
// old ones, old blocks beyond them are deleted at Finish.
absl::Status IngestWriter::StageReplace() {
  const storage::Storage& store = *engine_->storage_;
  // Block numbers may have gaps after an erasure or a purge: the keys are
  // read rather than counted.
  const std::string records = storage::RecordsDatasetPrefix(def_.id);
  std::unique_ptr<storage::Iterator> it = store.NewIterator(ColumnFamily::kRecords, records);
  for (it->Seek(records); it->Valid(); it->Next()) {
    old_blocks_.push_back(storage::DecodeRecordsBlockNumber(it->key()));
  }
  FEDSHARE_RETURN_IF_ERROR(it->status());
  FEDSHARE_RETURN_IF_ERROR(store.ScanPrefix(ColumnFamily::kSubjects,
                                            storage::SubjectBlockDatasetPrefix(def_.id),
                                            [&](absl::string_view key, absl::string_view) {
                                              return bulk_->Delete(legacy_table_, key);
                                            }));
  for (const std::string& prefix :
       {storage::MetaIngestDigestPrefix(def_.id), storage::MetaBlockLoadDayPrefix(def_.id)}) {
    FEDSHARE_RETURN_IF_ERROR(store.ScanPrefix(ColumnFamily::kMeta, prefix,
                                              [&](absl::string_view key, absl::string_view) {
                                                meta_bytes_ += key.size() + 64;
                                                meta_[std::string(key)] = std::nullopt;
                                                return absl::OkStatus();
                                              }));
  }
  present_before_ = std::move(present_);
  present_.clear();
  rows_removed_ = static_cast<int64_t>(stats_.rows);
  stats_ = storage::DatasetStats();
  return absl::OkStatus();
}

// The subject is present and every cell valid: assign codes and ordinals.
absl::Status IngestWriter::Stage(const std::vector<Cell>& cells) {
  if (!writing_) return absl::OkStatus();
  const uint32_t row = block_.rows;
  // The ordinal comes with the block's others (ResolveSubjects).
  const absl::string_view id = cells[def_.subject_field].s;
  pending_ids_.append(id.data(), id.size());
  pending_ends_.push_back(static_cast<uint32_t>(pending_ids_.size()));
  pending_hashes_.push_back(SubjectIndex::Hash(id));
  block_.subjects.push_back(0);
  for (int f = 0; f < nfields_; ++f) {
    const Cell& c = cells[f];
    ColumnBlock::Column& col = block_.columns[f];
    switch (def_.types[f]) {
      case StoredType::kNone:
        continue;
      case StoredType::kDouble:
        col.doubles.push_back(c.null ? 0.0 : c.d);
        break;
      case StoredType::kCategory:
        col.ints.push_back(c.null ? 0 : dicts_[f]->Code(c.s));
        break;
      default:
        col.ints.push_back(c.null ? 0 : c.i);
        break;
    }
    if (c.null) col.SetNull(row, row + 1);
  }
  block_.rows = row + 1;
  block_dirty_ = true;
  if (block_.rows >= storage::kBlockRows) return FlushBlock();
  return absl::OkStatus();
}

absl::Status IngestWriter::ResolveSubjects() {
  const size_t n = pending_hashes_.size();
  if (n == 0) return absl::OkStatus();
  pending_views_.clear();
  uint32_t begin = 0;
  for (uint32_t end : pending_ends_) {
    pending_views_.emplace_back(pending_ids_.data() + begin, end - begin);
    begin = end;
  }
  pending_ordinals_.resize(n);
  if (pending_added_ == nullptr) pending_added_.reset(new bool[storage::kBlockRows]);
  subjects_->Ordinals(pending_views_.data(), pending_hashes_.data(), n, pending_ordinals_.data(),
                      pending_added_.get());
  const size_t first_row = block_.subjects.size() - n;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t ordinal = pending_ordinals_[i];
    block_.subjects[first_row + i] = ordinal;
    if (pending_added_[i]) {
      // New ordinals come in increasing order: the table stays sorted.
      key_ = storage::SubjectIdByOrdinalPrefix();
      storage::AppendFixed32BE(&key_, ordinal);
      FEDSHARE_RETURN_IF_ERROR(bulk_->Put(ordinals_table_, key_, pending_views_[i]));
      FEDSHARE_RETURN_IF_ERROR(StageIdInOrder(pending_views_[i], ordinal));
    }
    if (ordinal / 64 >= present_.size()) present_.resize(ordinal / 64 + 1, 0);
    uint64_t& word = present_[ordinal / 64];
    const uint64_t bit = uint64_t{1} << (ordinal % 64);
    if ((word & bit) == 0) {
      word |= bit;
      ++new_subjects_;
    }
  }
  pending_ids_.clear();
  pending_ends_.clear();
  pending_hashes_.clear();
  return absl::OkStatus();
}

absl::Status IngestWriter::StageIdInOrder(absl::string_view id, uint32_t ordinal) {
  if (!ids_in_order_) return absl::OkStatus();
  // Ids are never empty: the first is greater than last_new_id_'s "".
  if (id <= last_new_id_) {
    ids_in_order_ = false;
    return bulk_->ClearTable(ids_table_);
  }
  last_new_id_.assign(id.data(), id.size());
  key_ = storage::SubjectOrdinalByIdPrefix();
  key_.append(id.data(), id.size());
  return bulk_->Put(ids_table_, key_, storage::EncodeFixed32BE(ordinal));
}

absl::Status IngestWriter::FlushBlock() {
  FEDSHARE_RETURN_IF_ERROR(ResolveSubjects());
  if (block_dirty_) {
    FEDSHARE_RETURN_IF_ERROR(bulk_->Put(records_table_,
                                        storage::RecordsBlockKey(def_.id, block_no_),
                                        storage::EncodeColumnBlock(block_, def_.types)));
    next_unwritten_ = block_no_ + 1;
    if (block_is_new_) {
      ++stats_.blocks;
      std::string key = storage::MetaBlockLoadDayKey(def_.id, block_no_);
      meta_bytes_ += key.size() + 64;
      meta_[std::move(key)] = storage::EncodeFixed32BE(static_cast<uint32_t>(load_day_));
      block_is_new_ = false;
    }
    block_dirty_ = false;
  }
  if (block_.rows >= storage::kBlockRows) {
    block_.Reset(nfields_);
    ++block_no_;
    block_is_new_ = true;
  }
  return absl::OkStatus();
}

// Without skip_invalid one bad row means nothing is written: drop what was
// staged (files included) and only check the rest of the file.
void IngestWriter::Stop() {
  if (!writing_) return;
  writing_ = false;
  bulk_.reset();
  meta_.clear();
  meta_bytes_ = 0;
  block_.Reset(nfields_);
  block_dirty_ = false;
  pending_ids_.clear();
  pending_ends_.clear();
  pending_hashes_.clear();
  subjects_->Reset();
  engine_->write_mu_.AssertHeld();
  Engine::WriterState& w = *engine_->writer_;
  for (int f = 0; f < nfields_; ++f) {
    if (dicts_[f] != nullptr) dicts_[f] = std::make_unique<DictionaryStaging>(w.dicts[ds_][f]);
  }
}

size_t IngestWriter::staged_bytes() const { return bulk_ != nullptr ? bulk_->held_bytes() : 0; }

size_t IngestWriter::held_bytes() const {
  // A write still in memory at the commit is held twice: Storage::Write
  // releases each operation as it copies it into RocksDB's batch. New ids
  // are sorted at the end (8 bytes each).
  size_t held = 2 * staged_bytes() + meta_bytes_ +
                (present_.capacity() + present_before_.capacity()) * sizeof(uint64_t) +
                old_blocks_.capacity() * sizeof(uint32_t) + pending_ids_.capacity();
  if (subjects_ != nullptr) held += subjects_->held_bytes() + 8 * size_t{subjects_->added()};
  for (const auto& d : dicts_) {
    if (d != nullptr) held += d->held_bytes();
  }
  return held;
}

absl::Status IngestWriter::Finish(uint64_t rows, const std::string& file_sha256,
                                  const std::string& outcome_key, v1::IngestResponse* response) {
  engine_->write_mu_.AssertHeld();
  FEDSHARE_RETURN_IF_ERROR(FlushBlock());
  stats_.rows += rows;
  stats_.subjects += static_cast<uint32_t>(new_subjects_);
  present_.resize((uint64_t{subjects_->total()} + 63) / 64, 0);
  if (replace_) {
    response->set_replaced(true);
    response->set_rows_removed(rows_removed_);
    // new_subjects_ counted the file's subjects; report those the dataset lacked.
    new_subjects_ = 0;
    for (size_t i = 0; i < present_.size(); ++i) {
      const uint64_t before = i < present_before_.size() ? present_before_[i] : 0;
      new_subjects_ += __builtin_popcountll(present_[i] & ~before);
    }
    for (uint32_t block : old_blocks_) {
      if (block < next_unwritten_) continue;  // overwritten by a new block
      FEDSHARE_RETURN_IF_ERROR(
          bulk_->Delete(records_table_, storage::RecordsBlockKey(def_.id, block)));
    }
  }
  std::string loaded;
  storage::AppendFixed64BE(&loaded,
                           static_cast<uint64_t>(absl::ToUnixMillis(engine_->clock_->Now())));
  storage::AppendFixed64BE(&loaded, rows);
  meta_[storage::MetaIngestDigestKey(def_.id, file_sha256)] = loaded;
  meta_[storage::MetaDatasetStatsKey(def_.id)] = storage::EncodeDatasetStats(stats_);
  meta_[storage::MetaDatasetSubjectsKey(def_.id)] = storage::EncodeSubjectBitmap(present_);
  for (int f = 0; f < nfields_; ++f) {
    if (dicts_[f] == nullptr) continue;
    uint32_t code = dicts_[f]->first_new_code();
    for (const std::string& value : dicts_[f]->new_values()) {
      meta_[storage::MetaCategoryKey(def_.id, f, code++)] = value;
    }
  }
  if (subjects_->added() > 0) {
    meta_[storage::MetaSubjectCountKey()] = storage::EncodeFixed32BE(subjects_->total());
  }
  response->set_rows_written(static_cast<int64_t>(rows));
  response->set_new_subjects(new_subjects_);
  if (!outcome_key.empty()) {
    v1::IngestResponse outcome = *response;
    outcome.clear_rejected_rows();
    meta_[outcome_key] = outcome.SerializeAsString();
  }
  // Each new subject's ordinal by id, in id order (staged already if the
  // ids came in order).
  const SubjectIndex& index = subjects_->index();
  for (SubjectIndex::Ref ref :
       ids_in_order_ ? std::vector<SubjectIndex::Ref>() : subjects_->NewInIdOrder()) {
    key_ = storage::SubjectOrdinalByIdPrefix();
    const absl::string_view id = index.id(ref);
    key_.append(id.data(), id.size());
    FEDSHARE_RETURN_IF_ERROR(
        bulk_->Put(ids_table_, key_, storage::EncodeFixed32BE(index.ordinal(ref))));
  }
  for (const auto& [key, value] : meta_) {
    FEDSHARE_RETURN_IF_ERROR(value.has_value() ? bulk_->Put(meta_table_, key, *value)
                                               : bulk_->Delete(meta_table_, key));
  }
  return absl::OkStatus();
}

absl::Status IngestWriter::Commit() {
  engine_->write_mu_.AssertHeld();
  FEDSHARE_RETURN_IF_ERROR(engine_->storage_->Commit(std::move(bulk_)));
  // Committed: make the staged state current.
  Engine::WriterState& w = *engine_->writer_;
  w.stats[ds_] = stats_;
  const bool new_ids = subjects_->added() > 0;
  subjects_->Commit();
  for (int f = 0; f < nfields_; ++f) {
    if (dicts_[f] == nullptr) continue;
    for (const std::string& value : dicts_[f]->new_values()) w.dicts[ds_][f].Add(value);
  }
  absl::MutexLock lock(&engine_->state_mu_);
  engine_->present_[ds_] = std::move(present_);
  if (new_ids) ++engine_->consent_generation_;
  return absl::OkStatus();
}

}  // namespace fedshare::engine
