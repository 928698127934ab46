// What the engine's writers (ingest.cc, engine.cc) share and nothing else
// sees: the writer's committed state, staging of dictionary values and
// subject ordinals until a write commits, and error helpers. Include only
// from node/engine/*.cc.
#ifndef FEDSHARE_NODE_ENGINE_ENGINE_INTERNAL_H_
#define FEDSHARE_NODE_ENGINE_ENGINE_INTERNAL_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
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

// Copies into `out` the rows of `in` whose subject ordinal is not `ordinal`,
// in order, with their values and nulls; returns how many were left out.
// The erasure writes `out` with EncodeColumnBlock, as ingest writes blocks.
uint32_t CopyRowsWithout(const ColumnBlock& in, uint32_t ordinal, ColumnBlock* out);

// The UTC day of `t`: days since 1970-01-01, rounded down.
int64_t UtcDay(absl::Time t);

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
  absl::flat_hash_map<std::string, uint32_t> subjects;  // id -> ordinal, once loaded
  uint32_t subject_count = 0;
  bool subjects_loaded = false;

  // Reads `subjects` from the store the first time a write needs it (opening
  // the store does not).
  absl::Status LoadSubjects(const storage::Storage& storage);
};

// About what a string staged twice (a hash map key and a vector entry) takes,
// with the map's slot and the strings' heap blocks.
inline size_t StagedStringBytes(const std::string& s) {
  return 2 * (sizeof(std::string) + s.size()) + 16;
}

// The subject ids a write introduces, each held once: `ids_` holds the
// strings and `added_` their indexes, hashed and compared by the string.
class SubjectStaging {
 public:
  SubjectStaging(const absl::flat_hash_map<std::string, uint32_t>& existing, uint32_t base)
      : existing_(existing), base_(base), added_(0, IdHash{&ids_}, IdEq{&ids_}) {}
  SubjectStaging(const SubjectStaging&) = delete;
  SubjectStaging& operator=(const SubjectStaging&) = delete;

  uint32_t Ordinal(const std::string& id) {
    auto it = existing_.find(id);
    if (it != existing_.end()) return it->second;
    auto added = added_.find(absl::string_view(id));
    if (added != added_.end()) return base_ + *added;
    const uint32_t k = static_cast<uint32_t>(ids_.size());
    ids_.push_back(id);
    if (id.size() > kInlineStringBytes) heap_bytes_ += id.size() + 1;
    added_.insert(k);
    return base_ + k;
  }
  uint32_t base() const { return base_; }
  const std::vector<std::string>& new_ids() const { return ids_; }
  uint32_t total() const { return base_ + static_cast<uint32_t>(ids_.size()); }
  // About what the staged ids take in memory.
  size_t held_bytes() const {
    return ids_.capacity() * sizeof(std::string) + heap_bytes_ +
           added_.capacity() * (sizeof(uint32_t) + 1);
  }

  // Each kind of key in key order: RocksDB inserts a batch's keys into its
  // memtable far faster in order than at random.
  void AddTo(storage::WriteBatch* batch) const {
    for (size_t k = 0; k < ids_.size(); ++k) {
      batch->Put(storage::ColumnFamily::kSubjects,
                 storage::SubjectIdByOrdinalKey(base_ + static_cast<uint32_t>(k)), ids_[k]);
    }
    std::vector<uint32_t> order(ids_.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = static_cast<uint32_t>(k);
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return ids_[a] < ids_[b]; });
    for (uint32_t k : order) {
      batch->Put(storage::ColumnFamily::kSubjects, storage::SubjectOrdinalByIdKey(ids_[k]),
                 storage::EncodeFixed32BE(base_ + k));
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
  // Hash and equality of an index in ids_ by its string, so added_ can be
  // searched with a string_view.
  struct IdHash {
    using is_transparent = void;
    const std::vector<std::string>* ids;
    size_t operator()(uint32_t k) const { return (*this)(absl::string_view((*ids)[k])); }
    size_t operator()(absl::string_view id) const { return absl::Hash<absl::string_view>()(id); }
  };
  struct IdEq {
    using is_transparent = void;
    const std::vector<std::string>* ids;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, absl::string_view b) const { return (*ids)[a] == b; }
    bool operator()(absl::string_view a, uint32_t b) const { return a == (*ids)[b]; }
  };

  const absl::flat_hash_map<std::string, uint32_t>& existing_;
  uint32_t base_;
  std::vector<std::string> ids_;  // before added_, whose functors point at it
  absl::flat_hash_set<uint32_t, IdHash, IdEq> added_;
  // Longer strings than this have their own heap buffer (libstdc++'s SSO).
  static constexpr size_t kInlineStringBytes = 15;
  size_t heap_bytes_ = 0;  // the ids' own buffers
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
