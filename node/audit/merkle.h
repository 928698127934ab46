// RFC 6962 (and RFC 9162 §2.1) Merkle tree hashing, proofs and their
// verification, over SHA-256:
//
//   leaf hash  = SHA-256(0x00 || leaf)
//   node hash  = SHA-256(0x01 || left || right)
//   empty tree = SHA-256("")
//
//   MerkleTree tree;
//   tree.Append(LeafHash(leaf));
//   std::vector<std::string> path = tree.InclusionProof(i, tree.size()).value();
//   VerifyInclusion(i, tree.size(), LeafHash(leaf), path, tree.Root(tree.size()));
//
// The Verify* functions trust nothing but their arguments; the client uses
// them to check receipts without trusting the node. Hashes are 32-byte
// strings. MerkleTree is not thread-safe.
#ifndef FEDSHARE_NODE_AUDIT_MERKLE_H_
#define FEDSHARE_NODE_AUDIT_MERKLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fedshare::audit {

inline constexpr size_t kHashBytes = 32;

std::string Sha256(absl::string_view data);
std::string LeafHash(absl::string_view leaf);
std::string NodeHash(absl::string_view left, absl::string_view right);

// The leaf hashes of a log held in memory with every complete subtree's hash,
// so roots and proofs of any prefix cost O(log² n) hashes.
class MerkleTree {
 public:
  void Append(std::string leaf_hash);
  // Undoes the last Append. REQUIRES: size() > 0.
  void RemoveLast();
  uint64_t size() const { return levels_.empty() ? 0 : levels_[0].size(); }
  const std::string& leaf_hash(uint64_t index) const { return levels_[0][index]; }

  // The tree hash of the first `tree_size` leaves. REQUIRES: tree_size <= size().
  std::string Root(uint64_t tree_size) const;
  // RFC 6962 PATH(index, D[tree_size]). INVALID_ARGUMENT unless
  // index < tree_size <= size().
  absl::StatusOr<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t tree_size) const;
  // RFC 6962 PROOF(from_size, D[to_size]). INVALID_ARGUMENT unless
  // 0 < from_size <= to_size <= size().
  absl::StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t from_size,
                                                            uint64_t to_size) const;

 private:
  // The hash of leaves [lo, hi) as RFC 6962's recursion splits them (lo is a
  // multiple of the largest power of two below hi - lo).
  std::string RangeHash(uint64_t lo, uint64_t hi) const;
  void Path(uint64_t index, uint64_t lo, uint64_t hi, std::vector<std::string>& out) const;
  void SubProof(uint64_t m, uint64_t lo, uint64_t hi, bool whole,
                std::vector<std::string>& out) const;

  // levels_[h][i]: the hash of leaves [i * 2^h, (i + 1) * 2^h).
  std::vector<std::vector<std::string>> levels_;
};

// OK if `proof` proves the leaf with `leaf_hash` at `index` is in the tree of
// `tree_size` leaves with `root`; DATA_LOSS saying why not.
absl::Status VerifyInclusion(uint64_t index, uint64_t tree_size, absl::string_view leaf_hash,
                             const std::vector<std::string>& proof, absl::string_view root);

// OK if `proof` proves the tree of `from_size` leaves with `from_root` is a
// prefix of the tree of `to_size` leaves with `to_root`; DATA_LOSS saying why
// not (a history rewritten or truncated).
absl::Status VerifyConsistency(uint64_t from_size, uint64_t to_size, absl::string_view from_root,
                               absl::string_view to_root, const std::vector<std::string>& proof);

}  // namespace fedshare::audit

#endif  // FEDSHARE_NODE_AUDIT_MERKLE_H_
