// What fanout.cc and peer_status.cc share: a direct peer's cached channel
// and the coverage state of a call's status. Include only from those files.
#ifndef FEDSHARE_NODE_FEDERATION_FANOUT_INTERNAL_H_
#define FEDSHARE_NODE_FEDERATION_FANOUT_INTERNAL_H_

#include <memory>
#include <string>

#include "fedshare/v1/peer.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "node/federation/fanout.h"

namespace fedshare::federation {

// Calls a fan-out (or a probe of the peers) keeps in flight at once; more
// partners wait for a free slot (each within the deadline). Calls hold no
// thread.
inline constexpr int kMaxCallsInFlight = 256;

// One direct peer's channel, kept across fan-outs until the peer's address or
// this node's TLS files change, or it fails to connect.
struct FanOut::PeerChannel {
  std::string address;
  std::string tls_stamp;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::PeerService::Stub> stub;
};

// The coverage state a partner's call ending with `code` gives.
v1::PartnerCoverage::State StateFor(grpc::StatusCode code);

}  // namespace fedshare::federation

#endif  // FEDSHARE_NODE_FEDERATION_FANOUT_INTERNAL_H_
