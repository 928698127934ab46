// BulkWrite (storage.h): a large atomic write staged in table files and
// committed with RocksDB's IngestExternalFiles; a small one committed as a
// WriteBatch.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "node/common/status_macros.h"
#include "node/storage/storage.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/sst_file_writer.h"

namespace fedshare::storage {
namespace {

constexpr char kStagingFolder[] = "/staging";
// Free space is checked again after every this many bytes of table files.
constexpr uint64_t kCheckSpaceEveryBytes = uint64_t{32} << 20;

std::atomic<uint64_t> next_file{0};

}  // namespace

struct BulkWrite::Table {
  ColumnFamily cf;
  struct Op {
    bool is_delete;
    std::string key;
    std::string value;
  };
  std::vector<Op> ops;  // before the write spills to files
  uint64_t count = 0;   // operations put into it
  std::string last_key;
  bool has_key = false;
  std::unique_ptr<rocksdb::SstFileWriter> file;
  std::string path;
};

namespace {

absl::Status WriteToFile(rocksdb::SstFileWriter& file, bool is_delete, absl::string_view key,
                         absl::string_view value) {
  const rocksdb::Slice k(key.data(), key.size());
  rocksdb::Status s =
      is_delete ? file.Delete(k) : file.Put(k, rocksdb::Slice(value.data(), value.size()));
  return Storage::FromRocksStatus(s, "writing a staged table file");
}

}  // namespace

// Operations in one buffer: a batch's memory is reused from one hand-over to
// the next, not allocated per operation.
struct BulkWrite::Batch {
  struct Op {
    uint32_t key_size;
    uint32_t value_size;
    uint16_t table;
    bool is_delete;
  };
  std::string data;  // each operation's key, then its value
  std::vector<Op> ops;

  void Add(int table, bool is_delete, absl::string_view key, absl::string_view value) {
    ops.push_back(Op{static_cast<uint32_t>(key.size()), static_cast<uint32_t>(value.size()),
                     static_cast<uint16_t>(table), is_delete});
    data.append(key.data(), key.size());
    data.append(value.data(), value.size());
  }
  void Clear() {
    data.clear();
    ops.clear();
  }
  void Swap(Batch* other) {
    data.swap(other->data);
    ops.swap(other->ops);
  }
  size_t bytes() const { return data.size() + ops.size() * sizeof(Op); }
};

// Writes handed-over batches into the tables' files on its own thread, so
// that building and compressing table blocks overlaps the caller's work.
// It alone touches the tables' files (and paths), except while it is idle
// with nothing queued (BulkWrite::ClearTable waits for that) and once stopped.
struct BulkWrite::FileWriter {
  explicit FileWriter(BulkWrite* write) : thread([this, write] { Loop(write); }) {}
  // Abandons a batch still waiting.
  ~FileWriter() {
    {
      absl::MutexLock lock(&mu);
      stop = true;
    }
    thread.join();
  }

  void Loop(BulkWrite* write) {
    Batch work;
    bool failed = false;
    for (;;) {
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(this, &FileWriter::HasWork));
        if (stop) return;
        work.Swap(&queued);
        waiting = false;
        busy = true;
      }
      absl::Status s = failed ? absl::OkStatus() : Write(*write, work);
      failed = failed || !s.ok();
      work.Clear();
      absl::MutexLock lock(&mu);
      if (status.ok()) status = s;
      busy = false;
    }
  }

  absl::Status Write(BulkWrite& write, const Batch& batch) {
    const char* at = batch.data.data();
    for (const Batch::Op& op : batch.ops) {
      Table& table = *write.tables_[op.table];
      if (table.file == nullptr) FEDSHARE_RETURN_IF_ERROR(Open(write, table));
      const absl::string_view key(at, op.key_size);
      const absl::string_view value(at + op.key_size, op.value_size);
      at += op.key_size + op.value_size;
      FEDSHARE_RETURN_IF_ERROR(WriteToFile(*table.file, op.is_delete, key, value));
    }
    uint64_t file_bytes = 0;
    for (const auto& t : write.tables_) {
      if (t->file != nullptr) file_bytes += t->file->FileSize();
    }
    if (file_bytes >= file_bytes_checked + kCheckSpaceEveryBytes) {
      file_bytes_checked = file_bytes;
      return write.storage_->CheckFreeSpace(WriteBatch());
    }
    return absl::OkStatus();
  }

  static absl::Status Open(BulkWrite& write, Table& table) {
    const Storage& storage = *write.storage_;
    rocksdb::DB& db = *storage.db_;
    const std::string dir = storage.dir_ + kStagingFolder;
    std::error_code ignored;
    std::filesystem::create_directories(dir, ignored);
    table.path = absl::StrCat(dir, "/", ::getpid(), "-", next_file.fetch_add(1), ".sst");
    rocksdb::ColumnFamilyHandle* handle = storage.Handle(table.cf);
    rocksdb::Options options = db.GetOptions(handle);
    // LZ4 compresses blocks about twice as fast as the default Snappy; a
    // reader decompresses whatever a file's blocks say.
    options.compression = rocksdb::kLZ4Compression;
    table.file = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(db.GetDBOptions()),
                                                          options, handle);
    absl::Status s =
        Storage::FromRocksStatus(table.file->Open(table.path), "opening a staged table file");
    if (!s.ok()) table.file.reset();
    return s;
  }

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return waiting || stop; }
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !waiting && !busy; }
  bool CanQueue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !waiting; }

  absl::Mutex mu;
  Batch queued ABSL_GUARDED_BY(mu);
  bool waiting ABSL_GUARDED_BY(mu) = false;  // `queued` holds a batch
  bool busy ABSL_GUARDED_BY(mu) = false;     // a batch is being written
  bool stop ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);  // the first error
  uint64_t file_bytes_checked = 0;          // at the last free-space check (this thread's)
  std::thread thread;                       // last: started once the rest is
};

