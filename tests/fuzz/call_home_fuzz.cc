// The foundation's side of a call-home stream (federation::CallHomeSession)
// against a partner that sends anything: the bytes are a script of up to 64
// steps, each one of
//
//   0 the fan-out asks a question (Start)
//   1 the partner answers: a question id (one asked, or any), a status code
//     (mostly 0, or any int32), and either a whole response (wire bytes) or
//     a piece of one (up to 2 MiB of one byte, or wire bytes) with `more`
//   2 the fan-out gives up on a question (Expire)
//   3 the fan-out asks for a Describe (StartDescribe)
//   4 the partner replies to a Describe: an id and a status code
//   5 the fan-out gives up on a Describe (ExpireDescribe)
//   6 the stream breaks or mends (what `send` returns)
//   7 the stream ends (Close)
//
// and the stream ends after the last. The oracle is a model of what the
// session promises (call_home.h): every question and Describe ends exactly
// once, by the end at the latest; with a code gRPC defines; OK only with
// what the partner sent for it (whole, or its pieces put together);
// RESOURCE_EXHAUSTED exactly when its pieces pass kMaxAnswerBytes, so no
// more than that is ever kept for one question.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "fedshare/v1/federation.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "node/federation/call_home.h"
#include "tests/fuzz/fuzz_assert.h"

namespace {

namespace v1 = fedshare::v1;
using fedshare::federation::CallHomeSession;

constexpr int kMaxSteps = 64;
constexpr size_t kMaxAnswerBytes = CallHomeSession::kMaxAnswerBytes;

// What the model expects of one question or Describe.
struct Expected {
  bool ended = false;  // its callback has run
  int calls = 0;
  std::string pieces;  // the pieces the partner sent so far
};

bool ValidCode(grpc::StatusCode code) {
  const int c = static_cast<int>(code);
  return c >= 0 && c <= static_cast<int>(grpc::StatusCode::UNAUTHENTICATED);
}

// The code a partner's google.rpc.Status code ends a question with.
grpc::StatusCode CodeFor(int32_t code) {
  if (code >= 1 && code <= static_cast<int32_t>(grpc::StatusCode::UNAUTHENTICATED)) {
    return static_cast<grpc::StatusCode>(code);
  }
  return code == 0 ? grpc::StatusCode::OK : grpc::StatusCode::UNKNOWN;
}

class Script {
 public:
  explicit Script(FuzzedDataProvider& in) : in_(in) {
    session_ = std::make_shared<CallHomeSession>(
        "partner-2", [this](const v1::CallHomeDown&) { return !broken_; }, [] {}, absl::Now());
  }

  void Run() {
    for (int step = 0; step < kMaxSteps && in_.remaining_bytes() > 0; ++step) {
      switch (in_.ConsumeIntegralInRange<int>(0, 7)) {
        case 0:
          Ask();
          break;
        case 1:
          Answer();
          break;
        case 2:
          GiveUp(questions_, asked_, [this](uint64_t id) { session_->Expire(id, "fuzz: slow"); });
          break;
        case 3:
          Describe();
          break;
        case 4:
          Described();
          break;
        case 5:
          GiveUp(describes_, describes_asked_,
                 [this](uint64_t id) { session_->ExpireDescribe(id, "fuzz: slow"); });
          break;
        case 6:
          broken_ = in_.ConsumeBool();
          break;
        case 7:
          CloseAndCheck();
          break;
      }
    }
    CloseAndCheck();
  }

 private:
  uint64_t Pick(const std::vector<uint64_t>& ids) {
    return ids[in_.ConsumeIntegralInRange<size_t>(0, ids.size() - 1)];
  }

  // A status code: mostly OK, sometimes a refusal, sometimes any int32.
  int32_t Code() {
    switch (in_.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
      case 1:
        return 0;
      case 2:
        return in_.ConsumeIntegralInRange<int32_t>(1, 16);
      default:
        return in_.ConsumeIntegral<int32_t>();
    }
  }

