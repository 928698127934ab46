// A simulated partner for fedshare-sim-partners: one partner identity with
// the answer stack of a real node (its own store, agreement, audit log,
// receipts, gate and throttle behind the node's PeerServiceImpl), and the
// one gRPC server that serves many of them directly, a port each.
#ifndef FEDSHARE_BENCH_SIM_PARTNER_H_
#define FEDSHARE_BENCH_SIM_PARTNER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "fedshare/v1/peer.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "node/audit/audit_log.h"
#include "node/engine/answerer.h"
#include "node/engine/engine.h"
#include "node/identity/authenticator.h"
#include "node/identity/cert_issuer.h"
#include "node/server/call_home_client.h"
#include "node/service/limits.h"
#include "node/service/peer_service.h"
#include "node/storage/storage.h"

namespace fedshare::sim {

inline constexpr char kTrustDomain[] = "sim.fedshare.test";

// The folder of `org`'s certificate for `role` (and `name`) under `dir`.
std::string IdDir(const std::string& dir, const std::string& org, identity::Role role,
                  const std::string& name);

// Issues that certificate from `dir`/pki/ca unless it is there already.
absl::Status Issue(const std::string& dir, const std::string& org, identity::Role role,
                   const std::string& name);

// A node config for `org` with its data and certificates under `dir`.
v1::NodeConfig NodeConfig(const std::string& org, const std::string& dir);

// One partner identity: a node's answer stack without servers of its own.
struct SimPartner {
  v1::NodeConfig config;
  std::unique_ptr<storage::Storage> storage;
  std::unique_ptr<audit::AuditLog> audit;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<engine::Answerer> answerer;
  std::unique_ptr<service::CallGate> gate;
  std::unique_ptr<service::StormThrottle> throttle;
  std::unique_ptr<service::StormThrottle> dry_run_throttle;
  service::ServiceEnv env;
  std::unique_ptr<service::PeerServiceImpl> peer_service;
  std::unique_ptr<server::CallHomeClient> call_home;
  int port = 0;  // on the shared server; 0 if not served directly
};

// Partner `org` (the `index`th) under `dir`, holding `records` synthetic
// records and their consents, with its agreement for the foundation.
absl::StatusOr<std::unique_ptr<SimPartner>> MakePartner(const std::string& org,
                                                        const std::string& dir, int index,
                                                        int records,
                                                        const identity::Authenticator* auth);

// PeerService for every directly served partner, on one gRPC server: a call
// goes to the partner whose port it came in on (the :authority the caller
// dialled), and from there through that partner's own PeerServiceImpl.
class DispatchingPeerService final : public v1::PeerService::Service {
 public:
  void Add(int port, SimPartner* partner) { by_port_[port] = partner; }

  grpc::Status Describe(grpc::ServerContext* context, const v1::DescribeRequest* request,
                        v1::DescribeResponse* response) override {
    SimPartner* p = Find(*context);
    if (p == nullptr) return NotServed();
    return p->peer_service->Describe(context, request, response);
  }
  grpc::Status Aggregate(grpc::ServerContext* context, const v1::AggregateRequest* request,
                         v1::AggregateResponse* response) override {
    SimPartner* p = Find(*context);
    if (p == nullptr) return NotServed();
    return p->peer_service->Aggregate(context, request, response);
  }
  grpc::Status AuditProof(grpc::ServerContext* context, const v1::AuditProofRequest* request,
                          v1::AuditProofResponse* response) override {
    SimPartner* p = Find(*context);
    if (p == nullptr) return NotServed();
    return p->peer_service->AuditProof(context, request, response);
  }

 private:
  static grpc::Status NotServed() {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no partner is served on this port");
  }
  SimPartner* Find(const grpc::ServerContext& context) const {
    grpc::string_ref authority = context.ExperimentalGetAuthority();
    absl::string_view a(authority.data(), authority.size());
    int port = 0;
    if (!absl::SimpleAtoi(a.substr(a.rfind(':') + 1), &port)) return nullptr;
    auto it = by_port_.find(port);
    return it == by_port_.end() ? nullptr : it->second;
  }
  // Filled before the server starts; read-only after.
  absl::flat_hash_map<int, SimPartner*> by_port_;
};

// One server for `partners`, each on its own port with its own certificate
// (fixed PEM: a file-watching credential would hold a thread per partner).
absl::StatusOr<std::unique_ptr<grpc::Server>> ServeDirect(std::vector<SimPartner*> partners,
                                                          DispatchingPeerService* service);

}  // namespace fedshare::sim

#endif  // FEDSHARE_BENCH_SIM_PARTNER_H_
