// The federation's purpose vocabulary: a forest of purposes, where consent to
// (or an agreement for) a parent purpose covers each of its descendants.
//
//   ASSIGN_OR_RETURN(PurposeTree tree, PurposeTree::Create(config.purposes()));
//   tree.Covers("research", "program-evaluation");  // true if research is an ancestor
//
// Thread-compatible: immutable after Create.
#ifndef FEDSHARE_POLICY_PURPOSE_TREE_H_
#define FEDSHARE_POLICY_PURPOSE_TREE_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/types.pb.h"
#include "google/protobuf/repeated_field.h"

namespace fedshare::policy {

class PurposeTree {
 public:
  // INVALID_ARGUMENT for a bad id, a duplicate, an unknown parent or a cycle,
  // naming the purpose; then `*bad_index` (if given) is that purpose's
  // position in `purposes`. Linear in the number of purposes.
  static absl::StatusOr<PurposeTree> Create(
      const google::protobuf::RepeatedPtrField<v1::Purpose>& purposes, int* bad_index = nullptr);

  PurposeTree() = default;

  bool Contains(absl::string_view id) const;

  // True if `ancestor` is `purpose` itself or one of its ancestors. False if
  // either is unknown.
  bool Covers(absl::string_view ancestor, absl::string_view purpose) const;

  // `purpose` followed by its ancestors up to the root; empty if unknown.
  std::vector<std::string> CoveringPurposes(absl::string_view purpose) const;

  const std::vector<v1::Purpose>& purposes() const { return purposes_; }

 private:
  std::vector<v1::Purpose> purposes_;
  absl::flat_hash_map<std::string, std::string> parent_;  // id -> parent ("" for a root)
};

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_PURPOSE_TREE_H_
