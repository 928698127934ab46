// Real gRPC servers on 127.0.0.1 port 0 with fedshare's server credentials and
// Authenticator, and real client channels, all with certificates made in the
// test. Waits on reloads are bounded polls, never fixed sleeps.
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/clock.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/identity/authenticator.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/channel.h"
#include "node/identity/server_credentials.h"
#include "node/identity/x509_verify.h"
#include "testdata/echo.grpc.pb.h"

namespace fedshare::identity {
namespace {

using ::fedshare::testing::ScopedTempDir;
using testdata::Echo;
using testdata::WhoamiRequest;
using testdata::WhoamiResponse;
using ::testing::HasSubstr;

constexpr char kDomain[] = "fed.example";
constexpr absl::Duration kPollLimit = absl::Seconds(30);

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

class EchoService final : public Echo::Service {
 public:
  explicit EchoService(const Authenticator* auth) : auth_(auth) {}
  grpc::Status Whoami(grpc::ServerContext* context, const WhoamiRequest* request,
                      WhoamiResponse* response) override {
    absl::StatusOr<Identity> who = auth_->Authenticate(*context);
    if (!who.ok()) return ToGrpc(who.status());
    if (request->require_operator()) {
      absl::Status s = RequireRole(*who, {Role::kOperator}, "acme", "Echo.Whoami");
      if (!s.ok()) return ToGrpc(s);
    }
    response->set_spiffe_id(who->spiffe_id);
    return grpc::Status::OK;
  }

 private:
  const Authenticator* auth_;
};

struct CallResult {
  grpc::Status status;
  std::string spiffe_id;
  std::string server_cert_pem;  // as the client saw it
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(CreateCa(kDomain, Path("ca"), 30));
    ASSERT_OK(CreateCa(kDomain, Path("ca2"), 30));  // another federation's CA
    ASSERT_OK(IssueCertificate(Path("ca"), Node("server")));
    ASSERT_OK_AND_ASSIGN(std::string ca_pem, ReadFile(Path("ca/ca.pem")));
    ASSERT_OK(WriteFileAtomic(Path("bundle.pem"), ca_pem));

    ASSERT_OK_AND_ASSIGN(
        auth_, Authenticator::Create(Path("bundle.pem"), kDomain, absl::Seconds(1), Clock::Real()));
    service_ = std::make_unique<EchoService>(auth_.get());
    v1::TlsConfig tls;
    tls.set_cert_file(Path("server/cert.pem"));
    tls.set_key_file(Path("server/key.pem"));
    tls.set_ca_file(Path("bundle.pem"));
    tls.set_reload_interval_seconds(1);
    ASSERT_OK(CheckServerTlsConfig(tls));
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", MakeServerCredentials(tls), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
    address_ = absl::StrCat("127.0.0.1:", port_);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  std::string Path(absl::string_view rel) const { return dir_.Sub(rel); }

  IssueOptions Node(const std::string& out, const std::string& org = "acme") const {
    IssueOptions o;
    o.org = org;
    o.role = Role::kNode;
    o.out_dir = Path(out);
    return o;
  }
  IssueOptions Person(const std::string& out, Role role, const std::string& name) const {
    IssueOptions o = Node(out);
    o.role = role;
    o.name = name;
    return o;
  }

  // A client identity issued by `ca` that trusts the server's CA.
  ClientTlsFiles Client(const IssueOptions& o, const std::string& ca = "ca") {
    EXPECT_OK(IssueCertificate(Path(ca), o));
    ClientTlsFiles f;
    f.cert_file = o.out_dir + "/cert.pem";
    f.key_file = o.out_dir + "/key.pem";
    f.ca_file = Path("ca/ca.pem");
    return f;
  }
  ClientTlsFiles Anonymous() const {
    ClientTlsFiles f;
    f.ca_file = Path("ca/ca.pem");
    return f;
  }

