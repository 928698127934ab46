#include "node/engine/subject_index.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/hash/hash.h"

namespace fedshare::engine {
namespace {

// Chunks sit at multiples of this in a virtual byte space, so a reference
// (an entry's virtual offset / 8) finds its chunk with one shift.
constexpr size_t kChunkBytes = size_t{4} << 20;
constexpr int kChunkShift = 22;
constexpr size_t kFirstChunkBytes = size_t{64} << 10;
constexpr size_t kEntryHeader = 8;  // u32 ordinal, u32 length
constexpr uint32_t kErased = UINT32_MAX;
// From this size on, the slot table is a mapping of its own (Slots).
constexpr size_t kHugePageBytes = size_t{2} << 20;

uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

size_t EntryBytes(size_t id_size) { return (kEntryHeader + id_size + 7) & ~size_t{7}; }

}  // namespace

SubjectIndex::Slots::Slots(size_t n) : size_(n) {
  const size_t bytes = n * sizeof(uint64_t);
  if (bytes >= kHugePageBytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      ::madvise(p, bytes, MADV_HUGEPAGE);  // a hint: without it, 4 KiB pages
      data_ = static_cast<uint64_t*>(p);
      mapped_ = bytes;
      return;
    }
  }
  data_ = static_cast<uint64_t*>(std::calloc(n, sizeof(uint64_t)));
  if (data_ == nullptr) throw std::bad_alloc();
}

SubjectIndex::Slots::~Slots() {
  if (mapped_ != 0) {
    ::munmap(data_, mapped_);
  } else {
    std::free(data_);
  }
}

uint32_t SubjectIndex::Hash(absl::string_view id) {
  const uint64_t h = absl::Hash<absl::string_view>()(id);
  return static_cast<uint32_t>(h ^ (h >> 32));
}

char* SubjectIndex::Entry(Ref ref) const {
  const uint64_t at = ref * 8;
  const Chunk& chunk = chunks_[chunk_at_[at >> kChunkShift]];
  return chunk.data.get() + (at - chunk.start);
}

absl::string_view SubjectIndex::id(Ref ref) const {
  const char* e = Entry(ref);
  return absl::string_view(e + kEntryHeader, Load32(e + 4));
}

uint32_t SubjectIndex::ordinal(Ref ref) const { return Load32(Entry(ref)); }

size_t SubjectIndex::Probe(absl::string_view id, uint32_t hash) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const uint64_t s = slots_[i];
    if (s == 0) return i;
    if (static_cast<uint32_t>(s >> 32) == hash && this->id((s & 0xffffffffu) - 1) == id) return i;
  }
}

std::optional<uint32_t> SubjectIndex::Find(absl::string_view id) const {
  if (size_ == 0) return std::nullopt;
  const uint64_t s = slots_[Probe(id, Hash(id))];
  if (s == 0) return std::nullopt;
  return ordinal((s & 0xffffffffu) - 1);
}

void SubjectIndex::Place(uint64_t slot_value) {
  const size_t mask = slots_.size() - 1;
  size_t i = (slot_value >> 32) & mask;
  while (slots_[i] != 0) i = (i + 1) & mask;
  slots_[i] = slot_value;
}

// The slots keep each entry's hash: growing reads no id.
void SubjectIndex::Grow(size_t capacity) {
  size_t n = 16;
  while (n < capacity) n <<= 1;
  if (n <= slots_.size()) return;
  Slots old(n);
  old.swap(slots_);
  for (size_t i = 0; i < old.size(); ++i) {
    if (old[i] != 0) Place(old[i]);
  }
}

void SubjectIndex::Reserve(size_t n) { Grow(n + n / 4 + 1); }

void SubjectIndex::GrowForOneMore() {
  // At most 4/5 full, so a missing id is found absent in a few slots.
  if ((size_ + 1) * 5 > slots_.size() * 4) Grow(std::max<size_t>(16, slots_.size() * 2));
}

SubjectIndex::Ref SubjectIndex::Append(absl::string_view id, uint32_t ordinal) {
  const size_t need = EntryBytes(id.size());
  if (chunks_.empty() || chunks_.back().used + need > chunks_.back().size) {
    // Chunks double from 64 KiB to 4 MiB: a few ids take little memory.
    Chunk chunk;
    chunk.size = std::max(std::min(kChunkBytes, std::max(kFirstChunkBytes, arena_bytes_)), need);
    chunk.start = uint64_t{chunk_at_.size()} << kChunkShift;
    chunk.data.reset(new char[chunk.size]);
    arena_bytes_ += chunk.size;
    for (size_t v = 0; v < (chunk.size + kChunkBytes - 1) / kChunkBytes; ++v) {
      chunk_at_.push_back(static_cast<uint32_t>(chunks_.size()));
    }
    chunks_.push_back(std::move(chunk));
  }
  Chunk& chunk = chunks_.back();
  const Ref ref = (chunk.start + chunk.used) / 8;
  char* e = chunk.data.get() + chunk.used;
  const uint32_t length = static_cast<uint32_t>(id.size());
  std::memcpy(e, &ordinal, 4);
  std::memcpy(e + 4, &length, 4);
  std::memcpy(e + kEntryHeader, id.data(), id.size());
  chunk.used += need;
  return ref;
}

