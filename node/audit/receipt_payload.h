// A refusal's receipt travels inside its absl::Status as a payload (the
// serialized fedshare.v1.Receipt under kReceiptTypeUrl), as a refusal's
// ErrorInfo does (policy/refusal.h); the service edge packs it into the gRPC
// status details, and the asking node unpacks it from there.
//
//   return WithReceipt(refusal, appended.receipt);
//   std::optional<v1::Receipt> receipt = ReceiptOf(status);
#ifndef FEDSHARE_NODE_AUDIT_RECEIPT_PAYLOAD_H_
#define FEDSHARE_NODE_AUDIT_RECEIPT_PAYLOAD_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/query.pb.h"

namespace fedshare::audit {

inline constexpr absl::string_view kReceiptTypeUrl = "type.googleapis.com/fedshare.v1.Receipt";

// `status` with `receipt` attached; an OK status is returned as is.
inline absl::Status WithReceipt(absl::Status status, const v1::Receipt& receipt) {
  if (status.ok()) return status;
  status.SetPayload(kReceiptTypeUrl, absl::Cord(receipt.SerializeAsString()));
  return status;
}

inline std::optional<v1::Receipt> ReceiptOf(const absl::Status& status) {
  auto payload = status.GetPayload(kReceiptTypeUrl);
  if (!payload.has_value()) return std::nullopt;
  v1::Receipt receipt;
  if (!receipt.ParseFromString(std::string(*payload))) return std::nullopt;
  return receipt;
}

}  // namespace fedshare::audit

#endif  // FEDSHARE_NODE_AUDIT_RECEIPT_PAYLOAD_H_
