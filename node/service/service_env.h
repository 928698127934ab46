// What the gRPC services borrow from the node: configuration, the
// authenticator and the engines. Owned by node/server's Node, which outlives
// every service.
#ifndef FEDSHARE_NODE_SERVICE_SERVICE_ENV_H_
#define FEDSHARE_NODE_SERVICE_SERVICE_ENV_H_

#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
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

class CallGate;
class RefusalThrottle;

struct ServiceEnv {
  const v1::NodeConfig* config = nullptr;
  const identity::Authenticator* authenticator = nullptr;
  engine::Engine* engine = nullptr;
  engine::Answerer* answerer = nullptr;
  audit::AuditLog* audit = nullptr;
  federation::FanOut* fanout = nullptr;
  absl::Time started_at;
  // EffectiveLimits(config->limits()), and what enforces them per caller.
  v1::Limits limits;
  CallGate* call_gate = nullptr;
  RefusalThrottle* refusal_throttle = nullptr;

  // Set once the listeners are bound.
  std::string peer_address;
  std::string local_address;
};

}  // namespace service
}  // namespace fedshare

#endif  // FEDSHARE_NODE_SERVICE_SERVICE_ENV_H_
