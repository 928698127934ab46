// Health probes (DESIGN §12): the gRPC health check a container's HEALTHCHECK
// or an orchestrator's exec probe runs, over mutual TLS with the node's own
// identity.
//
//   absl::Status ok = ProbeNode(config, ProbeTarget::kPeer, absl::Seconds(5));
#ifndef FEDSHARE_NODE_SERVER_PROBE_H_
#define FEDSHARE_NODE_SERVER_PROBE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedshare/v1/config.pb.h"
#include "grpcpp/channel.h"

namespace fedshare::server {

// grpc.health.v1.Health/Check for the whole server (service ""). True when
// it answers SERVING, false for any other answer; UNAVAILABLE (or the call's
// status) when the call fails.
absl::StatusOr<bool> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                 absl::Duration timeout);

enum class ProbeTarget { kPeer, kLocal };

// Dials the node of `config` on its peer or local listener with the node's
// own certificate, expecting the server to be this org's node, and checks
// health. A wildcard host (0.0.0.0, [::] or empty) is dialled on loopback.
// OK when SERVING; UNAVAILABLE saying why otherwise.
absl::Status ProbeNode(const v1::NodeConfig& config, ProbeTarget target, absl::Duration timeout);

}  // namespace fedshare::server

#endif  // FEDSHARE_NODE_SERVER_PROBE_H_
