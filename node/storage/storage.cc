#include "node/storage/storage.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "node/common/status_macros.h"
#include "node/storage/encryption.h"
#include "node/storage/keys.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/backup_engine.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"

namespace fedshare::storage {
namespace {

// A data_dir the node makes, by Create or a restore: its group may read it.
constexpr mode_t kDataDirMode = 0750;

constexpr absl::string_view kCfNames[kNumColumnFamilies] = {
    "meta", "records", "subjects", "consent", "budget", "audit", "queries"};

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNoSpace()) {
    return absl::UnavailableError(
        absl::StrCat("disk full: ", what, ": ", s.ToString(),
                     "; reads still work, writes resume once space is freed"));
  }
  std::string message = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsIncomplete()) {
    return absl::UnavailableError(message);
  }
  if (s.IsNotSupported()) return absl::UnimplementedError(message);
  return absl::InternalError(message);
}

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
absl::string_view FromSlice(const rocksdb::Slice& s) {
  return absl::string_view(s.data(), s.size());
}

// Fails writes while the injector says so. Reads are unaffected, so a test can
// check that nothing of a failed batch became visible.
class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file, FaultInjector* faults)
      : FSWritableFileOwnerWrapper(std::move(file)), faults_(faults) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (Fail()) return Injected();
    return target()->Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (Fail()) return Injected();
    return target()->Append(data, options, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (Fail()) return Injected();
    return target()->PositionedAppend(data, offset, options, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (Fail()) return Injected();
    return target()->PositionedAppend(data, offset, options, info, dbg);
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (Fail()) return Injected();
    return target()->Flush(options, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (Fail()) return Injected();
    return target()->Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (Fail()) return Injected();
    return target()->Fsync(options, dbg);
  }

 private:
  bool Fail() const {
    if (!faults_->fail_writes()) return false;
    faults_->RecordFailure();
    return true;
  }
  static rocksdb::IOStatus Injected() { return rocksdb::IOStatus::IOError("injected write fault"); }

  FaultInjector* faults_;
};

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  FaultFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base, FaultInjector* faults)
      : FileSystemWrapper(base), faults_(faults) {}

  const char* Name() const override { return "FedshareFaultFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& file_opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->NewWritableFile(fname, file_opts, &file, dbg);
    if (s.ok()) result->reset(new FaultWritableFile(std::move(file), faults_));
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& file_opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->ReopenWritableFile(fname, file_opts, &file, dbg);
    if (s.ok()) result->reset(new FaultWritableFile(std::move(file), faults_));
    return s;
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& file_opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->ReuseWritableFile(fname, old_fname, file_opts, &file, dbg);
    if (s.ok()) result->reset(new FaultWritableFile(std::move(file), faults_));
    return s;
  }

 private:
  FaultInjector* faults_;
};

// RocksDB's info log, sent to the node's log instead of a LOG file in the
// data directory (whose writes on a full disk tripped RocksDB's assertions).
// RocksDB's chatty INFO lines become debug lines.
class SpdlogLogger : public rocksdb::Logger {
 public:
  SpdlogLogger() : Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {}

  using rocksdb::Logger::Logv;
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    spdlog::level::level_enum to = spdlog::level::debug;
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      to = spdlog::level::err;
    } else if (level == rocksdb::InfoLogLevel::WARN_LEVEL) {
      to = spdlog::level::warn;
    }
    if (!spdlog::should_log(to)) return;
    char buffer[1024];
    int n = std::vsnprintf(buffer, sizeof(buffer), format, ap);
    if (n < 0) return;
    // One event per line: RocksDB's multi-line dumps are folded.
    for (char* c = buffer; *c != '\0'; ++c) {
      if (*c == '\n' || *c == '\r') *c = ' ';
      if (*c == '"') *c = '\'';
    }
    spdlog::log(to, "event=rocksdb message=\"{}\"", buffer);
  }
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
};

