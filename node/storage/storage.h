// The node's persistent store: one RocksDB database with the column families
// of DESIGN §11, behind a small key/value surface. This is the only code that
// includes RocksDB headers; every RocksDB status is converted to absl::Status.
//
//   FEDSHARE_ASSIGN_OR_RETURN(std::unique_ptr<Storage> db,
//                             Storage::Create("/var/lib/fedshare", StorageOptions()));
//   WriteBatch batch;
//   batch.Put(ColumnFamily::kMeta, "a", "1");
//   batch.Put(ColumnFamily::kAudit, "b", "2");
//   FEDSHARE_RETURN_IF_ERROR(db->Write(batch));   // atomic, synced
//   std::unique_ptr<Snapshot> snap = db->GetSnapshot();
//   FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> v,
//                             db->Get(ColumnFamily::kMeta, "a", snap.get()));
//
// Key encodings of the fedshare layers built on top live in keys.h and are
// documented in docs/storage-format.md.
//
// Thread safety: Storage is thread-safe. WriteBatch, Iterator and Snapshot
// objects are not shared between threads without external locking.
// Lifetimes: Snapshots and Iterators must be destroyed before their Storage.
#ifndef FEDSHARE_NODE_STORAGE_STORAGE_H_
#define FEDSHARE_NODE_STORAGE_STORAGE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "node/storage/fault_injector.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class FileSystem;
class Iterator;
class Slice;
class Snapshot;
class Status;
class WriteBatch;
}  // namespace rocksdb

namespace fedshare::storage {

// The column families. Their names on disk are ColumnFamilyName(cf).
enum class ColumnFamily : uint8_t {
  kMeta = 0,      // "meta": format version, node identity, datasets, schemas
  kRecords = 1,   // "records": column blocks
  kSubjects = 2,  // "subjects": subject id <-> ordinal, subject -> blocks
  kConsent = 3,   // "consent": consent events
  kBudget = 4,    // "budget": privacy budget (owned by the query layer)
  kAudit = 5,     // "audit": the audit log (owned by node/audit)
  kQueries = 6,   // "queries": question fingerprints and noise cache
};
inline constexpr int kNumColumnFamilies = 7;
absl::string_view ColumnFamilyName(ColumnFamily cf);

// The on-disk format version this build writes (meta key 0x01): 2 since
// record blocks of block format 3, which builds of version 1 cannot read.
inline constexpr uint32_t kFormatVersion = 2;
// The oldest version this build reads. Opening such a store for writing
// marks it kFormatVersion, so an older build refuses it at open instead of
// failing on the blocks this one writes.
inline constexpr uint32_t kOldestFormatVersion = 1;

// The node's block cache unless configured (StorageConfig.block_cache_bytes).
inline constexpr size_t kDefaultBlockCacheBytes = size_t{256} << 20;

struct StorageOptions {
  // Create the directory and database when missing. Otherwise a missing
  // database is NOT_FOUND.
  bool create_if_missing = true;
  // Optional; borrowed, must outlive the Storage. See fault_injector.h.
  FaultInjector* fault_injector = nullptr;
  // Block cache size for reads (StorageConfig.block_cache_bytes); 0 keeps
  // RocksDB's default (8 MiB).
  size_t block_cache_bytes = kDefaultBlockCacheBytes;
  // Free space kept on the data directory's file system. A write that would
  // leave less is refused as "disk full" (UNAVAILABLE) before RocksDB sees
  // it, unless the batch is essential (WriteBatch::set_essential), which may
  // use the reserve down to kEssentialFloorBytes. 0 disables the check.
  uint64_t disk_reserve_bytes = uint64_t{64} << 20;
  // Open an existing store for reading only, without taking RocksDB's lock,
  // so a running node's store can be inspected (fedshare-node
  // --check-config). Implies !create_if_missing; every write is refused.
  bool read_only = false;
  // 32 bytes: every file of the store is encrypted with it (AES-256-CTR,
  // node/storage/encryption.h); empty: not encrypted. A store is created
  // with or without a key and must always be opened the same way.
  std::string encryption_key;
};

// Essential writes (audit entries, budget) are refused only below this.
inline constexpr uint64_t kEssentialFloorBytes = uint64_t{1} << 20;

// A set of changes applied atomically by Storage::Write.
class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(WriteBatch&&) noexcept;
  WriteBatch& operator=(WriteBatch&&) noexcept;

