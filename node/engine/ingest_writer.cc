#include "node/engine/ingest_writer.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "node/common/status_macros.h"
#include "node/engine/engine_internal.h"

namespace fedshare::engine {

using storage::ColumnFamily;
using storage::StoredType;

// Stages full blocks handed over by the parsing thread (IngestWriter::
// FlushBlock: their subjects' lookups, their encoding, their puts) while that
// thread fills the next. One block waits at most. It alone runs the
// writer's block side while it has work; the writer waits until it is idle
// (WaitForBlocks) before running that side itself.
struct IngestWriter::BlockThread {
  explicit BlockThread(IngestWriter* writer) : thread([this, writer] { Loop(writer); }) {}
  // Abandons a block still waiting.
  ~BlockThread() {
    {
      absl::MutexLock lock(&mu);
      stop = true;
    }
    thread.join();
  }

  void Loop(IngestWriter* writer) {
    BlockWork work;
    bool failed = false;
    for (;;) {
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(this, &BlockThread::HasWork));
        if (stop) return;
        std::swap(work, queued);
        waiting = false;
        busy = true;
      }
      absl::Status s = failed ? absl::OkStatus() : writer->FlushBlock(work);
      failed = failed || !s.ok();
      writer->Publish();
      absl::MutexLock lock(&mu);
      if (status.ok()) status = s;
      busy = false;
    }
  }

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return waiting || stop; }
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !waiting && !busy; }
  bool CanQueue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !waiting; }

  absl::Mutex mu;
  BlockWork queued ABSL_GUARDED_BY(mu);
  bool waiting ABSL_GUARDED_BY(mu) = false;  // `queued` holds a block
  bool busy ABSL_GUARDED_BY(mu) = false;     // a block is being staged
  bool stop ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);  // the first error
  std::thread thread;                       // last: started once the rest is
};

void IngestWriter::BlockWork::Clear(int nfields) {
  block.Reset(nfields);
  dirty = false;
  ids.clear();
  ends.clear();
  hashes.clear();
}

IngestWriter::IngestWriter(Engine* engine, const DatasetDef& def, size_t ds, bool replace)
    : engine_(engine),
      def_(def),
      ds_(ds),
      nfields_(def.schema.fields_size()),
      replace_(replace) {}

