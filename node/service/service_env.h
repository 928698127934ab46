// What the gRPC services borrow from the node: configuration, the
// authenticator and the engines. Owned by node/server's Node, which outlives
// every service.
#ifndef FEDSHARE_NODE_SERVICE_SERVICE_ENV_H_
#define FEDSHARE_NODE_SERVICE_SERVICE_ENV_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fedshare/v1/admin.pb.h"
#include "fedshare/v1/config.pb.h"
#include "node/common/clock.h"
#include "node/service/one_at_a_time.h"

namespace fedshare {
namespace identity {
class Authenticator;
}
namespace audit {
class AuditLog;
}
namespace storage {
class Storage;
}
namespace engine {
class Engine;
class Answerer;
}  // namespace engine
namespace federation {
class FanOut;
class CallHomeHub;
}  // namespace federation

namespace service {

class CallGate;
class StormThrottle;

struct ServiceEnv {
  const v1::NodeConfig* config = nullptr;
  const identity::Authenticator* authenticator = nullptr;
  engine::Engine* engine = nullptr;
  storage::Storage* storage = nullptr;
  engine::Answerer* answerer = nullptr;
  audit::AuditLog* audit = nullptr;
  federation::FanOut* fanout = nullptr;
  // Call-home partners' streams (FederationService.Connect).
  federation::CallHomeHub* call_home_hub = nullptr;
  absl::Time started_at;
  Clock* clock = nullptr;  // the node's
  // Optional; told of every ingest batch written (for metrics).
  std::function<void(const std::string& dataset, const v1::IngestResponse& written)> on_ingested;
  // Optional; the metrics summary AdminService.Status reports.
  std::function<v1::StatusMetrics()> status_metrics;
  // Optional; why files the node reloads while serving (agreements_file,
  // peers_file) are not in force as on disk, for AdminService.Status.
  std::function<std::vector<std::string>()> reload_warnings;
  // EffectiveLimits(config->limits()), and what enforces them per caller.
  v1::Limits limits;
  CallGate* call_gate = nullptr;
  StormThrottle* refusal_throttle = nullptr;
  StormThrottle* dry_run_throttle = nullptr;
  // EraseSubject, RunRetention (the operator's and the schedule's) and Backup
  // run one at a time each; a second concurrent call of a kind is ABORTED.
  mutable OneAtATime erasures{"an erasure"};
  mutable OneAtATime retention_runs{"a retention run"};
  mutable OneAtATime backups{"a backup"};

  // Set once the listeners are bound, while they may already serve calls.
  mutable absl::Mutex addresses_mu;
  std::string peer_address ABSL_GUARDED_BY(addresses_mu);
  std::string local_address ABSL_GUARDED_BY(addresses_mu);
};

}  // namespace service
}  // namespace fedshare

#endif  // FEDSHARE_NODE_SERVICE_SERVICE_ENV_H_