BulkWrite::BulkWrite(Storage* storage) : storage_(storage) {}

BulkWrite::~BulkWrite() { Discard(); }

int BulkWrite::AddTable(ColumnFamily cf) {
  auto table = std::make_unique<Table>();
  table->cf = cf;
  tables_.push_back(std::move(table));
  return static_cast<int>(tables_.size()) - 1;
}

absl::Status BulkWrite::Put(int table, absl::string_view key, absl::string_view value) {
  return Add(table, /*is_delete=*/false, key, value);
}

absl::Status BulkWrite::Delete(int table, absl::string_view key) {
  return Add(table, /*is_delete=*/true, key, "");
}

absl::Status BulkWrite::Add(int table_no, bool is_delete, absl::string_view key,
                            absl::string_view value) {
  FEDSHARE_RETURN_IF_ERROR(failed_);
  Table& table = *tables_[table_no];
  if (table.has_key && key <= table.last_key) {
    return absl::InvalidArgumentError("bulk write: keys of a table must strictly increase");
  }
  table.last_key.assign(key.data(), key.size());
  table.has_key = true;
  ++count_;
  ++table.count;
  if (!spilled_) {
    table.ops.push_back(Table::Op{is_delete, std::string(key), std::string(value)});
    held_bytes_ += key.size() + value.size() + sizeof(Table::Op);
    // Not in an encrypted store: RocksDB 7.8 records an ingested file's
    // size there without the file's encryption prefix, and the store then
    // no longer opens ("Sst file size mismatch").
    if (held_bytes_ >= kBulkSpillBytes && storage_->encrypted_env_ == nullptr) failed_ = Spill();
    return failed_;
  }
  filling_->Add(table_no, is_delete, key, value);
  held_bytes_ = filling_->bytes() + handed_bytes_;
  if (filling_->bytes() >= kBulkBatchBytes) failed_ = HandOver();
  return failed_;
}

absl::Status BulkWrite::Spill() {
  spilled_ = true;
  storage_->bulk_spills_.fetch_add(1, std::memory_order_relaxed);
  held_bytes_ = 0;
  filling_ = std::make_unique<Batch>();
  writer_ = std::make_unique<FileWriter>(this);
  for (size_t t = 0; t < tables_.size(); ++t) {
    std::vector<Table::Op> ops;
    ops.swap(tables_[t]->ops);
    tables_[t]->has_key = false;
    for (const Table::Op& op : ops) {
      FEDSHARE_RETURN_IF_ERROR(Add(static_cast<int>(t), op.is_delete, op.key, op.value));
      --count_;  // counted when first added
      --tables_[t]->count;
    }
  }
  return absl::OkStatus();
}

absl::Status BulkWrite::HandOver() {
  FileWriter& w = *writer_;
  absl::MutexLock lock(&w.mu);
  w.mu.Await(absl::Condition(&w, &FileWriter::CanQueue));
  if (!w.status.ok()) return w.status;
  // The writer left `queued` cleared, its buffers kept: filling goes on in them.
  handed_bytes_ = filling_->bytes();
  w.queued.Swap(filling_.get());
  w.waiting = true;
  return absl::OkStatus();
}