  void Put(ColumnFamily cf, absl::string_view key, absl::string_view value);
  void Delete(ColumnFamily cf, absl::string_view key);
  // Number of Put/Delete operations so far.
  int Count() const;
  // Approximate encoded size in bytes.
  size_t ApproximateSize() const;
  void Clear();
  // Marks the batch as one that must be written for an answer to leave (an
  // audit entry): it may use the disk reserve (StorageOptions).
  void set_essential(bool essential) { essential_ = essential; }
  bool essential() const { return essential_; }

 private:
  friend class Storage;
  struct Op {
    ColumnFamily cf;
    bool is_delete;
    std::string key;
    std::string value;
  };
  // Operations are recorded and turned into one rocksdb::WriteBatch at Write,
  // where the column family handles are known.
  std::vector<Op> ops_;
  size_t bytes_ = 0;
  bool essential_ = false;
};

class Storage;

// An atomic write too large to hold in memory (a bulk ingest). Operations go
// into tables, each a sorted run of one column family; small writes stay in
// memory and commit as one synced WriteBatch, larger ones are written to
// table files in the store's `staging` folder as they come, so the writer
// holds about kBulkSpillBytes whatever the write's size. Storage::Commit
// makes every operation visible at once, to readers and after a crash
// (RocksDB IngestExternalFiles: one synced MANIFEST record), or none of
// them: a write that fails, is destroyed uncommitted or whose process dies
// changes nothing, and its files are deleted (at the latest when the store
// next opens). In an encrypted store the write stays in memory and commits
// as one WriteBatch whatever its size (RocksDB 7.8 mis-sizes ingested files
// there). Obtained from Storage::NewBulkWrite; destroy before its Storage.
//
// Once spilled, the table files are written by a thread of the write's own,
// so that building and compressing their blocks overlaps the caller's work:
// Put and Delete only check the key order and copy the operation into a
// batch of about kBulkBatchBytes, handed over when full (one waits at most;
// held_bytes() counts the one being filled and the last handed over, and
// three batches' buffers are kept for reuse). An error of that thread is
// returned by a later Put, Delete or Commit.
//
// Thread safety: thread-compatible (one caller at a time).
class BulkWrite {
 public:
  ~BulkWrite();
  BulkWrite(const BulkWrite&) = delete;
  BulkWrite& operator=(const BulkWrite&) = delete;

  // A new, empty table of `cf`; returns its number. Keys put into one table
  // must strictly increase (INVALID_ARGUMENT otherwise), and the tables of
  // one column family must cover disjoint key ranges.
  // REQUIRES: no Put or Delete yet.
  int AddTable(ColumnFamily cf);
  absl::Status Put(int table, absl::string_view key, absl::string_view value);
  absl::Status Delete(int table, absl::string_view key);
  // Drops every operation put into `table` so far (its file too, once the
  // write has spilled); the table then takes keys as a new one does. For a
  // writer that puts keys as they come while they happen to be in order,
  // and sorts them at the end once they are not.
  absl::Status ClearTable(int table);
  // Operations so far, and what they take in memory now (not yet in files).
  uint64_t count() const { return count_; }
  size_t held_bytes() const { return held_bytes_; }

 private:
  friend class Storage;
  struct Table;
  explicit BulkWrite(Storage* storage);
  absl::Status Add(int table, bool is_delete, absl::string_view key, absl::string_view value);
  absl::Status Spill();  // moves every table's operations into its file
  void Discard();        // deletes the files
  struct Batch;
  struct FileWriter;  // the thread that writes the files (bulk_write.cc)
  // Hands the batch being filled to the file writer; its error, if any.
  absl::Status HandOver();
  // Waits until the file writer has written every batch, then stops it.
  absl::Status StopWriter();
  // Hands over the batch being filled and waits until the file writer has
  // written every batch; it goes on running.
  absl::Status WaitForWriter();

