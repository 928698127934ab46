// Request handling of each RPC, in-process: the first byte picks the method,
// the rest is its request message in protobuf wire format, answered by the
// engine layer the gRPC handler calls (node/service/*_service.cc), against
// the fuzz node (48 records in a temp RocksDB). The handlers themselves only
// authenticate and convert; TLS and authentication are not fuzzed here.
//
//   0 PeerService.Aggregate     AggregateRequest   Answerer::Answer as "foundation" (dry_run too)
//   1 PeerService.Aggregate     AggregateRequest   as an org with no agreement
//   2 PeerService.Describe      DescribeRequest    Answerer::Describe (org: the bytes)
//   3 AdminService.ListDatasets ListDatasetsRequest Engine::ListDatasets (purposes: the bytes)
//   4 AdminService.Export       ExportRequest      Engine::Export
//   5 AdminService.ListAudit    ListAuditRequest   AuditLog::List
//   6 AdminService.Ingest       IngestRequest      Engine::Ingest (see ingest_fuzz.cc)
//   7 AdminService.ImportConsent ConsentImportRequest Engine::ImportConsent
//
// FederationService.FederatedAggregate fans out over the network and is not
// covered; its question is the same AggregateQuery as 0.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "fedshare/v1/admin.pb.h"
#include "fedshare/v1/peer.pb.h"
#include "tests/fuzz/fuzz_assert.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

bool IsStoreFailure(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInternal ||
         status.code() == absl::StatusCode::kDataLoss ||
         status.code() == absl::StatusCode::kUnknown;
}

// A request is refused for what it asks, never for a failure of the store.
void AssertNotStoreFailure(const absl::Status& status) {
  FEDSHARE_FUZZ_ASSERT(!IsStoreFailure(status), status.ToString());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  fedshare::fuzz::FuzzNode& node = fedshare::fuzz::TheNode();
  const uint8_t method = data[0] % 8;
  const void* body = data + 1;
  const int body_size = static_cast<int>(size - 1);
  namespace v1 = fedshare::v1;
  switch (method) {
    case 0:
    case 1: {
      v1::AggregateRequest request;
      if (!request.ParseFromArray(body, body_size)) return -1;
      fedshare::engine::Caller caller;
      caller.org_id = method == 0 ? "foundation" : "partner-b";
      caller.spiffe_id = "spiffe://fedshare.test/org/" + caller.org_id + "/node";
      // partner-b's refusals are turned away by a gate, as a throttled
      // caller's are (peer_service.cc).
      bool gated = false;
      if (method == 1) {
        caller.refusal_gate = [&gated] {
          gated = true;
          return absl::ResourceExhaustedError("turned away by the gate");
        };
      }
      absl::StatusOr<v1::AggregateResult> result =
          node.answerer->Answer(caller, request.query(), {}, request.dry_run());
      AssertNotStoreFailure(result.status());
      if (gated) {
        FEDSHARE_FUZZ_ASSERT(result.status().message() == "turned away by the gate",
                             "a refusal the gate turns away answers the gate's status");
      }
      if (result.ok()) {
        v1::AggregateResponse response;
        *response.mutable_result() = *result;
        std::string wire;
        FEDSHARE_FUZZ_ASSERT(response.SerializeToString(&wire),
                             "what the handler sends must serialize (the peer sees "
                             "UNIMPLEMENTED otherwise)");
      }
      break;
    }
    case 2: {
      std::string org(static_cast<const char*>(body), body_size);
      v1::DescribeResponse response = node.answerer->Describe(org);
      std::string wire;
      FEDSHARE_FUZZ_ASSERT(response.SerializeToString(&wire), "a Describe answer must serialize");
      break;
    }
    case 3: {
      std::vector<std::string> purposes;
      if (body_size > 0) {
        purposes =
            absl::StrSplit(absl::string_view(static_cast<const char*>(body), body_size), ',');
      }
      auto response = node.engine->ListDatasets(purposes);
      AssertNotStoreFailure(response.status());
      break;
    }
    case 4: {
      v1::ExportRequest request;
      if (!request.ParseFromArray(body, body_size)) return -1;
      AssertNotStoreFailure(
          node.engine->Export(request.dataset(), request.format(),
                              [](absl::string_view, int64_t) { return absl::OkStatus(); }));
      break;
    }
    case 5: {
      v1::ListAuditRequest request;
      if (!request.ParseFromArray(body, body_size)) return -1;
      // As AdminServiceImpl::ListAudit clamps it.
      int limit = request.limit() <= 0 ? 100 : std::min(request.limit(), 1000);
      auto entries = node.audit->List(request.from_index(), limit);
      AssertNotStoreFailure(entries.status());
      break;
    }
    case 6: {
      v1::IngestRequest request;
      if (!request.ParseFromArray(body, body_size)) return -1;
      AssertNotStoreFailure(
          node.engine
              ->Ingest(request.dataset(), request.format(), request.skip_invalid(), request.data())
              .status());
      break;
    }
    case 7: {
      v1::ConsentImportRequest request;
      if (!request.ParseFromArray(body, body_size)) return -1;
      AssertNotStoreFailure(node.engine->ImportConsent(request.data()).status());
      break;
    }
  }
  return 0;
}
