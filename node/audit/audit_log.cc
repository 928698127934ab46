#include "node/audit/audit_log.h"

#include <openssl/rand.h>

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"
#include "node/storage/keys.h"

namespace fedshare::audit {
namespace {

using storage::ColumnFamily;

// Keys of the `audit` column family (docs/storage-format.md).
constexpr char kLeafPrefix = 'l';
constexpr char kCheckpointPrefix = 'c';
// The hash-chained log of earlier versions, converted at Open.
constexpr char kOldEntryPrefix = 'e';
constexpr char kOldHeadKey = 'h';

std::string IndexedKey(char prefix, uint64_t n) {
  std::string key(1 + 8, '\0');
  key[0] = prefix;
  for (int i = 0; i < 8; ++i) key[1 + i] = static_cast<char>(n >> (56 - 8 * i));
  return key;
}

std::string LeafKey(uint64_t index) { return IndexedKey(kLeafPrefix, index); }
std::string CheckpointKey(uint64_t size) { return IndexedKey(kCheckpointPrefix, size); }

// The org id in ".../org/<org_id>/...", or empty.
absl::string_view OrgOf(absl::string_view spiffe_id) {
  size_t at = spiffe_id.find("/org/");
  if (at == absl::string_view::npos) return {};
  absl::string_view rest = spiffe_id.substr(at + 5);
  return rest.substr(0, rest.find('/'));
}

std::vector<std::string> ToVector(absl::StatusOr<std::vector<std::string>> proof) {
  return proof.ok() ? *std::move(proof) : std::vector<std::string>();
}

// The node's Ed25519 seed, made and stored at first start like the node
// secret. A missing key under an existing log is not replaced in the store:
// a fresh key is used for this run, and no stored checkpoint verifies.
absl::StatusOr<std::string> SigningSeed(storage::Storage* storage, bool log_exists) {
  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                            storage->Get(ColumnFamily::kMeta, storage::MetaAuditSigningKey()));
  if (stored.has_value()) return *std::move(stored);
  std::string seed(kSigningSeedBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(seed.data()), kSigningSeedBytes) != 1) {
    return absl::InternalError("OpenSSL could not make the audit signing key");
  }
  if (!log_exists) {
    storage::WriteBatch batch;
    batch.Put(ColumnFamily::kMeta, storage::MetaAuditSigningKey(), seed);
    FEDSHARE_RETURN_IF_ERROR(storage->Write(batch));
  }
  return seed;
}

}  // namespace

std::string MessageHash(const google::protobuf::MessageLite& message) {
  return Sha256(DeterministicBytes(message));
}

std::string EntryHash(const v1::AuditEntry& entry) { return LeafHash(EncodeLeaf(entry)); }

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(storage::Storage* storage, Clock* clock,
                                                         std::string org_id) {
  std::unique_ptr<AuditLog> log(new AuditLog(storage, clock, std::move(org_id)));
  FEDSHARE_ASSIGN_OR_RETURN(
      auto last_leaf, storage->LastWithPrefix(ColumnFamily::kAudit, std::string(1, kLeafPrefix)));
  FEDSHARE_ASSIGN_OR_RETURN(
      auto last_old,
      storage->LastWithPrefix(ColumnFamily::kAudit, std::string(1, kOldEntryPrefix)));
  const bool exists = last_leaf.has_value() || last_old.has_value();
  FEDSHARE_ASSIGN_OR_RETURN(std::string seed, SigningSeed(storage, exists));
  FEDSHARE_ASSIGN_OR_RETURN(log->signer_, CheckpointSigner::Create(seed));

  if (last_old.has_value() && !last_leaf.has_value()) {
    // An earlier version's hash chain: each entry becomes a leaf (keeping its
    // previous_hash), signed as of now, in one write.
    storage::WriteBatch batch;
    MerkleTree tree;
    std::unique_ptr<storage::Iterator> it =
        storage->NewIterator(ColumnFamily::kAudit, std::string(1, kOldEntryPrefix));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      v1::AuditEntry entry;
      if (!entry.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
          entry.index() != tree.size()) {
        return absl::DataLossError(
            absl::StrCat("the hash-chained audit log cannot be converted: "
                         "entry ",
                         tree.size(), " is missing or does not decode"));
      }
      const std::string leaf = EncodeLeaf(entry);
      tree.Append(LeafHash(leaf));
      batch.Put(ColumnFamily::kAudit, LeafKey(entry.index()), leaf);
      batch.Delete(ColumnFamily::kAudit, it->key());
    }
    FEDSHARE_RETURN_IF_ERROR(it->status());
    batch.Delete(ColumnFamily::kAudit, std::string(1, kOldHeadKey));
    v1::SignedCheckpoint checkpoint =
        log->signer_->Sign(log->org_id_, tree.size(), tree.Root(tree.size()), clock->Now());
    batch.Put(ColumnFamily::kAudit, CheckpointKey(tree.size()), checkpoint.SerializeAsString());
    batch.set_essential(true);
    FEDSHARE_RETURN_IF_ERROR(storage->Write(batch));
  }

  FEDSHARE_ASSIGN_OR_RETURN(Loaded loaded, log->Load());
  absl::MutexLock lock(&log->mu_);
  log->tree_ = std::move(loaded.tree);
  log->written_ = log->tree_.size();
  log->checkpoint_ = std::move(loaded.checkpoint);
  log->broken_ = std::move(loaded.status);
  return log;
}

