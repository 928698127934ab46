// Validated copies of the node's own TLS files, for gRPC's file watcher.
//
// gRPC's FileWatcherCertificateProvider takes whatever it finds in the files:
// a truncated certificate, or a new key written before its certificate (the
// documented order), took the node off the air. A TlsMirror reads the
// configured files every reload interval, checks them as a set (the key
// belongs to the certificate, the certificate chains to the CA bundle, and it
// names this node: spiffe://<trust domain>/org/<org>/node), and only then
// copies them to a private folder that gRPC watches. Invalid material is
// logged and the old set stays in force.
//
//   ASSIGN_OR_RETURN(auto mirror, TlsMirror::Create(config.tls(), td, org, clock));
//   MakeServerCredentials(mirror->mirrored());
//
// Thread-safe. The mirror's copies are removed when it is destroyed, so it
// must outlive the servers that use mirrored().
#ifndef FEDSHARE_NODE_IDENTITY_TLS_MIRROR_H_
#define FEDSHARE_NODE_IDENTITY_TLS_MIRROR_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fedshare/v1/config.pb.h"
#include "node/common/clock.h"

namespace fedshare::identity {

class TlsMirror {
 public:
  // Checks the configured files as a set (INVALID_ARGUMENT / UNAUTHENTICATED
  // naming what is wrong) and copies them into a new folder
  // $TMPDIR/fedshare-tls-XXXXXX (or under /tmp), readable only by this user
  // and locked (flock on its `lock` file) while this mirror lives. Folders
  // of this user whose lock is free were left by a process that was killed
  // and are removed first. Starts checking the files
  // every config.reload_interval_seconds (0: 60 s). `clock` is borrowed.
  static absl::StatusOr<std::unique_ptr<TlsMirror>> Create(const v1::TlsConfig& config,
                                                           const std::string& trust_domain,
                                                           const std::string& org_id, Clock* clock);
  ~TlsMirror();
  TlsMirror(const TlsMirror&) = delete;
  TlsMirror& operator=(const TlsMirror&) = delete;

  // `config` with the paths of the validated copies.
  const v1::TlsConfig& mirrored() const { return mirrored_; }

  // Reads the configured files now; if they changed and are valid as a set,
  // they replace the copies. Returns why a changed set was refused (OK when
  // applied or unchanged).
  absl::Status Refresh();

 private:
  TlsMirror() = default;
  absl::Status Apply(const std::string& cert, const std::string& key, const std::string& ca)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Validate(const std::string& cert, const std::string& key,
                        const std::string& ca) const;
  void Watch();

  v1::TlsConfig config_;
  v1::TlsConfig mirrored_;
  std::string trust_domain_;
  std::string org_id_;
  Clock* clock_ = nullptr;
  std::string dir_;
  int lock_fd_ = -1;  // holds the flock on dir_/lock

  absl::Mutex mu_;
  std::string applied_ ABSL_GUARDED_BY(mu_);  // cert + key + ca last applied
  std::string refused_ ABSL_GUARDED_BY(mu_);  // the last refused set, logged once
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watcher_;
};

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_TLS_MIRROR_H_