  Storage* storage_;
  std::vector<std::unique_ptr<Table>> tables_;
  bool spilled_ = false;
  uint64_t count_ = 0;
  size_t held_bytes_ = 0;
  size_t handed_bytes_ = 0;  // of the batch last handed over
  absl::Status failed_;
  std::unique_ptr<Batch> filling_;      // after the spill: operations not handed over
  std::unique_ptr<FileWriter> writer_;  // after the spill
};

// What a BulkWrite holds in memory before it moves to files.
inline constexpr size_t kBulkSpillBytes = size_t{2} << 20;
// The operations handed to the file-writing thread at once.
inline constexpr size_t kBulkBatchBytes = size_t{512} << 10;

// A consistent read view. Obtained from Storage::GetSnapshot; released on
// destruction. REQUIRES: destroyed before the Storage that made it.
class Snapshot {
 public:
  ~Snapshot();
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

 private:
  friend class Storage;
  Snapshot(rocksdb::DB* db, const rocksdb::Snapshot* snapshot) : db_(db), snapshot_(snapshot) {}
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
};

// A cursor over one column family, optionally limited to keys with a prefix.
// Positioned with Seek*/Next/Prev; key() and value() are valid while Valid()
// and until the next move. After iterating, check status().
class Iterator {
 public:
  ~Iterator();
  Iterator(const Iterator&) = delete;
  Iterator& operator=(const Iterator&) = delete;

  void SeekToFirst();
  void SeekToLast();
  // First key >= target.
  void Seek(absl::string_view target);
  // Last key <= target.
  void SeekForPrev(absl::string_view target);
  bool Valid() const;
  void Next();
  void Prev();
  absl::string_view key() const;
  absl::string_view value() const;
  absl::Status status() const;

 private:
  friend class Storage;
  Iterator() = default;
  std::string lower_;
  std::string upper_;
  std::unique_ptr<rocksdb::Slice> lower_slice_;
  std::unique_ptr<rocksdb::Slice> upper_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;  // declared last: destroyed before the bounds
};

// One backup in a backup folder (Storage::Backup).
struct BackupInfo {
  uint32_t id = 0;  // increasing, from 1
  absl::Time time;
  uint64_t size_bytes = 0;
  uint32_t files = 0;
};

class Storage {
 public:
  // Opens (or creates) the database in `dir` with every column family.
  // A new database gets meta key 0x01 = kFormatVersion, and so does an older
  // one opened for writing. FAILED_PRECONDITION if the stored format version
  // is outside kOldestFormatVersion..kFormatVersion; INTERNAL/UNAVAILABLE naming `dir` for
  // I/O errors or a database held by another process. An existing store on a
  // file system too full to open it for writing is opened read-only
  // (read_only() true): reads work, writes are refused as "disk full" until
  // the node is restarted with space. RocksDB's own info log goes to the
  // node's log (spdlog), never into `dir`.
  static absl::StatusOr<std::unique_ptr<Storage>> Create(const std::string& dir,
                                                         StorageOptions options);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Applies the batch atomically and syncs the write-ahead log before
  // returning OK. On error nothing of the batch is visible. UNAVAILABLE for
  // I/O errors, and UNAVAILABLE starting "disk full" when the file system
  // lacks space (see StorageOptions::disk_reserve_bytes) or RocksDB reports
  // ENOSPC. After an I/O error on the write-ahead log RocksDB refuses
  // further writes (fail closed); each later Write tries to resume, so writes
  // resume by themselves once space returns. A store opened read-only
  // (read_only()) refuses every write with "disk full".
  absl::Status Write(const WriteBatch& batch);
  // As above, releasing each of the batch's operations as it is copied into
  // RocksDB's batch, so a large batch is not held twice at once; the batch is
  // left empty whatever the outcome.
  absl::Status Write(WriteBatch&& batch);
  // A batch at least this large (a bulk ingest or consent import) also asks
  // for a background flush of the memtables, so that a restart after it does
  // not replay it from the write-ahead log.
  static constexpr size_t kFlushAfterBatchBytes = 8 << 20;

