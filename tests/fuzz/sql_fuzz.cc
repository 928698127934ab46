// ParseSql on any text; a parsed question must survive FormatSql -> ParseSql
// unchanged (the round trip client/sql.h promises).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "client/sql.h"
#include "google/protobuf/util/message_differencer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<fedshare::v1::AggregateQuery> query = fedshare::client::ParseSql(text);
  if (!query.ok()) return 0;
  std::string again = fedshare::client::FormatSql(*query);
  absl::StatusOr<fedshare::v1::AggregateQuery> reparsed = fedshare::client::ParseSql(again);
  if (!reparsed.ok() || !google::protobuf::util::MessageDifferencer::Equals(*query, *reparsed)) {
    std::fprintf(stderr, "round trip failed:\n%s\n-> %s\n-> %s\n", query->DebugString().c_str(),
                 again.c_str(), reparsed.status().ToString().c_str());
    std::abort();
  }
  return 0;
}
