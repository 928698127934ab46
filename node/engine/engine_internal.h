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
#include "node/engine/subject_index.h"
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

// The row error for a subject id over the node's bound (ingest and consent
// import alike): the bound is an erasure's, so every stored id can be erased.
inline std::string SubjectIdTooLong(size_t bytes, size_t max_bytes) {
  return absl::StrCat("the subject id is ", bytes, " bytes, over limits.max_string_bytes = ",
                      max_bytes,
                      " (the longest id an erasure accepts); shorten the ids or raise the limit "
                      "in the node config");
}

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
  SubjectIndex subjects;  // id -> ordinal, once loaded
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

// The subject ids a write introduces. They enter the writer's index at once
// (each id held once) and leave it again when the write does not commit:
// the staging rolls the index back when destroyed uncommitted or Reset.
class SubjectStaging {
 public:
  SubjectStaging(SubjectIndex* index, uint32_t* count)
      : index_(index), count_(count), base_(*count), mark_(index->mark()) {
    held_at_start_ = index_->held_bytes();
  }
  ~SubjectStaging() {
    if (!committed_) index_->RollbackTo(mark_);
  }
  SubjectStaging(const SubjectStaging&) = delete;
  SubjectStaging& operator=(const SubjectStaging&) = delete;

  // The ordinal of `id`; a new one (and *added true) if the index lacks it.
  uint32_t Ordinal(absl::string_view id, bool* added = nullptr) {
    return Ordinal(id, SubjectIndex::Hash(id), added);
  }
  // The same, with `hash` == SubjectIndex::Hash(id).
  uint32_t Ordinal(absl::string_view id, uint32_t hash, bool* added) {
    bool inserted = false;
    const uint32_t ordinal = index_->FindOrInsert(id, hash, base_ + added_, &inserted);
    if (inserted) ++added_;
    if (added != nullptr) *added = inserted;
    return ordinal;
  }
  // Ordinal for ids[0], ..., ids[n - 1], as n calls would give, with their
  // lookups overlapped (SubjectIndex::FindOrInsertBatch).
  void Ordinals(const absl::string_view* ids, const uint32_t* hashes, size_t n,
                uint32_t* ordinals, bool* added) {
    added_ += static_cast<uint32_t>(
        index_->FindOrInsertBatch(ids, hashes, n, base_ + added_, ordinals, added));
  }
  uint32_t base() const { return base_; }
  uint32_t added() const { return added_; }
  uint32_t total() const { return base_ + added_; }
  // What the new ids added to the index's memory.
  size_t held_bytes() const {
    const size_t now = index_->held_bytes();
    return now > held_at_start_ ? now - held_at_start_ : 0;
  }
  // The new ids' entries, in id order (RocksDB takes sorted keys fastest, and
  // a bulk write's table needs them); 8 bytes per new id.
  std::vector<SubjectIndex::Ref> NewInIdOrder() const {
    std::vector<SubjectIndex::Ref> refs = index_->EntriesSince(mark_, added_);
    auto by_id = [&](SubjectIndex::Ref a, SubjectIndex::Ref b) {
      return index_->id(a) < index_->id(b);
    };
    if (!std::is_sorted(refs.begin(), refs.end(), by_id)) {
      std::sort(refs.begin(), refs.end(), by_id);
    }
    return refs;
  }
  const SubjectIndex& index() const { return *index_; }

  // Both keys of every new id, and the subject count.
  void AddTo(storage::WriteBatch* batch) const {
    for (SubjectIndex::Ref ref : index_->EntriesSince(mark_, added_)) {
      batch->Put(storage::ColumnFamily::kSubjects,
                 storage::SubjectIdByOrdinalKey(index_->ordinal(ref)), index_->id(ref));
    }
    for (SubjectIndex::Ref ref : NewInIdOrder()) {
      batch->Put(storage::ColumnFamily::kSubjects, storage::SubjectOrdinalByIdKey(index_->id(ref)),
                 storage::EncodeFixed32BE(index_->ordinal(ref)));
    }
    if (added_ > 0) {
      batch->Put(storage::ColumnFamily::kMeta, storage::MetaSubjectCountKey(),
                 storage::EncodeFixed32BE(total()));
    }
  }
  // The write committed: the new ids stay, the count includes them.
  void Commit() {
    committed_ = true;
    *count_ = total();
  }
  // Forgets the new ids (the write will not commit).
  void Reset() {
    index_->RollbackTo(mark_);
    added_ = 0;
    held_at_start_ = index_->held_bytes();
  }

 private:
  SubjectIndex* index_;
  uint32_t* count_;
  const uint32_t base_;
  const SubjectIndex::Mark mark_;
  uint32_t added_ = 0;
  size_t held_at_start_ = 0;
  bool committed_ = false;
};

class DictionaryStaging {
 public:
  explicit DictionaryStaging(const Dictionary& dict) : dict_(dict) {}
  uint32_t Code(absl::string_view value) {
    // A category has a few values, mostly: the first ones coded answer
    // without hashing (two lookups while the dictionary is new).
    for (const Known& k : first_) {
      if (k.value == value) return k.code;
    }
    const uint32_t code = Lookup(value);
    if (first_.size() < kFirst) {
      first_.push_back(Known{std::string(value), code});
      held_bytes_ += sizeof(Known) + value.size();
    }
    return code;
  }
  const std::vector<std::string>& new_values() const { return values_; }
  uint32_t first_new_code() const { return static_cast<uint32_t>(dict_.values.size()); }
  // About what the staged values take in memory.
  size_t held_bytes() const { return held_bytes_; }

 private:
  struct Known {
    std::string value;
    uint32_t code;
  };
  static constexpr size_t kFirst = 8;

  uint32_t Lookup(absl::string_view value) {
    auto it = dict_.index.find(value);
    if (it != dict_.index.end()) return it->second;
    auto added = added_.find(value);
    if (added != added_.end()) return added->second;
    const uint32_t code = static_cast<uint32_t>(dict_.values.size() + values_.size());
    values_.emplace_back(value);
    added_.emplace(values_.back(), code);
    held_bytes_ += StagedStringBytes(values_.back());
    return code;
  }

  const Dictionary& dict_;
  std::vector<Known> first_;  // at most kFirst
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
