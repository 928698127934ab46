// BulkWrite (storage.h): a large atomic write staged in table files and
// committed with RocksDB's IngestExternalFiles; a small one committed as a
// WriteBatch.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
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
  std::string last_key;
  bool has_key = false;
  std::unique_ptr<rocksdb::SstFileWriter> file;
  std::string path;
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

namespace {

absl::Status WriteToFile(rocksdb::SstFileWriter& file, bool is_delete, absl::string_view key,
                         absl::string_view value) {
  const rocksdb::Slice k(key.data(), key.size());
  rocksdb::Status s =
      is_delete ? file.Delete(k) : file.Put(k, rocksdb::Slice(value.data(), value.size()));
  return Storage::FromRocksStatus(s, "writing a staged table file");
}

}  // namespace

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
  if (!spilled_) {
    table.ops.push_back(Table::Op{is_delete, std::string(key), std::string(value)});
    held_bytes_ += key.size() + value.size() + sizeof(Table::Op);
    // Not in an encrypted store: RocksDB 7.8 records an ingested file's
    // size there without the file's encryption prefix, and the store then
    // no longer opens ("Sst file size mismatch").
    if (held_bytes_ >= kBulkSpillBytes && storage_->encrypted_env_ == nullptr) failed_ = Spill();
    return failed_;
  }
  if (table.file == nullptr) {
    rocksdb::DB& db = *storage_->db_;
    const std::string dir = storage_->dir_ + kStagingFolder;
    std::error_code ignored;
    std::filesystem::create_directories(dir, ignored);
    table.path = absl::StrCat(dir, "/", ::getpid(), "-", next_file.fetch_add(1), ".sst");
    rocksdb::ColumnFamilyHandle* handle = storage_->Handle(table.cf);
    rocksdb::Options options = db.GetOptions(handle);
    // LZ4 compresses blocks about twice as fast as the default Snappy; a
    // reader decompresses whatever a file's blocks say.
    options.compression = rocksdb::kLZ4Compression;
    table.file = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(db.GetDBOptions()),
                                                          options, handle);
    failed_ = Storage::FromRocksStatus(table.file->Open(table.path), "opening a staged table file");
    if (!failed_.ok()) {
      table.file.reset();
      return failed_;
    }
  }
  failed_ = WriteToFile(*table.file, is_delete, key, value);
  if (!failed_.ok()) return failed_;
  uint64_t file_bytes = 0;
  for (const auto& t : tables_) {
    if (t->file != nullptr) file_bytes += t->file->FileSize();
  }
  if (file_bytes >= file_bytes_checked_ + kCheckSpaceEveryBytes) {
    file_bytes_checked_ = file_bytes;
    failed_ = storage_->CheckFreeSpace(WriteBatch());
  }
  return failed_;
}

absl::Status BulkWrite::Spill() {
  spilled_ = true;
  held_bytes_ = 0;
  for (size_t t = 0; t < tables_.size(); ++t) {
    std::vector<Table::Op> ops;
    ops.swap(tables_[t]->ops);
    tables_[t]->has_key = false;
    for (const Table::Op& op : ops) {
      FEDSHARE_RETURN_IF_ERROR(Add(static_cast<int>(t), op.is_delete, op.key, op.value));
      --count_;  // counted when first added
    }
  }
  return absl::OkStatus();
}

void BulkWrite::Discard() {
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
