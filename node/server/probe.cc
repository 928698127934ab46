#include "node/server/probe.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "node/identity/channel.h"

namespace fedshare::server {
namespace {

// "0.0.0.0:7443" -> "127.0.0.1:7443", "[::]:7443" -> "[::1]:7443".
std::string DialableAddress(const std::string& address) {
  size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  std::string port = address.substr(colon + 1);
  if (host.empty() || host == "0.0.0.0") return absl::StrCat("127.0.0.1:", port);
  if (host == "[::]") return absl::StrCat("[::1]:", port);
  return address;
}

}  // namespace

absl::StatusOr<bool> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                 absl::Duration timeout) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  // An empty HealthCheckRequest: the server as a whole.
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  absl::Mutex mu;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   absl::MutexLock lock(&mu);
                   status = std::move(s);
                   done = true;
                 });
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
  }
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("health check failed: ", status.error_message()));
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // HealthCheckResponse{status: SERVING (1)}: field 1, varint 1.
  return bytes == std::string("\x08\x01", 2);
}

absl::Status ProbeNode(const v1::NodeConfig& config, ProbeTarget target, absl::Duration timeout) {
  identity::ClientTlsFiles files;
  files.cert_file = config.tls().cert_file();
  files.key_file = config.tls().key_file();
  files.ca_file = config.tls().ca_file();
  identity::ServerExpectation expect;
  expect.trust_domain = config.trust_domain();
  expect.org_id = config.org_id();
  const std::string& configured =
      target == ProbeTarget::kPeer ? config.peer_address() : config.local_address();
  if (absl::EndsWith(configured, ":0")) {
    // Port 0 asks the system for a free port at start; the config cannot say which.
    return absl::FailedPreconditionError(absl::StrCat(
        "the config's ", target == ProbeTarget::kPeer ? "peer_address" : "local_address", " ",
        configured, " has port 0, chosen anew at each start; pass the bound address the node "
        "printed (its ready line or --ready-file) with --",
        target == ProbeTarget::kPeer ? "peer-address" : "local-address"));
  }
  std::string address = DialableAddress(configured);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      identity::MakeChannel(address, files, expect);
  if (!channel.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot dial ", address, ": ", channel.status().message()));
  }
  absl::StatusOr<bool> serving = CheckHealth(*channel, timeout);
  if (!serving.ok()) {
    return absl::UnavailableError(absl::StrCat(address, ": ", serving.status().message()));
  }
  if (!*serving) return absl::UnavailableError(absl::StrCat(address, ": not serving"));
  return absl::OkStatus();
}

}  // namespace fedshare::server
