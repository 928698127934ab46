// One running fedshare node: storage, engines, audit log and both mTLS
// listeners, wired from a validated NodeConfig (DESIGN §3, §5).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Node> node, Node::Create(config, NodeOptions()));
//   node->peer_port();   // bound port (config may say port 0)
//   node->Shutdown();    // stops accepting, finishes calls in flight
//
// Thread-safe. The Node owns everything it creates.
#ifndef FEDSHARE_NODE_SERVER_NODE_H_
#define FEDSHARE_NODE_SERVER_NODE_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fedshare/v1/config.pb.h"
#include "node/common/clock.h"
#include "node/metrics/http_server.h"
#include "node/metrics/metrics.h"

namespace fedshare::policy {
class AgreementSet;
}

namespace grpc {
class Server;
class CallbackGenericService;
}  // namespace grpc

namespace fedshare {
namespace storage {
class Storage;
class FaultInjector;
}  // namespace storage
namespace audit {
class AuditLog;
class PeerCheckpoints;
}  // namespace audit
namespace engine {
class Engine;
class Answerer;
}  // namespace engine
namespace federation {
class FanOut;
class CallHomeHub;
}  // namespace federation
namespace identity {
class Authenticator;
class TlsMirror;
}  // namespace identity
namespace service {
struct ServiceEnv;
class AdminServiceImpl;
class PeerServiceImpl;
class FederationServiceImpl;
class FederationPeerServiceImpl;
class CallGate;
class StormThrottle;
}  // namespace service

namespace server {

class Listener;
class CallHomeClient;

// How memory serves the node's questions, for `limits` (the effective ones,
// service::EffectiveLimits): glibc's malloc with as many arenas as questions
// answered at once and the memory those questions may hold
// (limits.scan_threads x limits.query_memory_budget_bytes) kept when freed
// rather than returned to the kernel; and the scans' large buffers kept for
// the next question up to one limits.query_memory_budget_bytes
// (engine::SpareBuffers). Process-wide; Node::Create calls it, and
// fedshare-bench for its in-process rows. Call before other threads start.
void TuneMallocForQuestions(const v1::Limits& limits);

struct NodeOptions {
  // Borrowed; must outlive the node. Null means the real clock.
  Clock* clock = nullptr;
  // Borrowed, for fault tests; see node/storage/fault_injector.h.
  storage::FaultInjector* fault_injector = nullptr;
};

class Node {
 public:
  // REQUIRES: config was validated (LoadNodeConfig). Opens the store, checks
  // stored schemas against the config, and starts both listeners.
  // FAILED_PRECONDITION / UNAVAILABLE naming what failed (store locked,
  // certificate unreadable, port in use).
  static absl::StatusOr<std::unique_ptr<Node>> Create(const v1::NodeConfig& config,
                                                      NodeOptions options);

  // What Create checks before it binds, with the same code and messages, for
  // fedshare-node --check-config: the TLS files and the node's own
  // certificate at `now`, the agreements, and, when data_dir already holds a
  // store, the configured datasets against the stored schemas (the store is
  // opened read-only, so a running node's store can be checked). Writes
  // nothing. Returns the certificate warnings Create would log.
  static absl::StatusOr<std::vector<std::string>> CheckConfig(const v1::NodeConfig& config,
                                                              absl::Time now);
  ~Node();

  // 0 when disable_peer_listener.
  int peer_port() const { return peer_port_; }
  int local_port() const { return local_port_; }
  // "host:port" as bound; peer_address() is "none" when disable_peer_listener.
  std::string peer_address() const;
  std::string local_address() const;
  // What answers peers' questions (tests reach its AnswerQueue).
  engine::Answerer& answerer() { return *answerer_; }
  // Bound ports of the optional plaintext listeners; 0 when not configured.
  int health_port() const { return health_port_; }
  int metrics_port() const { return metrics_server_ != nullptr ? metrics_server_->port() : 0; }
  const v1::NodeConfig& config() const { return config_; }

  // What one Reload did.
  struct ReloadSummary {
    // Agreements in force now, or why the previous ones stay.
    absl::StatusOr<size_t> agreements;
    // Fan-out peers in force now, or why the previous ones stay.
    absl::StatusOr<size_t> peers;
    // OK when the TLS files on disk are what the listeners serve (replaced
    // or unchanged); else why the previous files stay in force.
    absl::Status certificates;
    // Settings that differ in the re-read config but apply only at start.
    std::vector<std::string> needs_restart;

    // "reloaded agreements=N peers=M certificates=ok"; a part that kept the
    // previous settings reads "kept-old (reason)".
    std::string Line() const;
  };