absl::StatusOr<AuditLog::Loaded> AuditLog::Load() const {
  Loaded loaded;
  auto fail = [&loaded](std::string why) {
    if (loaded.status.ok()) loaded.status = absl::DataLossError(std::move(why));
  };
  std::unique_ptr<storage::Iterator> it =
      storage_->NewIterator(ColumnFamily::kAudit, std::string(1, kLeafPrefix));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const uint64_t index = loaded.tree.size();
    if (it->key() != LeafKey(index)) {
      fail(absl::StrCat("audit leaf ", index, " is missing or out of place"));
    }
    absl::StatusOr<v1::AuditEntry> entry = DecodeLeaf(it->value());
    if (!entry.ok()) {
      fail(absl::StrCat("audit leaf ", index, " does not decode: ", entry.status().message()));
    } else if (entry->index() != index) {
      fail(absl::StrCat("audit leaf ", index, " says it is leaf ", entry->index()));
    }
    loaded.tree.Append(LeafHash(it->value()));
  }
  FEDSHARE_RETURN_IF_ERROR(it->status());

  const uint64_t leaves = loaded.tree.size();
  std::unique_ptr<storage::Iterator> cps =
      storage_->NewIterator(ColumnFamily::kAudit, std::string(1, kCheckpointPrefix));
  uint64_t newest = 0;
  for (cps->SeekToFirst(); cps->Valid(); cps->Next()) {
    v1::SignedCheckpoint checkpoint;
    if (!checkpoint.ParseFromArray(cps->value().data(), static_cast<int>(cps->value().size())) ||
        cps->key() != CheckpointKey(checkpoint.tree_size())) {
      fail("an audit checkpoint does not decode or is stored out of place");
      continue;
    }
    const uint64_t size = checkpoint.tree_size();
    if (absl::Status s = VerifyCheckpoint(checkpoint, signer_->public_key()); !s.ok()) {
      fail(absl::StrCat("audit checkpoint at size ", size,
                        " does not verify under this node's audit key: ", s.message()));
    } else if (size > leaves) {
      fail(absl::StrCat("audit checkpoint at size ", size, " covers more leaves than the ", leaves,
                        " stored: leaves were removed"));
    } else if (checkpoint.root_hash() != loaded.tree.Root(size)) {
      // A checkpoint is signed at every append, so the first size whose root
      // differs names the altered leaf.
      fail(absl::StrCat("audit leaf ", size - 1, " does not verify: the checkpoint at size ", size,
                        " has another root (the leaf was altered)"));
    }
    newest = size;
    loaded.checkpoint = std::move(checkpoint);
  }
  FEDSHARE_RETURN_IF_ERROR(cps->status());
  if (newest != leaves) {
    fail(absl::StrCat("the audit log's head does not match: ", leaves,
                      " leaves stored but the newest checkpoint covers ", newest));
  }
  return loaded;
}

absl::Status AuditLog::Verify() const {
  FEDSHARE_ASSIGN_OR_RETURN(Loaded loaded, Load());
  return loaded.status;
}

absl::Status AuditLog::health() const {
  absl::MutexLock lock(&mu_);
  return broken_;
}

v1::SignedCheckpoint AuditLog::checkpoint() const {
  absl::MutexLock lock(&mu_);
  return checkpoint_;
}