// Bytes an unprivileged writer may still use on the file system of `dir`.
std::optional<uint64_t> FreeBytes(const std::string& dir) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) return std::nullopt;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace

absl::string_view ColumnFamilyName(ColumnFamily cf) { return kCfNames[static_cast<int>(cf)]; }

absl::Status Storage::FromRocksStatus(const rocksdb::Status& s, absl::string_view what) {
  return FromRocks(s, what);
}

std::string PrefixSuccessor(absl::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    unsigned char c = static_cast<unsigned char>(s.back());
    if (c != 0xff) {
      s.back() = static_cast<char>(c + 1);
      return s;
    }
    s.pop_back();
  }
  return s;
}

// ---- WriteBatch

WriteBatch::WriteBatch() = default;
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&&) noexcept = default;

void WriteBatch::Put(ColumnFamily cf, absl::string_view key, absl::string_view value) {
  bytes_ += key.size() + value.size() + 8;
  ops_.push_back(Op{cf, false, std::string(key), std::string(value)});
}

void WriteBatch::Delete(ColumnFamily cf, absl::string_view key) {
  bytes_ += key.size() + 8;
  ops_.push_back(Op{cf, true, std::string(key), std::string()});
}

int WriteBatch::Count() const { return static_cast<int>(ops_.size()); }
size_t WriteBatch::ApproximateSize() const { return bytes_; }
void WriteBatch::Clear() {
  ops_.clear();
  bytes_ = 0;
}

// ---- Snapshot

Snapshot::~Snapshot() { db_->ReleaseSnapshot(snapshot_); }

// ---- Iterator

Iterator::~Iterator() = default;
void Iterator::SeekToFirst() { it_->SeekToFirst(); }
void Iterator::SeekToLast() { it_->SeekToLast(); }
void Iterator::Seek(absl::string_view target) { it_->Seek(ToSlice(target)); }
void Iterator::SeekForPrev(absl::string_view target) { it_->SeekForPrev(ToSlice(target)); }
bool Iterator::Valid() const { return it_->Valid(); }
void Iterator::Next() { it_->Next(); }
void Iterator::Prev() { it_->Prev(); }
absl::string_view Iterator::key() const { return FromSlice(it_->key()); }
absl::string_view Iterator::value() const { return FromSlice(it_->value()); }
absl::Status Iterator::status() const { return FromRocks(it_->status(), "iterating"); }

// ---- Storage

