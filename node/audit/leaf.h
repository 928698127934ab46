// The audit log's leaf: the deterministic encoding of one decision
// (docs/storage-format.md, "audit", documents it byte by byte):
//
//   "FSAL" 0x01, then fields as  u8 tag | u32 big-endian length | value,
//   in increasing tag order, a field left out when its value is empty/zero.
//
// EncodeLeaf and DecodeLeaf are inverses; DecodeLeaf accepts only the one
// encoding EncodeLeaf makes of an entry, so a leaf's bytes and its decoded
// entry say the same thing. Holds whatever the entry holds, which by the
// callers' contract is never a subject id or a released figure.
#ifndef FEDSHARE_NODE_AUDIT_LEAF_H_
#define FEDSHARE_NODE_AUDIT_LEAF_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/audit.pb.h"
#include "google/protobuf/message_lite.h"

namespace fedshare::audit {

std::string EncodeLeaf(const v1::AuditEntry& entry);
// DATA_LOSS if `leaf` is not EncodeLeaf of some entry.
absl::StatusOr<v1::AuditEntry> DecodeLeaf(absl::string_view leaf);

// The deterministic protobuf serialization of `message`.
std::string DeterministicBytes(const google::protobuf::MessageLite& message);

}  // namespace fedshare::audit

#endif  // FEDSHARE_NODE_AUDIT_LEAF_H_
