// What the engine's writers (ingest.cc, engine.cc) share and nothing else
// sees: the writer's committed state, staging of dictionary values and
// subject ordinals until a write commits, and error helpers. Include only
// from node/engine/*.cc.
#ifndef FEDSHARE_NODE_ENGINE_ENGINE_INTERNAL_H_
#define FEDSHARE_NODE_ENGINE_ENGINE_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/admin.pb.h"
#include "google/protobuf/repeated_field.h"
#include "node/common/utf8.h"
#include "node/engine/engine.h"
#include "node/storage/keys.h"
#include "node/storage/storage.h"
#include "policy/consent.h"

namespace fedshare::engine {

inline constexpr int kMaxListedErrors = 1000;

// The consent column family's value (docs/storage-format.md, `consent`).
std::string EncodeConsentValue(absl::Time valid_until, const std::vector<std::string>& scope);
// nullopt if the key's event type or the value is malformed.
std::optional<policy::ConsentEvent> DecodeConsentEvent(const storage::ConsentKey& key,
                                                       absl::string_view value);

inline std::string Quote(absl::string_view text) {
  return absl::StrCat("'", TruncateUtf8(text, 40), "'");
}

struct Dictionary {
  std::vector<std::string> values;
  absl::flat_hash_map<std::string, uint32_t> index;
  absl::flat_hash_set<std::string> declared;

  void Add(std::string value) {
    index.emplace(value, static_cast<uint32_t>(values.size()));
    values.push_back(std::move(value));
  }
};

struct Engine::WriterState {
  std::vector<std::vector<Dictionary>> dicts;           // [dataset][field]
  std::vector<storage::DatasetStats> stats;             // [dataset]
  absl::flat_hash_map<std::string, uint32_t> subjects;  // id -> ordinal
  uint32_t subject_count = 0;
};

// About what a string staged twice (a hash map key and a vector entry) takes,
// with the map's slot and the strings' heap blocks.
inline size_t StagedStringBytes(const std::string& s) {
  return 2 * (sizeof(std::string) + s.size()) + 16;
}

class SubjectStaging {
 public:
  SubjectStaging(const absl::flat_hash_map<std::string, uint32_t>& existing, uint32_t base)
      : existing_(existing), base_(base) {}

  uint32_t Ordinal(const std::string& id) {
    auto it = existing_.find(id);
    if (it != existing_.end()) return it->second;
    auto [added, inserted] = added_.try_emplace(id, base_ + static_cast<uint32_t>(ids_.size()));
    if (inserted) {
      ids_.push_back(id);
      held_bytes_ += StagedStringBytes(id);
    }
    return added->second;
  }
  uint32_t base() const { return base_; }
  const std::vector<std::string>& new_ids() const { return ids_; }
  uint32_t total() const { return base_ + static_cast<uint32_t>(ids_.size()); }
  // About what the staged ids take in memory.
  size_t held_bytes() const { return held_bytes_; }

  void AddTo(storage::WriteBatch* batch) const {
    for (size_t k = 0; k < ids_.size(); ++k) {
      uint32_t ordinal = base_ + static_cast<uint32_t>(k);
      batch->Put(storage::ColumnFamily::kSubjects, storage::SubjectOrdinalByIdKey(ids_[k]),
                 storage::EncodeFixed32BE(ordinal));
      batch->Put(storage::ColumnFamily::kSubjects, storage::SubjectIdByOrdinalKey(ordinal),
                 ids_[k]);
    }
    if (!ids_.empty()) {
      batch->Put(storage::ColumnFamily::kMeta, storage::MetaSubjectCountKey(),
                 storage::EncodeFixed32BE(total()));
    }
  }
  void CommitTo(absl::flat_hash_map<std::string, uint32_t>* map, uint32_t* count) const {
    for (size_t k = 0; k < ids_.size(); ++k) map->emplace(ids_[k], base_ + k);
    *count = total();
  }

 private:
  const absl::flat_hash_map<std::string, uint32_t>& existing_;
  uint32_t base_;
  absl::flat_hash_map<std::string, uint32_t> added_;
  std::vector<std::string> ids_;
  size_t held_bytes_ = 0;
};

class DictionaryStaging {
 public:
  explicit DictionaryStaging(const Dictionary& dict) : dict_(dict) {}
  uint32_t Code(const std::string& value) {
    auto it = dict_.index.find(value);
    if (it != dict_.index.end()) return it->second;
    auto [added, inserted] =
        added_.try_emplace(value, static_cast<uint32_t>(dict_.values.size() + values_.size()));
    if (inserted) {
      values_.push_back(value);
      held_bytes_ += StagedStringBytes(value);
    }
    return added->second;
  }
  const std::vector<std::string>& new_values() const { return values_; }
  uint32_t first_new_code() const { return static_cast<uint32_t>(dict_.values.size()); }
  // About what the staged values take in memory.
  size_t held_bytes() const { return held_bytes_; }

 private:
  const Dictionary& dict_;
  absl::flat_hash_map<std::string, uint32_t> added_;
  std::vector<std::string> values_;
  size_t held_bytes_ = 0;
};

inline void AddError(google::protobuf::RepeatedPtrField<v1::RowError>* errors, int64_t line,
                     absl::string_view column, absl::string_view reason) {
  if (errors->size() >= kMaxListedErrors) return;
  v1::RowError* e = errors->Add();
  e->set_line(line);
  // Both may quote the input; the reply must be valid UTF-8 whatever it held.
  e->set_column(SanitizeUtf8(column));
  e->set_reason(SanitizeUtf8(reason));
}

inline absl::Status UnknownDataset(absl::string_view name,
                                   const std::vector<std::unique_ptr<DatasetDef>>& datasets) {
  std::vector<std::string> names;
  for (const auto& def : datasets) names.push_back(def->schema.name());
  return absl::NotFoundError(absl::StrCat("unknown dataset '", name, "'; configured datasets: ",
                                          names.empty() ? "none" : absl::StrJoin(names, ", ")));
}

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_ENGINE_INTERNAL_H_
