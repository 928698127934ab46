// Fault injection for storage tests.
//
//   FaultInjector faults;
//   StorageOptions options;
//   options.fault_injector = &faults;
//   auto storage = Storage::Create(dir, options);
//   faults.SetFailWrites(true);   // every file append, flush and sync now fails
//   EXPECT_FALSE((*storage)->Put(ColumnFamily::kMeta, "k", "v").ok());
//   faults.SetFailWrites(false);
//
// The failure is produced inside RocksDB's file layer (a FileSystem wrapper
// around the default one), so the write path sees a real I/O error. The
// injector is thread-safe and must outlive every Storage that uses it.
#ifndef FEDSHARE_NODE_STORAGE_FAULT_INJECTOR_H_
#define FEDSHARE_NODE_STORAGE_FAULT_INJECTOR_H_

#include <atomic>
#include <cstdint>

namespace fedshare::storage {

class FaultInjector {
 public:
  FaultInjector() = default;
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  // While true, Append/PositionedAppend/Flush/Sync/Fsync on files written by
  // RocksDB fail with an I/O error.
  void SetFailWrites(bool fail) { fail_writes_.store(fail); }
  bool fail_writes() const { return fail_writes_.load(); }

  // Number of file operations failed so far.
  int64_t injected_failures() const { return injected_failures_.load(); }
  void RecordFailure() { injected_failures_.fetch_add(1); }

 private:
  std::atomic<bool> fail_writes_{false};
  std::atomic<int64_t> injected_failures_{0};
};

}  // namespace fedshare::storage

#endif  // FEDSHARE_NODE_STORAGE_FAULT_INJECTOR_H_