absl::StatusOr<std::unique_ptr<Storage>> Storage::Create(const std::string& dir,
                                                         StorageOptions options) {
  std::unique_ptr<Storage> storage(new Storage());
  storage->dir_ = dir;
  storage->disk_reserve_bytes_ = options.disk_reserve_bytes;
  if (options.read_only) options.create_if_missing = false;

  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 3;
  // A torn tail of the write-ahead log (a crash mid-append) is dropped, so
  // every acknowledged (synced) batch survives and no partial one appears.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  db_options.info_log = std::make_shared<SpdlogLogger>();
  // Opening must not need much space (a full disk still opens): keep
  // recovered writes in memory instead of flushing them at open.
  db_options.avoid_flush_during_recovery = true;
  // No preallocation of log and table files: with it the file system's free
  // space says little about what RocksDB still needs, and a preallocation
  // can take the last free blocks (the free-space check in Write relies on it).
  db_options.allow_fallocate = false;
  // Erasure (CompactAway) relies on these: a write-ahead log no longer needed
  // is deleted, neither archived nor recycled with its old bytes inside, and
  // the MANIFEST is rewritten from the live files at every change instead of
  // growing a history in which an erased key could remain as an old table
  // file's boundary. The cost is one small file write per flush or compaction.
  db_options.WAL_ttl_seconds = 0;
  db_options.WAL_size_limit_MB = 0;
  db_options.recycle_log_file_num = 0;
  db_options.max_manifest_file_size = 0;
  if (options.fault_injector != nullptr) {
    storage->fs_ =
        std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default(), options.fault_injector);
    storage->env_ = rocksdb::NewCompositeEnv(storage->fs_);
    db_options.env = storage->env_.get();
  }
  if (options.create_if_missing) ::mkdir(dir.c_str(), kDataDirMode);
  if (!options.encryption_key.empty() && options.encryption_key.size() != kEncryptionKeyBytes) {
    return absl::InvalidArgumentError("a storage key must be 32 bytes");
  }
  // Before RocksDB touches the folder: a wrong key must change nothing.
  FEDSHARE_RETURN_IF_ERROR(CheckEncryptionKey(dir, std::filesystem::exists(dir + "/CURRENT"),
                                              options.encryption_key, options.read_only));
  if (!options.encryption_key.empty()) {
    storage->encrypted_env_ =
        NewEncryptedEnv(storage->env_ != nullptr ? storage->env_.get() : rocksdb::Env::Default(),
                        options.encryption_key);
    db_options.env = storage->encrypted_env_.get();
  }

  rocksdb::ColumnFamilyOptions cf_options;
  if (options.block_cache_bytes > 0) {
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
    cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  }

  // Every column family present on disk must be opened, including ones a
  // newer build may have added.
  std::vector<std::string> existing;
  rocksdb::Status list = rocksdb::DB::ListColumnFamilies(db_options, dir, &existing);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (absl::string_view name : kCfNames) descriptors.emplace_back(std::string(name), cf_options);
  if (list.ok()) {
    for (const std::string& name : existing) {
      bool known = name == rocksdb::kDefaultColumnFamilyName;
      for (absl::string_view n : kCfNames) known = known || name == n;
      if (!known) descriptors.emplace_back(name, cf_options);
    }
  } else if (!options.create_if_missing) {
    return absl::NotFoundError(absl::StrCat("no fedshare store in ", dir, ": ", list.ToString()));
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      options.read_only ? rocksdb::DB::OpenForReadOnly(db_options, dir, descriptors, &handles, &raw)
                        : rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw);
  storage->read_only_ = options.read_only && s.ok();
  if (s.IsNoSpace() && list.ok()) {
    // An existing store on a full disk: serve reads rather than not start.
    spdlog::error("event=store_read_only dir={} reason=\"disk full: {}\"", dir, s.ToString());
    handles.clear();
    s = rocksdb::DB::OpenForReadOnly(db_options, dir, descriptors, &handles, &raw);
    storage->read_only_ = s.ok();
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening the store in ", dir));
  storage->db_.reset(raw);
  storage->other_handles_.push_back(handles[0]);
  for (int i = 0; i < kNumColumnFamilies; ++i) storage->handles_.push_back(handles[1 + i]);
  for (size_t i = 1 + kNumColumnFamilies; i < handles.size(); ++i) {
    storage->other_handles_.push_back(handles[i]);
  }
  if (!storage->read_only_) storage->RemoveStagedFiles();  // of a crashed bulk write

  const std::string version_key = MetaFormatVersionKey();
  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> version,
                            storage->Get(ColumnFamily::kMeta, version_key));
  if (!version.has_value()) {
    if (options.read_only) {
      return absl::NotFoundError(absl::StrCat("no fedshare store in ", dir));
    }
    if (storage->read_only_) {
      return absl::UnavailableError(absl::StrCat("disk full: cannot create a store in ", dir));
    }
    FEDSHARE_RETURN_IF_ERROR(
        storage->Put(ColumnFamily::kMeta, version_key, EncodeFixed32BE(kFormatVersion)));
  } else {
    uint32_t stored = 0;
    if (version->size() != 4) {
      return absl::DataLossError(absl::StrCat("store in ", dir, " has a malformed format version"));
    }
    stored = DecodeFixed32BE(*version);
    if (stored < kOldestFormatVersion || stored > kFormatVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("store in ", dir, " has format version ", stored,
                       "; this build reads versions ", kOldestFormatVersion, " to ", kFormatVersion,
                       stored > kFormatVersion ? ": a newer build wrote it, run that build" : ""));
    }
    if (stored < kFormatVersion && !storage->read_only_) {
      // What this build writes, older builds cannot read: they must refuse
      // the store at open, not fail on its blocks later.
      FEDSHARE_RETURN_IF_ERROR(
          storage->Put(ColumnFamily::kMeta, version_key, EncodeFixed32BE(kFormatVersion)));
      spdlog::info("event=store_format_upgraded dir={} from={} to={}", dir, stored, kFormatVersion);
    }
  }
  return storage;
}

