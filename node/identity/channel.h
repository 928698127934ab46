// Client channels to a fedshare node over mutual TLS.
//
//   ASSIGN_OR_RETURN(ClientTlsFiles files, IdentityFromDir("certs/alice"));
//   ServerExpectation expect;
//   expect.trust_domain = "fed.example";
//   expect.org_id = "acme";
//   ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
//                    MakeChannel("127.0.0.1:7443", files, expect));
//
// The server's chain is verified by gRPC against the CA bundle; the host name
// is not checked. Instead the server's certificate must carry exactly one URI
// SAN that is a node SPIFFE ID (of the expected trust domain and org, when
// given) and must not be a CA. A server that fails this fails the handshake:
// calls end UNAVAILABLE and gRPC logs the verifier's reason.
#ifndef FEDSHARE_NODE_IDENTITY_CHANNEL_H_
#define FEDSHARE_NODE_IDENTITY_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "node/identity/spiffe.h"

namespace fedshare::identity {

struct ClientTlsFiles {
  std::string cert_file;  // optional: a client without a certificate (tests)
  std::string key_file;   // required with cert_file
  std::string ca_file;    // required: the CAs that may issue server certificates
  // Files are re-read this often, so long-lived channels follow rotation.
  int reload_interval_seconds = 60;
};

struct ClientTlsPem {
  std::string cert_pem;  // optional, as above
  std::string key_pem;
  std::string ca_pem;
};

struct ServerExpectation {
  std::string trust_domain;  // empty: any
  std::string org_id;        // empty: any
  Role role = Role::kNode;   // servers are nodes
};

// dir/cert.pem, dir/key.pem and dir/ca.pem as written by IssueCertificate.
// NOT_FOUND naming the first that is missing.
absl::StatusOr<ClientTlsFiles> IdentityFromDir(const std::string& dir);

// A channel to `address` ("host:port"). The files are checked now (NOT_FOUND /
// INVALID_ARGUMENT naming the file); connecting happens lazily, as with any
// gRPC channel. `args` are passed on to grpc::CreateCustomChannel.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const ClientTlsFiles& files, const ServerExpectation& expect,
    const grpc::ChannelArguments& args = grpc::ChannelArguments());

// The same with PEM contents, fixed for the channel's life.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannelFromPem(
    const std::string& address, const ClientTlsPem& pem, const ServerExpectation& expect,
    const grpc::ChannelArguments& args = grpc::ChannelArguments());

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_CHANNEL_H_
