#include "node/identity/tls_mirror.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
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

constexpr char kPrefix[] = "fedshare-tls-";
constexpr char kLock[] = "/lock";

// Removes the fedshare-tls-* folders in `parent` that this user owns and no
// live process holds: a killed node's copies, key included. A folder with no
// lock file (from before the lock, or one being made) goes only once a
// minute old. Returns how many were removed.
int SweepDeadMirrors(const std::string& parent) {
  int removed = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(parent, error)) {
    const std::string path = entry.path().string();
    if (!absl::StartsWith(entry.path().filename().string(), kPrefix)) continue;
    struct stat st;
    // A real folder of this user's only: /tmp is shared, and a link is not followed.
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
      continue;
    }
    const int fd = ::open((path + kLock).c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    bool dead = false;
    if (fd >= 0) {
      dead = ::flock(fd, LOCK_EX | LOCK_NB) == 0;  // its owner is gone
    } else if (errno == ENOENT) {
      dead = ::time(nullptr) - st.st_mtime > 60;
    }
    if (dead) {
      std::error_code ignored;
      removed += std::filesystem::remove_all(path, ignored) > 0 ? 1 : 0;
    }
    if (fd >= 0) ::close(fd);
  }
  return removed;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsMirror>> TlsMirror::Create(const v1::TlsConfig& config,
                                                             const std::string& trust_domain,
                                                             const std::string& org_id,
                                                             Clock* clock) {
  std::unique_ptr<TlsMirror> mirror(new TlsMirror());
  mirror->config_ = config;
  mirror->trust_domain_ = trust_domain;
  mirror->org_id_ = org_id;
  mirror->clock_ = clock;
  const char* tmp = std::getenv("TMPDIR");
  const std::string parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  if (const int swept = SweepDeadMirrors(parent); swept > 0) {
    spdlog::info("event=tls_copies_removed folders={} in={} reason=\"left by killed processes\"",
                 swept, parent);
  }
  std::string pattern = absl::StrCat(parent, "/", kPrefix, "XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot create a folder for the TLS files in ", parent, " (", std::strerror(errno),
        "): set TMPDIR to a writable folder, e.g. a tmpfs (docs/identity.md)"));
  }
  mirror->dir_ = pattern;
  // Held until the mirror goes: a free lock tells the next start that the
  // process which made this folder is gone.
  mirror->lock_fd_ = ::open((pattern + kLock).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (mirror->lock_fd_ < 0 || ::flock(mirror->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot lock ", pattern, kLock, ": ", std::strerror(errno)));
  }
  mirror->mirrored_ = config;
  mirror->mirrored_.set_cert_file(mirror->dir_ + "/current/cert.pem");
  mirror->mirrored_.set_key_file(mirror->dir_ + "/current/key.pem");
  mirror->mirrored_.set_ca_file(mirror->dir_ + "/current/ca.pem");

  FEDSHARE_ASSIGN_OR_RETURN(std::string cert, ReadAll(config.cert_file(), "tls.cert_file"));
  FEDSHARE_ASSIGN_OR_RETURN(std::string key, ReadAll(config.key_file(), "tls.key_file"));
  FEDSHARE_ASSIGN_OR_RETURN(std::string ca, ReadAll(config.ca_file(), "tls.ca_file"));
  FEDSHARE_RETURN_IF_ERROR(mirror->Validate(cert, key, ca));
  {
    absl::MutexLock lock(&mirror->mu_);
    FEDSHARE_RETURN_IF_ERROR(mirror->Apply(cert, key, ca));
  }
  mirror->watcher_ = std::thread([m = mirror.get()] { m->Watch(); });
  return mirror;
}

TlsMirror::~TlsMirror() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (watcher_.joinable()) watcher_.join();
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  if (lock_fd_ >= 0) ::close(lock_fd_);
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
