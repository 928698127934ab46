// What the gRPC services borrow from the node: configuration, the
// authenticator and the engines. Owned by node/server's Node, which outlives
// every service.
#ifndef FEDSHARE_NODE_SERVICE_SERVICE_ENV_H_
#define FEDSHARE_NODE_SERVICE_SERVICE_ENV_H_

#include <functional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fedshare/v1/admin.pb.h"
#include "fedshare/v1/config.pb.h"

namespace fedshare {
namespace identity {
class Authenticator;
}
namespace audit {
class AuditLog;
}
namespace engine {
class Engine;
class Answerer;
}  // namespace engine
namespace federation {
class FanOut;
}

namespace service {

struct ServiceEnv {
  const v1::NodeConfig* config = nullptr;
  const identity::Authenticator* authenticator = nullptr;
  engine::Engine* engine = nullptr;
  engine::Answerer* answerer = nullptr;
  audit::AuditLog* audit = nullptr;
  federation::FanOut* fanout = nullptr;
  absl::Time started_at;
  // Optional; told of every ingest batch written (for metrics).
  std::function<void(const std::string& dataset, const v1::IngestResponse& written)> on_ingested;

  // Set once the listeners are bound.
  std::string peer_address;
  std::string local_address;
};

}  // namespace service
}  // namespace fedshare

#endif  // FEDSHARE_NODE_SERVICE_SERVICE_ENV_H_