absl::StatusOr<AuditLog::Appended> AuditLog::Append(v1::AuditEntry entry, uint64_t known_size) {
  Writer writer{&entry, known_size, false, absl::UnknownError("not written")};
  {
    absl::MutexLock lock(&mu_);
    writers_.push_back(&writer);
    // Either a group before it takes this entry along, or it leads the next.
    auto turn = [this, &writer]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return writer.done || writers_.front() == &writer;
    };
    mu_.Await(absl::Condition(&turn));
    if (!writer.done) WriteGroup();
  }
  if (observer_) observer_(entry, writer.result.status());
  return std::move(writer.result);
}

void AuditLog::WriteGroup() {
  // Enough to share one synced write among every question a node answers at
  // once, and to keep a batch small.
  constexpr size_t kMaxGroup = 64;
  const size_t n = std::min(writers_.size(), kMaxGroup);
  std::vector<Writer*> group(writers_.begin(), writers_.begin() + static_cast<ptrdiff_t>(n));
  auto finish = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (Writer* w : group) w->done = true;
    writers_.erase(writers_.begin(), writers_.begin() + static_cast<ptrdiff_t>(n));
  };
  if (!broken_.ok()) {
    for (Writer* w : group) {
      w->result = absl::UnavailableError(
          absl::StrCat("audit log unavailable, so nothing is released: ", broken_.message()));
    }
    finish();
    return;
  }
  const absl::Time now = clock_->Now();
  storage::WriteBatch batch;
  batch.set_essential(true);  // an answer cannot leave without it
  struct Pending {
    std::string leaf, hash;
    v1::SignedCheckpoint checkpoint;
  };
  std::vector<Pending> pending(n);
  for (size_t i = 0; i < n; ++i) {
    v1::AuditEntry& entry = *group[i]->entry;
    entry.set_index(tree_.size());
    entry.set_time_unix_ms(absl::ToUnixMillis(now));
    pending[i].leaf = EncodeLeaf(entry);
    pending[i].hash = LeafHash(pending[i].leaf);
    tree_.Append(pending[i].hash);
    // A checkpoint per entry, as when appended alone: each receipt is
    // signed at its own size, and a stored log names an altered leaf.
    const uint64_t size = tree_.size();
    pending[i].checkpoint = signer_->Sign(org_id_, size, tree_.Root(size), now);
    batch.Put(ColumnFamily::kAudit, LeafKey(entry.index()), pending[i].leaf);
    batch.Put(ColumnFamily::kAudit, CheckpointKey(size), pending[i].checkpoint.SerializeAsString());
  }
  if (group_hook_.add) group_hook_.add(batch);
  // Later appends queue behind this group meanwhile; readers see written_.
  mu_.Unlock();
  absl::Status status = storage_->Write(std::move(batch));
  mu_.Lock();
  if (group_hook_.written) group_hook_.written(status.ok());
  if (!status.ok()) {
    for (size_t i = 0; i < n; ++i) tree_.RemoveLast();
    for (Writer* w : group) {
      w->result = absl::UnavailableError(
          absl::StrCat("audit log unavailable, so nothing is released: ", status.message()));
    }
    finish();
    return;
  }
  written_ = tree_.size();
  checkpoint_ = pending.back().checkpoint;
  for (size_t i = 0; i < n; ++i) {
    group[i]->result =
        Receipt(group[i]->entry->index(), std::move(pending[i].hash), std::move(pending[i].leaf),
                std::move(pending[i].checkpoint), group[i]->known_size);
  }
  finish();
}

AuditLog::Appended AuditLog::Receipt(uint64_t index, std::string hash, std::string leaf,
                                     v1::SignedCheckpoint checkpoint, uint64_t known_size) const {
  const uint64_t size = index + 1;
  Appended appended{index, hash, {}};
  v1::Receipt& receipt = appended.receipt;
  receipt.set_org_id(org_id_);
  receipt.set_audit_index(index);
  receipt.set_entry_hash(std::move(hash));
  receipt.set_leaf(std::move(leaf));
  for (std::string& p : ToVector(tree_.InclusionProof(index, size))) {
    receipt.add_inclusion_proof(std::move(p));
  }
  *receipt.mutable_checkpoint() = std::move(checkpoint);
  if (known_size > 0 && known_size < size) {
    receipt.set_consistency_from(known_size);
    for (std::string& p : ToVector(tree_.ConsistencyProof(known_size, size))) {
      receipt.add_consistency_proof(std::move(p));
    }
  }
  return appended;
}

