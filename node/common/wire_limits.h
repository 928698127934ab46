// Sizes of gRPC messages that both a node and its clients must agree on.
#ifndef FEDSHARE_NODE_COMMON_WIRE_LIMITS_H_
#define FEDSHARE_NODE_COMMON_WIRE_LIMITS_H_

#include <cstddef>

namespace fedshare {

// The largest message a node sends (answers, exports, the parts of a
// federated answer), and so the largest a client of a node must be ready to
// receive: gRPC's own default of 4 MiB is less than one partner's answer
// with its coverage may be.
inline constexpr int kMaxReplyBytes = 16 << 20;

// FederatedAggregateStream's `result_part` events carry about this much of
// the partners' coverage and answers each (one answer alone may be larger).
inline constexpr size_t kResultPartBytes = size_t{1} << 20;

}  // namespace fedshare

#endif  // FEDSHARE_NODE_COMMON_WIRE_LIMITS_H_
