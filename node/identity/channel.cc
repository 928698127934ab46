#include "node/identity/channel.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/base/internal/sysinfo.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/tls_files.h"
#include "node/identity/x509_verify.h"

namespace fedshare::identity {
namespace {

// Runs after gRPC has verified the server's chain against the CA bundle.
class ServerIdentityVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit ServerIdentityVerifier(ServerExpectation expect) : expect_(std::move(expect)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* sync_status) override {
    absl::Status s = Check(request);
    *sync_status = s.ok()
                       ? grpc::Status::OK
                       : grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(s.message()));
    return true;  // synchronous
  }

  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  absl::Status Check(grpc::experimental::TlsCustomVerificationCheckRequest* request) const {
    std::vector<std::string> uris;
    grpc::string_ref cert = request->peer_cert();
    if (!cert.empty()) {
      absl::StatusOr<CertificateInfo> info =
          InspectCertificate(absl::string_view(cert.data(), cert.size()));
      if (!info.ok()) return info.status();
      if (info->is_ca) return absl::UnauthenticatedError("server certificate is a CA certificate");
      uris = info->uri_sans;
    } else {
      for (const grpc::string_ref& u : request->uri_names()) uris.emplace_back(u.data(), u.size());
    }
    if (uris.size() != 1) {
      return absl::UnauthenticatedError(absl::StrCat("server certificate has ", uris.size(),
                                                     " URI SANs (", absl::StrJoin(uris, ", "),
                                                     "); exactly one node SPIFFE ID is required"));
    }
    absl::StatusOr<Identity> id = ParseSpiffeId(uris[0]);
    if (!id.ok()) return absl::UnauthenticatedError(id.status().message());
    if (id->role != expect_.role) {
      return absl::UnauthenticatedError(
          absl::StrCat("server is ", id->Describe(), ", expected a ", RoleName(expect_.role)));
    }
    if (!expect_.trust_domain.empty() && id->trust_domain != expect_.trust_domain) {
      return absl::UnauthenticatedError(
          absl::StrCat("server ", id->spiffe_id, " is not in trust domain ", expect_.trust_domain));
    }
    if (!expect_.org_id.empty() && id->org_id != expect_.org_id) {
      return absl::UnauthenticatedError(
          absl::StrCat("server is ", id->Describe(), ", expected org ", expect_.org_id));
    }
    return absl::OkStatus();
  }

  const ServerExpectation expect_;
};

// gRPC 1.51 reads errno after connect(2) only after other calls (fixed
// upstream in grpc/grpc#35064). Abseil reads the CPU's nominal frequency from
// /sys/devices/system/cpu/cpu0/tsc_freq_khz, missing on most machines, the
// first time anything in the process needs it; if that lands between the two,
// a connection still in progress is reported as failed with "No such file or
// directory" and the call fails UNAVAILABLE (strace showed the read between
// the connect and the check; DpTest.ThirtyTwoConcurrentQuestionsNeverOverspend
// failed so about once in a hundred runs under load). Reading the system
// information once, before any channel can connect, removes that read.
void SettleSystemInfo() {
  absl::base_internal::NumCPUs();
  absl::base_internal::NominalCPUFrequency();
}

std::shared_ptr<grpc::Channel> Build(
    const std::string& address,
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider, bool has_identity,
    const ServerExpectation& expect, const grpc::ChannelArguments& args) {
  SettleSystemInfo();
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(std::move(provider));
  options.watch_root_certs();
  if (has_identity) options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_check_call_host(false);
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<ServerIdentityVerifier>(expect));
  return grpc::CreateCustomChannel(address, grpc::experimental::TlsCredentials(options), args);
}

absl::Status CheckExpectation(const std::string& address, const ServerExpectation& expect) {
  if (address.empty()) return absl::InvalidArgumentError("no server address given");
  if (!expect.trust_domain.empty() && !IsValidTrustDomain(expect.trust_domain)) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected trust domain '", expect.trust_domain, "' is malformed"));
  }
  if (!expect.org_id.empty() && !IsValidOrgId(expect.org_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected org '", expect.org_id, "' is malformed"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ClientTlsFiles> IdentityFromDir(const std::string& dir) {
  ClientTlsFiles files;
  files.cert_file = (std::filesystem::path(dir) / kCertFile).string();
  files.key_file = (std::filesystem::path(dir) / kKeyFile).string();
  files.ca_file = (std::filesystem::path(dir) / kCaCertFile).string();
  for (const std::string* f : {&files.cert_file, &files.key_file, &files.ca_file}) {
    if (!std::filesystem::exists(*f)) {
      return absl::NotFoundError(
          absl::StrCat("no ", *f,
                       "; an identity directory holds cert.pem, key.pem and ca.pem "
                       "(make one with `fedshare certs issue`)"));
    }
  }
  return files;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address,
                                                           const ClientTlsFiles& files,
                                                           const ServerExpectation& expect,
                                                           const grpc::ChannelArguments& args) {
  FEDSHARE_RETURN_IF_ERROR(CheckExpectation(address, expect));
  FEDSHARE_RETURN_IF_ERROR(CheckTlsFiles(files.cert_file, files.key_file, files.ca_file, ""));
  unsigned int interval = files.reload_interval_seconds > 0
                              ? static_cast<unsigned int>(files.reload_interval_seconds)
                              : 60;
  bool has_identity = !files.cert_file.empty();
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (has_identity) {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        files.key_file, files.cert_file, files.ca_file, interval);
  } else {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(files.ca_file,
                                                                                    interval);
  }
  return Build(address, std::move(provider), has_identity, expect, args);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannelFromPem(
    const std::string& address, const ClientTlsPem& pem, const ServerExpectation& expect,
    const grpc::ChannelArguments& args) {
  FEDSHARE_RETURN_IF_ERROR(CheckExpectation(address, expect));
  FEDSHARE_RETURN_IF_ERROR(CheckTlsPem(pem.cert_pem, pem.key_pem, pem.ca_pem));
  bool has_identity = !pem.cert_pem.empty();
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (has_identity) {
    provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
        pem.ca_pem,
        std::vector<grpc::experimental::IdentityKeyCertPair>{{pem.key_pem, pem.cert_pem}});
  } else {
    provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(pem.ca_pem);
  }
  return Build(address, std::move(provider), has_identity, expect, args);
}

}  // namespace fedshare::identity
