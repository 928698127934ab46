// Subject id -> ordinal for every subject of the store, as the writers keep
// it in memory (WriterState): about 26 bytes per subject plus the id, where a
// hash map of strings took over 50. The ids live once, in an append-only
// arena of chunks (64 KiB doubling to 4 MiB; per entry [u32 ordinal]
// [u32 length][bytes], padded to 8 bytes); a linear-probing table of 8-byte
// slots (the id's 32-bit hash and the entry's place, so growing the table
// reads no id) finds them. At most 32 GiB of ids.
//
//   SubjectIndex index;
//   index.Insert("P0000001", 0);
//   SubjectIndex::Mark mark = index.mark();
//   index.Insert("P0000002", 1);
//   index.RollbackTo(mark);            // P0000002 is gone again
//   std::optional<uint32_t> o = index.Find("P0000001");  // 0
//
// Thread safety: thread-compatible (the engine's writer lock guards it).
#ifndef FEDSHARE_NODE_ENGINE_SUBJECT_INDEX_H_
#define FEDSHARE_NODE_ENGINE_SUBJECT_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace fedshare::engine {

class SubjectIndex {
 public:
  // Where an entry lives in the arena (its virtual offset / 8).
  using Ref = uint64_t;
  // The arena's end at one moment: entries inserted after it can be listed
  // (EntriesSince) and removed (RollbackTo).
  struct Mark {
    size_t chunks = 0;
    size_t used = 0;  // bytes used in the last chunk
  };

  SubjectIndex() = default;
  SubjectIndex(const SubjectIndex&) = delete;
  SubjectIndex& operator=(const SubjectIndex&) = delete;

  // Makes room for `n` subjects without growing the table.
  void Reserve(size_t n);
  std::optional<uint32_t> Find(absl::string_view id) const;
  // REQUIRES: `id` is absent.
  void Insert(absl::string_view id, uint32_t ordinal);
  // The ordinal of `id`, found with one probe; if absent, `id` is inserted
  // with `new_ordinal` (and *inserted set). REQUIRES: hash == Hash(id).
  uint32_t FindOrInsert(absl::string_view id, uint32_t hash, uint32_t new_ordinal, bool* inserted);
  // The hash FindOrInsert takes, and a hint to load the slot it starts at
  // (the table is larger than the caches: a caller that knows the next id
  // early overlaps that miss with other work).
  static uint32_t Hash(absl::string_view id);
  void Prefetch(uint32_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & (slots_.size() - 1)]);
  }
  // FindOrInsert for ids[0], ..., ids[n - 1] in that order, with the same
  // outcome as n calls: ordinals[i] is ids[i]'s ordinal and inserted[i]
  // whether this call added it; new ids take new_ordinal, new_ordinal + 1,
  // ... in order of first appearance (an id repeated in the batch is added
  // once). Returns how many were added. REQUIRES: hashes[i] == Hash(ids[i]).
  // The table and the ids are larger than the caches, and one lookup at a
  // time waits for a miss on the slot, then one on the entry: here a group
  // of ids has its slots, then their entries, loaded together, so the
  // misses overlap.
  size_t FindOrInsertBatch(const absl::string_view* ids, const uint32_t* hashes, size_t n,
                           uint32_t new_ordinal, uint32_t* ordinals, bool* inserted);
  // Removes `id` if present; its bytes in the arena are overwritten.
  void Erase(absl::string_view id);
  size_t size() const { return size_; }

  Mark mark() const;
  // The entries inserted since `m` and not erased, in insertion order;
  // `expected` (how many there are likely to be) sizes the vector once.
  std::vector<Ref> EntriesSince(const Mark& m, size_t expected = 0) const;
  absl::string_view id(Ref ref) const;
  uint32_t ordinal(Ref ref) const;
  // Removes every entry inserted since `m`. REQUIRES: none was erased since.
  void RollbackTo(const Mark& m);

  // About what the index takes in memory.
  size_t held_bytes() const { return slots_.capacity() * sizeof(uint64_t) + arena_bytes_; }

 private:
  struct Chunk {
    std::unique_ptr<char[]> data;
    size_t size = 0;
    size_t used = 0;
    uint64_t start = 0;  // in the virtual byte space of references
  };
  // The slot holding `id`, or the empty slot where it would go.
  size_t Probe(absl::string_view id, uint32_t hash) const;
  void Place(uint64_t slot_value);
  // Stores a new entry in the arena; its reference.
  Ref Append(absl::string_view id, uint32_t ordinal);
  void GrowForOneMore();
  // Makes room for `more` more subjects (at most 4/5 full, as GrowForOneMore).
  void GrowFor(size_t more);
  // FindOrInsert once the table has room.
  uint32_t FindOrInsertInPlace(absl::string_view id, uint32_t hash, uint32_t new_ordinal,
                               bool* inserted);
  void Grow(size_t capacity);
  void RemoveSlot(size_t slot);
  char* Entry(Ref ref) const;

  std::vector<Chunk> chunks_;
  std::vector<uint32_t> chunk_at_;  // per 4 MiB of the virtual space: its chunk
  size_t arena_bytes_ = 0;
  // The slots, zero when made. A large table is a mapping of its own: the
  // kernel's zero pages, huge ones where it allows, so growing the table
  // neither clears it in a loop nor takes a page fault per 4 KiB of it.
  class Slots {
   public:
    Slots() = default;
    explicit Slots(size_t n);
    ~Slots();
    Slots(const Slots&) = delete;
    Slots& operator=(const Slots&) = delete;
    void swap(Slots& other) {
      std::swap(data_, other.data_);
      std::swap(size_, other.size_);
      std::swap(mapped_, other.mapped_);
    }
    uint64_t& operator[](size_t i) { return data_[i]; }
    const uint64_t& operator[](size_t i) const { return data_[i]; }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    size_t capacity() const { return size_; }

   private:
    uint64_t* data_ = nullptr;
    size_t size_ = 0;
    size_t mapped_ = 0;  // bytes mapped; 0 when from calloc
  };
  Slots slots_;  // 0: empty; else hash << 32 | (ref + 1)
  size_t size_ = 0;
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_SUBJECT_INDEX_H_
