#include "client/audit_commands.h"

#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "client/format.h"
#include "fedshare/v1/saved_answer.pb.h"
#include "google/protobuf/util/json_util.h"
#include "node/audit/checkpoint.h"
#include "node/audit/leaf.h"
#include "node/audit/merkle.h"
#include "node/common/time_util.h"

namespace fedshare::client {
namespace {

// What a JSON file given to `audit verify` holds.
struct Evidence {
  std::optional<v1::ListAuditResponse> log;
  std::vector<v1::Receipt> receipts;
  std::optional<v1::SignedCheckpoint> checkpoint;  // the file's newest
};

template <typename Message>
bool ParseJson(const std::string& json, Message& message) {
  return google::protobuf::util::JsonStringToMessage(json, &message).ok();
}

absl::StatusOr<Evidence> ReadEvidence(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  const std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Evidence e;
  auto add_result = [&e](const v1::AggregateResult& r) {
    if (r.has_receipt()) e.receipts.push_back(r.receipt());
  };
  auto add_federated = [&](const v1::FederatedAggregateResponse& f) {
    for (const v1::PartnerCoverage& c : f.coverage()) {
      if (c.has_receipt()) e.receipts.push_back(c.receipt());
    }
    add_result(f.combined());
  };
  v1::ListAuditResponse log;
  v1::FederatedAggregateResponse federated;
  v1::SavedAnswer saved;
  v1::AggregateResult result;
  v1::Receipt receipt;
  v1::SignedCheckpoint checkpoint;
  if (ParseJson(json, log) && log.has_checkpoint()) {
    e.checkpoint = log.checkpoint();
    e.log = std::move(log);
  } else if (ParseJson(json, saved) && !saved.format().empty()) {
    if (saved.has_federated()) add_federated(saved.federated());
    if (saved.has_direct()) add_result(saved.direct());
  } else if (ParseJson(json, federated) &&
             (federated.coverage_size() > 0 || federated.has_combined())) {
    add_federated(federated);
  } else if (ParseJson(json, result) && result.has_receipt()) {
    add_result(result);
  } else if (ParseJson(json, receipt) && receipt.has_checkpoint()) {
    e.receipts.push_back(receipt);
  } else if (ParseJson(json, checkpoint) && !checkpoint.signature().empty()) {
    e.checkpoint = checkpoint;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is not an audit export, a receipt, an answer or a checkpoint in JSON"));
  }
  if (!e.checkpoint.has_value() && !e.receipts.empty())
    e.checkpoint = e.receipts.back().checkpoint();
  return e;
}

std::string Short(const std::string& bytes) {
  return absl::BytesToHexString(bytes).substr(0, 16) + "...";
}

// Every leaf of the export decodes at its index, and the tree over the
// leaves the checkpoint covers has its root.
absl::Status VerifyLog(const v1::ListAuditResponse& log, const std::string& key) {
  const v1::SignedCheckpoint& checkpoint = log.checkpoint();
  if (absl::Status s = audit::VerifyCheckpoint(checkpoint, key); !s.ok()) return s;
  audit::MerkleTree tree;
  for (int i = 0; i < log.leaves_size(); ++i) {
    absl::StatusOr<v1::AuditEntry> entry = audit::DecodeLeaf(log.leaves(i));
    if (!entry.ok()) {
      return absl::DataLossError(absl::StrCat("leaf ", i, ": ", entry.status().message()));
    }
    if (entry->index() != static_cast<uint64_t>(i)) {
      return absl::DataLossError(absl::StrCat("leaf ", i, " says it is leaf ", entry->index(),
                                              " (leaves missing or reordered)"));
    }
    tree.Append(audit::LeafHash(log.leaves(i)));
  }
  if (tree.size() < checkpoint.tree_size()) {
    return absl::DataLossError(absl::StrCat("the export holds ", tree.size(),
                                            " leaves but its checkpoint covers ",
                                            checkpoint.tree_size()));
  }
  if (tree.Root(checkpoint.tree_size()) != checkpoint.root_hash()) {
    return absl::DataLossError(
        absl::StrCat("the leaves' tree root is not the checkpoint's: a leaf before ",
                     checkpoint.tree_size(), " was altered"));
  }
  return absl::OkStatus();
}

// The later checkpoint extends the earlier: by the later receipt's own proof,
// or one asked of the node (and verified here).
absl::Status VerifyLater(const Globals& g, const v1::SignedCheckpoint& earlier,
                         const Evidence& later, const std::string& key) {
  const v1::SignedCheckpoint& next = *later.checkpoint;
  for (const v1::SignedCheckpoint* c : {&earlier, &next}) {
    if (absl::Status s = audit::VerifyCheckpoint(*c, key.empty() ? earlier.public_key() : key);
        !s.ok()) {
      return s;
    }
  }
  if (earlier.org_id() != next.org_id()) {
    return absl::DataLossError(
        absl::StrCat("checkpoints of two orgs: ", earlier.org_id(), " and ", next.org_id()));
  }
  std::vector<std::string> proof;
  bool have = earlier.tree_size() >= next.tree_size();
  for (const v1::Receipt& r : later.receipts) {
    if (!have && r.checkpoint().tree_size() == next.tree_size() &&
        r.consistency_from() == earlier.tree_size()) {
      proof.assign(r.consistency_proof().begin(), r.consistency_proof().end());
      have = true;
    }
  }
  if (!have) {
    absl::StatusOr<std::unique_ptr<NodeClient>> client = Dial(g, "127.0.0.1:7444");
    if (!client.ok()) return client.status();
    v1::AuditProofRequest request;
    request.set_from_tree_size(earlier.tree_size());
    request.set_to_tree_size(next.tree_size());
    absl::StatusOr<v1::AuditProofResponse> fetched = (*client)->AuditProof(request);
    if (!fetched.ok()) {
      return absl::DataLossError(absl::StrCat("the node gave no consistency proof from ",
                                              earlier.tree_size(), " to ", next.tree_size(),
                                              " entries: ", fetched.status().message()));
    }
    proof.assign(fetched->consistency_proof().begin(), fetched->consistency_proof().end());
  }
  return audit::VerifyConsistency(earlier.tree_size(), next.tree_size(), earlier.root_hash(),
                                  next.root_hash(), proof);
}

absl::StatusOr<v1::ListAuditRequest> AuditRequest(const AuditShowOptions& o) {
  v1::ListAuditRequest request;
  request.set_from_index(o.from);
  request.set_caller(o.caller);
  if (!o.decision.empty()) {
    v1::AuditEntry::Decision decision;
    if (!v1::AuditEntry::Decision_Parse(absl::AsciiStrToUpper(o.decision), &decision) ||
        decision == v1::AuditEntry::DECISION_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--decision '", o.decision, "': use answered, refused, failed or cancelled"));
    }
    request.set_decision(decision);
  }
  for (const auto& [text, field] : {std::pair{o.since, &v1::ListAuditRequest::mutable_since},
                                    std::pair{o.until, &v1::ListAuditRequest::mutable_until}}) {
    if (text.empty()) continue;
    absl::StatusOr<absl::Time> t = fedshare::ParseTimeOrDate(text);
    if (!t.ok()) return t.status();
    google::protobuf::Timestamp* out = (request.*field)();
    out->set_seconds(absl::ToUnixSeconds(*t));
    out->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(*t - absl::FromUnixSeconds(out->seconds()))));
  }
  return request;
}

}  // namespace

