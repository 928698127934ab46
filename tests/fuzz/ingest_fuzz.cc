// An ingest of any bytes as CSV or JSON Lines into the fuzz node's dataset
// (the first byte picks the format, skip_invalid, and the size of the slices
// the file arrives in, as a stream splits it: ingest.h), then a question
// and an export over what is stored, so rows that were accepted are also read.
// The store grows as the fuzzer runs (cheap on /dev/shm); the read-back
// stops once 20,000 rows are stored to keep runs fast.
#include <cstddef>
#include <cstdint>

#include "node/engine/ingest.h"
#include "tests/fuzz/fuzz_assert.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

absl::StatusOr<fedshare::v1::IngestResponse> IngestInSlices(fedshare::engine::Engine& engine,
                                                            fedshare::v1::DataFormat format,
                                                            bool skip_invalid,
                                                            absl::string_view body, size_t slice) {
  auto session = engine.StartIngest("program_outcomes", format, skip_invalid, {});
  if (!session.ok()) return session.status();
  for (size_t pos = 0; pos < body.size(); pos += slice) {
    absl::Status appended = (*session)->Append(body.substr(pos, slice));
    if (!appended.ok()) return appended;
  }
  return (*session)->Finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  fedshare::fuzz::FuzzNode& node = fedshare::fuzz::TheNode();
  const auto format = (data[0] & 1) ? fedshare::v1::JSONL : fedshare::v1::CSV;
  const bool skip_invalid = (data[0] & 2) != 0;
  absl::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr size_t kSlices[8] = {0, 1, 2, 3, 7, 64, 4096, 0};  // 0: whole
  const size_t slice = kSlices[(data[0] >> 2) & 7];
  auto ingested = slice == 0 ? node.engine->Ingest("program_outcomes", format, skip_invalid, body)
                             : IngestInSlices(*node.engine, format, skip_invalid, body, slice);
  if (!ingested.ok()) {
    absl::StatusCode code = ingested.status().code();
    FEDSHARE_FUZZ_ASSERT(
        code != absl::StatusCode::kInternal && code != absl::StatusCode::kDataLoss &&
            code != absl::StatusCode::kUnknown,
        "bad input is the caller's error, never the store's: " + ingested.status().ToString());
    return 0;
  }
  static int64_t total_rows = 0;
  total_rows += ingested->rows_written();
  if (ingested->rows_written() > 0 && total_rows < 20000) {
    absl::Status exported = node.engine->Export(
        "program_outcomes", format, [](absl::string_view, int64_t) { return absl::OkStatus(); });
    FEDSHARE_FUZZ_ASSERT(exported.ok(), "a stored row must be readable: " + exported.ToString());
  }
  return 0;
}
