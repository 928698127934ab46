// RFC 6962 hashing and proofs checked against a literal transcription of the
// RFC's recursive definitions, for every tree size and index up to 40.
#include "node/audit/merkle.h"

#include <openssl/evp.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/audit/checkpoint.h"
#include "node/audit/leaf.h"
#include "node/common/status_matchers.h"

namespace fedshare::audit {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

using Leaves = std::vector<std::string>;

uint64_t Split(uint64_t n) {
  uint64_t k = 1;
  while (2 * k < n) k *= 2;
  return k;
}

// MTH(D[n]) as RFC 6962 §2.1 writes it.
std::string Mth(const Leaves& d, uint64_t lo, uint64_t hi) {
  if (hi == lo) return Sha256("");
  if (hi - lo == 1) return LeafHash(d[lo]);
  uint64_t k = Split(hi - lo);
  return NodeHash(Mth(d, lo, lo + k), Mth(d, lo + k, hi));
}

std::string Leaf(int i) { return absl::StrCat("leaf-", i); }

MerkleTree Tree(const Leaves& d) {
  MerkleTree tree;
  for (const std::string& leaf : d) tree.Append(LeafHash(leaf));
  return tree;
}

TEST(MerkleTest, EmptyTreeAndKnownLeafHashes) {
  // SHA-256("") and SHA-256(0x00): the RFC 6962 empty root and empty-leaf hash.
  EXPECT_EQ(absl::BytesToHexString(MerkleTree().Root(0)),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(absl::BytesToHexString(LeafHash("")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

TEST(MerkleTest, RootsMatchTheRfcDefinitionForEverySize) {
  Leaves d;
  MerkleTree tree;
  for (int n = 1; n <= 40; ++n) {
    d.push_back(Leaf(n));
    tree.Append(LeafHash(d.back()));
    for (int m = 0; m <= n; ++m) EXPECT_EQ(tree.Root(m), Mth(d, 0, m)) << m << " of " << n;
  }
}

TEST(MerkleTest, RemoveLastUndoesAppend) {
  Leaves d;
  for (int i = 0; i < 13; ++i) d.push_back(Leaf(i));
  MerkleTree tree = Tree(d);
  tree.Append(LeafHash("extra"));
  tree.RemoveLast();
  tree.Append(LeafHash("other"));
  d.push_back("other");
  EXPECT_EQ(tree.Root(14), Mth(d, 0, 14));
}

TEST(MerkleTest, EveryInclusionProofVerifiesAndATamperedOneDoesNot) {
  Leaves d;
  for (int i = 0; i < 40; ++i) d.push_back(Leaf(i));
  MerkleTree tree = Tree(d);
  for (uint64_t n = 1; n <= 40; ++n) {
    const std::string root = tree.Root(n);
    for (uint64_t i = 0; i < n; ++i) {
      ASSERT_OK_AND_ASSIGN(std::vector<std::string> proof, tree.InclusionProof(i, n));
      EXPECT_OK(VerifyInclusion(i, n, LeafHash(d[i]), proof, root)) << i << " of " << n;
      EXPECT_THAT(VerifyInclusion(i, n, LeafHash("forged"), proof, root),
                  StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
      if (!proof.empty()) {
        proof[0][0] ^= 1;
        EXPECT_THAT(VerifyInclusion(i, n, LeafHash(d[i]), proof, root),
                    StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
      }
    }
  }
  EXPECT_THAT(tree.InclusionProof(5, 5),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(MerkleTest, EveryConsistencyProofVerifiesAndARewriteDoesNot) {
  Leaves d;
  for (int i = 0; i < 40; ++i) d.push_back(Leaf(i));
  MerkleTree tree = Tree(d);
  for (uint64_t n = 1; n <= 40; ++n) {
    for (uint64_t m = 1; m <= n; ++m) {
      ASSERT_OK_AND_ASSIGN(std::vector<std::string> proof, tree.ConsistencyProof(m, n));
      EXPECT_OK(VerifyConsistency(m, n, tree.Root(m), tree.Root(n), proof)) << m << "->" << n;
      // The same sizes over a history whose leaf 0 was rewritten.
      Leaves rewritten = d;
      rewritten[0] = "rewritten";
      MerkleTree other = Tree(rewritten);
      ASSERT_OK_AND_ASSIGN(std::vector<std::string> other_proof, other.ConsistencyProof(m, n));
      EXPECT_THAT(VerifyConsistency(m, n, tree.Root(m), other.Root(n), other_proof),
                  StatusIs(absl::StatusCode::kDataLoss, ::testing::_))
          << m << "->" << n;
    }
  }
  EXPECT_THAT(VerifyConsistency(5, 3, tree.Root(5), tree.Root(3), {}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
}

TEST(CheckpointTest, SignsAndVerifiesAndRejectsForgeries) {
  ASSERT_OK_AND_ASSIGN(auto signer, CheckpointSigner::Create(std::string(32, '\7')));
  ASSERT_OK_AND_ASSIGN(auto other, CheckpointSigner::Create(std::string(32, '\x08')));
  const std::string root = Sha256("root");
  v1::SignedCheckpoint c = signer->Sign("partner-a", 7, root, absl::FromUnixMillis(1234));
  EXPECT_OK(VerifyCheckpoint(c, ""));
  EXPECT_OK(VerifyCheckpoint(c, signer->public_key()));
  EXPECT_EQ(CheckpointBody(c), absl::StrCat("fedshare audit checkpoint v1\npartner-a\n7\n",
                                            absl::BytesToHexString(root), "\n1234\n",
                                            absl::BytesToHexString(signer->public_key()), "\n"));
  // Another key, even with a valid signature of its own, is not the one held.
  v1::SignedCheckpoint by_other = other->Sign("partner-a", 7, root, absl::FromUnixMillis(1234));
  EXPECT_OK(VerifyCheckpoint(by_other, ""));
  EXPECT_THAT(VerifyCheckpoint(by_other, signer->public_key()),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  for (auto forge : std::vector<std::function<void(v1::SignedCheckpoint&)>>{
           [](v1::SignedCheckpoint& f) { f.set_tree_size(8); },
           [](v1::SignedCheckpoint& f) { f.set_org_id("partner-b"); },
           [](v1::SignedCheckpoint& f) { f.mutable_root_hash()->at(3) ^= 1; },
           [](v1::SignedCheckpoint& f) { f.mutable_signature()->at(10) ^= 1; },
           [](v1::SignedCheckpoint& f) { f.set_signature(""); }}) {
    v1::SignedCheckpoint forged = c;
    forge(forged);
    EXPECT_THAT(VerifyCheckpoint(forged, ""), StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  }
}

// OpenSSL's Ed25519 signature of `body` with `seed`; empty if OpenSSL fails.
std::string OpenSslSign(const std::string& seed, const std::string& body) {
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char sig[64];
  size_t len = sizeof sig;
  const bool ok =
      key != nullptr && ctx != nullptr &&
      EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
      EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(body.data()),
                     body.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok ? std::string(reinterpret_cast<const char*>(sig), len) : std::string();
}

// Whether OpenSSL's Ed25519 verification accepts `signature` of `body`
// under `public_key`.
bool OpenSslVerifies(const std::string& public_key, const std::string& signature,
                     const std::string& body) {
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()),
      public_key.size());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      key != nullptr && ctx != nullptr &&
      EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(body.data()),
                       body.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

// Checkpoints are plain RFC 8032 Ed25519: the key of the RFC's first test
// vector derives as the RFC says, and OpenSSL (what nodes before libsodium
// signed with, and what a third party may verify with) makes the same
// signature for the same body and accepts ours.
TEST(CheckpointTest, SignaturesAreStandardEd25519AsOpenSslMakesThem) {
  const std::string seed =
      absl::HexStringToBytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
  ASSERT_OK_AND_ASSIGN(auto signer, CheckpointSigner::Create(seed));
  EXPECT_EQ(absl::BytesToHexString(signer->public_key()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");

  const v1::SignedCheckpoint c =
      signer->Sign("partner-a", 41, Sha256("root"), absl::FromUnixMillis(1700000000123));
  const std::string body = CheckpointBody(c);
  const std::string by_openssl = OpenSslSign(seed, body);
  ASSERT_FALSE(by_openssl.empty());
  EXPECT_EQ(by_openssl, c.signature());
  EXPECT_TRUE(OpenSslVerifies(signer->public_key(), c.signature(), body));

  // OpenSSL's signature of a changed body verifies here; the old one does not.
  v1::SignedCheckpoint later = c;
  later.set_tree_size(42);
  const std::string later_signature = OpenSslSign(seed, CheckpointBody(later));
  ASSERT_FALSE(later_signature.empty());
  EXPECT_THAT(VerifyCheckpoint(later, ""), StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  later.set_signature(later_signature);
  EXPECT_OK(VerifyCheckpoint(later, signer->public_key()));
}

// The attack on a verifier that accepts small-order keys: a partner whose
// audit key is the identity point (a key it is free to choose when first
// seen) has one fixed signature (R = identity, S = 0) that "verifies" for
// every body, so every checkpoint it ever sends verifies and none binds it:
// it could disown any of them. OpenSSL 3.0, which checkpoints were verified
// with before, accepts that signature; they must not verify here.
TEST(CheckpointTest, ASmallOrderKeyCannotVouchForEveryCheckpoint) {
  std::string identity(32, '\0');
  identity[0] = 1;  // the encoding of the neutral point, of order 1
  std::string signature(64, '\0');
  signature[0] = 1;  // R = the neutral point, S = 0
  for (uint64_t size : {1, 2, 1000}) {
    v1::SignedCheckpoint c;
    c.set_org_id("partner-x");
    c.set_tree_size(size);
    c.set_root_hash(Sha256(absl::StrCat("any root ", size)));
    c.set_time_unix_ms(1700000000000);
    c.set_public_key(identity);
    c.set_signature(signature);

    // The weakened rule: OpenSSL's verification passes the forgery.
    EXPECT_TRUE(OpenSslVerifies(identity, signature, CheckpointBody(c)))
        << "OpenSSL no longer accepts the forgery; the rest of the test still must hold";
    EXPECT_THAT(VerifyCheckpoint(c, ""),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad signature")));
    EXPECT_THAT(VerifyCheckpoint(c, identity),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad signature")));
  }
}

TEST(LeafTest, DecodesWhatItEncodesAndNothingElse) {
  v1::AuditEntry e;
  e.set_index(3);
  e.set_time_unix_ms(-5);
  e.set_caller("spiffe://td/org/a/node");
  e.set_decision(v1::AuditEntry::REFUSED);
  e.set_epsilon_spent(0.25);
  e.mutable_question()->set_dataset("d");
  e.add_applied_where()->set_field("age");
  e.add_applied_where();
  const std::string leaf = EncodeLeaf(e);
  ASSERT_OK_AND_ASSIGN(v1::AuditEntry decoded, DecodeLeaf(leaf));
  EXPECT_EQ(decoded.SerializeAsString(), e.SerializeAsString());
  EXPECT_EQ(EncodeLeaf(decoded), leaf);
  EXPECT_THAT(DecodeLeaf(leaf.substr(0, leaf.size() - 1)),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  EXPECT_THAT(DecodeLeaf("FSAL\x02"), StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  // A zero-valued field written out is not the canonical form.
  EXPECT_THAT(DecodeLeaf(std::string("FSAL\x01\x01\0\0\0\x08", 10) + std::string(8, '\0')),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("canonical")));
}

}  // namespace
}  // namespace fedshare::audit
