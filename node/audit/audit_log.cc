#include "node/audit/audit_log.h"

#include <openssl/evp.h>

#include <cstring>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "node/common/status_macros.h"

namespace fedshare::audit {
namespace {

using storage::ColumnFamily;

constexpr char kEntryPrefix = 'e';
constexpr char kHeadKey = 'h';
constexpr size_t kHashBytes = 32;

std::string EntryKey(uint64_t index) {
  std::string key(1 + 8, '\0');
  key[0] = kEntryPrefix;
  for (int i = 0; i < 8; ++i) key[1 + i] = static_cast<char>(index >> (56 - 8 * i));
  return key;
}

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (56 - 8 * i)));
}

void PutBytes(std::string& out, const std::string& s) {
  PutU64(out, s.size());
  out += s;
}

std::string DeterministicBytes(const google::protobuf::MessageLite& message) {
  std::string serialized;
  {
    google::protobuf::io::StringOutputStream stream(&serialized);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return serialized;
}

// Field by field in field-number order, each length-prefixed, so that the
// encoding is canonical whatever protobuf's serializer does.
std::string CanonicalEncoding(const v1::AuditEntry& e) {
  std::string out = "fedshare.audit.v1";
  PutU64(out, e.index());
  PutU64(out, static_cast<uint64_t>(e.time_unix_ms()));
  PutBytes(out, e.caller());
  PutBytes(out, e.method());
  PutBytes(out, e.question_hash());
  PutBytes(out, e.dataset());
  PutBytes(out, e.purpose());
  PutU64(out, static_cast<uint64_t>(e.decision()));
  PutBytes(out, e.agreement_id());
  PutBytes(out, e.rule());
  PutBytes(out, e.reason());
  PutBytes(out, e.result_hash());
  PutBytes(out, e.previous_hash());
  uint64_t eps_bits;
  double eps = e.epsilon_spent();
  std::memcpy(&eps_bits, &eps, sizeof eps_bits);
  PutU64(out, eps_bits);
  if (e.has_question() || e.applied_where_size() > 0 || !e.applied_where_text().empty() ||
      !e.on_behalf_of().empty()) {
    out += "v2";
    PutBytes(out, DeterministicBytes(e.question()));
    PutU64(out, static_cast<uint64_t>(e.applied_where_size()));
    for (const v1::Predicate& p : e.applied_where()) PutBytes(out, DeterministicBytes(p));
    PutBytes(out, e.applied_where_text());
    PutBytes(out, e.on_behalf_of());
  }
  return out;
}

// The org id in ".../org/<org_id>/...", or empty.
absl::string_view OrgOf(absl::string_view spiffe_id) {
  size_t at = spiffe_id.find("/org/");
  if (at == absl::string_view::npos) return {};
  absl::string_view rest = spiffe_id.substr(at + 5);
  return rest.substr(0, rest.find('/'));
}

absl::StatusOr<v1::AuditEntry> Decode(absl::string_view value, uint64_t expected_index) {
  v1::AuditEntry entry;
  if (!entry.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(absl::StrCat("audit entry ", expected_index, " does not decode"));
  }
  return entry;
}

}  // namespace

std::string Sha256(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string MessageHash(const google::protobuf::MessageLite& message) {
  return Sha256(DeterministicBytes(message));
}

std::string EntryHash(const v1::AuditEntry& entry) { return Sha256(CanonicalEncoding(entry)); }

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(storage::Storage* storage, Clock* clock) {
  std::unique_ptr<AuditLog> log(new AuditLog(storage, clock));
  FEDSHARE_ASSIGN_OR_RETURN(
      auto last, storage->LastWithPrefix(ColumnFamily::kAudit, std::string(1, kEntryPrefix)));
  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> head,
                            storage->Get(ColumnFamily::kAudit, std::string(1, kHeadKey)));
  absl::MutexLock lock(&log->mu_);
  log->last_hash_ = std::string(kHashBytes, '\0');
  if (last.has_value()) {
    FEDSHARE_ASSIGN_OR_RETURN(v1::AuditEntry entry, Decode(last->second, 0));
    log->next_index_ = entry.index() + 1;
    log->last_hash_ = EntryHash(entry);
  }
  std::string expected_head;
  if (last.has_value()) {
    PutU64(expected_head, log->next_index_);
    expected_head += log->last_hash_;
  }
  if (head.value_or("") != expected_head) {
    // Appending would rewrite the head and hide that the newest entries were
    // removed or altered; refuse to append until an operator has looked.
    log->broken_ = absl::DataLossError(absl::StrCat(
        "the audit log's head does not match its last entry (", log->next_index_,
        " entries found): entries were removed or altered; nothing is answered until the "
        "store is restored from a backup or moved aside"));
  }
  return log;
}