void Storage::RequestFlush() {
  rocksdb::FlushOptions options;
  options.wait = false;
  options.allow_write_stall = true;
  // Best effort: a flush that fails (a full disk) leaves the data in the
  // write-ahead log, where it was safe already.
  (void)db_->Flush(options, handles_);
}

// The store opens with avoid_flush_during_recovery, so the write-ahead logs
// an open recovered stay alive until a memtable flush, and a flush with
// nothing in the memtables does nothing: every restart of an idle node left
// one more empty log in data_dir, each replayed at the next open. A
// tombstone in the unused default column family gives the close a memtable
// to flush, after which RocksDB deletes the logs no column family needs.
void Storage::RetireRecoveredLogs() {
  // Counted in the folder: DB::GetSortedWalFiles leaves empty logs out.
  int logs = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, error)) {
    logs += entry.path().extension() == ".log" ? 1 : 0;
  }
  if (error || logs <= 1) return;
  rocksdb::WriteOptions write;
  write.sync = true;
  rocksdb::ColumnFamilyHandle* unused = other_handles_[0];
  rocksdb::FlushOptions flush;
  flush.wait = true;
  flush.allow_write_stall = true;
  rocksdb::Status s = db_->Delete(write, unused, "");
  if (s.ok()) s = db_->Flush(flush, unused);
  if (!s.ok()) spdlog::warn("event=storage_flush_failed error=\"{}\"", s.ToString());
}

absl::Status Storage::Flush() {
  if (read_only_) return absl::OkStatus();
  rocksdb::FlushOptions options;
  options.wait = true;
  options.allow_write_stall = true;
  return FromRocks(db_->Flush(options, handles_), "flushing the store");
}

