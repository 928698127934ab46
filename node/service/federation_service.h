// FederationService on the local listener: the org's analysts put one
// question to many partners and get the combined answer.
#ifndef FEDSHARE_NODE_SERVICE_FEDERATION_SERVICE_H_
#define FEDSHARE_NODE_SERVICE_FEDERATION_SERVICE_H_

#include <cstddef>
#include <vector>

#include "fedshare/v1/federation.grpc.pb.h"
#include "node/service/service_env.h"

namespace fedshare::service {

// FederatedAggregateStream's progress events for `partners`, the partners
// whose calls ended since the last event (in that order), the last of them
// the `finished`th of `asked`: in order, each of about `part_bytes` at most
// (one partner's coverage alone may be more), each event's `finished`
// counting its own partners, so that no message grows with the number of
// partners.
std::vector<v1::FederatedAggregateEvent> ProgressEvents(std::vector<v1::PartnerCoverage> partners,
                                                        int finished, int asked, size_t part_bytes);

class FederationServiceImpl final : public v1::FederationService::Service {
 public:
  explicit FederationServiceImpl(const ServiceEnv* env) : env_(env) {}

  grpc::Status FederatedAggregate(grpc::ServerContext* context,
                                  const v1::FederatedAggregateRequest* request,
                                  v1::FederatedAggregateResponse* response) override;
  grpc::Status FederatedAggregateStream(
      grpc::ServerContext* context, const v1::FederatedAggregateRequest* request,
      grpc::ServerWriter<v1::FederatedAggregateEvent>* writer) override;
  grpc::Status ListPeers(grpc::ServerContext* context, const v1::ListPeersRequest* request,
                         v1::ListPeersResponse* response) override;
  grpc::Status DescribePeer(grpc::ServerContext* context, const v1::DescribePeerRequest* request,
                            v1::DescribeResponse* response) override;

 private:
  const ServiceEnv* env_;
};

// FederationService on the peer listener: only Connect, the stream a
// call-home partner holds (DESIGN §10); the other methods are UNIMPLEMENTED
// there. The caller must be the node of a peer configured with call_home.
// While the stream is up its session is in env->call_home_hub. Served with
// gRPC's callback API: a held stream costs a reactor and its session, not a
// thread, so the listener's threads do not grow with call-home partners.
class FederationPeerServiceImpl final : public v1::FederationService::CallbackService {
 public:
  explicit FederationPeerServiceImpl(const ServiceEnv* env) : env_(env) {}

  grpc::ServerBidiReactor<v1::CallHomeUp, v1::CallHomeDown>* Connect(
      grpc::CallbackServerContext* context) override;

 private:
  const ServiceEnv* env_;
};

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_FEDERATION_SERVICE_H_
