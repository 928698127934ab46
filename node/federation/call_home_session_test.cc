#include <limits>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "node/federation/call_home.h"

namespace fedshare::federation {
namespace {

// A stream that records what is sent down it.
struct FakeStream {
  absl::Mutex mu;
  std::vector<v1::CallHomeDown> sent ABSL_GUARDED_BY(mu);
  bool broken ABSL_GUARDED_BY(mu) = false;
  int ended ABSL_GUARDED_BY(mu) = 0;
  // Called with each message sent, outside `mu`: the partner's side.
  std::function<void(const v1::CallHomeDown&)> partner;

  std::shared_ptr<CallHomeSession> Session(const std::string& org) {
    return std::make_shared<CallHomeSession>(
        org,
        [this](const v1::CallHomeDown& down) {
          {
            absl::MutexLock lock(&mu);
            if (broken) return false;
            sent.push_back(down);
          }
          if (partner) partner(down);
          return true;
        },
        [this] {
          absl::MutexLock lock(&mu);
          ++ended;
        },
        absl::Now());
  }
  std::vector<v1::CallHomeDown> Sent() {
    absl::MutexLock lock(&mu);
    return sent;
  }
};

struct Outcome {
  int calls = 0;
  grpc::Status status;
  v1::AggregateResponse response;
};

CallHomeSession::AnswerCallback Into(Outcome* out) {
  return [out](const grpc::Status& status, v1::AggregateResponse response) {
    ++out->calls;
    out->status = status;
    out->response = std::move(response);
  };
}

v1::AggregateRequest Question() {
  v1::AggregateRequest request;
  request.mutable_query()->set_dataset("program_outcomes");
  request.set_on_behalf_of("spiffe://t/org/foundation/analyst/ana");
  return request;
}

// `session`'s stream was ended once, and a new question fails UNAVAILABLE at once.
void ExpectEndedAndRefusing(FakeStream& stream, CallHomeSession& session) {
  {
    absl::MutexLock lock(&stream.mu);
    EXPECT_EQ(stream.ended, 1);
  }
  Outcome later;
  session.Start(Question(), absl::Seconds(5), Into(&later));
  EXPECT_EQ(later.calls, 1);
  EXPECT_EQ(later.status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

// An answer larger than one message comes in pieces: kept until the last,
// then handed back whole; past kMaxAnswerBytes the question ends
// RESOURCE_EXHAUSTED; pieces of a question given up are dropped.
TEST(CallHomeSessionTest, AnswerInPiecesIsHandedBackWholeAndBounded) {
  FakeStream stream;
  std::shared_ptr<CallHomeSession> session = stream.Session("partner-1");
  auto pieces = [](uint64_t id, const std::string& whole, size_t size) {
    std::vector<v1::CallHomeAnswer> out;
    for (size_t at = 0; at < whole.size(); at += size) {
      v1::CallHomeAnswer& a = out.emplace_back();
      a.set_question_id(id);
      a.set_response_piece(whole.substr(at, size));
      a.set_more(at + size < whole.size());
    }
    return out;
  };

  v1::AggregateResponse big;
  for (int i = 0; i < 500; ++i) {
    v1::Cell* cell = big.mutable_result()->add_cells();
    for (int b = 0; b < 100; ++b) cell->add_values()->add_bins(i * 100 + b);
  }
  Outcome whole;
  const uint64_t id = session->Start(Question(), absl::Seconds(5), Into(&whole));
  std::vector<v1::CallHomeAnswer> parts = pieces(id, big.SerializeAsString(), 60000);
  ASSERT_GT(parts.size(), 3u);
  for (size_t i = 0; i + 1 < parts.size(); ++i) session->Deliver(parts[i]);
  EXPECT_EQ(whole.calls, 0) << "handed back before its last piece";
  session->Deliver(parts.back());
  ASSERT_EQ(whole.calls, 1);
  ASSERT_TRUE(whole.status.ok()) << whole.status.error_message();
  EXPECT_EQ(whole.response.SerializeAsString(), big.SerializeAsString());

  Outcome huge;
  const uint64_t huge_id = session->Start(Question(), absl::Seconds(5), Into(&huge));
  const std::string too_much(CallHomeSession::kMaxAnswerBytes + 1, 'x');
  for (const v1::CallHomeAnswer& part : pieces(huge_id, too_much, 60000)) session->Deliver(part);
  ASSERT_EQ(huge.calls, 1);
  EXPECT_EQ(huge.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(huge.status.error_message(), ::testing::HasSubstr("larger than 4 MiB"));

  Outcome given_up;
  const uint64_t late_id = session->Start(Question(), absl::Seconds(5), Into(&given_up));
  std::vector<v1::CallHomeAnswer> late = pieces(late_id, big.SerializeAsString(), 60000);
  session->Deliver(late[0]);
  session->Expire(late_id, "the analyst cancelled the question");
  for (size_t i = 1; i < late.size(); ++i) session->Deliver(late[i]);
  ASSERT_EQ(given_up.calls, 1);
  EXPECT_EQ(given_up.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

TEST(CallHomeSessionTest, SendsTheQuestionAndHandsBackItsAnswer) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  Outcome out;
  const uint64_t id = session->Start(Question(), absl::Milliseconds(1500), Into(&out));
  std::vector<v1::CallHomeDown> sent = stream.Sent();
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_TRUE(sent[0].has_question());
  EXPECT_EQ(sent[0].question().question_id(), id);
  EXPECT_EQ(sent[0].question().request().on_behalf_of(), "spiffe://t/org/foundation/analyst/ana");
  EXPECT_EQ(sent[0].question().timeout().seconds(), 1);
  EXPECT_EQ(sent[0].question().timeout().nanos(), 500000000);
  EXPECT_EQ(out.calls, 0);

  v1::CallHomeAnswer answer;
  answer.set_question_id(id);
  answer.mutable_response()->mutable_result()->set_org_id("partner-2");
  session->Deliver(answer);
  EXPECT_EQ(out.calls, 1);
  EXPECT_TRUE(out.status.ok());
  EXPECT_EQ(out.response.result().org_id(), "partner-2");
  // A second answer to the same question is dropped.
  session->Deliver(answer);
  EXPECT_EQ(out.calls, 1);
}

TEST(CallHomeSessionTest, ARefusalKeepsItsCodeAndErrorInfo) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  Outcome out;
  const uint64_t id = session->Start(Question(), absl::Seconds(5), Into(&out));
  v1::CallHomeAnswer answer;
  answer.set_question_id(id);
  answer.mutable_status()->set_code(static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  answer.mutable_status()->set_message("refused by agreement 'a' rule 'purpose'");
  google::rpc::ErrorInfo info;
  info.set_reason("purpose");
  answer.mutable_status()->add_details()->PackFrom(info);
  session->Deliver(answer);
  ASSERT_EQ(out.calls, 1);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(out.status.error_message(), "refused by agreement 'a' rule 'purpose'");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(out.status.error_details()));
  google::rpc::ErrorInfo back;
  ASSERT_TRUE(details.details(0).UnpackTo(&back));
  EXPECT_EQ(back.reason(), "purpose");
}

// The status field is any int32: a code gRPC does not define ends the
// question UNKNOWN, naming the code, never as a grpc::StatusCode it is not.
TEST(CallHomeSessionTest, AStatusCodeGrpcDoesNotDefineEndsTheQuestionUnknown) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  for (const int32_t code : {17, 1000, -1, std::numeric_limits<int32_t>::min()}) {
    Outcome out;
    const uint64_t id = session->Start(Question(), absl::Seconds(5), Into(&out));
    v1::CallHomeAnswer answer;
    answer.set_question_id(id);
    answer.mutable_status()->set_code(code);
    answer.mutable_status()->set_message("as the partner says");
    answer.mutable_response()->mutable_result()->set_org_id("partner-2");
    session->Deliver(answer);
    ASSERT_EQ(out.calls, 1) << code;
    EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNKNOWN) << code;
    EXPECT_EQ(out.status.error_message(),
              absl::StrCat("call-home partner partner-2 replied with status code ", code,
                           ", which gRPC does not define"));
    EXPECT_EQ(out.response.result().org_id(), "");
  }
  stream.partner = [&session](const v1::CallHomeDown& down) {
    v1::CallHomeDescribed reply;
    reply.set_request_id(down.describe().request_id());
    reply.mutable_status()->set_code(99);
    reply.mutable_response()->set_org_id("ignored");
    session->DeliverDescribed(reply);
  };
  v1::DescribeResponse described;
  grpc::Status status = session->Describe(absl::Seconds(5), &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("status code 99"));
  EXPECT_EQ(described.org_id(), "");
}

TEST(CallHomeSessionTest, ExpiryCancelsAtThePartnerAndDropsALateAnswer) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  Outcome out;
  const uint64_t id = session->Start(Question(), absl::Seconds(5), Into(&out));
  session->Expire(id, "too slow");
  ASSERT_EQ(out.calls, 1);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  std::vector<v1::CallHomeDown> sent = stream.Sent();
  ASSERT_EQ(sent.size(), 2u);
  ASSERT_TRUE(sent[1].has_cancel());
  EXPECT_EQ(sent[1].cancel().question_id(), id);
  v1::CallHomeAnswer late;
  late.set_question_id(id);
  session->Deliver(late);
  session->Expire(id, "again");
  EXPECT_EQ(out.calls, 1);
}

TEST(CallHomeSessionTest, AskTimesOutWithDeadlineExceeded) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  v1::AggregateResponse response;
  grpc::Status status = session->Ask(Question(), absl::Milliseconds(20), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("partner-2"));
}

TEST(CallHomeSessionTest, ClosingEndsEveryQuestionUnavailableAndLaterOnesAtOnce) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  Outcome first, second;
  session->Start(Question(), absl::Seconds(5), Into(&first));
  session->Start(Question(), absl::Seconds(5), Into(&second));
  session->Close("the stream ended");
  session->Close("again");
  EXPECT_EQ(first.calls, 1);
  EXPECT_EQ(second.calls, 1);
  EXPECT_EQ(first.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(first.status.error_message(), ::testing::HasSubstr("the stream ended"));
  ExpectEndedAndRefusing(stream, *session);
  EXPECT_EQ(stream.Sent().size(), 2u);  // nothing sent after the close
}

TEST(CallHomeSessionTest, ABrokenStreamEndsTheQuestionUnavailable) {
  FakeStream stream;
  {
    absl::MutexLock lock(&stream.mu);
    stream.broken = true;
  }
  auto session = stream.Session("partner-2");
  Outcome out;
  session->Start(Question(), absl::Seconds(5), Into(&out));
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(CallHomeSessionTest, DescribeSendsARequestAndReturnsThePartnersReply) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  Outcome question;
  const uint64_t question_id = session->Start(Question(), absl::Seconds(5), Into(&question));
  stream.partner = [&session](const v1::CallHomeDown& down) {
    if (!down.has_describe()) return;
    v1::CallHomeDescribed reply;
    reply.set_request_id(down.describe().request_id());
    reply.mutable_response()->set_org_id("partner-2");
    reply.mutable_response()->add_datasets()->mutable_schema()->set_name("program_outcomes");
    session->DeliverDescribed(reply);
  };
  v1::DescribeResponse described;
  grpc::Status status = session->Describe(absl::Seconds(5), &described);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(described.org_id(), "partner-2");
  ASSERT_EQ(described.datasets_size(), 1);
  std::vector<v1::CallHomeDown> sent = stream.Sent();
  ASSERT_EQ(sent.size(), 2u);
  ASSERT_TRUE(sent[1].has_describe());
  // One id space with questions: a reply can never be taken for an answer.
  EXPECT_NE(sent[1].describe().request_id(), question_id);
  EXPECT_EQ(question.calls, 0);
}

TEST(CallHomeSessionTest, ADescribeRefusalKeepsItsCode) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  stream.partner = [&session](const v1::CallHomeDown& down) {
    v1::CallHomeDescribed reply;
    reply.set_request_id(down.describe().request_id());
    reply.mutable_status()->set_code(static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
    reply.mutable_status()->set_message("not a node");
    reply.mutable_response()->set_org_id("ignored");
    session->DeliverDescribed(reply);
  };
  v1::DescribeResponse described;
  grpc::Status status = session->Describe(absl::Seconds(5), &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(), "not a node");
  EXPECT_EQ(described.org_id(), "");
}

TEST(CallHomeSessionTest, DescribeTimesOutAndDropsALateReply) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  v1::DescribeResponse described;
  grpc::Status status = session->Describe(absl::Milliseconds(20), &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("partner-2"));
  std::vector<v1::CallHomeDown> sent = stream.Sent();
  ASSERT_EQ(sent.size(), 1u);
  v1::CallHomeDescribed late;
  late.set_request_id(sent[0].describe().request_id());
  session->DeliverDescribed(late);  // nobody waits: dropped
  // A question's answer with the describe's id is no reply to it either.
  v1::CallHomeAnswer stray;
  stray.set_question_id(sent[0].describe().request_id());
  session->Deliver(stray);
}