absl::Status Storage::CompactAway(const std::vector<KeyRange>& ranges,
                                  absl::Duration wait_for_snapshots) {
  if (read_only_) return absl::FailedPreconditionError("the store is open read-only");
  // Writes up to here must not stay visible to an older snapshot, or the
  // compaction has to keep what they replaced.
  const rocksdb::SequenceNumber erased_at = db_->GetLatestSequenceNumber();
  const absl::Time deadline = absl::Now() + wait_for_snapshots;
  absl::Status snapshots_gone = absl::OkStatus();
  for (;;) {
    uint64_t oldest = 0;
    if (!db_->GetIntProperty(rocksdb::DB::Properties::kOldestSnapshotSequence, &oldest) ||
        oldest == 0 || oldest > erased_at) {
      break;
    }
    if (absl::Now() >= deadline) {
      snapshots_gone = absl::DeadlineExceededError(
          "a read that started before the erasure was still running; the erased bytes leave the "
          "files at a later compaction");
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  flush.allow_write_stall = true;
  std::vector<rocksdb::ColumnFamilyHandle*> all = handles_;
  all.insert(all.end(), other_handles_.begin(), other_handles_.end());
  FEDSHARE_RETURN_IF_ERROR(FromRocks(db_->Flush(flush, all), "flushing the store"));
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  compact.exclusive_manual_compaction = false;
  for (const KeyRange& range : ranges) {
    rocksdb::Slice begin = ToSlice(range.begin);
    rocksdb::Slice end = ToSlice(range.end);
    FEDSHARE_RETURN_IF_ERROR(FromRocks(
        db_->CompactRange(compact, Handle(range.cf), range.begin.empty() ? nullptr : &begin,
                          range.end.empty() ? nullptr : &end),
        absl::StrCat("compacting ", ColumnFamilyName(range.cf))));
  }
  // Re-enabling file deletions scans for and deletes every obsolete file in
  // this thread, so the old files are gone when this returns (unless a
  // backup holds deletions off: then when it ends).
  FEDSHARE_RETURN_IF_ERROR(FromRocks(db_->DisableFileDeletions(), "pausing file deletions"));
  FEDSHARE_RETURN_IF_ERROR(
      FromRocks(db_->EnableFileDeletions(/*force=*/false), "deleting obsolete files"));
  return snapshots_gone;
}

Storage::~Storage() {
  if (db_ == nullptr) return;
  // Memtables flushed at a clean close, so the next open replays no
  // write-ahead log (after a bulk ingest that took seconds to minutes).
  if (absl::Status s = Flush(); !s.ok()) {
    spdlog::warn("event=storage_flush_failed error=\"{}\"", std::string(s.message()));
  } else if (!read_only_) {
    RetireRecoveredLogs();
  }
  for (rocksdb::ColumnFamilyHandle* h : handles_) db_->DestroyColumnFamilyHandle(h);
  for (rocksdb::ColumnFamilyHandle* h : other_handles_) db_->DestroyColumnFamilyHandle(h);
  db_->Close();
  db_.reset();
}

Storage::Stats Storage::GetStats() const {
  Stats stats;
  auto sum = [&](const std::string& property) {
    uint64_t total = 0;
    for (rocksdb::ColumnFamilyHandle* h : handles_) {
      uint64_t value = 0;
      if (db_->GetIntProperty(h, property, &value)) total += value;
    }
    return total;
  };
  stats.sst_bytes = sum(rocksdb::DB::Properties::kLiveSstFilesSize);
  stats.memtable_bytes = sum(rocksdb::DB::Properties::kCurSizeAllMemTables);
  stats.estimated_keys = sum(rocksdb::DB::Properties::kEstimateNumKeys);
  // Every column family shares one block cache, so it is read once.
  if (!handles_.empty()) {
    db_->GetIntProperty(handles_[0], rocksdb::DB::Properties::kBlockCacheUsage,
                        &stats.block_cache_usage_bytes);
    db_->GetIntProperty(handles_[0], rocksdb::DB::Properties::kBlockCachePinnedUsage,
                        &stats.block_cache_pinned_bytes);
    db_->GetIntProperty(handles_[0], rocksdb::DB::Properties::kBlockCacheCapacity,
                        &stats.block_cache_capacity_bytes);
  }
  return stats;
}

rocksdb::ColumnFamilyHandle* Storage::Handle(ColumnFamily cf) const {
  return handles_[static_cast<int>(cf)];
}

absl::Status Storage::Recover() {
  // After a failed write RocksDB holds a background error and refuses writes
  // until resumed; resuming re-checks the file system.
  rocksdb::Status s = db_->Resume();
  return FromRocks(s, "recovering from an earlier write error");
}

absl::Status Storage::CheckFreeSpace(const WriteBatch& batch) const {
  if (read_only_) {
    return absl::UnavailableError(
        absl::StrCat("disk full: the node started on a full disk and serves ", dir_,
                     " read-only; free space and restart it to write again"));
  }
  if (disk_reserve_bytes_ == 0) return absl::OkStatus();
  std::optional<uint64_t> free = FreeBytes(dir_);
  if (!free.has_value()) return absl::OkStatus();  // unknown: let RocksDB decide
  // The write-ahead log holds the batch, and the memtable flush later writes
  // it again.
  const uint64_t need = 2 * static_cast<uint64_t>(batch.ApproximateSize());
  const uint64_t floor = batch.essential() ? kEssentialFloorBytes : disk_reserve_bytes_;
  if (*free >= need + floor) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("disk full: ", *free >> 10, " KiB free in ", dir_, ", this write needs ",
                   need >> 10, " KiB and the node keeps ", floor >> 10,
                   " KiB in reserve; reads still work, writes resume once space is freed"));
}

absl::Status Storage::Write(const WriteBatch& batch) {
  return WriteOps(batch, /*release=*/nullptr);
}

absl::Status Storage::Write(WriteBatch&& batch) {
  absl::Status s = WriteOps(batch, /*release=*/&batch);
  batch.Clear();
  return s;
}

absl::Status Storage::WriteOps(const WriteBatch& batch, WriteBatch* release) {
  FEDSHARE_RETURN_IF_ERROR(CheckFreeSpace(batch));
  const size_t batch_bytes = batch.ApproximateSize();
  rocksdb::WriteBatch wb(batch_bytes + 64);
  for (size_t i = 0; i < batch.ops_.size(); ++i) {
    const WriteBatch::Op& op = batch.ops_[i];
    rocksdb::Status s = op.is_delete ? wb.Delete(Handle(op.cf), ToSlice(op.key))
                                     : wb.Put(Handle(op.cf), ToSlice(op.key), ToSlice(op.value));
    if (!s.ok()) return FromRocks(s, "building a write batch");
    if (release != nullptr) {
      std::string().swap(release->ops_[i].key);
      std::string().swap(release->ops_[i].value);
    }
  }
  if (release != nullptr) std::vector<WriteBatch::Op>().swap(release->ops_);
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  rocksdb::Status s = db_->Write(write_options, &wb);
  if (s.ok()) {
    if (batch_bytes >= kFlushAfterBatchBytes) RequestFlush();
    return absl::OkStatus();
  }
  // A failed write-ahead-log append leaves RocksDB refusing writes; when the
  // cause has gone, Resume() may clear it (it cannot for every error, and
  // then writes fail until the store is reopened).
  if (Recover().ok()) {
    s = db_->Write(write_options, &wb);
    if (s.ok()) return absl::OkStatus();
  }
  return FromRocks(s, "writing to the store");
}

absl::Status Storage::Put(ColumnFamily cf, absl::string_view key, absl::string_view value) {
  WriteBatch batch;
  batch.Put(cf, key, value);
  return Write(batch);
}

absl::Status Storage::Delete(ColumnFamily cf, absl::string_view key) {
  WriteBatch batch;
  batch.Delete(cf, key);
  return Write(batch);
}

absl::StatusOr<std::optional<std::string>> Storage::Get(ColumnFamily cf, absl::string_view key,
                                                        const Snapshot* snapshot) const {
  reads_[static_cast<int>(cf)].fetch_add(1, std::memory_order_relaxed);
  rocksdb::ReadOptions read_options;
  if (snapshot != nullptr) read_options.snapshot = snapshot->snapshot_;
  std::string value;
  rocksdb::Status s = db_->Get(read_options, Handle(cf), ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, absl::StrCat("reading ", ColumnFamilyName(cf)));
  return std::optional<std::string>(std::move(value));
}

std::unique_ptr<Iterator> Storage::NewIterator(ColumnFamily cf, absl::string_view prefix,
                                               const Snapshot* snapshot) const {
  reads_[static_cast<int>(cf)].fetch_add(1, std::memory_order_relaxed);
  std::unique_ptr<Iterator> it(new Iterator());
  it->lower_ = std::string(prefix);
  it->upper_ = PrefixSuccessor(prefix);
  rocksdb::ReadOptions read_options;
  if (snapshot != nullptr) read_options.snapshot = snapshot->snapshot_;
  // The bounds are owned by the Iterator, which outlives the RocksDB iterator.
  auto lower = std::make_unique<rocksdb::Slice>(it->lower_);
  auto upper = std::make_unique<rocksdb::Slice>(it->upper_);
  if (!prefix.empty()) {
    read_options.iterate_lower_bound = lower.get();
    if (!it->upper_.empty()) read_options.iterate_upper_bound = upper.get();
  }
  it->it_.reset(db_->NewIterator(read_options, Handle(cf)));
  it->lower_slice_ = std::move(lower);
  it->upper_slice_ = std::move(upper);
  return it;
}

absl::Status Storage::ScanPrefix(
    ColumnFamily cf, absl::string_view prefix,
    const std::function<absl::Status(absl::string_view, absl::string_view)>& fn,
    const Snapshot* snapshot) const {
  std::unique_ptr<Iterator> it = NewIterator(cf, prefix, snapshot);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    reads_[static_cast<int>(cf)].fetch_add(1, std::memory_order_relaxed);
    FEDSHARE_RETURN_IF_ERROR(fn(it->key(), it->value()));
  }
  return it->status();
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Storage::LastWithPrefix(
    ColumnFamily cf, absl::string_view prefix, const Snapshot* snapshot) const {
  std::unique_ptr<Iterator> it = NewIterator(cf, prefix, snapshot);
  it->SeekToLast();
  using Result = std::optional<std::pair<std::string, std::string>>;
  if (!it->Valid()) {
    FEDSHARE_RETURN_IF_ERROR(it->status());
    return Result();
  }
  return Result(std::make_pair(std::string(it->key()), std::string(it->value())));
}

std::unique_ptr<Snapshot> Storage::GetSnapshot() const {
  return std::unique_ptr<Snapshot>(new Snapshot(db_.get(), db_->GetSnapshot()));
}

// ---- Backups

namespace {

absl::StatusOr<std::vector<BackupInfo>> Infos(rocksdb::BackupEngineReadOnlyBase* engine) {
  std::vector<rocksdb::BackupInfo> raw;
  engine->GetBackupInfo(&raw);
  std::vector<BackupInfo> infos;
  for (const rocksdb::BackupInfo& b : raw) {
    BackupInfo info;
    info.id = b.backup_id;
    info.time = absl::FromUnixSeconds(b.timestamp);
    info.size_bytes = b.size;
    info.files = b.number_files;
    infos.push_back(info);
  }
  std::sort(infos.begin(), infos.end(),
            [](const BackupInfo& a, const BackupInfo& b) { return a.id < b.id; });
  return infos;
}

// `env` reads the backup; `db_env` writes a restored store.
absl::StatusOr<std::unique_ptr<rocksdb::BackupEngineReadOnly>> OpenBackupsReadOnly(
    const std::string& backup_dir, rocksdb::Env* env, rocksdb::Env* db_env = nullptr) {
  struct stat st;
  if (::stat(backup_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("no backup folder ", backup_dir));
  }
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  rocksdb::BackupEngineOptions options(backup_dir, env);
  rocksdb::Status s =
      rocksdb::BackupEngineReadOnly::Open(options, db_env != nullptr ? db_env : env, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening the backups in ", backup_dir));
  return std::unique_ptr<rocksdb::BackupEngineReadOnly>(raw);
}

}  // namespace

absl::StatusOr<std::vector<BackupInfo>> Storage::Backup(const std::string& backup_dir) {
  absl::MutexLock lock(&backup_mu_);
  // An encrypted store's files are read through its Env and written to the
  // backup through the same Env: a backup is encrypted with the same key.
  rocksdb::Env* env = encrypted_env_ != nullptr ? encrypted_env_.get() : rocksdb::Env::Default();
  // The backups are the store's records: a folder RocksDB made would be
  // 0755 with 0644 files, readable by every local user.
  ::mkdir(backup_dir.c_str(), 0700);
  rocksdb::BackupEngine* raw = nullptr;
  rocksdb::BackupEngineOptions backup_options(backup_dir, env);
  rocksdb::Status s = rocksdb::BackupEngine::Open(backup_options, env, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening the backup folder ", backup_dir));
  std::unique_ptr<rocksdb::BackupEngine> engine(raw);
  rocksdb::CreateBackupOptions options;
  options.flush_before_backup = !read_only_;
  rocksdb::BackupID id = 0;
  s = engine->CreateNewBackup(options, db_.get(), &id);
  if (!s.ok()) return FromRocks(s, absl::StrCat("backing up into ", backup_dir));
  s = engine->VerifyBackup(id, /*verify_with_checksum=*/true);
  if (!s.ok()) {
    return absl::DataLossError(
        absl::StrCat("backup ", id, " in ", backup_dir, " does not verify: ", s.ToString()));
  }
  return Infos(engine.get());
}

absl::StatusOr<std::vector<BackupInfo>> Storage::ListBackups(const std::string& backup_dir,
                                                             const std::string& encryption_key) {
  std::unique_ptr<rocksdb::Env> encrypted;
  if (!encryption_key.empty()) encrypted = NewEncryptedEnv(rocksdb::Env::Default(), encryption_key);
  FEDSHARE_ASSIGN_OR_RETURN(
      std::unique_ptr<rocksdb::BackupEngineReadOnly> engine,
      OpenBackupsReadOnly(backup_dir, encrypted ? encrypted.get() : rocksdb::Env::Default()));
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<BackupInfo> infos, Infos(engine.get()));
  if (infos.empty()) return absl::NotFoundError(absl::StrCat("no backup in ", backup_dir));
  return infos;
}

absl::Status Storage::RestoreBackup(const std::string& backup_dir, const std::string& data_dir,
                                    uint32_t id, const std::string& encryption_key,
                                    std::optional<std::string> backup_key) {
  const std::string& read_key = backup_key.has_value() ? *backup_key : encryption_key;
  if (std::filesystem::exists(data_dir) && !std::filesystem::is_empty(data_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat(data_dir,
                     " is not empty: restore into an absent or empty folder (move the "
                     "current store aside first; a restore never mixes with one)"));
  }
  // The backup is read with its key and the store written with the store's:
  // with two different keys, a restore changes the key (docs/operators.md).
  std::unique_ptr<rocksdb::Env> read_env, write_env;
  if (!read_key.empty()) read_env = NewEncryptedEnv(rocksdb::Env::Default(), read_key);
  if (!encryption_key.empty()) write_env = NewEncryptedEnv(rocksdb::Env::Default(), encryption_key);
  FEDSHARE_ASSIGN_OR_RETURN(
      std::unique_ptr<rocksdb::BackupEngineReadOnly> engine,
      OpenBackupsReadOnly(backup_dir, read_env ? read_env.get() : rocksdb::Env::Default(),
                          write_env ? write_env.get() : rocksdb::Env::Default()));
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<BackupInfo> infos, Infos(engine.get()));
  if (infos.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no backup in ", backup_dir,
        read_key.empty() ? " (an encrypted backup needs its key)"
                         : " readable with this key (is it the key the backup was made with?)"));
  }
  if (id == 0) id = infos.back().id;
  bool known = false;
  for (const BackupInfo& b : infos) known = known || b.id == id;
  if (!known) {
    return absl::NotFoundError(
        absl::StrCat("no backup ", id, " in ", backup_dir, "; the newest is ", infos.back().id));
  }
  rocksdb::Status s = engine->VerifyBackup(id, /*verify_with_checksum=*/true);
  if (!s.ok()) {
    return absl::DataLossError(
        absl::StrCat("backup ", id, " in ", backup_dir, " does not verify: ", s.ToString()));
  }
  // As Create makes it: RocksDB would make an absent folder 0755.
  ::mkdir(data_dir.c_str(), kDataDirMode);
  s = engine->RestoreDBFromBackup(rocksdb::RestoreOptions(), id, data_dir, data_dir);
  FEDSHARE_RETURN_IF_ERROR(FromRocks(s, absl::StrCat("restoring backup ", id, " into ", data_dir)));
  // The restored files are encrypted with the same key: say so beside them.
  if (!encryption_key.empty()) {
    FEDSHARE_RETURN_IF_ERROR(CheckEncryptionKey(data_dir, /*store_exists=*/false, encryption_key));
  }
  return absl::OkStatus();
}

}  // namespace fedshare::storage