void SubjectIndex::Insert(absl::string_view id, uint32_t ordinal) {
  GrowForOneMore();
  const Ref ref = Append(id, ordinal);
  Place((uint64_t{Hash(id)} << 32) | (ref + 1));
  ++size_;
}

void SubjectIndex::GrowFor(size_t more) {
  size_t capacity = std::max<size_t>(16, slots_.size());
  while ((size_ + more) * 5 > capacity * 4) capacity *= 2;
  Grow(capacity);
}

uint32_t SubjectIndex::FindOrInsert(absl::string_view id, uint32_t hash, uint32_t new_ordinal,
                                    bool* inserted) {
  GrowForOneMore();
  return FindOrInsertInPlace(id, hash, new_ordinal, inserted);
}

size_t SubjectIndex::FindOrInsertBatch(const absl::string_view* ids, const uint32_t* hashes,
                                       size_t n, uint32_t new_ordinal, uint32_t* ordinals,
                                       bool* inserted) {
  // Enough loads in flight to cover the latency, few enough that the group's
  // lines stay in the first-level cache until they are used.
  constexpr size_t kGroup = 32;
  size_t added = 0;
  for (size_t start = 0; start < n; start += kGroup) {
    const size_t end = std::min(n, start + kGroup);
    // Room for the whole group first: the table must not move once loaded.
    GrowFor(end - start);
    const size_t mask = slots_.size() - 1;
    for (size_t i = start; i < end; ++i) __builtin_prefetch(&slots_[hashes[i] & mask]);
    // The entry an id most likely matches: the one in its home slot.
    for (size_t i = start; i < end; ++i) {
      const uint64_t s = slots_[hashes[i] & mask];
      if (s != 0 && static_cast<uint32_t>(s >> 32) == hashes[i]) {
        __builtin_prefetch(Entry((s & 0xffffffffu) - 1));
      }
    }
    for (size_t i = start; i < end; ++i) {
      bool added_here = false;
      ordinals[i] = FindOrInsertInPlace(ids[i], hashes[i],
                                        new_ordinal + static_cast<uint32_t>(added), &added_here);
      inserted[i] = added_here;
      if (added_here) ++added;
    }
  }
  return added;
}

uint32_t SubjectIndex::FindOrInsertInPlace(absl::string_view id, uint32_t hash,
                                           uint32_t new_ordinal, bool* inserted) {
  const size_t slot = Probe(id, hash);
  if (slots_[slot] != 0) {
    *inserted = false;
    return ordinal((slots_[slot] & 0xffffffffu) - 1);
  }
  const Ref ref = Append(id, new_ordinal);
  slots_[slot] = (uint64_t{hash} << 32) | (ref + 1);
  ++size_;
  *inserted = true;
  return new_ordinal;
}

// Backward-shift deletion: later slots of the same run move up, so no
// tombstone is left and lookups stay short.
void SubjectIndex::RemoveSlot(size_t slot) {
  const size_t mask = slots_.size() - 1;
  size_t hole = slot;
  slots_[hole] = 0;
  for (size_t j = (hole + 1) & mask; slots_[j] != 0; j = (j + 1) & mask) {
    const size_t home = (slots_[j] >> 32) & mask;
    // The entry at j may fill the hole unless its home lies cyclically in
    // (hole, j].
    const bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    slots_[j] = 0;
    hole = j;
  }
}

void SubjectIndex::Erase(absl::string_view id) {
  if (size_ == 0) return;
  const size_t slot = Probe(id, Hash(id));
  const uint64_t s = slots_[slot];
  if (s == 0) return;
  RemoveSlot(slot);
  --size_;
  char* e = Entry((s & 0xffffffffu) - 1);
  std::memcpy(e, &kErased, 4);
  std::memset(e + kEntryHeader, 0, Load32(e + 4));
}

SubjectIndex::Mark SubjectIndex::mark() const {
  Mark m;
  m.chunks = chunks_.size();
  m.used = chunks_.empty() ? 0 : chunks_.back().used;
  return m;
}

std::vector<SubjectIndex::Ref> SubjectIndex::EntriesSince(const Mark& m, size_t expected) const {
  std::vector<Ref> refs;
  refs.reserve(expected);
  for (size_t c = m.chunks == 0 ? 0 : m.chunks - 1; c < chunks_.size(); ++c) {
    const Chunk& chunk = chunks_[c];
    size_t pos = c + 1 == m.chunks ? m.used : 0;
    while (pos < chunk.used) {
      const char* e = chunk.data.get() + pos;
      if (Load32(e) != kErased) refs.push_back((chunk.start + pos) / 8);
      pos += EntryBytes(Load32(e + 4));
    }
  }
  return refs;
}

void SubjectIndex::RollbackTo(const Mark& m) {
  for (Ref ref : EntriesSince(m)) {
    const absl::string_view entry_id = id(ref);
    const size_t slot = Probe(entry_id, Hash(entry_id));
    if (slots_[slot] == 0) continue;
    RemoveSlot(slot);
    --size_;
  }
  while (chunks_.size() > m.chunks) {
    arena_bytes_ -= chunks_.back().size;
    chunk_at_.resize(chunks_.back().start >> kChunkShift);
    chunks_.pop_back();
  }
  if (!chunks_.empty()) chunks_.back().used = m.used;
}

}  // namespace fedshare::engine