// Staged subjects and files go before the engine's lock does (the run
// destroys the writer first); the block thread before them.
IngestWriter::~IngestWriter() { blocks_.reset(); }

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
  filling_.Clear(nfields_);
  load_day_ = UtcDay(engine_->clock_->Now());
  Publish();
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
  FEDSHARE_RETURN_IF_ERROR(storage::DecodeColumnBlock(tail->second, def_.types, &filling_.block));
  if (filling_.block.rows >= storage::kBlockRows || !same_day) {
    filling_.block.Reset(nfields_);
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
  ColumnBlock& block = filling_.block;
  const uint32_t row = block.rows;
  // The ordinal comes with the block's others (ResolveSubjects).
  const absl::string_view id = cells[def_.subject_field].s;
  filling_.ids.append(id.data(), id.size());
  filling_.ends.push_back(static_cast<uint32_t>(filling_.ids.size()));
  filling_.hashes.push_back(SubjectIndex::Hash(id));
  block.subjects.push_back(0);
  for (int f = 0; f < nfields_; ++f) {
    const Cell& c = cells[f];
    ColumnBlock::Column& col = block.columns[f];
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
  block.rows = row + 1;
  filling_.dirty = true;
  if (block.rows >= storage::kBlockRows) return HandOver();
  return absl::OkStatus();
}

absl::Status IngestWriter::HandOver() {
  if (blocks_ == nullptr) blocks_ = std::make_unique<BlockThread>(this);
  BlockThread& t = *blocks_;
  {
    absl::MutexLock lock(&t.mu);
    t.mu.Await(absl::Condition(&t, &BlockThread::CanQueue));
    if (!t.status.ok()) return t.status;
    // `queued` holds the buffers of a block the thread is done with.
    std::swap(filling_, t.queued);
    t.waiting = true;
  }
  filling_.Clear(nfields_);
  return absl::OkStatus();
}

absl::Status IngestWriter::WaitForBlocks() {
  if (blocks_ == nullptr) return absl::OkStatus();
  BlockThread& t = *blocks_;
  absl::MutexLock lock(&t.mu);
  t.mu.Await(absl::Condition(&t, &BlockThread::Idle));
  return t.status;
}

absl::Status IngestWriter::ResolveSubjects(BlockWork& work) {
  const size_t n = work.hashes.size();
  if (n == 0) return absl::OkStatus();
  pending_views_.clear();
  uint32_t begin = 0;
  for (uint32_t end : work.ends) {
    pending_views_.emplace_back(work.ids.data() + begin, end - begin);
    begin = end;
  }
  pending_ordinals_.resize(n);
  if (pending_added_ == nullptr) pending_added_.reset(new bool[storage::kBlockRows]);
  subjects_->Ordinals(pending_views_.data(), work.hashes.data(), n, pending_ordinals_.data(),
                      pending_added_.get());
  const size_t first_row = work.block.subjects.size() - n;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t ordinal = pending_ordinals_[i];
    work.block.subjects[first_row + i] = ordinal;
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
  work.ids.clear();
  work.ends.clear();
  work.hashes.clear();
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

absl::Status IngestWriter::FlushBlock(BlockWork& work) {
  FEDSHARE_RETURN_IF_ERROR(ResolveSubjects(work));
  if (work.dirty) {
    FEDSHARE_RETURN_IF_ERROR(bulk_->Put(records_table_,
                                        storage::RecordsBlockKey(def_.id, block_no_),
                                        storage::EncodeColumnBlock(work.block, def_.types)));
    next_unwritten_ = block_no_ + 1;
    if (block_is_new_) {
      ++stats_.blocks;
      std::string key = storage::MetaBlockLoadDayKey(def_.id, block_no_);
      meta_bytes_ += key.size() + 64;
      meta_[std::move(key)] = storage::EncodeFixed32BE(static_cast<uint32_t>(load_day_));
      block_is_new_ = false;
    }
    work.dirty = false;
  }
  // A full block is done with; the next rows go into a new one.
  if (work.block.rows >= storage::kBlockRows) {
    ++block_no_;
    block_is_new_ = true;
  }
  return absl::OkStatus();
}

// What the block side holds, for held_bytes() on the parsing thread. A
// write still in memory at the commit is held twice: Storage::Write
// releases each operation as it copies it into RocksDB's batch. New ids
// are sorted at the end (8 bytes each).
void IngestWriter::Publish() {
  const size_t staged = bulk_ != nullptr ? bulk_->held_bytes() : 0;
  size_t held = 2 * staged + meta_bytes_ + present_.capacity() * sizeof(uint64_t);
  if (subjects_ != nullptr) held += subjects_->held_bytes() + 8 * size_t{subjects_->added()};
  staged_bytes_.store(staged, std::memory_order_relaxed);
  block_side_bytes_.store(held, std::memory_order_relaxed);
}

// Without skip_invalid one bad row means nothing is written: drop what was
// staged (files included) and only check the rest of the file.
void IngestWriter::Stop() {
  if (!writing_) return;
  writing_ = false;
  blocks_.reset();  // lets it finish the block it stages, drops one waiting
  bulk_.reset();
  meta_.clear();
  meta_bytes_ = 0;
  filling_.Clear(nfields_);
  subjects_->Reset();
  engine_->write_mu_.AssertHeld();
  Engine::WriterState& w = *engine_->writer_;
  for (int f = 0; f < nfields_; ++f) {
    if (dicts_[f] != nullptr) dicts_[f] = std::make_unique<DictionaryStaging>(w.dicts[ds_][f]);
  }
  Publish();  // what was dropped is no longer held
}

size_t IngestWriter::staged_bytes() const {
  return staged_bytes_.load(std::memory_order_relaxed);
}

size_t IngestWriter::held_bytes() const {
  // The block side's as last published, this side's now.
  size_t held = block_side_bytes_.load(std::memory_order_relaxed) +
                present_before_.capacity() * sizeof(uint64_t) +
                old_blocks_.capacity() * sizeof(uint32_t) + filling_.ids.capacity();
  for (const auto& d : dicts_) {
    if (d != nullptr) held += d->held_bytes();
  }
  return held;
}

absl::Status IngestWriter::Finish(uint64_t rows, const std::string& file_sha256,
                                  const std::string& outcome_key, v1::IngestResponse* response) {
  engine_->write_mu_.AssertHeld();
  // The block thread's blocks, then the last one, here.
  FEDSHARE_RETURN_IF_ERROR(WaitForBlocks());
  blocks_.reset();
  FEDSHARE_RETURN_IF_ERROR(FlushBlock(filling_));
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
  Publish();
  return absl::OkStatus();
}

absl::Status IngestWriter::Commit() {
  engine_->write_mu_.AssertHeld();
  if (absl::Status committed = engine_->storage_->Commit(std::move(bulk_)); !committed.ok()) {
    engine_->data_generation_.fetch_add(1, std::memory_order_acq_rel);  // as after a commit
    return committed;
  }
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
  engine_->data_generation_.fetch_add(1, std::memory_order_acq_rel);
  return absl::OkStatus();
}

}  // namespace fedshare::engine
