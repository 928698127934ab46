// Per-RPC authentication of callers from their TLS client certificate, and
// the role check every RPC makes (DESIGN §5).
//
// The listeners' TLS layer (server_credentials.h) asks for a client
// certificate but lets the handshake succeed without verifying it, so that the
// caller gets a precise status instead of a failed connection. Every RPC
// handler must therefore call Authenticate first:
//
//   absl::StatusOr<Identity> who = authenticator.Authenticate(*context);
//   if (!who.ok()) return ToGrpcStatus(who.status());       // UNAUTHENTICATED
//   absl::Status allowed = RequireRole(*who, {Role::kOperator}, own_org,
//                                      "AdminService.Status");  // PERMISSION_DENIED
//
// The CA bundle file is re-read when it changes (checked at most once per
// reload interval, on the next call), so a bundle replaced on disk is used
// without restart. A replacement that cannot be read or parsed is ignored: the
// previous bundle stays in force and last_reload_status() says why.
//
// Thread-safe. Verified certificates are cached per (certificate, chain, bundle
// generation) until the earliest notAfter of their chain.
#ifndef FEDSHARE_NODE_IDENTITY_AUTHENTICATOR_H_
#define FEDSHARE_NODE_IDENTITY_AUTHENTICATOR_H_

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/server_context.h"
#include "node/common/clock.h"
#include "node/identity/spiffe.h"
#include "node/identity/x509_verify.h"

namespace fedshare::identity {

class Authenticator {
 public:
  // `ca_file`: PEM bundle of trusted CAs (read now; INVALID_ARGUMENT /
  // NOT_FOUND naming the file if unusable). `trust_domain`: the federation's,
  // required. `reload_interval` <= 0 means 60 seconds. `clock` must outlive
  // the Authenticator.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(const std::string& ca_file,
                                                               const std::string& trust_domain,
                                                               absl::Duration reload_interval,
                                                               Clock* clock);

  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // The caller of this RPC, from the peer certificate ("x509_pem_cert") and
  // chain ("x509_pem_cert_chain") in the call's auth context. UNAUTHENTICATED
  // with the reason if there is none or it fails VerifyPeer.
  absl::StatusOr<Identity> Authenticate(const grpc::ServerContextBase& context) const;
  absl::StatusOr<Identity> Authenticate(const grpc::AuthContext& auth) const;
  // The same, for PEM text obtained elsewhere.
  absl::StatusOr<Identity> AuthenticatePem(absl::string_view leaf_pem,
                                           absl::string_view chain_pem) const;

  const std::string& trust_domain() const { return trust_domain_; }
  // Re-reads the CA file now if it changed (SIGHUP), without waiting for the
  // reload interval; a file that cannot be used keeps the previous bundle.
  void ReloadNow();
  // Incremented each time a changed CA file is loaded (starts at 1).
  uint64_t bundle_generation() const;
  // OK, or why the last attempt to reload the CA file failed.
  absl::Status last_reload_status() const;

 private:
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp& o) const {
      return dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  struct CacheEntry {
    Identity identity;
    absl::Time valid_until;
    uint64_t generation;
  };
  static constexpr size_t kMaxCacheEntries = 4096;

  Authenticator(std::string ca_file, std::string trust_domain, absl::Duration reload_interval,
                Clock* clock)
      : ca_file_(std::move(ca_file)),
        trust_domain_(std::move(trust_domain)),
        reload_interval_(reload_interval),
        clock_(clock) {}

  static absl::StatusOr<FileStamp> Stat(const std::string& path);
  // Loads ca_file_ if it changed and the interval has passed.
  void MaybeReload(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string ca_file_;
  const std::string trust_domain_;
  const absl::Duration reload_interval_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  mutable std::shared_ptr<const TrustBundle> bundle_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  mutable FileStamp stamp_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time last_check_ ABSL_GUARDED_BY(mu_);
  mutable absl::Status last_reload_status_ ABSL_GUARDED_BY(mu_);
  mutable absl::flat_hash_map<std::string, CacheEntry> cache_ ABSL_GUARDED_BY(mu_);
};

// OK if `caller` has one of the `allowed` roles and, when `own_org` is not
// empty, belongs to that org. Otherwise PERMISSION_DENIED naming `method`, the
// roles (and org) it needs and what the caller is.
absl::Status RequireRole(const Identity& caller, std::initializer_list<Role> allowed,
                         absl::string_view own_org, absl::string_view method);

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_AUTHENTICATOR_H_