  // Writes every memtable to SST files and waits (also done when the store
  // closes). OK on a read-only store.
  absl::Status Flush();

  // A key range of one column family for CompactAway: keys in [begin, end);
  // an empty begin or end leaves that side open.
  struct KeyRange {
    ColumnFamily cf;
    std::string begin;
    std::string end;
  };
  // Makes keys deleted (or overwritten) before the call physically absent
  // from every file of the data directory (erasure, DESIGN §6): flushes every
  // memtable, so no live write-ahead log holds them; compacts each range down
  // to the bottommost level, rewriting even bottommost files, so the
  // tombstones and the values they hide are dropped; then deletes the
  // obsolete table files, write-ahead logs and MANIFEST files before it
  // returns. A snapshot older than the call keeps what it sees alive, so the
  // call first waits (up to `wait_for_snapshots`) for such snapshots to be
  // released; DEADLINE_EXCEEDED if one outlives it (the compaction is done
  // anyway; the bytes go at a later compaction). While a backup holds file
  // deletions off, the obsolete files go when it ends.
  absl::Status CompactAway(const std::vector<KeyRange>& ranges,
                           absl::Duration wait_for_snapshots = absl::Seconds(30));

  // Backs the whole store (every column family, the audit log included) up
  // into `backup_dir` with RocksDB's BackupEngine while reads and writes go
  // on: the backup is one point in time, taken after a flush, and it shares
  // unchanged table files with earlier backups there. The new backup is
  // verified against its checksums. Returns every backup in the folder,
  // oldest first. One backup at a time per store (others wait).
  absl::StatusOr<std::vector<BackupInfo>> Backup(const std::string& backup_dir);
  // Restores backup `id` (0: the newest) from `backup_dir` into `data_dir`,
  // after verifying its checksums. `data_dir` must be absent or empty
  // (FAILED_PRECONDITION otherwise: a restore never mixes with a store). For a
  // stopped node: start it on `data_dir` afterwards.
  // `encryption_key`: the restored store's key (empty: plain).
  // `backup_key`: the key the backup was made with (a backup of an encrypted
  // store is encrypted with the store's key); unset: `encryption_key`. Two
  // different keys change the store's key.
  static absl::Status RestoreBackup(const std::string& backup_dir, const std::string& data_dir,
                                    uint32_t id = 0, const std::string& encryption_key = "",
                                    std::optional<std::string> backup_key = std::nullopt);
  // The backups in `backup_dir`, oldest first (read with the store's key, if
  // it has one). NOT_FOUND if none.
  static absl::StatusOr<std::vector<BackupInfo>> ListBackups(const std::string& backup_dir,
                                                             const std::string& encryption_key);

  // One synced Put / Delete.
  absl::Status Put(ColumnFamily cf, absl::string_view key, absl::string_view value);
  absl::Status Delete(ColumnFamily cf, absl::string_view key);

  // A bulk write (see BulkWrite); UNAVAILABLE "disk full" when the store is
  // read-only or the disk is below its reserve.
  absl::StatusOr<std::unique_ptr<BulkWrite>> NewBulkWrite();
  // Makes every operation of `write` visible atomically and durably; on
  // error none is. The write is spent either way.
  absl::Status Commit(std::unique_ptr<BulkWrite> write);
  // RocksDB's status as an absl::Status: "disk full" UNAVAILABLE for ENOSPC,
  // UNAVAILABLE for I/O errors (node/storage only).
  static absl::Status FromRocksStatus(const rocksdb::Status& s, absl::string_view what);

  // The value, or nullopt if absent. `snapshot` may be null (latest state).
  absl::StatusOr<std::optional<std::string>> Get(ColumnFamily cf, absl::string_view key,
                                                 const Snapshot* snapshot = nullptr) const;