  // Starts a question or a Describe with `start`, given where its end is
  // to be recorded, and books it in `book` and `asked`. The session numbers
  // both from one sequence (so the model knows the id before `start`
  // returns: the callback may run inside it) and ends either at once when
  // the stream is closed or broken.
  void Begin(std::map<uint64_t, Expected>& book, std::vector<uint64_t>& asked,
             const std::function<uint64_t(Expected*)>& start) {
    const uint64_t id = closed_ ? 0 : next_id_;
    Expected* expected = closed_ ? &refused_ : &book[id];
    *expected = Expected();
    const bool ends_now = closed_ || broken_;
    FEDSHARE_FUZZ_ASSERT(start(expected) == id, "ids are handed out in order, 0 once closed");
    if (closed_) {
      FEDSHARE_FUZZ_ASSERT(refused_.calls == 1 && last_code_ == grpc::StatusCode::UNAVAILABLE,
                           "a question or Describe asked after Close ends UNAVAILABLE at once");
      return;
    }
    ++next_id_;
    asked.push_back(id);
    if (ends_now) Ended(book[id], grpc::StatusCode::UNAVAILABLE);
    CheckOne(book[id]);
  }

  // Gives up on one of `asked` with `expire`: it ends DEADLINE_EXCEEDED if
  // it was still waiting, and is left as it was otherwise.
  void GiveUp(std::map<uint64_t, Expected>& book, const std::vector<uint64_t>& asked,
              const std::function<void(uint64_t)>& expire) {
    if (asked.empty()) return;
    const uint64_t id = Pick(asked);
    const bool waiting = !book[id].ended;
    expire(id);
    if (waiting) Ended(book[id], grpc::StatusCode::DEADLINE_EXCEEDED);
    CheckOne(book[id]);
  }

  void Ask() {
    v1::AggregateRequest request;
    request.mutable_query()->set_dataset("program_outcomes");
    const absl::Duration timeout = absl::Milliseconds(in_.ConsumeIntegralInRange<int>(-10, 10000));
    Begin(questions_, asked_, [&](Expected* expected) {
      return session_->Start(
          request, timeout,
          [this, expected](const grpc::Status& status, v1::AggregateResponse response) {
            OnAnswer(*expected, status, std::move(response));
          });
    });
  }

  void Answer() {
    v1::CallHomeAnswer answer;
    const uint64_t id =
        (!asked_.empty() && in_.ConsumeBool()) ? Pick(asked_) : in_.ConsumeIntegral<uint64_t>();
    answer.set_question_id(id);
    const int32_t code = Code();
    answer.mutable_status()->set_code(code);
    answer.mutable_status()->set_message("fuzz");
    const bool in_pieces = in_.ConsumeBool();
    if (in_pieces) {
      if (in_.ConsumeBool()) {
        answer.set_response_piece(std::string(in_.ConsumeIntegralInRange<size_t>(0, 2 << 20),
                                              static_cast<char>(in_.ConsumeIntegral<uint8_t>())));
      } else {
        answer.set_response_piece(in_.ConsumeRandomLengthString(512));
      }
      answer.set_more(in_.ConsumeBool());
    } else {
      const std::string wire = in_.ConsumeRandomLengthString(512);
      if (!answer.mutable_response()->ParseFromString(wire)) answer.clear_response();
    }

    // What the session should do with it.
    auto it = questions_.find(id);
    const bool waiting = it != questions_.end() && !it->second.ended;
    const bool pieced = answer.more() || !answer.response_piece().empty();
    std::optional<grpc::StatusCode> ends;
    if (waiting && pieced) {
      Expected& q = it->second;
      if (q.pieces.size() + answer.response_piece().size() > kMaxAnswerBytes) {
        ends = grpc::StatusCode::RESOURCE_EXHAUSTED;
      } else {
        q.pieces += answer.response_piece();
        if (!answer.more()) {
          v1::AggregateResponse whole;
          if (code != 0) {
            ends = CodeFor(code);
          } else if (!whole.ParseFromString(q.pieces)) {
            ends = grpc::StatusCode::INTERNAL;
          } else {
            ends = grpc::StatusCode::OK;
            want_ = whole;
          }
        }
      }
    } else if (waiting) {
      ends = CodeFor(code);
      if (code == 0) want_ = answer.response();
    }
    if (ends.has_value()) Ended(it->second, *ends);
    session_->Deliver(answer);
    if (waiting) Check(id);
  }

