#include "policy/purpose_tree.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "policy/ids.h"

namespace fedshare::policy {

absl::StatusOr<PurposeTree> PurposeTree::Create(
    const google::protobuf::RepeatedPtrField<v1::Purpose>& purposes, int* bad_index) {
  PurposeTree tree;
  auto fail = [&](int index, std::string message) {
    if (bad_index != nullptr) *bad_index = index;
    return absl::InvalidArgumentError(std::move(message));
  };
  absl::flat_hash_map<std::string, int> index_of;
  for (int i = 0; i < purposes.size(); ++i) {
    const v1::Purpose& p = purposes[i];
    if (!IsValidOrgId(p.id())) {
      return fail(i,
                  absl::StrCat("purpose id '", p.id(), "' is invalid: use 1 to 63 of [a-z0-9-]"));
    }
    if (!tree.parent_.emplace(p.id(), p.parent()).second) {
      return fail(i,
                  absl::StrCat("purpose '", p.id(), "' is declared twice: keep one declaration"));
    }
    index_of.emplace(p.id(), i);
    tree.purposes_.push_back(p);
  }
  for (int i = 0; i < purposes.size(); ++i) {
    const v1::Purpose& p = purposes[i];
    if (!p.parent().empty() && !tree.parent_.contains(p.parent())) {
      return fail(i, absl::StrCat("purpose '", p.id(), "' has unknown parent '", p.parent(),
                                  "': declare the parent purpose"));
    }
  }
  // Walk each purpose's chain of parents once: a walk that meets its own path
  // has found a cycle, and the purpose it meets is a member of it (one that
  // only leads into a cycle is not named). Every purpose is walked at most
  // once overall, so a deep chain costs linear time.
  enum State : char { kNew, kOnPath, kDone };
  absl::flat_hash_map<absl::string_view, State> state;
  std::vector<absl::string_view> path;
  for (const v1::Purpose& p : purposes) {
    path.clear();
    absl::string_view at = p.id();
    while (!at.empty()) {
      State& s = state[at];
      if (s == kDone) break;
      if (s == kOnPath) {
        return fail(index_of.at(std::string(at)),
                    absl::StrCat("purpose '", at,
                                 "' is its own ancestor (a cycle): purposes must form a tree"));
      }
      s = kOnPath;
      path.push_back(at);
      at = tree.parent_.find(at)->second;
    }
    for (absl::string_view done : path) state[done] = kDone;
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
