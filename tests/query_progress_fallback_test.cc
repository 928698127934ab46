// Issue 13: `fedshare query` shows progress through
// FederationService.FederatedAggregateStream; a node from before that RPC
// answers it UNIMPLEMENTED without asking any partner, and the client must
// then ask with the unary FederatedAggregate, once. The node here is a gRPC
// server on loopback with a real node certificate that implements only the
// unary call (as an older node would), reached through the real client.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;

constexpr char kTrustDomain[] = "fedshare.test";

// FederationService as a node without the stream: every other method is the
// generated UNIMPLEMENTED.
class UnaryOnlyFederation final : public v1::FederationService::Service {
 public:
  grpc::Status FederatedAggregate(grpc::ServerContext*,
                                  const v1::FederatedAggregateRequest* request,
                                  v1::FederatedAggregateResponse* response) override {
    absl::MutexLock lock(&mu_);
    asked_.push_back(*request);
    response->mutable_combined()->set_org_id("foundation");
    response->mutable_combined()->set_query_id(request->query().query_id());
    response->add_coverage()->set_org_id("partner-a");
    response->mutable_coverage(0)->set_state(v1::PartnerCoverage::ANSWERED);
    return grpc::Status::OK;
  }
  std::vector<v1::FederatedAggregateRequest> asked() {
    absl::MutexLock lock(&mu_);
    return asked_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::FederatedAggregateRequest> asked_ ABSL_GUARDED_BY(mu_);
};

TEST(QueryProgressFallbackTest, ANodeWithoutTheStreamIsAskedOnceTheUnaryWay) {
  TempDir tmp("query_progress_fallback");
  Pki pki(tmp.Sub("pki"), kTrustDomain);
  const std::string node_id = pki.Issue("foundation", Role::kNode);
  const std::string analyst_id = pki.Issue("foundation", Role::kAnalyst, "ana");
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ASSERT_OK_AND_ASSIGN(tls.pem_root_certs, ReadFile(node_id + "/ca.pem"));
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSERT_OK_AND_ASSIGN(pair.private_key, ReadFile(node_id + "/key.pem"));
  ASSERT_OK_AND_ASSIGN(pair.cert_chain, ReadFile(node_id + "/cert.pem"));
  tls.pem_key_cert_pairs.push_back(pair);
  UnaryOnlyFederation service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(tls), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_NE(port, 0);

  std::unique_ptr<client::NodeClient> analyst =
      Connect(absl::StrCat("127.0.0.1:", port), analyst_id, kTrustDomain, "foundation");
  v1::FederatedAggregateRequest request;
  request.set_all_peers(true);
  request.mutable_query()->set_dataset("program_outcomes");
  request.mutable_query()->set_query_id("q-1");
  int progress_lines = 0;
  absl::StatusOr<v1::FederatedAggregateResponse> answer = analyst->FederatedAggregateStream(
      request, [&](const v1::FederatedAggregateProgress&) { ++progress_lines; });
  ASSERT_OK(answer.status());
  EXPECT_EQ(answer->combined().query_id(), "q-1");
  ASSERT_EQ(answer->coverage_size(), 1);
  EXPECT_EQ(answer->coverage(0).org_id(), "partner-a");
  EXPECT_EQ(progress_lines, 0);
  std::vector<v1::FederatedAggregateRequest> asked = service.asked();
  ASSERT_EQ(asked.size(), 1u);  // once, not once per attempt
  EXPECT_TRUE(asked[0].all_peers());
  server->Shutdown();
}

}  // namespace
}  // namespace fedshare::testing
