#include "node/audit/merkle.h"

#include <openssl/evp.h>

#include "absl/strings/str_cat.h"

namespace fedshare::audit {
namespace {

// The largest power of two strictly below n. REQUIRES: n > 1.
uint64_t SplitPoint(uint64_t n) {
  uint64_t k = 1;
  while (k << 1 < n) k <<= 1;
  return k;
}

bool IsPowerOfTwo(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

int Log2(uint64_t n) {
  int h = 0;
  while ((uint64_t{1} << h) < n) ++h;
  return h;
}

// Fetched once: with EVP_sha256() OpenSSL 3 looks the implementation up
// again on every digest, which doubles the cost of hashing a tree node.
const EVP_MD* Sha256Md() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

}  // namespace

std::string Sha256(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, Sha256Md(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string LeafHash(absl::string_view leaf) {
  std::string in(1, '\x00');
  in.append(leaf.data(), leaf.size());
  return Sha256(in);
}

std::string NodeHash(absl::string_view left, absl::string_view right) {
  std::string in(1, '\x01');
  in.append(left.data(), left.size());
  in.append(right.data(), right.size());
  return Sha256(in);
}

void MerkleTree::Append(std::string leaf_hash) {
  if (levels_.empty()) levels_.emplace_back();
  levels_[0].push_back(std::move(leaf_hash));
  for (size_t h = 0; levels_[h].size() % 2 == 0; ++h) {
    if (levels_.size() == h + 1) levels_.emplace_back();
    const std::vector<std::string>& level = levels_[h];
    levels_[h + 1].push_back(NodeHash(level[level.size() - 2], level[level.size() - 1]));
  }
}

void MerkleTree::RemoveLast() {
  levels_[0].pop_back();
  for (size_t h = 1; h < levels_.size(); ++h) {
    while (levels_[h].size() > levels_[h - 1].size() / 2) levels_[h].pop_back();
  }
}

std::string MerkleTree::RangeHash(uint64_t lo, uint64_t hi) const {
  const uint64_t n = hi - lo;
  if (IsPowerOfTwo(n) && lo % n == 0) return levels_[Log2(n)][lo / n];
  const uint64_t k = SplitPoint(n);
  return NodeHash(RangeHash(lo, lo + k), RangeHash(lo + k, hi));
}

std::string MerkleTree::Root(uint64_t tree_size) const {
  if (tree_size == 0) return Sha256("");
  return RangeHash(0, tree_size);
}

void MerkleTree::Path(uint64_t index, uint64_t lo, uint64_t hi,
                      std::vector<std::string>& out) const {
  if (hi - lo <= 1) return;
  const uint64_t k = SplitPoint(hi - lo);
  if (index < lo + k) {
    Path(index, lo, lo + k, out);
    out.push_back(RangeHash(lo + k, hi));
  } else {
    Path(index, lo + k, hi, out);
    out.push_back(RangeHash(lo, lo + k));
  }
}

absl::StatusOr<std::vector<std::string>> MerkleTree::InclusionProof(uint64_t index,
                                                                    uint64_t tree_size) const {
  if (index >= tree_size || tree_size > size()) {
    return absl::InvalidArgumentError(absl::StrCat("no leaf ", index, " in a tree of ", tree_size,
                                                   " leaves (the log holds ", size(), ")"));
  }
  std::vector<std::string> out;
  Path(index, 0, tree_size, out);
  return out;
}

void MerkleTree::SubProof(uint64_t m, uint64_t lo, uint64_t hi, bool whole,
                          std::vector<std::string>& out) const {
  const uint64_t n = hi - lo;
  if (m == n) {
    if (!whole) out.push_back(RangeHash(lo, hi));
    return;
  }
  const uint64_t k = SplitPoint(n);
  if (m <= k) {
    SubProof(m, lo, lo + k, whole, out);
    out.push_back(RangeHash(lo + k, hi));
  } else {
    SubProof(m - k, lo + k, hi, false, out);
    out.push_back(RangeHash(lo, lo + k));
  }
}

absl::StatusOr<std::vector<std::string>> MerkleTree::ConsistencyProof(uint64_t from_size,
                                                                      uint64_t to_size) const {
  if (from_size == 0 || from_size > to_size || to_size > size()) {
    return absl::InvalidArgumentError(absl::StrCat("no consistency proof from ", from_size, " to ",
                                                   to_size, " leaves (the log holds ", size(),
                                                   ")"));
  }
  std::vector<std::string> out;
  SubProof(from_size, 0, to_size, true, out);
  return out;
}

absl::Status VerifyInclusion(uint64_t index, uint64_t tree_size, absl::string_view leaf_hash,
                             const std::vector<std::string>& proof, absl::string_view root) {
  if (index >= tree_size) {
    return absl::DataLossError(
        absl::StrCat("leaf ", index, " is outside a tree of ", tree_size, " leaves"));
  }
  uint64_t fn = index;
  uint64_t sn = tree_size - 1;
  std::string r(leaf_hash);
  for (const std::string& p : proof) {
    if (sn == 0) return absl::DataLossError("the inclusion proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::DataLossError("the inclusion proof is too short");
  if (r != root) {
    return absl::DataLossError(absl::StrCat("leaf ", index, " is not in the tree of ", tree_size,
                                            " leaves with that root (the leaf or the proof was "
                                            "altered)"));
  }
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t from_size, uint64_t to_size, absl::string_view from_root,
                               absl::string_view to_root, const std::vector<std::string>& proof) {
  if (from_size > to_size) {
    return absl::DataLossError(absl::StrCat("the log shrank from ", from_size, " to ", to_size,
                                            " leaves: it was truncated"));
  }
  if (from_size == to_size) {
    if (!proof.empty()) return absl::DataLossError("a consistency proof between equal sizes");
    if (from_root != to_root) {
      return absl::DataLossError(absl::StrCat("two different roots for the same ", from_size,
                                              " leaves: the log was rewritten"));
    }
    return absl::OkStatus();
  }
  if (from_size == 0) return absl::OkStatus();
  if (proof.empty()) return absl::DataLossError("an empty consistency proof");
  std::vector<std::string> path;
  if (IsPowerOfTwo(from_size)) path.emplace_back(from_root);
  path.insert(path.end(), proof.begin(), proof.end());
  uint64_t fn = from_size - 1;
  uint64_t sn = to_size - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  std::string fr = path[0];
  std::string sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const std::string& c = path[i];
    if (sn == 0) return absl::DataLossError("the consistency proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0 || fr != from_root || sr != to_root) {
    return absl::DataLossError(absl::StrCat("the tree of ", to_size,
                                            " leaves does not extend the tree of ", from_size,
                                            " leaves held: the log was rewritten or truncated"));
  }
  return absl::OkStatus();
}

}  // namespace fedshare::audit