absl::StatusOr<v1::AuditProofResponse> AuditLog::Proof(const v1::AuditProofRequest& request,
                                                       absl::string_view asking_org) const {
  v1::AuditProofResponse response;
  std::optional<std::string> leaf;
  if (request.inclusion()) {
    FEDSHARE_ASSIGN_OR_RETURN(leaf,
                              storage_->Get(ColumnFamily::kAudit, LeafKey(request.leaf_index())));
    if (!leaf.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the audit log holds no leaf ", request.leaf_index()));
    }
    if (!asking_org.empty()) {
      absl::StatusOr<v1::AuditEntry> entry = DecodeLeaf(*leaf);
      if (!entry.ok() || OrgOf(entry->caller()) != asking_org) {
        return absl::PermissionDeniedError(absl::StrCat(
            "audit leaf ", request.leaf_index(), " is not an entry of org ", asking_org,
            "; inclusion proofs are given only to the org whose entries they are"));
      }
    }
  }
  absl::MutexLock lock(&mu_);
  const uint64_t size = checkpoint_.tree_size();
  *response.mutable_checkpoint() = checkpoint_;
  if (request.inclusion()) {
    FEDSHARE_ASSIGN_OR_RETURN(std::vector<std::string> path,
                              tree_.InclusionProof(request.leaf_index(), size));
    for (std::string& p : path) response.add_inclusion_proof(std::move(p));
    response.set_leaf(*std::move(leaf));
  }
  if (request.from_tree_size() > 0) {
    const uint64_t to = request.to_tree_size() > 0 ? request.to_tree_size() : size;
    if (to > written_) {  // leaves of a group still being written are not in the log yet
      return absl::InvalidArgumentError(
          absl::StrCat("no consistency proof to ", to, " leaves (the log holds ", written_, ")"));
    }
    FEDSHARE_ASSIGN_OR_RETURN(std::vector<std::string> path,
                              tree_.ConsistencyProof(request.from_tree_size(), to));
    for (std::string& p : path) response.add_consistency_proof(std::move(p));
  }
  return response;
}

absl::StatusOr<std::vector<v1::AuditEntry>> AuditLog::List(uint64_t from_index, int limit) const {
  FEDSHARE_ASSIGN_OR_RETURN(Page page, Find(from_index, Filter(), limit, limit));
  return std::move(page.entries);
}

bool AuditLog::Filter::Matches(const v1::AuditEntry& entry) const {
  if (decision != v1::AuditEntry::DECISION_UNSPECIFIED && entry.decision() != decision) {
    return false;
  }
  const absl::Time time = absl::FromUnixMillis(entry.time_unix_ms());
  if (since.has_value() && time < *since) return false;
  if (until.has_value() && time >= *until) return false;
  if (caller.empty()) return true;
  if (absl::StartsWith(caller, "spiffe://")) {
    return entry.caller() == caller || entry.on_behalf_of() == caller;
  }
  return OrgOf(entry.caller()) == caller;
}

absl::StatusOr<AuditLog::Page> AuditLog::Find(uint64_t from_index, const Filter& filter, int limit,
                                              int max_examined) const {
  Page page;
  page.next_index = from_index;
  std::unique_ptr<storage::Iterator> it =
      storage_->NewIterator(ColumnFamily::kAudit, std::string(1, kLeafPrefix));
  int examined = 0;
  for (it->Seek(LeafKey(from_index));
       it->Valid() && static_cast<int>(page.entries.size()) < limit && examined < max_examined;
       it->Next(), ++examined) {
    absl::StatusOr<v1::AuditEntry> entry = DecodeLeaf(it->value());
    if (!entry.ok()) {
      // Shown, not skipped: an operator must see where the log is damaged.
      uint64_t index = 0;
      for (char c : it->key().substr(1)) index = (index << 8) | static_cast<unsigned char>(c);
      const std::string why(entry.status().message());
      entry = v1::AuditEntry();
      entry->set_index(index);
      entry->set_reason(absl::StrCat("(this leaf does not decode: ", why, ")"));
    }
    page.next_index = entry->index() + 1;
    if (filter.Matches(*entry)) {
      page.entries.push_back(*std::move(entry));
      page.leaves.emplace_back(it->value());
    }
  }
  FEDSHARE_RETURN_IF_ERROR(it->status());
  return page;
}

uint64_t AuditLog::size() const {
  absl::MutexLock lock(&mu_);
  return written_;
}

}  // namespace fedshare::audit
