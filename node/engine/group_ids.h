// Gives each group of a scan a compact id: arithmetic over the codes when
// every group field is CATEGORY or BOOL and the combinations are few (then an
// id indexes arrays directly), else an id per distinct key through a hash
// map. Include only from the executor's files.
#ifndef FEDSHARE_NODE_ENGINE_GROUP_IDS_H_
#define FEDSHARE_NODE_ENGINE_GROUP_IDS_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "node/engine/scan_plan.h"

namespace fedshare::engine::exec {

// Thread-compatible. `fields` and `reader` must outlive the GroupIds.
class GroupIds {
 public:
  GroupIds(const DatasetReader& reader, const std::vector<GroupField>& fields);

  // ids[k] for rows[k]. DATA_LOSS for a code past its dictionary.
  absl::Status Assign(const ColumnBlock& block, const uint32_t* rows, size_t n, uint32_t* ids);

  // The key of an id Assign gave.
  GroupKey Key(uint32_t id) const;
  // The id of `key`, given the next one if it has none yet (as Assign would).
  uint32_t IdOf(const GroupKey& key);
  // Ids there may be so far: every id given is below it.
  uint32_t size() const;

 private:
  static constexpr uint64_t kMaxDenseGroups = 1 << 16;
  const std::vector<GroupField>& fields_;
  bool dense_ = false;
  std::vector<uint32_t> strides_;
  std::vector<int64_t> cards_;  // per field: values + 1 for null
  absl::flat_hash_map<GroupKey, uint32_t> ids_;
  std::vector<GroupKey> keys_;
};

}  // namespace fedshare::engine::exec

#endif  // FEDSHARE_NODE_ENGINE_GROUP_IDS_H_