absl::StatusOr<AuditLog::Appended> AuditLog::Append(v1::AuditEntry entry) {
  absl::StatusOr<Appended> appended = AppendChained(entry);
  if (observer_) observer_(entry, appended.status());
  return appended;
}

absl::StatusOr<AuditLog::Appended> AuditLog::AppendChained(v1::AuditEntry& entry) {
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) {
    return absl::UnavailableError(
        absl::StrCat("audit log unavailable, so nothing is released: ", broken_.message()));
  }
  entry.set_index(next_index_);
  entry.set_time_unix_ms(absl::ToUnixMillis(clock_->Now()));
  entry.set_previous_hash(last_hash_);
  std::string value;
  entry.SerializeToString(&value);
  std::string hash = EntryHash(entry);
  // The head names the last entry's hash, so altering the last entry (which
  // no later entry chains to) is detected too.
  std::string head;
  PutU64(head, entry.index() + 1);
  head += hash;
  storage::WriteBatch batch;
  batch.Put(ColumnFamily::kAudit, EntryKey(entry.index()), value);
  batch.Put(ColumnFamily::kAudit, std::string(1, kHeadKey), head);
  batch.set_essential(true);  // an answer cannot leave without it
  absl::Status status = storage_->Write(batch);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("audit log unavailable, so nothing is released: ", status.message()));
  }
  last_hash_ = hash;
  ++next_index_;
  return Appended{entry.index(), std::move(hash)};
}

absl::StatusOr<std::vector<v1::AuditEntry>> AuditLog::List(uint64_t from_index, int limit) const {
  std::vector<v1::AuditEntry> entries;
  std::unique_ptr<storage::Iterator> it =
      storage_->NewIterator(ColumnFamily::kAudit, std::string(1, kEntryPrefix));
  for (it->Seek(EntryKey(from_index)); it->Valid() && static_cast<int>(entries.size()) < limit;
       it->Next()) {
    FEDSHARE_ASSIGN_OR_RETURN(v1::AuditEntry entry, Decode(it->value(), from_index));
    entries.push_back(std::move(entry));
  }
  FEDSHARE_RETURN_IF_ERROR(it->status());
  return entries;
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
      storage_->NewIterator(ColumnFamily::kAudit, std::string(1, kEntryPrefix));
  int examined = 0;
  for (it->Seek(EntryKey(from_index));
       it->Valid() && static_cast<int>(page.entries.size()) < limit && examined < max_examined;
       it->Next(), ++examined) {
    FEDSHARE_ASSIGN_OR_RETURN(v1::AuditEntry entry, Decode(it->value(), from_index));
    page.next_index = entry.index() + 1;
    if (filter.Matches(entry)) page.entries.push_back(std::move(entry));
  }
  FEDSHARE_RETURN_IF_ERROR(it->status());
  return page;
}

uint64_t AuditLog::size() const {
  absl::MutexLock lock(&mu_);
  return next_index_;
}

absl::Status AuditLog::VerifyChain() const {
  std::string previous(kHashBytes, '\0');
  uint64_t expected = 0;
  std::unique_ptr<storage::Iterator> it =
      storage_->NewIterator(ColumnFamily::kAudit, std::string(1, kEntryPrefix));
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++expected) {
    FEDSHARE_ASSIGN_OR_RETURN(v1::AuditEntry entry, Decode(it->value(), expected));
    if (it->key() != EntryKey(expected) || entry.index() != expected) {
      return absl::DataLossError(absl::StrCat("audit chain broken at entry ", expected,
                                              ": entry missing or out of place"));
    }
    if (entry.previous_hash() != previous) {
      return absl::DataLossError(absl::StrCat("audit chain broken at entry ", expected,
                                              ": it does not chain to entry ", expected - 1,
                                              " (that entry or this one was altered)"));
    }
    previous = EntryHash(entry);
  }
  FEDSHARE_RETURN_IF_ERROR(it->status());
  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> head,
                            storage_->Get(ColumnFamily::kAudit, std::string(1, kHeadKey)));
  std::string expected_head;
  if (expected > 0) {
    PutU64(expected_head, expected);
    expected_head += previous;
  }
  if (head.value_or("") != expected_head) {
    return absl::DataLossError(absl::StrCat("audit chain broken at entry ", expected - 1,
                                            ": the log head does not match the last entry"));
  }
  return absl::OkStatus();
}

}  // namespace fedshare::audit