int RunAuditVerify(const Globals& g, const AuditVerifyOptions& o) {
  std::string key;
  if (!o.key.empty()) {
    key = absl::HexStringToBytes(o.key);
    if (key.size() != 32 || absl::BytesToHexString(key) != absl::AsciiStrToLower(o.key)) {
      return Fail(
          absl::InvalidArgumentError("--key must be 64 hex digits (an Ed25519 public key)"));
    }
  }
  if (o.log.empty() && o.receipt.empty() && o.earlier.empty() && o.later.empty()) {
    return Fail(absl::InvalidArgumentError(
        "give --log FILE, --receipt FILE, or --earlier FILE with --later FILE"));
  }
  if (o.earlier.empty() != o.later.empty()) {
    return Fail(absl::InvalidArgumentError("--earlier and --later go together"));
  }
  bool all_ok = true;
  auto report = [&all_ok](const std::string& what, const absl::Status& s) {
    if (s.ok()) {
      std::cout << "OK      " << what << "\n";
    } else {
      all_ok = false;
      std::cout << "FAILED  " << what << ": " << s.message() << "\n";
    }
  };
  if (!o.log.empty()) {
    absl::StatusOr<Evidence> e = ReadEvidence(o.log);
    if (!e.ok()) return Fail(e.status());
    if (!e->log.has_value())
      return Fail(absl::InvalidArgumentError(o.log + " is not a log export"));
    const v1::SignedCheckpoint& c = e->log->checkpoint();
    report(absl::StrCat("log of ", c.org_id(), ": ", e->log->leaves_size(), " leaves, root ",
                        Short(c.root_hash()), " at ", c.tree_size(), ", key ",
                        absl::BytesToHexString(c.public_key())),
           VerifyLog(*e->log, key));
  }
  if (!o.receipt.empty()) {
    absl::StatusOr<Evidence> e = ReadEvidence(o.receipt);
    if (!e.ok()) return Fail(e.status());
    if (e->receipts.empty()) {
      return Fail(absl::InvalidArgumentError(o.receipt + " holds no receipt"));
    }
    for (const v1::Receipt& r : e->receipts) {
      report(
          absl::StrCat("receipt of ", r.org_id(), " entry ", r.audit_index(), " (leaf ",
                       Short(r.entry_hash()), ") in its checkpoint at ", r.checkpoint().tree_size(),
                       " entries, key ", Short(r.checkpoint().public_key())),
          audit::VerifyReceipt(r, key));
    }
  }
  if (!o.earlier.empty()) {
    absl::StatusOr<Evidence> earlier = ReadEvidence(o.earlier);
    if (!earlier.ok()) return Fail(earlier.status());
    absl::StatusOr<Evidence> later = ReadEvidence(o.later);
    if (!later.ok()) return Fail(later.status());
    if (!earlier->checkpoint.has_value() || !later->checkpoint.has_value()) {
      return Fail(absl::InvalidArgumentError("--earlier and --later must each hold a checkpoint"));
    }
    report(absl::StrCat("checkpoint of ", later->checkpoint->org_id(), " at ",
                        later->checkpoint->tree_size(), " entries extends the one at ",
                        earlier->checkpoint->tree_size()),
           VerifyLater(g, *earlier->checkpoint, *later, key));
  }
  return all_ok ? 0 : kExitRefused;
}