absl::Status BulkWrite::WaitForWriter() {
  absl::Status s = failed_;
  if (s.ok() && !filling_->ops.empty()) s = HandOver();
  FileWriter& w = *writer_;
  absl::MutexLock lock(&w.mu);
  w.mu.Await(absl::Condition(&w, &FileWriter::Idle));
  if (s.ok()) s = w.status;
  return s;
}

absl::Status BulkWrite::ClearTable(int table_no) {
  FEDSHARE_RETURN_IF_ERROR(failed_);
  Table& table = *tables_[table_no];
  if (!spilled_) {
    for (const Table::Op& op : table.ops) {
      held_bytes_ -= op.key.size() + op.value.size() + sizeof(Table::Op);
    }
    std::vector<Table::Op>().swap(table.ops);
  } else {
    // Its operations may wait in a batch: once the file writer has written
    // them all (and, idle, leaves the files alone) its file goes.
    failed_ = WaitForWriter();
    FEDSHARE_RETURN_IF_ERROR(failed_);
    table.file.reset();
    if (!table.path.empty()) ::unlink(table.path.c_str());
    table.path.clear();
  }
  count_ -= table.count;
  table.count = 0;
  table.has_key = false;
  table.last_key.clear();
  return absl::OkStatus();
}

absl::Status BulkWrite::StopWriter() {
  if (writer_ == nullptr) return absl::OkStatus();
  absl::Status s = WaitForWriter();
  writer_.reset();
  filling_.reset();
  held_bytes_ = 0;
  handed_bytes_ = 0;
  return s;
}

void BulkWrite::Discard() {
  writer_.reset();  // before the files it writes
  for (const auto& table : tables_) {
    table->file.reset();  // abandons an unfinished file
    if (!table->path.empty()) ::unlink(table->path.c_str());
    table->path.clear();
  }
  tables_.clear();
}

// ---- Storage

absl::StatusOr<std::unique_ptr<BulkWrite>> Storage::NewBulkWrite() {
  FEDSHARE_RETURN_IF_ERROR(CheckFreeSpace(WriteBatch()));
  return std::unique_ptr<BulkWrite>(new BulkWrite(this));
}

absl::Status Storage::Commit(std::unique_ptr<BulkWrite> write) {
  FEDSHARE_RETURN_IF_ERROR(write->failed_);
  FEDSHARE_RETURN_IF_ERROR(write->StopWriter());
  if (!write->spilled_) {
    WriteBatch batch;
    for (const auto& table : write->tables_) {
      for (BulkWrite::Table::Op& op : table->ops) {
        if (op.is_delete) {
          batch.Delete(table->cf, op.key);
        } else {
          batch.Put(table->cf, op.key, op.value);
        }
        std::string().swap(op.key);
        std::string().swap(op.value);
      }
    }
    return Write(std::move(batch));
  }
  std::vector<rocksdb::IngestExternalFileArg> args;
  for (const auto& table : write->tables_) {
    if (table->file == nullptr) continue;
    FEDSHARE_RETURN_IF_ERROR(
        FromRocksStatus(table->file->Finish(), "finishing a staged table file"));
    table->file.reset();
    rocksdb::IngestExternalFileArg* arg = nullptr;
    for (rocksdb::IngestExternalFileArg& a : args) {
      if (a.column_family == Handle(table->cf)) arg = &a;
    }
    if (arg == nullptr) {
      arg = &args.emplace_back();
      arg->column_family = Handle(table->cf);
      // The files are linked into the store, not copied, and need no write
      // after that (no global sequence number written into them).
      arg->options.move_files = true;
      arg->options.write_global_seqno = false;
      arg->options.snapshot_consistency = true;
      arg->options.allow_blocking_flush = true;
    }
    arg->external_files.push_back(table->path);
  }
  FEDSHARE_RETURN_IF_ERROR(CheckFreeSpace(WriteBatch()));
  rocksdb::Status s = db_->IngestExternalFiles(args);
  if (!s.ok() && Recover().ok()) s = db_->IngestExternalFiles(args);
  // On success RocksDB has removed the staged names; on failure the files
  // are deleted with the write.
  return FromRocksStatus(s, "committing a bulk write");
}

void Storage::RemoveStagedFiles() const {
  std::error_code ignored;
  std::filesystem::remove_all(dir_ + kStagingFolder, ignored);
}

}  // namespace fedshare::storage
