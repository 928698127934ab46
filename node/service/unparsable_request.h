// Answers a request that is not a valid protobuf message INVALID_ARGUMENT
// with a message, instead of gRPC's own empty INTERNAL.
//
// gRPC C++ parses a unary or server-streaming request before any handler of
// ours runs, and when the bytes do not parse it finishes the call itself with
// INTERNAL and an empty message (proto3 has no required fields to name), or
// "No payload" when the client sent none. This interceptor sees that (the
// received message is missing after POST_RECV_MESSAGE) and rewrites the
// status as it is sent. A client-streaming upload (Ingest, ImportConsent)
// whose chunk does not parse ends like a cut-off upload: nothing is written
// and the handler says the upload was incomplete.
//
//   builder.experimental().SetInterceptorCreators(UnparsableRequestInterceptors());
#ifndef FEDSHARE_NODE_SERVICE_UNPARSABLE_REQUEST_H_
#define FEDSHARE_NODE_SERVICE_UNPARSABLE_REQUEST_H_

#include <memory>
#include <vector>

#include "grpcpp/support/server_interceptor.h"

namespace fedshare::service {

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
UnparsableRequestInterceptors();

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_UNPARSABLE_REQUEST_H_
