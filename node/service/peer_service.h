// PeerService on the peer listener: other orgs' nodes describe this node and
// ask aggregate questions, under this org's agreements.
#ifndef FEDSHARE_NODE_SERVICE_PEER_SERVICE_H_
#define FEDSHARE_NODE_SERVICE_PEER_SERVICE_H_

#include <functional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fedshare/v1/peer.grpc.pb.h"
#include "node/identity/spiffe.h"
#include "node/service/service_env.h"

namespace fedshare::service {

// The answer path of PeerService.Aggregate after authentication, shared by
// direct calls and questions that come down a call-home stream
// (node/server/call_home.h), so both get the same bounds, on_behalf_of check,
// per-caller gate, refusal throttle, agreements, audit and receipt. `who` is
// the authenticated asking node (REQUIRES: role node, another org).
// `cancelled` is asked during the scan; past `deadline` the question ends
// DEADLINE_EXCEEDED. Logs one line for `method`, as Finish does.
grpc::Status AnswerPeerAggregate(const ServiceEnv& env, absl::string_view method,
                                 const identity::Identity& who, const v1::AggregateRequest& request,
                                 absl::Time deadline, const std::function<bool()>& cancelled,
                                 v1::AggregateResponse* response);

// The answer of PeerService.Describe after authentication, shared by direct
// calls and describe requests that come down a call-home stream, so both
// describe the same agreements to the same org. `who` is the authenticated
// asking node (REQUIRES: role node). Logs one line for `method`, as Finish
// does.
grpc::Status AnswerPeerDescribe(const ServiceEnv& env, absl::string_view method,
                                const identity::Identity& who, v1::DescribeResponse* response);

class PeerServiceImpl final : public v1::PeerService::Service {
 public:
  explicit PeerServiceImpl(const ServiceEnv* env) : env_(env) {}

  grpc::Status Describe(grpc::ServerContext* context, const v1::DescribeRequest* request,
                        v1::DescribeResponse* response) override;
  grpc::Status Aggregate(grpc::ServerContext* context, const v1::AggregateRequest* request,
                         v1::AggregateResponse* response) override;
  grpc::Status AuditProof(grpc::ServerContext* context, const v1::AuditProofRequest* request,
                          v1::AuditProofResponse* response) override;

 private:
  const ServiceEnv* env_;
};

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_PEER_SERVICE_H_
