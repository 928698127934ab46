#include "node/identity/authenticator.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpc/grpc_security_constants.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"

namespace fedshare::identity {
namespace {

constexpr absl::Duration kDefaultReloadInterval = absl::Seconds(60);

std::string CacheKey(absl::string_view leaf, absl::string_view chain) {
  // A cryptographic digest: a collision would hand one caller another's
  // identity. The leaf's length separates leaf from chain.
  uint64_t n = leaf.size();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, &n, sizeof(n)) == 1 &&
            EVP_DigestUpdate(ctx, leaf.data(), leaf.size()) == 1 &&
            EVP_DigestUpdate(ctx, chain.data(), chain.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
  EVP_MD_CTX_free(ctx);
  // Without a digest, fall back to the full text: correct, only larger.
  if (!ok) return absl::StrCat(n, ":", leaf, chain);
  return std::string(reinterpret_cast<const char*>(md), md_len);
}

absl::StatusOr<TrustBundle> LoadBundle(const std::string& path) {
  FEDSHARE_ASSIGN_OR_RETURN(std::string pem, ReadFile(path));
  return TrustBundle::FromPem(pem, path);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(
    const std::string& ca_file, const std::string& trust_domain, absl::Duration reload_interval,
    Clock* clock) {
  if (ca_file.empty()) return absl::InvalidArgumentError("tls.ca_file is required");
  if (!IsValidTrustDomain(trust_domain)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trust domain '", trust_domain, "' must be 1-255 of lowercase letters, digits, '.-_'"));
  }
  if (clock == nullptr) return absl::InvalidArgumentError("Authenticator needs a clock");
  if (reload_interval <= absl::ZeroDuration()) reload_interval = kDefaultReloadInterval;
  FEDSHARE_ASSIGN_OR_RETURN(FileStamp stamp, Stat(ca_file));
  FEDSHARE_ASSIGN_OR_RETURN(TrustBundle bundle, LoadBundle(ca_file));
  std::unique_ptr<Authenticator> auth(
      new Authenticator(ca_file, trust_domain, reload_interval, clock));
  absl::MutexLock lock(&auth->mu_);
  auth->bundle_ = std::make_shared<const TrustBundle>(std::move(bundle));
  auth->generation_ = 1;
  auth->stamp_ = stamp;
  auth->last_check_ = clock->Now();
  return auth;
}

absl::StatusOr<Authenticator::FileStamp> Authenticator::Stat(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no CA bundle at ", path));
    return absl::FailedPreconditionError(
        absl::StrCat("cannot stat ", path, ": ", std::strerror(errno)));
  }
  FileStamp s;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

void Authenticator::ReloadNow() {
  absl::MutexLock lock(&mu_);
  last_check_ = absl::InfinitePast();
  MaybeReload(clock_->Now());
}

void Authenticator::MaybeReload(absl::Time now) const {
  if (now - last_check_ < reload_interval_) return;
  last_check_ = now;
  absl::StatusOr<FileStamp> stamp = Stat(ca_file_);
  if (!stamp.ok()) {
    last_reload_status_ = stamp.status();
    return;
  }
  if (*stamp == stamp_) return;
  absl::StatusOr<TrustBundle> bundle = LoadBundle(ca_file_);
  if (!bundle.ok()) {
    // Keep the bundle in force: a half-edited file must not lock everyone out.
    // The stamp is not recorded, so the next check tries again.
    last_reload_status_ = bundle.status();
    return;
  }
  stamp_ = *stamp;
  bundle_ = std::make_shared<const TrustBundle>(*std::move(bundle));
  ++generation_;
  cache_.clear();
  last_reload_status_ = absl::OkStatus();
}

absl::StatusOr<Identity> Authenticator::Authenticate(const grpc::ServerContextBase& context) const {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) {
    return absl::UnauthenticatedError("peer certificate refused: the call has no TLS context");
  }
  return Authenticate(*auth);
}

absl::StatusOr<Identity> Authenticator::Authenticate(const grpc::AuthContext& auth) const {
  std::vector<grpc::string_ref> leaf = auth.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  std::vector<grpc::string_ref> chain =
      auth.FindPropertyValues(GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME);
  absl::string_view leaf_pem =
      leaf.empty() ? "" : absl::string_view(leaf[0].data(), leaf[0].size());
  absl::string_view chain_pem =
      chain.empty() ? "" : absl::string_view(chain[0].data(), chain[0].size());
  return AuthenticatePem(leaf_pem, chain_pem);
}

absl::StatusOr<Identity> Authenticator::AuthenticatePem(absl::string_view leaf_pem,
                                                        absl::string_view chain_pem) const {
  const absl::Time now = clock_->Now();
  std::string key = CacheKey(leaf_pem, chain_pem);
  std::shared_ptr<const TrustBundle> bundle;
  uint64_t generation;
  {
    absl::MutexLock lock(&mu_);
    MaybeReload(now);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.generation == generation_ &&
        now < it->second.valid_until) {
      return it->second.identity;
    }
    bundle = bundle_;
    generation = generation_;
  }
  absl::StatusOr<VerifiedPeer> peer = VerifyPeer(leaf_pem, chain_pem, *bundle, trust_domain_, now);
  if (!peer.ok()) return peer.status();
  absl::MutexLock lock(&mu_);
  if (generation == generation_) {
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_[key] = CacheEntry{peer->identity, peer->valid_until, generation};
  }
  return std::move(peer->identity);
}

uint64_t Authenticator::bundle_generation() const {
  absl::MutexLock lock(&mu_);
  return generation_;
}

absl::Status Authenticator::last_reload_status() const {
  absl::MutexLock lock(&mu_);
  return last_reload_status_;
}

absl::Status RequireRole(const Identity& caller, std::initializer_list<Role> allowed,
                         absl::string_view own_org, absl::string_view method) {
  bool role_ok = false;
  std::vector<std::string> names;
  for (Role r : allowed) {
    role_ok = role_ok || r == caller.role;
    names.emplace_back(RoleName(r));
  }
  bool org_ok = own_org.empty() || caller.org_id == own_org;
  if (role_ok && org_ok) return absl::OkStatus();
  std::string needs = absl::StrJoin(names, " or ");
  if (!own_org.empty()) absl::StrAppend(&needs, " of org ", own_org);
  return absl::PermissionDeniedError(
      absl::StrCat(method, " needs a caller that is ", needs, "; caller is ", caller.Describe()));
}

}  // namespace fedshare::identity