int RunAuditExport(const Globals& g, const std::string& out) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  v1::ListAuditResponse exported;
  v1::ListAuditRequest request;
  request.set_limit(1000);
  uint64_t covered = 0;
  bool first = true;
  while (true) {
    absl::StatusOr<v1::ListAuditResponse> page = (*client)->ListAudit(request);
    if (!page.ok()) return Fail(page.status(), Listener::kLocal);
    if (first) {
      // Entries appended while paging are left out: the export ends at the
      // checkpoint it carries.
      *exported.mutable_checkpoint() = page->checkpoint();
      covered = page->checkpoint().tree_size();
      exported.set_chain_valid(page->chain_valid());
      exported.set_chain_error(page->chain_error());
      first = false;
    }
    for (int i = 0; i < page->entries_size(); ++i) {
      if (page->entries(i).index() >= covered) break;
      *exported.add_entries() = page->entries(i);
      if (i < page->leaves_size()) exported.add_leaves(page->leaves(i));
    }
    if (page->next_index() >= covered || page->next_index() <= request.from_index()) break;
    request.set_from_index(page->next_index());
  }
  exported.set_total(static_cast<uint64_t>(exported.leaves_size()));
  exported.set_next_index(exported.total());
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(exported, &json, options);
  if (out.empty()) {
    std::cout << json;
    return 0;
  }
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  file << json;
  if (!file) return Fail(absl::InvalidArgumentError(absl::StrCat("cannot write ", out)));
  std::cerr << "exported " << exported.leaves_size() << " audit entries of "
            << exported.checkpoint().org_id() << " to " << out << "\n";
  return 0;
}

// The node bounds each page's work, so a narrow filter takes several calls.
int RunAuditShow(const Globals& g, const AuditShowOptions& options) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(options.output);
  if (!format.ok()) return Fail(format.status());
  if (options.limit < 1 || options.limit > 1000) {
    return Fail(absl::InvalidArgumentError("--limit must be 1 to 1000"));
  }
  absl::StatusOr<v1::ListAuditRequest> request = AuditRequest(options);
  if (!request.ok()) return Fail(request.status());
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  v1::ListAuditResponse shown;
  while (true) {
    request->set_limit(options.limit - shown.entries_size());
    absl::StatusOr<v1::ListAuditResponse> page = (*client)->ListAudit(*request);
    if (!page.ok()) return Fail(page.status(), Listener::kLocal);
    for (v1::AuditEntry& e : *page->mutable_entries()) *shown.add_entries() = std::move(e);
    shown.set_total(page->total());
    shown.set_chain_valid(page->chain_valid());
    shown.set_chain_error(page->chain_error());
    shown.set_next_index(page->next_index());
    if (shown.entries_size() >= options.limit || page->next_index() >= page->total() ||
        page->next_index() <= request->from_index()) {
      break;
    }
    request->set_from_index(page->next_index());
  }
  std::cout << FormatAudit(shown, *format);
  return shown.chain_valid() ? 0 : kExitRefused;
}

}  // namespace fedshare::client