  // Puts in force now (SIGHUP) what can change while serving, for the next
  // question: from `next` (the config file read again, with the same
  // overrides) its `peers` (closing the streams of call-home partners no
  // longer listed with call_home) and inline `agreements`; the agreements_file read
  // again; and the TLS files, checked as a set by the TLS mirror and served
  // to new connections at once (invalid files are logged and the previous
  // ones stay). Calls and streams in flight are not interrupted; a fan-out in
  // flight finishes with the peers it started with. If `next` is an error,
  // the peers and inline agreements stay and the rest is still reloaded.
  // Every other changed setting is listed in needs_restart and logged.
  ReloadSummary Reload(const absl::StatusOr<v1::NodeConfig>& next);

  // Stops both listeners, waiting up to `grace` for calls in flight.
  // Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

 private:
  Node() = default;
  // The config's agreements plus those of agreements_file.
  static absl::StatusOr<policy::AgreementSet> LoadAgreements(const v1::NodeConfig& cfg);
  // Identifies a file's version (mtime, size, inode); "" if missing.
  static std::string FileStamp(const std::string& path);
  // Purges records past retention (service::RunRetention) as the node; a
  // failure is logged. Create calls it before the node serves.
  void PurgeExpiredRecords();
  // PurgeExpiredRecords every storage.retention_interval_seconds until Shutdown.
  void PurgeOnSchedule();
  // Reloads agreements_file and peers_file when they change, every reload
  // interval, until Shutdown. A file that fails to load or validate keeps
  // what is in force.
  void WatchFiles();
  // The roster from `inline_next` (or the inline peers last in force) and
  // peers_file, put in force if it loads: call-home partners no longer
  // listed lose their streams. Else the roster stays and the error is kept
  // for `fedshare status`.
  absl::StatusOr<size_t> ReloadPeersLocked(
      const google::protobuf::RepeatedPtrField<v1::PeerConfig>* inline_next = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Why the last reload of agreements_file or peers_file failed, one
  // sentence each; empty when both are in force as on disk.
  std::vector<std::string> ReloadWarnings();
  // With `inline_next`, those replace the config's inline agreements if the
  // whole set loads.
  absl::StatusOr<size_t> ReloadAgreementsLocked(
      const google::protobuf::RepeatedPtrField<v1::Agreement>* inline_next = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The plaintext grpc.health.v1 listener (health_address).
  absl::StatusOr<std::unique_ptr<grpc::Server>> StartHealthServer(const std::string& address,
                                                                  int* port);

  v1::NodeConfig config_;
  Clock* clock_ = nullptr;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<audit::PeerCheckpoints> peer_checkpoints_;  // partners' receipts
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<engine::Answerer> answerer_;
  std::unique_ptr<federation::CallHomeHub> call_home_hub_;  // outlives fanout_ and the servers
  std::unique_ptr<federation::FanOut> fanout_;
  std::unique_ptr<identity::Authenticator> authenticator_;
  std::unique_ptr<identity::TlsMirror> tls_mirror_;  // outlives the servers
  std::unique_ptr<service::ServiceEnv> env_;
  std::unique_ptr<service::CallGate> call_gate_;
  std::unique_ptr<service::StormThrottle> refusal_throttle_;
  std::unique_ptr<service::StormThrottle> dry_run_throttle_;
  std::unique_ptr<service::AdminServiceImpl> admin_service_;
  std::unique_ptr<service::PeerServiceImpl> peer_service_;
  std::unique_ptr<service::FederationServiceImpl> federation_service_;
  std::unique_ptr<service::FederationPeerServiceImpl> federation_peer_service_;
  std::unique_ptr<Listener> peer_listener_;
  std::unique_ptr<Listener> local_listener_;
  std::unique_ptr<grpc::Server> peer_server_;
  std::unique_ptr<grpc::Server> local_server_;
  std::unique_ptr<grpc::CallbackGenericService> health_fallback_;  // outlives health_server_
  std::unique_ptr<grpc::Server> health_server_;                    // plaintext, grpc.health.v1 only
  std::unique_ptr<metrics::Metrics> metrics_;
  std::unique_ptr<metrics::MetricsHttpServer> metrics_server_;
  int peer_port_ = 0;
  int local_port_ = 0;
  int health_port_ = 0;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::string agreements_stamp_ ABSL_GUARDED_BY(mu_);
  // config_ with the inline agreements last put in force.
  v1::NodeConfig agreements_source_ ABSL_GUARDED_BY(mu_);
  std::string agreements_error_ ABSL_GUARDED_BY(mu_);
  std::string peers_stamp_ ABSL_GUARDED_BY(mu_);
  // config_ with the inline peers last put in force.
  v1::NodeConfig peers_source_ ABSL_GUARDED_BY(mu_);
  std::string peers_error_ ABSL_GUARDED_BY(mu_);
  std::thread reloader_;
  std::thread retention_;  // only when a dataset has retention_days > 0
  // One per configured upstream; stopped first in Shutdown.
  std::vector<std::unique_ptr<CallHomeClient>> call_home_clients_;
};

}  // namespace server
}  // namespace fedshare

#endif  // FEDSHARE_NODE_SERVER_NODE_H_