  CallResult Call(const ClientTlsFiles& files, bool require_operator = false,
                  ServerExpectation expect = {kDomain, "acme", Role::kNode}) {
    CallResult r;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(address_, files, expect);
    if (!channel.ok()) {
      r.status = ToGrpc(channel.status());
      return r;
    }
    std::unique_ptr<Echo::Stub> stub = Echo::NewStub(*channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    WhoamiRequest request;
    request.set_require_operator(require_operator);
    WhoamiResponse response;
    r.status = stub->Whoami(&context, request, &response);
    r.spiffe_id = response.spiffe_id();
    std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth != nullptr) {
      for (const grpc::string_ref& v : auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
        r.server_cert_pem.assign(v.data(), v.size());
      }
    }
    return r;
  }

  ScopedTempDir dir_{"tls_test"};
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<EchoService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
};

TEST_F(TlsTest, RightClientSucceeds) {
  CallResult r = Call(Client(Person("alice", Role::kAnalyst, "alice")));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.spiffe_id, "spiffe://fed.example/org/acme/analyst/alice");
}

TEST_F(TlsTest, ClientWithoutCertificateIsUnauthenticated) {
  CallResult r = Call(Anonymous());
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << r.status.error_message();
  EXPECT_THAT(r.status.error_message(), HasSubstr("no client certificate"));
}

TEST_F(TlsTest, ClientOfAnotherCaIsUnauthenticated) {
  CallResult r = Call(Client(Node("mallory", "acme"), "ca2"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << r.status.error_message();
  EXPECT_THAT(r.status.error_message(), HasSubstr("not a trusted CA"));
}

TEST_F(TlsTest, ClientsBreakingIdentityRulesAreUnauthenticated) {
  IssueOptions two = Node("two");
  two.uri_sans_override = std::vector<std::string>{"spiffe://fed.example/org/acme/node",
                                                   "spiffe://fed.example/org/beta/node"};
  IssueOptions foreign = Node("foreign");
  foreign.trust_domain_override = "other.example";
  IssueOptions expired = Node("expired");
  expired.not_before = absl::Now() - absl::Hours(48);
  expired.not_after = absl::Now() - absl::Hours(24);
  IssueOptions ca = Node("ca-leaf");
  ca.is_ca = true;
  IssueOptions none = Node("none");
  none.uri_sans_override = std::vector<std::string>{};
  for (const auto& [opts, reason] : std::vector<std::pair<IssueOptions, std::string>>{
           {two, "2 URI SANs"},
           {foreign, "trust domain 'other.example'"},
           {expired, "expired"},
           {ca, "CA=TRUE"},
           {none, "no URI SAN"},
       }) {
    CallResult r = Call(Client(opts));
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << opts.out_dir << ": " << r.status.error_message();
    EXPECT_THAT(r.status.error_message(), HasSubstr(reason)) << opts.out_dir;
  }
}

TEST_F(TlsTest, WrongRoleIsPermissionDenied) {
  CallResult r = Call(Client(Person("alice", Role::kAnalyst, "alice")), /*require_operator=*/true);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(r.status.error_message(),
              HasSubstr("Echo.Whoami needs a caller that is operator of org acme; caller is "
                        "analyst alice of org acme"));
  r = Call(Client(Person("bob", Role::kOperator, "bob")), /*require_operator=*/true);
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
}

TEST_F(TlsTest, ClientRefusesServerOfAnotherOrg) {
  ClientTlsFiles alice = Client(Person("alice", Role::kAnalyst, "alice"));
  CallResult r = Call(alice, false, {kDomain, "beta", Role::kNode});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  r = Call(alice, false, {kDomain, "", Role::kNode});
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
}

TEST_F(TlsTest, ClientRefusesServerOfAnotherTrustDomain) {
  ClientTlsFiles alice = Client(Person("alice", Role::kAnalyst, "alice"));
  CallResult r = Call(alice, false, {"other.example", "acme", Role::kNode});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
}

TEST_F(TlsTest, ServerCertificateReplacedOnDiskIsUsedWithoutRestart) {
  ClientTlsFiles alice = Client(Person("alice", Role::kAnalyst, "alice"));
  CallResult before = Call(alice);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  ASSERT_OK_AND_ASSIGN(CertificateInfo old_cert, InspectCertificate(before.server_cert_pem));

  ASSERT_OK(IssueCertificate(Path("ca"), Node("server")));  // rotate in place
  ASSERT_OK_AND_ASSIGN(std::string new_pem, ReadFile(Path("server/cert.pem")));
  ASSERT_OK_AND_ASSIGN(CertificateInfo new_cert, InspectCertificate(new_pem));
  ASSERT_NE(old_cert.fingerprint, new_cert.fingerprint);

  std::string seen;
  absl::Time limit = absl::Now() + kPollLimit;
  while (absl::Now() < limit) {
    CallResult r = Call(alice);  // a new channel, so a new handshake
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    ASSERT_OK_AND_ASSIGN(CertificateInfo info, InspectCertificate(r.server_cert_pem));
    seen = info.fingerprint;
    if (seen == new_cert.fingerprint) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(seen, new_cert.fingerprint) << "server still presents its old certificate";
}

TEST_F(TlsTest, CaBundleReplacedOnDiskIsUsedWithoutRestart) {
  // mallory is issued by the second CA but trusts ours, so it can reach the
  // server; the server refuses it until the second CA joins the bundle.
  ClientTlsFiles mallory = Client(Node("mallory", "beta"), "ca2");
  CallResult r = Call(mallory);
  ASSERT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << r.status.error_message();
  uint64_t generation = auth_->bundle_generation();

  ASSERT_OK_AND_ASSIGN(std::string ca1, ReadFile(Path("ca/ca.pem")));
  ASSERT_OK_AND_ASSIGN(std::string ca2, ReadFile(Path("ca2/ca.pem")));
  ASSERT_OK(WriteFileAtomic(Path("bundle.pem"), ca1 + ca2));

  absl::Time limit = absl::Now() + kPollLimit;
  while (absl::Now() < limit) {
    r = Call(mallory);
    if (r.status.ok()) break;
    ASSERT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << r.status.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.spiffe_id, "spiffe://fed.example/org/beta/node");
  EXPECT_GT(auth_->bundle_generation(), generation);
  // The first CA's clients are still accepted.
  EXPECT_TRUE(Call(Client(Person("alice", Role::kAnalyst, "alice"))).status.ok());
}

TEST_F(TlsTest, PemChannelWorksLikeFiles) {
  ClientTlsFiles alice = Client(Person("alice", Role::kAnalyst, "alice"));
  ClientTlsPem pem;
  ASSERT_OK_AND_ASSIGN(pem.cert_pem, ReadFile(alice.cert_file));
  ASSERT_OK_AND_ASSIGN(pem.key_pem, ReadFile(alice.key_file));
  ASSERT_OK_AND_ASSIGN(pem.ca_pem, ReadFile(alice.ca_file));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> channel,
                       MakeChannelFromPem(address_, pem, {kDomain, "acme", Role::kNode}));
  std::unique_ptr<Echo::Stub> stub = Echo::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  WhoamiResponse response;
  grpc::Status s = stub->Whoami(&context, WhoamiRequest(), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.spiffe_id(), "spiffe://fed.example/org/acme/analyst/alice");
}

TEST_F(TlsTest, IdentityFromDirAndBadFilesAreReportedBeforeDialing) {
  ASSERT_OK(IssueCertificate(Path("ca"), Person("alice", Role::kAnalyst, "alice")));
  ASSERT_OK_AND_ASSIGN(ClientTlsFiles files, IdentityFromDir(Path("alice")));
  EXPECT_EQ(files.cert_file, Path("alice/cert.pem"));
  EXPECT_TRUE(Call(files).status.ok());
  EXPECT_THAT(IdentityFromDir(Path("nobody")),
              testing::StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody/cert.pem")));
  ClientTlsFiles mismatched = files;
  mismatched.key_file = Path("server/key.pem");
  EXPECT_THAT(MakeChannel(address_, mismatched, {}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("does not belong to the certificate")));
  v1::TlsConfig tls;
  tls.set_cert_file(Path("server/cert.pem"));
  tls.set_key_file(Path("missing.pem"));
  tls.set_ca_file(Path("bundle.pem"));
  EXPECT_THAT(CheckServerTlsConfig(tls),
              testing::StatusIs(absl::StatusCode::kNotFound, HasSubstr("tls.key_file")));
}

}  // namespace
}  // namespace fedshare::identity
