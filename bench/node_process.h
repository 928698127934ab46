// A real fedshare-node process for the benchmarks, so that what they measure
// of the node (peak RSS, CPU time) is the node's own and not the bench's.
//
//   ASSIGN_OR_RETURN(NodeProcess node, NodeProcess::Start(binary, config, dir +
//   "/node.textproto")); Ask(node.peer_address()); int64_t peak_kb = node.StatusKb("VmHWM");
//   node.Stop();  // SIGTERM, then waits
#ifndef FEDSHARE_BENCH_NODE_PROCESS_H_
#define FEDSHARE_BENCH_NODE_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fedshare/v1/config.pb.h"

namespace fedshare::bench {

// One line from `fd` (without its newline); UNAVAILABLE when the other end
// closes, DEADLINE_EXCEEDED after `timeout`.
absl::StatusOr<std::string> ReadLine(int fd, absl::Duration timeout);
// `key` ("VmHWM", "VmRSS", ...) of /proc/PID/status, in KiB; -1 if absent.
int64_t ProcStatusKb(pid_t pid, const std::string& key);
// User plus system CPU time `pid` has used.
absl::Duration ProcCpu(pid_t pid);
// The same, of `pid`'s threads whose name starts with `name_prefix`.
absl::Duration ThreadsCpu(pid_t pid, absl::string_view name_prefix);
// CPU time of `pid`'s RocksDB background threads (flushes and compactions).
absl::Duration RocksDbCpu(pid_t pid);
// Waits, up to a minute, until those threads have used no CPU for half a
// second: a store just bulk-loaded is compacted in the background, and the
// benches time a store with its data settled. Returns how long it waited.
absl::Duration WaitForRocksDbIdle(pid_t pid);
// Resets `pid`'s VmHWM to its current RSS (Linux >= 4.0).
void ResetPeakRss(pid_t pid);

// What RunProcess saw of one command.
struct ProcessRun {
  int exit_status = -1;  // WEXITSTATUS, or -1 if it did not exit normally
  absl::Duration wall;   // from spawning it to its exit
  absl::Duration cpu;    // its user plus system CPU time (rusage)
};

// Runs `args` (args[0] the binary) with stdout to `stdout_path` and stderr to
// `stdout_path`.err, and waits for it to exit; killed (SIGKILL) past
// `timeout`, which is then DEADLINE_EXCEEDED.
absl::StatusOr<ProcessRun> RunProcess(const std::vector<std::string>& args,
                                      const std::string& stdout_path, absl::Duration timeout);

class NodeProcess {
 public:
  // Writes `config` (text format) to `config_path`, starts `node_binary` on
  // it with stderr to `config_path`.log, and waits up to `wait` for its ready
  // line.
  static absl::StatusOr<NodeProcess> Start(const std::string& node_binary,
                                           const v1::NodeConfig& config,
                                           const std::string& config_path,
                                           absl::Duration wait = absl::Seconds(120));
  NodeProcess(NodeProcess&& other) noexcept;
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;
  NodeProcess& operator=(NodeProcess&&) = delete;
  // Stops the node if it still runs.
  ~NodeProcess();

  pid_t pid() const { return pid_; }
  const std::string& peer_address() const { return peer_address_; }
  const std::string& local_address() const { return local_address_; }
  // The metrics listener's "HOST:PORT" from the ready line; empty without one.
  const std::string& metrics_address() const { return metrics_address_; }
  int64_t StatusKb(const std::string& key) const { return ProcStatusKb(pid_, key); }
  // SIGTERM, then waits for the process to end; returns its exit status.
  int Stop();

 private:
  NodeProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string peer_address_;
  std::string local_address_;
  std::string metrics_address_;
};

}  // namespace fedshare::bench

#endif  // FEDSHARE_BENCH_NODE_PROCESS_H_
