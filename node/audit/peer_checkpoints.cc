#include "node/audit/peer_checkpoints.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "node/audit/checkpoint.h"
#include "node/audit/merkle.h"
#include "node/common/status_macros.h"

namespace fedshare::audit {
namespace {

using storage::ColumnFamily;

// Keys in the `audit` column family (docs/storage-format.md): tag, org id,
// 0x00, then for 'p' the tree size and for 'r' the leaf index (u64 BE).
constexpr char kPeerCheckpoint = 'p';
constexpr char kPeerReceipt = 'r';
constexpr char kPeerError = 'x';

std::string PeerPrefix(char tag, const std::string& org_id) {
  std::string key(1, tag);
  key += org_id;
  key.push_back('\0');
  return key;
}

std::string PeerKey(char tag, const std::string& org_id, uint64_t n) {
  std::string key = PeerPrefix(tag, org_id);
  for (int i = 0; i < 8; ++i) key.push_back(static_cast<char>(n >> (56 - 8 * i)));
  return key;
}

}  // namespace

absl::StatusOr<std::optional<v1::SignedCheckpoint>> PeerCheckpoints::Latest(
    const std::string& org_id) const {
  FEDSHARE_ASSIGN_OR_RETURN(Held held, HeldFor(org_id));
  if (held == nullptr) return std::nullopt;
  return *held;
}

absl::StatusOr<PeerCheckpoints::Held> PeerCheckpoints::HeldFor(const std::string& org_id) const {
  {
    absl::MutexLock lock(&held_mu_);
    auto it = held_.find(org_id);
    if (it != held_.end()) return it->second;
  }
  FEDSHARE_ASSIGN_OR_RETURN(
      auto last,
      storage_->LastWithPrefix(ColumnFamily::kAudit, PeerPrefix(kPeerCheckpoint, org_id)));
  Held read;
  if (last.has_value()) {
    auto checkpoint = std::make_shared<v1::SignedCheckpoint>();
    if (!checkpoint->ParseFromString(last->second)) {
      return absl::DataLossError(absl::StrCat("a held checkpoint of ", org_id, " does not decode"));
    }
    read = std::move(checkpoint);
  }
  absl::MutexLock lock(&held_mu_);
  // One stored since the read (Hold) is newer than what was read.
  return held_.try_emplace(org_id, std::move(read)).first->second;
}

void PeerCheckpoints::Hold(const std::string& org_id, Held checkpoint) {
  absl::MutexLock lock(&held_mu_);
  held_[org_id] = std::move(checkpoint);
}

uint64_t PeerCheckpoints::KnownSize(const std::string& org_id) const {
  absl::StatusOr<Held> held = HeldFor(org_id);
  return held.ok() && *held != nullptr ? (*held)->tree_size() : 0;
}

std::string PeerCheckpoints::Error(const std::string& org_id) const {
  absl::StatusOr<std::optional<std::string>> error =
      storage_->Get(ColumnFamily::kAudit, PeerPrefix(kPeerError, org_id));
  return error.ok() ? error->value_or("") : std::string(error.status().message());
}

absl::StatusOr<std::vector<v1::Receipt>> PeerCheckpoints::Receipts(
    const std::string& org_id) const {
  std::vector<v1::Receipt> receipts;
  std::unique_ptr<storage::Iterator> it =
      storage_->NewIterator(ColumnFamily::kAudit, PeerPrefix(kPeerReceipt, org_id));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    v1::Receipt receipt;
    if (!receipt.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat("a held receipt of ", org_id, " does not decode"));
    }
    receipts.push_back(std::move(receipt));
  }
  FEDSHARE_RETURN_IF_ERROR(it->status());
  return receipts;
}

absl::Status PeerCheckpoints::CheckAgainst(const std::string& org_id, const v1::Receipt& receipt,
                                           const v1::SignedCheckpoint* held,
                                           const FetchConsistency* fetch, bool* deferred) {
  *deferred = false;
  if (receipt.org_id() != org_id) {
    return absl::DataLossError(
        absl::StrCat("peer ", org_id, " sent a receipt of org '", receipt.org_id(), "'"));
  }
  FEDSHARE_RETURN_IF_ERROR(VerifyReceipt(receipt, held != nullptr ? held->public_key() : ""));
  if (held == nullptr) return absl::OkStatus();
  const v1::SignedCheckpoint& next = receipt.checkpoint();
  const uint64_t from = held->tree_size();
  const uint64_t to = next.tree_size();
  if (to < from) {
    return absl::DataLossError(
        absl::StrCat("peer ", org_id, "'s audit log was truncated: its checkpoint covers ", to,
                     " entries but this node holds its signed checkpoint over ", from));
  }
  std::vector<std::string> proof;
  if (to > from) {
    if (receipt.consistency_from() == from) {
      proof.assign(receipt.consistency_proof().begin(), receipt.consistency_proof().end());
    } else if (fetch == nullptr) {
      *deferred = true;
      return absl::OkStatus();
    } else {
      absl::StatusOr<std::vector<std::string>> fetched =
          *fetch ? (*fetch)(from, to) : absl::UnavailableError("it cannot be asked for one");
      if (!fetched.ok()) {
        return absl::DataLossError(absl::StrCat("peer ", org_id,
                                                " gave no consistency proof from its checkpoint "
                                                "held at ",
                                                from, " entries: ", fetched.status().message()));
      }
      proof = *std::move(fetched);
    }
  }
  absl::Status consistent = VerifyConsistency(from, to, held->root_hash(), next.root_hash(), proof);
  if (!consistent.ok()) {
    return absl::DataLossError(absl::StrCat("peer ", org_id, "'s audit log at ", to,
                                            " entries is not consistent with its checkpoint held "
                                            "at ",
                                            from, " entries: ", consistent.message()));
  }
  return absl::OkStatus();
}