  // An iterator over `cf` limited to keys starting with `prefix` (all keys if
  // empty), reading `snapshot` (or the latest state). Not positioned yet.
  std::unique_ptr<Iterator> NewIterator(ColumnFamily cf, absl::string_view prefix = "",
                                        const Snapshot* snapshot = nullptr) const;

  // Calls fn(key, value) for every key with `prefix`, in key order, stopping
  // at (and returning) the first non-OK status fn returns.
  absl::Status ScanPrefix(
      ColumnFamily cf, absl::string_view prefix,
      const std::function<absl::Status(absl::string_view key, absl::string_view value)>& fn,
      const Snapshot* snapshot = nullptr) const;

  // The greatest key with `prefix` and its value, or nullopt if none.
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> LastWithPrefix(
      ColumnFamily cf, absl::string_view prefix, const Snapshot* snapshot = nullptr) const;

  std::unique_ptr<Snapshot> GetSnapshot() const;

  // Size and cache figures for monitoring, summed over column families.
  struct Stats {
    uint64_t sst_bytes = 0;       // live SST files on disk
    uint64_t memtable_bytes = 0;  // all memtables, not yet flushed
    uint64_t estimated_keys = 0;
    uint64_t block_cache_usage_bytes = 0;
    uint64_t block_cache_pinned_bytes = 0;
    uint64_t block_cache_capacity_bytes = 0;
  };
  Stats GetStats() const;

  const std::string& dir() const { return dir_; }
  bool read_only() const { return read_only_; }

  // Reads of `cf` since the store opened: point reads, keys visited by
  // ScanPrefix and iterators opened (for tests of what a start reads).
  uint64_t reads(ColumnFamily cf) const {
    return reads_[static_cast<int>(cf)].load(std::memory_order_relaxed);
  }
  // BulkWrites that moved to staged table files since the store opened (for
  // tests of which path a write took, which they cannot see from the folder:
  // the files appear on the write's own thread).
  uint64_t bulk_writes_spilled() const { return bulk_spills_.load(std::memory_order_relaxed); }

 private:
  Storage() = default;
  rocksdb::ColumnFamilyHandle* Handle(ColumnFamily cf) const;
  absl::Status Recover();
  // Writes `batch`; with `release` (== &batch) frees each operation once copied.
  absl::Status WriteOps(const WriteBatch& batch, WriteBatch* release);
  // Asks for a background flush of every memtable; does not wait or fail.
  void RequestFlush();
  // At a clean close, with nothing left to flush: lets RocksDB delete the
  // write-ahead logs this open recovered (storage.cc says why).
  void RetireRecoveredLogs();
  // UNAVAILABLE "disk full" if writing `batch` would eat into the reserve.
  absl::Status CheckFreeSpace(const WriteBatch& batch) const;
  // Deletes what a crashed BulkWrite left in the staging folder.
  void RemoveStagedFiles() const;
  friend class BulkWrite;

  std::string dir_;
  absl::Mutex backup_mu_;  // one BackupEngine on a folder at a time
  uint64_t disk_reserve_bytes_ = 0;
  bool read_only_ = false;
  std::unique_ptr<rocksdb::Env> env_;            // only with a fault injector; outlives db_
  std::unique_ptr<rocksdb::Env> encrypted_env_;  // only with a key; over env_ or the default
  std::shared_ptr<rocksdb::FileSystem> fs_;      // the fault-injecting file system, if any
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;        // indexed by ColumnFamily
  std::vector<rocksdb::ColumnFamilyHandle*> other_handles_;  // default and unknown CFs
  mutable std::array<std::atomic<uint64_t>, kNumColumnFamilies> reads_{};
  std::atomic<uint64_t> bulk_spills_{0};
};

// Helpers for keys: the smallest string greater than every string with
// `prefix` (empty if none exists, i.e. prefix is all 0xff).
std::string PrefixSuccessor(absl::string_view prefix);

}  // namespace fedshare::storage

#endif  // FEDSHARE_NODE_STORAGE_STORAGE_H_