  void Describe() {
    Begin(describes_, describes_asked_, [&](Expected* expected) {
      return session_->StartDescribe(
          [this, expected](const grpc::Status& status, v1::DescribeResponse response) {
            FEDSHARE_FUZZ_ASSERT(status.ok() || response.org_id().empty(),
                                 "a failed Describe hands back no reply");
            OnAnswer(*expected, status, {});
          });
    });
  }

  void Described() {
    v1::CallHomeDescribed reply;
    const uint64_t id = (!describes_asked_.empty() && in_.ConsumeBool())
                            ? Pick(describes_asked_)
                            : in_.ConsumeIntegral<uint64_t>();
    reply.set_request_id(id);
    const int32_t code = Code();
    reply.mutable_status()->set_code(code);
    reply.mutable_response()->set_org_id("partner-2");
    auto it = describes_.find(id);
    const bool waiting = it != describes_.end() && !it->second.ended;
    if (waiting) {
      Ended(it->second, CodeFor(code));
      want_.Clear();
    }
    session_->DeliverDescribed(reply);
    if (waiting) CheckDescribe(id);
  }

  void CloseAndCheck() {
    closed_ = true;
    for (auto& [id, q] : questions_) {
      if (!q.ended) Ended(q, grpc::StatusCode::UNAVAILABLE);
    }
    for (auto& [id, d] : describes_) {
      if (!d.ended) Ended(d, grpc::StatusCode::UNAVAILABLE);
    }
    session_->Close("fuzz: the stream ended");
    for (const auto& [id, q] : questions_) Check(id);
    for (const auto& [id, d] : describes_) CheckDescribe(id);
  }

  // The model: `e` ends now, with `code`.
  void Ended(Expected& e, grpc::StatusCode code) {
    e.ended = true;
    e.pieces.clear();
    expected_codes_[&e] = code;
  }

  void OnAnswer(Expected& e, const grpc::Status& status, v1::AggregateResponse response) {
    ++e.calls;
    FEDSHARE_FUZZ_ASSERT(e.calls == 1, "a question or Describe ends exactly once");
    FEDSHARE_FUZZ_ASSERT(ValidCode(status.error_code()), "an end has a code gRPC defines");
    last_code_ = status.error_code();
    if (status.ok()) {
      FEDSHARE_FUZZ_ASSERT(google::protobuf::util::MessageDifferencer::Equals(response, want_),
                           "an OK answer is what the partner sent for it");
    } else {
      FEDSHARE_FUZZ_ASSERT(response.ByteSizeLong() == 0, "a failed question hands back nothing");
    }
    got_codes_[&e] = status.error_code();
  }

  void Check(uint64_t id) { CheckOne(questions_[id]); }
  void CheckDescribe(uint64_t id) { CheckOne(describes_[id]); }
  void CheckOne(Expected& e) {
    FEDSHARE_FUZZ_ASSERT(e.calls == (e.ended ? 1 : 0),
                         "a question ends when the model says, not before or after");
    if (!e.ended) {
      FEDSHARE_FUZZ_ASSERT(e.pieces.size() <= kMaxAnswerBytes,
                           "no more than kMaxAnswerBytes is kept for one question");
      return;
    }
    FEDSHARE_FUZZ_ASSERT(got_codes_[&e] == expected_codes_[&e],
                         "a question ends with the code the model says");
  }

  FuzzedDataProvider& in_;
  std::shared_ptr<CallHomeSession> session_;
  bool broken_ = false;
  bool closed_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Expected> questions_;
  std::map<uint64_t, Expected> describes_;
  std::vector<uint64_t> asked_;
  std::vector<uint64_t> describes_asked_;
  Expected refused_;  // a question or Describe asked after Close
  std::map<const Expected*, grpc::StatusCode> expected_codes_;
  std::map<const Expected*, grpc::StatusCode> got_codes_;
  grpc::StatusCode last_code_ = grpc::StatusCode::OK;
  v1::AggregateResponse want_;  // the OK answer the model expects next
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Script(in).Run();
  return 0;
}
