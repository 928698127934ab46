// Shared helpers for integration and end-to-end tests: temporary folders, a
// development PKI made at test time, node configs on loopback port 0, real
// nodes in process or as child processes, and real clients.
#ifndef FEDSHARE_TESTS_TEST_ENV_H_
#define FEDSHARE_TESTS_TEST_ENV_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/node_client.h"
#include "fedshare/v1/config.pb.h"
#include "grpcpp/grpcpp.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/channel.h"

// Defined when AddressSanitizer instruments this build, under GCC
// (__SANITIZE_ADDRESS__) or clang (__has_feature): tests that bound the
// peak RSS skip there, since shadow memory and the quarantine dominate it.
#if defined(__SANITIZE_ADDRESS__)
#define FEDSHARE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FEDSHARE_TEST_ASAN 1
#endif
#endif

namespace fedshare::testing {

// A fresh folder under the test temp dir, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& name);
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }
  // Writes `contents` to Sub(name) and returns that path; a failed write is a
  // (non-fatal) test failure.
  std::string Write(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

// A development CA and certificates issued from it, under `dir`.
class Pki {
 public:
  Pki(std::string dir, std::string trust_domain);
  const std::string& trust_domain() const { return trust_domain_; }
  const std::string& ca_dir() const { return ca_dir_; }

  // Issues a certificate into dir/<org>-<role>[-<name>] and returns the folder.
  std::string Issue(const std::string& org, identity::Role role, const std::string& name = "");
  // Issues with full options (for bad certificates) into dir/<label>.
  std::string IssueWith(const std::string& label, identity::IssueOptions options);

  static identity::ClientTlsFiles Files(const std::string& identity_dir);

 private:
  std::string dir_;
  std::string trust_domain_;
  std::string ca_dir_;
};

// A node config for `org` on 127.0.0.1 port 0 with certificates from
// `identity_dir`, data in `data_dir`, certificate reload every second, and
// the purposes research > program-evaluation, and marketing.
v1::NodeConfig BaseNodeConfig(const std::string& org, const std::string& trust_domain,
                              const std::string& data_dir, const std::string& identity_dir);

// The synthetic program_outcomes dataset schema (bench/synthetic.h), the one
// fedshare-gen's data and the demo use.
v1::DatasetSchema ProgramOutcomesSchema();

// The header line of program_outcomes rows as CSV (the schema's fields in
// order).
inline constexpr char kProgramOutcomesCsvHeader[] =
    "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
    "income\n";

// A permit for `peer` on program_outcomes for program-evaluation, allowing
// every aggregate and every DIMENSION/MEASURE field.
v1::Agreement OpenAgreement(const std::string& id, const std::string& peer);

// Dials `address` as the holder of `identity_dir`, expecting a node of
// `trust_domain` (and `org` when not empty).
std::unique_ptr<client::NodeClient> Connect(const std::string& address,
                                            const std::string& identity_dir,
                                            const std::string& trust_domain,
                                            const std::string& org = "");

// One peer as the node behind `client` lists it (FederationService.ListPeers,
// with or without a probe); NOT_FOUND naming `org` if it lists no such peer.
absl::StatusOr<v1::PeerStatus> ListedPeer(client::NodeClient* client, const std::string& org,
                                          bool probe = false);

// What one raw unary gRPC call returned: its status and the response bytes.
struct RawReply {
  grpc::Status status;
  std::string body;
};
// One unary call of `method` ("/package.Service/Method") with an empty
// request body over `channel`, with a 20 s deadline.
RawReply CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method);

// A child process with its stdout on a pipe.
class Subprocess {
 public:
  // Starts `argv[0]` (a path) with the arguments. stderr goes to `stderr_file`
  // when given, else is inherited.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                           const std::string& stderr_file = "");
  ~Subprocess();

  // The next line of stdout, waiting at most `timeout`. DEADLINE_EXCEEDED or
  // UNAVAILABLE (the process closed stdout) otherwise.
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout);
  // Sends `signal` and waits for the exit; returns the wait status.
  int Signal(int signal);
  // Waits for the exit; returns the wait status.
  int Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
  bool exited_ = false;
  int wait_status_ = 0;
};

// What a finished child process said and how it exited.
struct ProcessOutcome {
  int exit_code = -1;  // -1 if killed by a signal
  std::string out;
  std::string err;
};
// Runs `argv` to completion, with stderr collected through `stderr_file`.
// DEADLINE_EXCEEDED if stdout stays silent for `timeout`, saying what the
// child's threads were waiting on and what it printed. The default outlasts
// the CLI's own 60 s call deadline, so a call that hangs is reported by the
// CLI, with its status, rather than cut off here.
absl::StatusOr<ProcessOutcome> RunToCompletion(const std::vector<std::string>& argv,
                                               const std::string& stderr_file,
                                               absl::Duration timeout = absl::Seconds(90));

// Path of a built binary: $FEDSHARE_BIN_DIR/name.
std::string BinaryPath(const std::string& name);

// A value from /proc/<pid>/status ("VmHWM", "VmRSS" in kB; "FDSize"); -1 if
// missing.
int64_t ProcStatusKb(pid_t pid, const std::string& key);

// Runs `argv` to completion, with its stderr in a file of its own under `tmp`.
// A run that cannot start or leaves stdout silent for 60 s is a test failure
// (non-fatal) and gives an empty outcome with exit_code -1.
ProcessOutcome RunProcess(const TempDir& tmp, const std::vector<std::string>& argv);

// RunProcess of the fedshare CLI (BinaryPath("fedshare")) with `args`.
ProcessOutcome RunCli(const TempDir& tmp, const std::vector<std::string>& args);
// RunCli as the holder of `identity_dir` against the node at `node_address`:
// `fedshare --node ADDRESS --identity DIR ARGS...`.
ProcessOutcome RunCliAs(const TempDir& tmp, const std::string& identity_dir,
                        const std::string& node_address, const std::vector<std::string>& args);

// A fedshare-node child process started from a config file, with the bound
// addresses read from its ready line.
struct NodeProcess {
  std::unique_ptr<Subprocess> process;
  std::string peer_address;
  std::string local_address;
  std::string metrics_address;  // empty without a metrics listener
};
// Writes `config` to `config_path` (text format) and starts fedshare-node on
// it, waiting up to 30 s for its ready line. A `wrapper` (e.g. {"/usr/bin/prlimit",
// "--nofile=1024:1024", "--"}) is put before the command; it must exec it.
absl::StatusOr<NodeProcess> StartNodeProcess(const v1::NodeConfig& config,
                                             const std::string& config_path,
                                             const std::vector<std::string>& wrapper = {});

// GET `path` from 127.0.0.1:`port` (a node's metrics listener); the whole
// response, or empty if nothing answered.
std::string HttpGet(int port, const std::string& path);

// The sum of every sample of metric `name` in Prometheus text `text` whose
// labels include all of `labels` (each `key="value"`); 0 if there is none.
double Sum(const std::string& text, const std::string& name,
           const std::vector<std::string>& labels = {});

}  // namespace fedshare::testing

#endif  // FEDSHARE_TESTS_TEST_ENV_H_
