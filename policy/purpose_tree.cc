#include "policy/purpose_tree.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "policy/ids.h"

namespace fedshare::policy {

absl::StatusOr<PurposeTree> PurposeTree::Create(
    const google::protobuf::RepeatedPtrField<v1::Purpose>& purposes) {
  PurposeTree tree;
  for (const v1::Purpose& p : purposes) {
    if (!IsValidOrgId(p.id())) {
      return absl::InvalidArgumentError(
          absl::StrCat("purpose id '", p.id(), "' is invalid: use 1 to 63 of [a-z0-9-]"));
    }
    if (!tree.parent_.emplace(p.id(), p.parent()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("purpose '", p.id(), "' is declared twice: keep one declaration"));
    }
    tree.purposes_.push_back(p);
  }
  for (const v1::Purpose& p : purposes) {
    if (!p.parent().empty() && !tree.parent_.contains(p.parent())) {
      return absl::InvalidArgumentError(absl::StrCat("purpose '", p.id(), "' has unknown parent '",
                                                     p.parent(), "': declare the parent purpose"));
    }
  }
  // Each purpose in a cycle finds itself within as many steps as there are
  // purposes; one that only leads into a cycle is reported as that cycle's member.
  for (const v1::Purpose& p : purposes) {
    std::string at = p.parent();
    for (size_t steps = 0; !at.empty() && steps <= tree.purposes_.size(); ++steps) {
      if (at == p.id()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "purpose '", p.id(), "' is its own ancestor (a cycle): purposes must form a tree"));
      }
      at = tree.parent_.at(at);
    }
  }
  return tree;
}

bool PurposeTree::Contains(absl::string_view id) const { return parent_.contains(id); }

bool PurposeTree::Covers(absl::string_view ancestor, absl::string_view purpose) const {
  if (!Contains(ancestor)) return false;
  auto it = parent_.find(purpose);
  while (it != parent_.end()) {
    if (it->first == ancestor) return true;
    if (it->second.empty()) return false;
    it = parent_.find(it->second);
  }
  return false;
}

std::vector<std::string> PurposeTree::CoveringPurposes(absl::string_view purpose) const {
  std::vector<std::string> chain;
  auto it = parent_.find(purpose);
  while (it != parent_.end()) {
    chain.push_back(it->first);
    if (it->second.empty()) break;
    it = parent_.find(it->second);
  }
  return chain;
}

}  // namespace fedshare::policy