PeerCheckpoints::Prechecked PeerCheckpoints::Precheck(const std::string& org_id,
                                                      const v1::Receipt& receipt) const {
  Prechecked out;
  absl::StatusOr<Held> held = HeldFor(org_id);
  if (!held.ok()) {
    out.status = held.status();
    return out;  // not complete: AcceptAll reads it again
  }
  out.against = *std::move(held);
  bool deferred = false;
  out.status = CheckAgainst(org_id, receipt, out.against.get(), nullptr, &deferred);
  out.complete = !deferred;
  return out;
}

absl::Status PeerCheckpoints::CheckInto(const Incoming& in, storage::WriteBatch& batch,
                                        Held* accepted) const {
  const std::string& org_id = in.org_id;
  const v1::Receipt& receipt = *in.receipt;
  absl::Status checked;
  absl::StatusOr<Held> held = HeldFor(org_id);
  bool deferred = false;
  if (!held.ok()) {
    checked = held.status();
  } else if (in.prechecked.has_value() && in.prechecked->complete &&
             in.prechecked->against == *held) {
    checked = in.prechecked->status;  // checked against the checkpoint still held
  } else {
    checked = CheckAgainst(org_id, receipt, held->get(), &in.fetch, &deferred);
  }
  *accepted = nullptr;
  // Kept whether or not it verifies: a bad receipt is the evidence.
  batch.Put(ColumnFamily::kAudit, PeerKey(kPeerReceipt, org_id, receipt.audit_index()),
            receipt.SerializeAsString());
  if (checked.ok()) {
    batch.Put(ColumnFamily::kAudit,
              PeerKey(kPeerCheckpoint, org_id, receipt.checkpoint().tree_size()),
              receipt.checkpoint().SerializeAsString());
    batch.Delete(ColumnFamily::kAudit, PeerPrefix(kPeerError, org_id));
    *accepted = std::make_shared<const v1::SignedCheckpoint>(receipt.checkpoint());
  } else {
    batch.Put(ColumnFamily::kAudit, PeerPrefix(kPeerError, org_id), std::string(checked.message()));
  }
  return checked;
}

absl::Status PeerCheckpoints::Accept(const std::string& org_id, const v1::Receipt& receipt,
                                     const FetchConsistency& fetch) {
  return AcceptAll({Incoming{org_id, &receipt, fetch, std::nullopt}}).front();
}

std::vector<absl::Status> PeerCheckpoints::AcceptAll(const std::vector<Incoming>& incoming) {
  absl::MutexLock lock(&mu_);
  std::vector<absl::Status> checked(incoming.size());
  storage::WriteBatch batch;
  size_t written = 0;  // incoming[0, written) are stored
  absl::flat_hash_set<std::string> in_batch;
  // The checkpoints to hold once the batch is stored.
  std::vector<std::pair<const std::string*, Held>> accepted;
  auto write = [&](size_t end) {
    absl::Status s = storage_->Write(batch);
    for (size_t i = written; i < end && !s.ok(); ++i) checked[i] = s;
    if (s.ok()) {
      for (auto& [org_id, checkpoint] : accepted) Hold(*org_id, std::move(checkpoint));
    }
    accepted.clear();
    batch = storage::WriteBatch();
    in_batch.clear();
    written = end;
  };
  for (size_t i = 0; i < incoming.size(); ++i) {
    const Incoming& in = incoming[i];
    // A peer's second receipt is checked against its first, so that one must
    // be stored (and held) first.
    if (!in_batch.insert(in.org_id).second) {
      write(i);
      in_batch.insert(in.org_id);
    }
    Held checkpoint;
    checked[i] = CheckInto(in, batch, &checkpoint);
    if (checkpoint != nullptr) accepted.emplace_back(&in.org_id, std::move(checkpoint));
  }
  if (written < incoming.size()) write(incoming.size());
  return checked;
}

}  // namespace fedshare::audit
