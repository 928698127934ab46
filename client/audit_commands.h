// `fedshare audit show`, `fedshare audit export` and `fedshare audit verify`
// (DESIGN §9): the log listed and filtered by the node, and a log export,
// receipts and checkpoints checked with no trust in the node — every
// hash, proof and Ed25519 signature is recomputed here (node/audit's
// verification library), and a node is asked only for proofs, which are
// themselves verified.
#ifndef FEDSHARE_CLIENT_AUDIT_COMMANDS_H_
#define FEDSHARE_CLIENT_AUDIT_COMMANDS_H_

#include <cstdint>
#include <string>

#include "client/cli_common.h"

namespace fedshare::client {

// `audit show`'s filters, as given on the command line.
struct AuditShowOptions {
  uint64_t from = 0;
  int limit = 100;  // 1 to 1000
  // Empty: any. caller: a SPIFFE ID or an org; decision: answered, refused,
  // failed or cancelled; since/until: RFC 3339 or YYYY-MM-DD.
  std::string caller, decision, since, until, output = "table";
};

// Pages through the log until `limit` entries match or the end is reached
// and prints them in `output`. Exit 0, or 1 if the log's chain does not
// verify, 2 for bad options.
int RunAuditShow(const Globals& g, const AuditShowOptions& options);

struct AuditVerifyOptions {
  // A log export (`fedshare audit export`): every leaf decodes and the leaves'
  // tree has the export's signed checkpoint's root.
  std::string log;
  // Receipts: a Receipt, an AggregateResult, a FederatedAggregateResponse
  // (`query --output json`, every partner's receipt and the combined one) or
  // a saved answer (`query --save`), as JSON.
  std::string receipt;
  // A checkpoint held earlier (a SignedCheckpoint, a receipt or an export, as
  // JSON) and a later one: the later must extend the earlier. The proof is
  // the later receipt's own, or asked of --node (an operator's identity).
  std::string earlier;
  std::string later;
  // The node's audit public key (64 hex digits); when set, every checkpoint
  // must be signed with it.
  std::string key;
};

// Exit 0 if everything given verifies, 1 if anything does not (saying what),
// 2 for bad usage or unreadable files.
int RunAuditVerify(const Globals& g, const AuditVerifyOptions& options);

// Writes the whole log (leaves, entries and the checkpoint over them) as JSON
// to `out` (stdout if empty).
int RunAuditExport(const Globals& g, const std::string& out);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_AUDIT_COMMANDS_H_
