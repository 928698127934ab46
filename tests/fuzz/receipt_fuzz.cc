// Fuzzes what verifies a receipt with no trust in its sender: a partner's
// receipt at the foundation (PeerCheckpoints) and any receipt given to
// `fedshare audit verify` (audit::VerifyReceipt, audit::VerifyCheckpoint).
//
// Input: byte 0 says what the harness makes of the rest, which is a
// fedshare.v1.Receipt in wire format:
//   bit 0  re-sign: the checkpoint gets the harness's own key and a valid
//          signature over what it then says (the fuzzer cannot forge one);
//   bit 1  rebuild: the leaf (a receipt must have one) is put among byte 1 % 16 made-up leaves at
//          audit_index % (that + 1), and entry_hash, inclusion_proof and the
//          checkpoint's tree_size and root_hash are made to match;
//   bit 2  tamper (with bits 0 and 1): byte 2 picks a byte of the leaf, the
//          proof, the root or the signature to flip after all that.
// Oracle: whatever verifies is standard (OpenSSL's Ed25519 accepts the
// signature too), its leaf hashes to entry_hash, and it is refused under any
// other expected key; a receipt made whole by bits 0 and 1 verifies, and
// with one flipped byte it does not.
#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fedshare/v1/query.pb.h"
#include "node/audit/checkpoint.h"
#include "node/audit/merkle.h"
#include "tests/fuzz/fuzz_assert.h"

namespace {

using fedshare::audit::CheckpointBody;
using fedshare::audit::CheckpointSigner;
using fedshare::audit::LeafHash;
using fedshare::audit::MerkleTree;
using fedshare::audit::VerifyCheckpoint;
using fedshare::audit::VerifyReceipt;

const CheckpointSigner& Signer() {
  static const CheckpointSigner* signer =
      CheckpointSigner::Create(std::string(fedshare::audit::kSigningSeedBytes, '\x2a'))->release();
  return *signer;
}

// OpenSSL's verdict on the checkpoint's signature.
bool OpenSslVerifies(const fedshare::v1::SignedCheckpoint& c) {
  const std::string body = CheckpointBody(c);
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(c.public_key().data()),
      c.public_key().size());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      key != nullptr && ctx != nullptr &&
      EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(c.signature().data()),
                       c.signature().size(), reinterpret_cast<const unsigned char*>(body.data()),
                       body.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

void Sign(fedshare::v1::SignedCheckpoint& c) {
  fedshare::v1::SignedCheckpoint s = Signer().Sign(c.org_id(), c.tree_size(), c.root_hash(),
                                                   absl::FromUnixMillis(c.time_unix_ms()));
  c = std::move(s);
}

// Puts the receipt's leaf among `others` made-up leaves and makes the proof,
// size and root match.
void Rebuild(fedshare::v1::Receipt& r, uint8_t others) {
  const uint64_t n = 1 + others % 16;
  const uint64_t at = r.audit_index() % n;
  MerkleTree tree;
  for (uint64_t i = 0; i < n; ++i) {
    tree.Append(LeafHash(i == at ? r.leaf() : absl::StrCat("leaf ", i)));
  }
  r.set_audit_index(at);
  r.set_entry_hash(LeafHash(r.leaf()));
  r.clear_inclusion_proof();
  const std::vector<std::string> proof = tree.InclusionProof(at, n).value();
  for (const std::string& step : proof) r.add_inclusion_proof(step);
  r.mutable_checkpoint()->set_tree_size(n);
  r.mutable_checkpoint()->set_root_hash(tree.Root(n));
  r.mutable_checkpoint()->set_org_id(r.org_id());
}

// Flips one byte of the leaf, a proof step, the root or the signature;
// false when `pick` finds nothing to flip.
bool Tamper(fedshare::v1::Receipt& r, uint8_t pick) {
  std::vector<std::string*> parts = {r.mutable_leaf(), r.mutable_checkpoint()->mutable_root_hash(),
                                     r.mutable_checkpoint()->mutable_signature()};
  for (std::string& step : *r.mutable_inclusion_proof()) parts.push_back(&step);
  std::string* part = parts[pick % parts.size()];
  if (part->empty()) return false;
  (*part)[(pick / parts.size()) % part->size()] ^= 0x01;
  // A leaf changed after entry_hash was set fails on its hash; keep the
  // hash in step so the proof itself is what must fail.
  if (part == r.mutable_leaf()) r.set_entry_hash(LeafHash(r.leaf()));
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3 || size > (1 << 20)) return 0;
  const uint8_t flags = data[0];
  fedshare::v1::Receipt r;
  if (!r.ParseFromArray(data + 3, static_cast<int>(size - 3))) return 0;
  // An empty leaf is refused before anything else is looked at.
  const bool made_whole = (flags & 3) == 3 && !r.leaf().empty();
  if (flags & 2) Rebuild(r, data[1]);
  if (flags & 1) Sign(*r.mutable_checkpoint());
  const bool tampered = made_whole && (flags & 4) && Tamper(r, data[2]);

  const absl::Status verified = VerifyReceipt(r, "");
  if (made_whole && !tampered) {
    FEDSHARE_FUZZ_ASSERT(
        verified.ok(), absl::StrCat("a receipt made whole does not verify: ", verified.ToString()));
  }
  if (tampered) {
    FEDSHARE_FUZZ_ASSERT(!verified.ok(), "a receipt with a flipped byte verifies");
  }
  if (!verified.ok()) return 0;
  const fedshare::v1::SignedCheckpoint& c = r.checkpoint();
  FEDSHARE_FUZZ_ASSERT(OpenSslVerifies(c), "a checkpoint verifies here that OpenSSL refuses");
  FEDSHARE_FUZZ_ASSERT(LeafHash(r.leaf()) == r.entry_hash(),
                       "a verified receipt's leaf is not its entry");
  FEDSHARE_FUZZ_ASSERT(VerifyCheckpoint(c, c.public_key()).ok(), "not verified under its own key");
  std::string other = c.public_key();
  other[0] ^= 0x01;
  FEDSHARE_FUZZ_ASSERT(!VerifyReceipt(r, other).ok(), "a receipt verifies under another key");
  return 0;
}
