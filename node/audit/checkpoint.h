// Signed checkpoints of the audit log and receipts' verification.
//
// A checkpoint's signed body (CheckpointBody) is text, one item a line:
//
//   fedshare audit checkpoint v1
//   <org id>
//   <tree size, decimal>
//   <root hash, 64 lowercase hex digits>
//   <time, unix milliseconds, decimal>
//   <Ed25519 public key, 64 lowercase hex digits>
//
// each line ending in "\n". The signature is Ed25519 (RFC 8032) over those
// bytes, made and checked with libsodium (about twice as fast as OpenSSL 3.0's
// Ed25519, and a foundation checks one signature per partner per question).
//
//   ASSIGN_OR_RETURN(auto signer, CheckpointSigner::Create(seed));
//   v1::SignedCheckpoint c = signer->Sign("partner-a", size, root, now);
//   RETURN_IF_ERROR(VerifyCheckpoint(c, /*expected_key=*/""));
//
// Nothing here trusts the node: the client verifies receipts with it.
#ifndef FEDSHARE_NODE_AUDIT_CHECKPOINT_H_
#define FEDSHARE_NODE_AUDIT_CHECKPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fedshare/v1/query.pb.h"

namespace fedshare::audit {

inline constexpr size_t kSigningSeedBytes = 32;

std::string CheckpointBody(const v1::SignedCheckpoint& checkpoint);

// Signs checkpoints with one Ed25519 key. Thread-safe.
class CheckpointSigner {
 public:
  // `seed`: the 32-byte Ed25519 private key. INVALID_ARGUMENT if it is not.
  static absl::StatusOr<std::unique_ptr<CheckpointSigner>> Create(absl::string_view seed);
  ~CheckpointSigner();
  CheckpointSigner(const CheckpointSigner&) = delete;
  CheckpointSigner& operator=(const CheckpointSigner&) = delete;

  const std::string& public_key() const { return public_key_; }
  v1::SignedCheckpoint Sign(const std::string& org_id, uint64_t tree_size,
                            const std::string& root_hash, absl::Time time) const;

 private:
  CheckpointSigner() = default;
  unsigned char secret_key_[64];  // libsodium's: the seed, then the public key
  std::string public_key_;
};

// OK if the checkpoint is well formed and its signature verifies under its
// public key, which must equal `expected_key` unless that is empty;
// DATA_LOSS (or PERMISSION_DENIED for a key other than the expected one)
// saying why not.
absl::Status VerifyCheckpoint(const v1::SignedCheckpoint& checkpoint,
                              absl::string_view expected_key);

// OK if the receipt's leaf hashes to entry_hash, its inclusion proof leads to
// its checkpoint's root, the checkpoint verifies (under `expected_key` unless
// empty) and, when it carries one, the consistency proof verifies against
// `earlier` (REQUIRES: earlier.tree_size() == receipt.consistency_from()).
absl::Status VerifyReceipt(const v1::Receipt& receipt, absl::string_view expected_key);
absl::Status VerifyReceiptConsistency(const v1::Receipt& receipt,
                                      const v1::SignedCheckpoint& earlier);

}  // namespace fedshare::audit

#endif  // FEDSHARE_NODE_AUDIT_CHECKPOINT_H_
