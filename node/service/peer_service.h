// PeerService on the peer listener: other orgs' nodes describe this node and
// ask aggregate questions, under this org's agreements.
#ifndef FEDSHARE_NODE_SERVICE_PEER_SERVICE_H_
#define FEDSHARE_NODE_SERVICE_PEER_SERVICE_H_

#include "fedshare/v1/peer.grpc.pb.h"
#include "node/service/service_env.h"

namespace fedshare::service {

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
