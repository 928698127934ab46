#include "client/cli_common.h"

#include <iostream>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/identity/spiffe.h"
#include "node/identity/x509_verify.h"
#include "policy/refusal.h"
#include "query/sql.h"

namespace fedshare::client {
namespace {

// A --node address must name its port: gRPC would otherwise quietly dial 443.
absl::Status CheckNodeAddress(const std::string& address) {
  const std::string example =
      "e.g. 127.0.0.1:7444 (the local listener) or partner.example.org:7443 (a peer listener)";
  absl::string_view port;
  if (absl::StartsWith(address, "[")) {
    size_t close = address.find(']');
    if (close != std::string::npos && address.size() > close + 1 && address[close + 1] == ':') {
      port = absl::string_view(address).substr(close + 2);
    }
  } else if (std::count(address.begin(), address.end(), ':') == 1) {
    port = absl::string_view(address).substr(address.find(':') + 1);
  } else if (std::count(address.begin(), address.end(), ':') > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--node ", address, ": write an IPv6 address in brackets with a port, e.g. [::1]:7444"));
  }
  int number = 0;
  if (port.empty() || !absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--node ", address, " needs a port (HOST:PORT), ", example));
  }
  return absl::OkStatus();
}

}  // namespace

int Fail(const absl::Status& status, Listener wanted) {
  std::cerr << "fedshare: " << absl::StatusCodeToString(status.code());
  if (!status.message().empty()) {
    std::cerr << ": " << status.message();
  } else if (status.code() == absl::StatusCode::kUnimplemented) {
    std::cerr << ": the node does not serve this call here";
  }
  std::cerr << "\n";
  std::optional<google::rpc::ErrorInfo> info = policy::RefusalOf(status);
  // A syntax error's position is already in its message; it is no refusal.
  if (info.has_value() && info->reason() != kSqlSyntaxReason) {
    std::vector<std::string> parts = {absl::StrCat("rule ", info->reason())};
    const auto& meta = info->metadata();
    for (absl::string_view key : {policy::kMetaAgreement, policy::kMetaField}) {
      auto it = meta.find(std::string(key));
      if (it != meta.end()) parts.push_back(absl::StrCat(key, " ", it->second));
    }
    auto left = meta.find(std::string(policy::kMetaEpsilonLeft));
    auto cost = meta.find(std::string(policy::kMetaEpsilonCost));
    if (left != meta.end() && cost != meta.end()) {
      parts.push_back(
          absl::StrCat("epsilon left ", left->second, ", question costs ", cost->second));
    }
    auto retry = meta.find(std::string(policy::kMetaRetryAfterSeconds));
    if (retry != meta.end()) parts.push_back(absl::StrCat("ask again in ", retry->second, " s"));
    std::cerr << "fedshare: refused: " << absl::StrJoin(parts, "; ") << "\n";
  }
  if (status.code() == absl::StatusCode::kUnimplemented && wanted != Listener::kAny) {
    std::cerr << "fedshare: hint: "
              << (wanted == Listener::kLocal
                      ? "this is a peer listener; admin and fan-out calls go to the local "
                        "listener, default port 7444"
                      : "this is a local listener; describe and direct questions go to a peer "
                        "listener, default port 7443")
              << "\n";
  }
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitRefused;
}

absl::StatusOr<std::unique_ptr<NodeClient>> Dial(const Globals& g,
                                                 const std::string& default_node) {
  FEDSHARE_RETURN_IF_ERROR(CheckNodeAddress(g.node.empty() ? default_node : g.node));
  std::string dir = g.identity_dir;
  if (dir.empty()) {
    const char* env = std::getenv("FEDSHARE_IDENTITY");
    if (env != nullptr) dir = env;
  }
  if (dir.empty()) {
    return absl::InvalidArgumentError(
        "no identity: pass --identity DIR (holding cert.pem, key.pem, ca.pem) or set "
        "FEDSHARE_IDENTITY");
  }
  FEDSHARE_ASSIGN_OR_RETURN(identity::ClientTlsFiles files, identity::IdentityFromDir(dir));
  identity::ServerExpectation expect;
  expect.org_id = g.expect_org;
  // Expect the server in our own trust domain.
  FEDSHARE_ASSIGN_OR_RETURN(std::string cert, ReadFile(files.cert_file));
  FEDSHARE_ASSIGN_OR_RETURN(identity::CertificateInfo info, identity::InspectCertificate(cert));
  if (info.uri_sans.size() == 1) {
    absl::StatusOr<identity::Identity> own = identity::ParseSpiffeId(info.uri_sans[0]);
    if (own.ok()) expect.trust_domain = own->trust_domain;
  }
  std::string address = g.node.empty() ? default_node : g.node;
  FEDSHARE_ASSIGN_OR_RETURN(std::unique_ptr<NodeClient> client,
                            NodeClient::Connect(address, files, expect));
  client->set_timeout(absl::Seconds(g.timeout_seconds));
  return client;
}

}  // namespace fedshare::client
