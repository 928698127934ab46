#include "node/engine/group_ids.h"

#include <algorithm>

namespace fedshare::engine::exec {

GroupIds::GroupIds(const DatasetReader& reader, const std::vector<GroupField>& fields)
    : fields_(fields) {
  uint64_t space = 1;
  dense_ = true;
  for (const GroupField& g : fields) {
    uint64_t values = 0;
    if (g.type == v1::FieldSchema::CATEGORY && g.width == 0) {
      values = reader.dictionary(g.field).size();
    } else if (g.type == v1::FieldSchema::BOOL && g.width == 0) {
      values = 2;
    } else {
      dense_ = false;
      break;
    }
    strides_.push_back(static_cast<uint32_t>(space));
    cards_.push_back(static_cast<int64_t>(values) + 1);  // the last one is null
    space *= values + 1;
    if (space > kMaxDenseGroups) {
      dense_ = false;
      break;
    }
  }
}

absl::Status GroupIds::Assign(const ColumnBlock& block, const uint32_t* rows, size_t n,
                              uint32_t* ids) {
  if (!dense_) {
    for (size_t k = 0; k < n; ++k) {
      GroupKey key;
      for (size_t g = 0; g < fields_.size(); ++g) {
        SetKeyPart(key, g, fields_[g], block.columns[fields_[g].field], rows[k]);
      }
      auto [it, fresh] = ids_.try_emplace(key, static_cast<uint32_t>(keys_.size()));
      if (fresh) keys_.push_back(key);
      ids[k] = it->second;
    }
    return absl::OkStatus();
  }
  std::fill(ids, ids + n, 0u);
  for (size_t g = 0; g < fields_.size(); ++g) {
    const ColumnBlock::Column& col = block.columns[fields_[g].field];
    const int64_t null_code = cards_[g] - 1;
    const uint32_t stride = strides_[g];
    // One loop per width of the column (storage::WithInts).
    const bool bad = storage::WithInts(col, [&](const auto& values) {
      bool past = false;
      if (col.null_bits.empty()) {
        for (size_t k = 0; k < n; ++k) {
          const int64_t v = values[rows[k]];
          past |= static_cast<uint64_t>(v) > static_cast<uint64_t>(null_code);
          ids[k] += static_cast<uint32_t>(v) * stride;
        }
      } else {
        for (size_t k = 0; k < n; ++k) {
          const uint32_t r = rows[k];
          const int64_t v = col.IsNull(r) ? null_code : values[r];
          past |= static_cast<uint64_t>(v) > static_cast<uint64_t>(null_code);
          ids[k] += static_cast<uint32_t>(v) * stride;
        }
      }
      return past;
    });
    if (bad) return absl::DataLossError("a record block holds a code past its dictionary");
  }
  return absl::OkStatus();
}

GroupKey GroupIds::Key(uint32_t id) const {
  if (!dense_) return keys_[id];
  GroupKey key;
  for (size_t g = 0; g < fields_.size(); ++g) {
    const int64_t part = (id / strides_[g]) % cards_[g];
    if (part == cards_[g] - 1) {
      key.nulls |= static_cast<uint8_t>(1u << g);
    } else {
      key.values[g] = part;
    }
  }
  return key;
}

uint32_t GroupIds::IdOf(const GroupKey& key) {
  if (!dense_) {
    auto [it, fresh] = ids_.try_emplace(key, static_cast<uint32_t>(keys_.size()));
    if (fresh) keys_.push_back(key);
    return it->second;
  }
  uint32_t id = 0;
  for (size_t g = 0; g < fields_.size(); ++g) {
    const int64_t part = (key.nulls & (1u << g)) ? cards_[g] - 1 : key.values[g];
    id += static_cast<uint32_t>(part) * strides_[g];
  }
  return id;
}

uint32_t GroupIds::size() const {
  if (!dense_) return static_cast<uint32_t>(keys_.size());
  uint32_t space = 1;
  for (int64_t card : cards_) space *= static_cast<uint32_t>(card);
  return space;
}

}  // namespace fedshare::engine::exec
