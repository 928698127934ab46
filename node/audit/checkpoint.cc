#include "node/audit/checkpoint.h"

#include <openssl/evp.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "node/audit/merkle.h"

namespace fedshare::audit {
namespace {

constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;

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
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
  if (pkey == nullptr) return absl::InternalError("OpenSSL refused the Ed25519 audit key");
  std::unique_ptr<CheckpointSigner> signer(new CheckpointSigner(pkey));
  unsigned char pub[kPublicKeyBytes];
  size_t len = sizeof pub;
  if (EVP_PKEY_get_raw_public_key(pkey, pub, &len) != 1 || len != kPublicKeyBytes) {
    return absl::InternalError("OpenSSL could not derive the Ed25519 public key");
  }
  signer->public_key_.assign(reinterpret_cast<const char*>(pub), len);
  return signer;
}

CheckpointSigner::~CheckpointSigner() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

v1::SignedCheckpoint CheckpointSigner::Sign(const std::string& org_id, uint64_t tree_size,
                                            const std::string& root_hash, absl::Time time) const {
  v1::SignedCheckpoint c;
  c.set_org_id(org_id);
  c.set_tree_size(tree_size);
  c.set_root_hash(root_hash);
  c.set_time_unix_ms(absl::ToUnixMillis(time));
  c.set_public_key(public_key_);
  const std::string body = CheckpointBody(c);
  unsigned char sig[kSignatureBytes];
  size_t len = sizeof sig;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  // Ed25519 signing with a valid key cannot fail short of memory exhaustion;
  // an empty signature then fails every verification, which is fail closed.
  if (ctx != nullptr &&
      EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(pkey_)) == 1 &&
      EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(body.data()),
                     body.size()) == 1) {
    c.set_signature(std::string(reinterpret_cast<const char*>(sig), len));
  }
  EVP_MD_CTX_free(ctx);
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
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(c.public_key().data()),
      c.public_key().size());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const std::string body = CheckpointBody(c);
  const bool ok =
      pkey != nullptr && ctx != nullptr &&
      EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(c.signature().data()),
                       c.signature().size(), reinterpret_cast<const unsigned char*>(body.data()),
                       body.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
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
