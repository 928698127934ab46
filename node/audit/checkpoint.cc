#include "node/audit/checkpoint.h"

#include <sodium.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "node/audit/merkle.h"

namespace fedshare::audit {
namespace {

constexpr size_t kPublicKeyBytes = crypto_sign_PUBLICKEYBYTES;
constexpr size_t kSignatureBytes = crypto_sign_BYTES;
static_assert(kSigningSeedBytes == crypto_sign_SEEDBYTES);

// libsodium initialised (once, by the first caller); false only if it could
// not be, when nothing is signed or verified (fail closed).
bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

std::vector<std::string> Proof(const google::protobuf::RepeatedPtrField<std::string>& p) {
  return std::vector<std::string>(p.begin(), p.end());
}

}  // namespace

std::string CheckpointBody(const v1::SignedCheckpoint& c) {
  return absl::StrCat("fedshare audit checkpoint v1\n", c.org_id(), "\n", c.tree_size(), "\n",
                      absl::BytesToHexString(c.root_hash()), "\n", c.time_unix_ms(), "\n",
                      absl::BytesToHexString(c.public_key()), "\n");
}

absl::StatusOr<std::unique_ptr<CheckpointSigner>> CheckpointSigner::Create(absl::string_view seed) {
  if (seed.size() != kSigningSeedBytes) {
    return absl::InvalidArgumentError("the audit signing key is not 32 bytes");
  }
  if (!SodiumReady()) return absl::InternalError("libsodium could not be initialised");
  std::unique_ptr<CheckpointSigner> signer(new CheckpointSigner());
  static_assert(sizeof signer->secret_key_ == crypto_sign_SECRETKEYBYTES);
  unsigned char pub[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_seed_keypair(pub, signer->secret_key_,
                           reinterpret_cast<const unsigned char*>(seed.data()));
  signer->public_key_.assign(reinterpret_cast<const char*>(pub), sizeof pub);
  return signer;
}

CheckpointSigner::~CheckpointSigner() { sodium_memzero(secret_key_, sizeof secret_key_); }

v1::SignedCheckpoint CheckpointSigner::Sign(const std::string& org_id, uint64_t tree_size,
                                            const std::string& root_hash, absl::Time time) const {
  v1::SignedCheckpoint c;
  c.set_org_id(org_id);
  c.set_tree_size(tree_size);
  c.set_root_hash(root_hash);
  c.set_time_unix_ms(absl::ToUnixMillis(time));
  c.set_public_key(public_key_);
  const std::string body = CheckpointBody(c);
  unsigned char sig[crypto_sign_BYTES];
  // Signing with a valid key cannot fail.
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(body.data()),
                       body.size(), secret_key_);
  c.set_signature(std::string(reinterpret_cast<const char*>(sig), sizeof sig));
  return c;
}

absl::Status VerifyCheckpoint(const v1::SignedCheckpoint& c, absl::string_view expected_key) {
  if (c.public_key().size() != kPublicKeyBytes || c.signature().size() != kSignatureBytes ||
      c.root_hash().size() != kHashBytes) {
    return absl::DataLossError(
        absl::StrCat("malformed checkpoint of ", c.org_id(), " at size ", c.tree_size()));
  }
  if (!expected_key.empty() && c.public_key() != expected_key) {
    return absl::PermissionDeniedError(
        absl::StrCat("the checkpoint of ", c.org_id(), " at size ", c.tree_size(),
                     " is signed with key ", absl::BytesToHexString(c.public_key()).substr(0, 16),
                     "..., not the audit key held for it (",
                     absl::BytesToHexString(expected_key).substr(0, 16), "...)"));
  }
  const std::string body = CheckpointBody(c);
  const bool ok =
      SodiumReady() && crypto_sign_verify_detached(
                           reinterpret_cast<const unsigned char*>(c.signature().data()),
                           reinterpret_cast<const unsigned char*>(body.data()), body.size(),
                           reinterpret_cast<const unsigned char*>(c.public_key().data())) == 0;
  if (!ok) {
    return absl::DataLossError(absl::StrCat("the checkpoint of ", c.org_id(), " at size ",
                                            c.tree_size(),
                                            " has a bad signature (forged or "
                                            "altered)"));
  }
  return absl::OkStatus();
}

absl::Status VerifyReceipt(const v1::Receipt& receipt, absl::string_view expected_key) {
  if (receipt.leaf().empty() || !receipt.has_checkpoint()) {
    return absl::DataLossError(absl::StrCat("the receipt of ", receipt.org_id(), " entry ",
                                            receipt.audit_index(),
                                            " carries no leaf or no checkpoint"));
  }
  if (LeafHash(receipt.leaf()) != receipt.entry_hash()) {
    return absl::DataLossError(absl::StrCat("the receipt's leaf does not hash to its entry_hash (",
                                            receipt.org_id(), " entry ", receipt.audit_index(),
                                            ")"));
  }
  if (absl::Status s = VerifyCheckpoint(receipt.checkpoint(), expected_key); !s.ok()) return s;
  if (receipt.checkpoint().org_id() != receipt.org_id()) {
    return absl::DataLossError(absl::StrCat("the receipt of ", receipt.org_id(),
                                            " carries a checkpoint of ",
                                            receipt.checkpoint().org_id()));
  }
  return VerifyInclusion(receipt.audit_index(), receipt.checkpoint().tree_size(),
                         receipt.entry_hash(), Proof(receipt.inclusion_proof()),
                         receipt.checkpoint().root_hash());
}

absl::Status VerifyReceiptConsistency(const v1::Receipt& receipt,
                                      const v1::SignedCheckpoint& earlier) {
  return VerifyConsistency(earlier.tree_size(), receipt.checkpoint().tree_size(),
                           earlier.root_hash(), receipt.checkpoint().root_hash(),
                           Proof(receipt.consistency_proof()));
}

}  // namespace fedshare::audit