TEST(CallHomeSessionTest, DescribeEndsUnavailableWhenTheStreamEndsOrIsClosed) {
  FakeStream stream;
  auto session = stream.Session("partner-2");
  // The stream ends once the request went down (on the reactor's thread,
  // as OnReadDone would: never inside a send).
  absl::Notification sent_once;
  stream.partner = [&sent_once](const v1::CallHomeDown&) {
    if (!sent_once.HasBeenNotified()) sent_once.Notify();
  };
  std::thread reactor([&] {
    sent_once.WaitForNotification();
    session->Close("the stream ended");
  });
  v1::DescribeResponse described;
  grpc::Status status = session->Describe(absl::Seconds(5), &described);
  reactor.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("the stream ended"));
  // Closed: at once, and nothing more is sent.
  status = session->Describe(absl::Seconds(5), &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(stream.Sent().size(), 1u);

  FakeStream broken;
  {
    absl::MutexLock lock(&broken.mu);
    broken.broken = true;
  }
  auto unsent = broken.Session("partner-2");
  status = unsent->Describe(absl::Seconds(5), &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(CallHomeHubTest, LastSeenIsTheLatestConnectionOrStreamEnd) {
  FakeStream stream;
  CallHomeHub hub;
  EXPECT_EQ(hub.LastSeen("partner-2"), absl::InfinitePast());
  auto session = stream.Session("partner-2");
  hub.Attach(session);
  EXPECT_EQ(hub.LastSeen("partner-2"), session->connected_at());
  const absl::Time ended = session->connected_at() + absl::Seconds(30);
  hub.Detach(session.get(), ended);
  EXPECT_EQ(hub.Find("partner-2"), nullptr);
  EXPECT_EQ(hub.LastSeen("partner-2"), ended);
  EXPECT_EQ(hub.LastSeen("partner-3"), absl::InfinitePast());
}

TEST(CallHomeHubTest, ANewerStreamReplacesAndClosesTheOlder) {
  FakeStream old_stream, new_stream;
  CallHomeHub hub;
  auto older = old_stream.Session("partner-2");
  auto newer = new_stream.Session("partner-2");
  hub.Attach(older);
  EXPECT_EQ(hub.Find("partner-2"), older);
  EXPECT_EQ(hub.Find("partner-1"), nullptr);
  hub.Attach(newer);
  EXPECT_TRUE(older->closed());
  EXPECT_EQ(hub.Find("partner-2"), newer);
  // The older stream's handler detaches afterwards: the newer one stays.
  hub.Detach(older.get(), absl::Now());
  EXPECT_EQ(hub.Find("partner-2"), newer);
  FakeStream other_stream;
  auto other = other_stream.Session("partner-3");
  hub.Attach(other);
  hub.CloseExcept({"partner-2"}, "no longer a call-home peer");
  EXPECT_TRUE(other->closed());
  EXPECT_EQ(hub.Find("partner-3"), nullptr);
  EXPECT_EQ(hub.Find("partner-2"), newer);
  hub.CloseAll("shutting down");
  EXPECT_TRUE(newer->closed());
  EXPECT_EQ(hub.Find("partner-2"), nullptr);
}

TEST(CallHomeHubTest, AStreamThatArrivesAfterCloseAllIsEndedAtOnce) {
  // A partner whose connection was accepted before the node began to stop
  // may open its stream after CloseAll: it must not be held until the
  // server's shutdown deadline.
  FakeStream stream;
  CallHomeHub hub;
  hub.CloseAll("the node is shutting down");
  auto late = stream.Session("partner-2");
  hub.Attach(late);
  EXPECT_TRUE(late->closed());
  EXPECT_EQ(hub.Find("partner-2"), nullptr);
  ExpectEndedAndRefusing(stream, *late);
}

}  // namespace
}  // namespace fedshare::federation
