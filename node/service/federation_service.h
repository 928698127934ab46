// FederationService on the local listener: the org's analysts put one
// question to many partners and get the combined answer.
#ifndef FEDSHARE_NODE_SERVICE_FEDERATION_SERVICE_H_
#define FEDSHARE_NODE_SERVICE_FEDERATION_SERVICE_H_

#include "fedshare/v1/federation.grpc.pb.h"
#include "node/service/service_env.h"

namespace fedshare::service {

class FederationServiceImpl final : public v1::FederationService::Service {
 public:
  explicit FederationServiceImpl(const ServiceEnv* env) : env_(env) {}

  grpc::Status FederatedAggregate(grpc::ServerContext* context,
                                  const v1::FederatedAggregateRequest* request,
                                  v1::FederatedAggregateResponse* response) override;
  grpc::Status ListPeers(grpc::ServerContext* context, const v1::ListPeersRequest* request,
                         v1::ListPeersResponse* response) override;
  grpc::Status DescribePeer(grpc::ServerContext* context, const v1::DescribePeerRequest* request,
                            v1::DescribeResponse* response) override;

 private:
  const ServiceEnv* env_;
};

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_FEDERATION_SERVICE_H_
