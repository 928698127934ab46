#include "node/identity/tls_mirror.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/identity/spiffe.h"
#include "node/identity/tls_files.h"
#include "node/identity/x509_verify.h"
#include "spdlog/spdlog.h"

namespace fedshare::identity {
namespace {

constexpr char kEnd[] = "-----END CERTIFICATE-----";

absl::StatusOr<std::string> ReadAll(const std::string& path, absl::string_view field) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat(field, " (", path, "): ", text.status().message()));
  }
  return text;
}

// Removes what a killed process left at `dir` and makes it anew, private.
absl::Status MakeFreshFolder(const std::string& dir) {
  std::error_code error;
  std::filesystem::remove_all(dir, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat(
        "cannot remove the TLS files a previous run left in ", dir, ": ", error.message()));
  }
  if (::mkdir(dir.c_str(), 0700) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot create the folder for the TLS files, ", dir,
                                               ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// A new private folder under $TMPDIR (or /tmp).
absl::StatusOr<std::string> MakeTempFolder() {
  const char* tmp = std::getenv("TMPDIR");
  std::string folder =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/fedshare-tls-XXXXXX");
  if (::mkdtemp(folder.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot create a folder for the TLS files in ",
                                               folder, ": ", std::strerror(errno)));
  }
  return folder;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsMirror>> TlsMirror::Create(const v1::TlsConfig& config,
                                                             const std::string& trust_domain,
                                                             const std::string& org_id,
                                                             const std::string& dir, Clock* clock) {
  std::unique_ptr<TlsMirror> mirror(new TlsMirror());
  mirror->config_ = config;
  mirror->trust_domain_ = trust_domain;
  mirror->org_id_ = org_id;
  mirror->clock_ = clock;
  FEDSHARE_ASSIGN_OR_RETURN(std::string cert, ReadAll(config.cert_file(), "tls.cert_file"));
  FEDSHARE_ASSIGN_OR_RETURN(std::string key, ReadAll(config.key_file(), "tls.key_file"));
  FEDSHARE_ASSIGN_OR_RETURN(std::string ca, ReadAll(config.ca_file(), "tls.ca_file"));
  FEDSHARE_RETURN_IF_ERROR(mirror->Validate(cert, key, ca));
  {
    absl::MutexLock lock(&mirror->mu_);
    absl::Status in_dir = MakeFreshFolder(dir);
    if (in_dir.ok()) in_dir = mirror->UseFolder(dir, cert, key, ca);
    if (!in_dir.ok()) {
      // A full disk: the copies go to $TMPDIR for this run, said out loud.
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
      absl::StatusOr<std::string> tmp = MakeTempFolder();
      if (!tmp.ok()) {
        return absl::UnavailableError(
            absl::StrCat(in_dir.message(), "; and ", tmp.status().message()));
      }
      spdlog::warn("event=tls_files_in_tmpdir dir={} reason=\"{}\"", *tmp,
                   std::string(in_dir.message()));
      FEDSHARE_RETURN_IF_ERROR(mirror->UseFolder(*tmp, cert, key, ca));
    }
  }
  mirror->watcher_ = std::thread([m = mirror.get()] { m->Watch(); });
  return mirror;
}

absl::Status TlsMirror::UseFolder(const std::string& dir, const std::string& cert,
                                  const std::string& key, const std::string& ca) {
  dir_ = dir;  // the destructor removes it, whatever happens next
  generation_ = 0;
  mirrored_ = config_;
  mirrored_.set_cert_file(dir_ + "/current/cert.pem");
  mirrored_.set_key_file(dir_ + "/current/key.pem");
  mirrored_.set_ca_file(dir_ + "/current/ca.pem");
  return Apply(cert, key, ca);
}

TlsMirror::~TlsMirror() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (watcher_.joinable()) watcher_.join();
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

absl::Status TlsMirror::Validate(const std::string& cert, const std::string& key,
                                 const std::string& ca) const {
  FEDSHARE_RETURN_IF_ERROR(CheckTlsPem(cert, key, ca));
  size_t end = cert.find(kEnd);
  if (end == std::string::npos) return absl::InvalidArgumentError("certificate: no PEM end line");
  end += sizeof(kEnd) - 1;
  FEDSHARE_ASSIGN_OR_RETURN(TrustBundle bundle, TrustBundle::FromPem(ca));
  FEDSHARE_ASSIGN_OR_RETURN(VerifiedPeer self, VerifyPeer(absl::string_view(cert).substr(0, end),
                                                          absl::string_view(cert).substr(end),
                                                          bundle, trust_domain_, clock_->Now()));
  if (self.identity.role != Role::kNode || self.identity.org_id != org_id_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the certificate names ", self.identity.Describe(), ", not this node of org ", org_id_));
  }
  return absl::OkStatus();
}

absl::Status TlsMirror::Apply(const std::string& cert, const std::string& key,
                              const std::string& ca) {
  // A new folder per version and one rename of the "current" link, so gRPC
  // never sees a key from one set with a certificate from another.
  const std::string version = absl::StrCat("v", ++generation_);
  const std::string folder = absl::StrCat(dir_, "/", version);
  if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::UnavailableError(absl::StrCat("cannot create ", folder));
  }
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(folder + "/cert.pem", cert, 0600));
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(folder + "/key.pem", key, 0600));
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(folder + "/ca.pem", ca, 0600));
  const std::string link = dir_ + "/current.new";
  ::unlink(link.c_str());
  if (::symlink(version.c_str(), link.c_str()) != 0 ||
      ::rename(link.c_str(), (dir_ + "/current").c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot switch ", dir_, "/current to ", version));
  }
  // Keep the previous version a while for a reader that has just opened it.
  if (generation_ > 2) {
    std::error_code ignored;
    std::filesystem::remove_all(absl::StrCat(dir_, "/v", generation_ - 2), ignored);
  }
  applied_ = absl::StrCat(cert, key, ca);
  return absl::OkStatus();
}

absl::Status TlsMirror::Refresh() {
  absl::StatusOr<std::string> cert = ReadAll(config_.cert_file(), "tls.cert_file");
  absl::StatusOr<std::string> key = ReadAll(config_.key_file(), "tls.key_file");
  absl::StatusOr<std::string> ca = ReadAll(config_.ca_file(), "tls.ca_file");
  absl::Status status = cert.status();
  if (status.ok()) status = key.status();
  if (status.ok()) status = ca.status();
  absl::MutexLock lock(&mu_);
  std::string set = status.ok() ? absl::StrCat(*cert, *key, *ca) : std::string(status.message());
  if (status.ok() && set == applied_) return absl::OkStatus();
  if (status.ok()) status = Validate(*cert, *key, *ca);
  if (status.ok()) status = Apply(*cert, *key, *ca);
  if (status.ok()) {
    spdlog::info("event=tls_reloaded cert={}", config_.cert_file());
    refused_.clear();
    return status;
  }
  if (set != refused_) {
    spdlog::warn(
        "event=tls_reload_refused cert={} reason=\"{}\" action=\"kept the previous files\"",
        config_.cert_file(), std::string(status.message()));
    refused_ = set;
  }
  return status;
}

void TlsMirror::Watch() {
  const absl::Duration interval =
      absl::Seconds(config_.reload_interval_seconds() > 0 ? config_.reload_interval_seconds() : 60);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), interval)) return;
    }
    Refresh().IgnoreError();
  }
}

}  // namespace fedshare::identity
