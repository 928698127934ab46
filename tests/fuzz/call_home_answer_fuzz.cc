// The partner's side of a call-home stream (server::AnswerOf): how an
// answer goes up to a foundation that said any max_message_bytes in its
// hello. The bytes give the hello's bound (often small, so that answers go in
// pieces), a status (mostly OK), a question id and the answer itself (wire
// bytes of an AggregateResponse, or cells made from the bytes when they do
// not parse). The oracle is what call_home_client.h promises and what the
// foundation's session (federation::CallHomeSession) relies on: an error goes
// up as one message with its code; an answer goes as one message holding it,
// or as pieces, in order, every message within the bound, every piece but the
// last with more set, the last with the status, the pieces together the
// answer's bytes exactly.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fedshare/v1/federation.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "node/server/call_home_client.h"
#include "tests/fuzz/fuzz_assert.h"

using fedshare::server::AnswerOf;
using fedshare::server::MaxMessageBytesFor;
using google::protobuf::util::MessageDifferencer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  fedshare::v1::CallHomeHello hello;
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      break;  // an earlier foundation: no bound
    case 1:
      hello.set_max_message_bytes(in.ConsumeIntegralInRange<uint64_t>(0, 8192));
      break;
    case 2:
      hello.set_max_message_bytes(in.ConsumeIntegralInRange<uint64_t>(0, 1 << 20));
      break;
    default:
      hello.set_max_message_bytes(in.ConsumeIntegral<uint64_t>());
      break;
  }
  const size_t limit = MaxMessageBytesFor(hello);
  FEDSHARE_FUZZ_ASSERT(limit >= 2 * fedshare::server::kAnswerOverheadBytes,
                       "the bound leaves room for a piece");
  const uint64_t id = in.ConsumeIntegral<uint64_t>();
  const int code = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int>(0, 16);
  const grpc::Status status(static_cast<grpc::StatusCode>(code),
                            code == 0 ? "" : in.ConsumeRandomLengthString(200));
  const int cells = in.ConsumeIntegralInRange<int>(0, 64);
  // Printable, as the text of a stored value is valid UTF-8.
  std::string text = in.ConsumeRandomLengthString(512);
  for (char& c : text) c = static_cast<char>(' ' + static_cast<unsigned char>(c) % 95);
  fedshare::v1::AggregateResponse response;
  const std::vector<char> rest = in.ConsumeRemainingBytes<char>();
  if (!response.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) response.Clear();
  // Cells of the text, repeated: answers of a few bytes to a few MiB.
  fedshare::v1::AggregateResult* result = response.mutable_result();
  result->set_org_id("partner");
  for (int c = 0; c < cells; ++c) {
    fedshare::v1::Cell* cell = result->add_cells();
    for (int k = 0; k <= c % 8; ++k) cell->add_key()->set_string_value(text + text);
    cell->add_values()->set_value(c);
  }
  for (int r = 0; r < cells / 16; ++r) *result->add_cells() = result->cells(0);

  const std::vector<fedshare::v1::CallHomeUp> ups = AnswerOf(id, status, response, limit);
  FEDSHARE_FUZZ_ASSERT(!ups.empty(), "an answer sends something");
  for (const fedshare::v1::CallHomeUp& up : ups) {
    FEDSHARE_FUZZ_ASSERT(up.has_answer() && up.answer().question_id() == id,
                         "every message answers the question asked");
  }
  if (code != 0) {
    FEDSHARE_FUZZ_ASSERT(ups.size() == 1 && ups[0].answer().status().code() == code &&
                             ups[0].answer().status().message() == status.error_message() &&
                             !ups[0].answer().has_response() &&
                             ups[0].answer().response_piece().empty(),
                         "an error goes up as one message with its code and message");
    return 0;
  }
  for (const fedshare::v1::CallHomeUp& up : ups) {
    FEDSHARE_FUZZ_ASSERT(up.ByteSizeLong() <= limit,
                         absl::StrCat("a message of ", up.ByteSizeLong(), " bytes passes the ",
                                      limit, " the foundation takes"));
  }
  if (ups.size() == 1 && ups[0].answer().has_response()) {
    FEDSHARE_FUZZ_ASSERT(MessageDifferencer::Equals(ups[0].answer().response(), response) &&
                             ups[0].answer().status().code() == 0,
                         "an answer that fits goes whole, as it is");
    return 0;
  }
  std::string whole;
  for (size_t i = 0; i < ups.size(); ++i) {
    const fedshare::v1::CallHomeAnswer& piece = ups[i].answer();
    const bool last = i + 1 == ups.size();
    FEDSHARE_FUZZ_ASSERT(!piece.has_response() && !piece.response_piece().empty(),
                         "a piece carries bytes of the answer");
    FEDSHARE_FUZZ_ASSERT(piece.more() != last, "every piece but the last says more");
    FEDSHARE_FUZZ_ASSERT(piece.has_status() == last && piece.status().code() == 0,
                         "the last piece, only, carries the status");
    whole += piece.response_piece();
  }
  FEDSHARE_FUZZ_ASSERT(whole == response.SerializeAsString(),
                       "the pieces together are the answer's bytes");
  return 0;
}
