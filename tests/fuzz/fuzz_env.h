// An in-process node for the fuzz targets: RocksDB in a fresh temp folder
// (on /dev/shm when it exists, so synced writes cost little), the audit log,
// the engine with one dataset of 48 records, and the answerer with agreements
// for the peer "foundation". Made once per fuzzing process.
#ifndef FEDSHARE_TESTS_FUZZ_FUZZ_ENV_H_
#define FEDSHARE_TESTS_FUZZ_FUZZ_ENV_H_

#include <memory>
#include <string>

#include "fedshare/v1/config.pb.h"
#include "node/audit/audit_log.h"
#include "node/common/clock.h"
#include "node/engine/answerer.h"
#include "node/engine/engine.h"
#include "node/storage/storage.h"
#include "tests/fuzz/fuzz_assert.h"

namespace fedshare::fuzz {

// The config the node of FuzzNode runs with (text format, no TLS files are
// read); also a seed for the config target.
extern const char kNodeConfig[];

struct FuzzNode {
  std::string dir;
  v1::NodeConfig config;
  std::unique_ptr<FakeClock> clock;
  std::unique_ptr<storage::Storage> storage;
  std::unique_ptr<audit::AuditLog> audit;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<engine::Answerer> answerer;
};

// The process's node, made on first use; aborts if it cannot be made. The
// folder is removed at exit.
FuzzNode& TheNode();

// A fresh empty temp folder (removed at exit).
std::string TempDir(const char* name);

}  // namespace fedshare::fuzz

#endif  // FEDSHARE_TESTS_FUZZ_FUZZ_ENV_H_
