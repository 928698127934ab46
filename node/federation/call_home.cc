#include "node/federation/call_home.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace fedshare::federation {
namespace {

// One reply awaited by a blocking caller (Ask, Describe) while it is
// delivered on another thread; shared, since the callback may run after
// the waiter gave up.
template <typename Response>
struct Awaited {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  grpc::Status status ABSL_GUARDED_BY(mu);
  Response response ABSL_GUARDED_BY(mu);

  static std::function<void(const grpc::Status&, Response)> Into(std::shared_ptr<Awaited> self) {
    return [self](const grpc::Status& s, Response r) {
      absl::MutexLock lock(&self->mu);
      self->status = s;
      self->response = std::move(r);
      self->done = true;
    };
  }
  // Whether the reply came by `deadline`.
  bool WaitUntil(absl::Time deadline) {
    absl::MutexLock lock(&mu);
    return mu.AwaitWithDeadline(absl::Condition(&done), deadline);
  }
  // Waits for the reply (the caller made sure it comes) and hands it over.
  grpc::Status Get(Response* out) {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
    *out = std::move(response);
    return status;
  }
};

// A reply's google.rpc.Status as the grpc::Status a direct call would end
// with: code, message and, when it has any, the details (a refusal's
// ErrorInfo) as gRPC carries them. A code gRPC does not define (a broken or
// hostile partner; the field is any int32) ends the call UNKNOWN, naming it:
// it is never cast to a grpc::StatusCode it is not.
grpc::Status FromRpcStatus(const google::rpc::Status& status, absl::string_view org_id) {
  const int32_t code = status.code();
  if (code == 0) return grpc::Status::OK;
  if (code < grpc::StatusCode::CANCELLED || code > grpc::StatusCode::UNAUTHENTICATED) {
    return grpc::Status(grpc::StatusCode::UNKNOWN,
                        absl::StrCat("call-home partner ", org_id, " replied with status code ",
                                     code, ", which gRPC does not define"));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(code), status.message(),
                      status.details_size() > 0 ? status.SerializeAsString() : "");
}

}  // namespace

CallHomeSession::CallHomeSession(std::string org_id, Sender send, std::function<void()> end_stream,
                                 absl::Time connected_at)
    : org_id_(std::move(org_id)),
      connected_at_(connected_at),
      send_(std::move(send)),
      end_stream_(std::move(end_stream)) {}

uint64_t CallHomeSession::Start(const v1::AggregateRequest& request, absl::Duration timeout,
                                AnswerCallback done) {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!closed_) {
      id = next_id_++;
      pending_[id] = std::move(done);
    }
  }
  if (id == 0) {
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      absl::StrCat("call-home partner ", org_id_, " is not connected")),
         {});
    return 0;
  }
  v1::CallHomeDown down;
  v1::CallHomeQuestion* question = down.mutable_question();
  question->set_question_id(id);
  *question->mutable_request() = request;
  const int64_t timeout_ms = absl::ToInt64Milliseconds(timeout);
  question->mutable_timeout()->set_seconds(timeout_ms / 1000);
  question->mutable_timeout()->set_nanos(static_cast<int32_t>(timeout_ms % 1000) * 1000000);
  if (!Send(down)) {
    AnswerCallback callback = Take(id);
    if (callback) {
      callback(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            absl::StrCat("the call-home stream of ", org_id_,
                                         " is broken or its partner is not reading")),
               {});
    }
  }
  return id;
}

CallHomeSession::AnswerCallback CallHomeSession::Take(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return nullptr;
  AnswerCallback callback = std::move(it->second);
  pending_.erase(it);
  pieces_.erase(id);
  return callback;
}

void CallHomeSession::Expire(uint64_t id, absl::string_view why) {
  AnswerCallback callback = Take(id);
  if (!callback) return;
  v1::CallHomeDown cancel;
  cancel.mutable_cancel()->set_question_id(id);
  Send(cancel);  // best effort: the partner also stops at its own deadline
  callback(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, std::string(why)), {});
}

grpc::Status CallHomeSession::Ask(const v1::AggregateRequest& request, absl::Duration timeout,
                                  v1::AggregateResponse* response) {
  using Result = Awaited<v1::AggregateResponse>;
  auto result = std::make_shared<Result>();
  const absl::Time deadline = absl::Now() + timeout;
  const uint64_t id = Start(request, timeout, Result::Into(result));
  if (!result->WaitUntil(deadline)) {
    Expire(id, absl::StrCat("call-home partner ", org_id_, " did not answer within ",
                            absl::FormatDuration(timeout)));
  }
  return result->Get(response);
}

grpc::Status CallHomeSession::Describe(absl::Duration timeout, v1::DescribeResponse* response) {
  using Result = Awaited<v1::DescribeResponse>;
  auto result = std::make_shared<Result>();
  const absl::Time deadline = absl::Now() + timeout;
  const uint64_t id = StartDescribe(Result::Into(result));
  if (!result->WaitUntil(deadline)) {
    ExpireDescribe(id,
                   absl::StrCat("call-home partner ", org_id_, " did not answer Describe within ",
                                absl::FormatDuration(timeout)));
  }
  return result->Get(response);
}

uint64_t CallHomeSession::StartDescribe(DescribeCallback done) {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!closed_) {
      id = next_id_++;
      describing_[id] = std::move(done);
    }
  }
  if (id == 0) {
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      absl::StrCat("call-home partner ", org_id_, " is not connected")),
         {});
    return 0;
  }
  v1::CallHomeDown down;
  down.mutable_describe()->set_request_id(id);
  if (!Send(down)) {
    if (DescribeCallback callback = TakeDescribe(id)) {
      callback(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            absl::StrCat("the call-home stream of ", org_id_,
                                         " is broken or its partner is not reading")),
               {});
    }
  }
  return id;
}

void CallHomeSession::ExpireDescribe(uint64_t id, absl::string_view why) {
  // Nothing is sent to the partner: describing is cheap and it answers one
  // at a time.
  if (DescribeCallback callback = TakeDescribe(id)) {
    callback(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, std::string(why)), {});
  }
}

CallHomeSession::DescribeCallback CallHomeSession::TakeDescribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = describing_.find(id);
  if (it == describing_.end()) return nullptr;
  DescribeCallback callback = std::move(it->second);
  describing_.erase(it);
  return callback;
}

void CallHomeSession::DeliverDescribed(v1::CallHomeDescribed described) {
  DescribeCallback callback = TakeDescribe(described.request_id());
  if (!callback) return;
  grpc::Status status = FromRpcStatus(described.status(), org_id_);
  callback(status, status.ok() ? std::move(*described.mutable_response()) : v1::DescribeResponse());
}

bool CallHomeSession::Send(const v1::CallHomeDown& down) {
  absl::MutexLock lock(&send_mu_);
  return send_ != nullptr && send_(down);
}

void CallHomeSession::Deliver(v1::CallHomeAnswer answer) {
  const uint64_t id = answer.question_id();
  std::string whole;  // an answer that came in pieces
  bool in_pieces = answer.more() || !answer.response_piece().empty();
  bool too_large = false;
  if (in_pieces) {
    absl::MutexLock lock(&mu_);
    if (pending_.find(id) == pending_.end()) return;  // expired: dropped
    std::string& so_far = pieces_[id];
    too_large = so_far.size() + answer.response_piece().size() > kMaxAnswerBytes;
    if (!too_large) {
      so_far += answer.response_piece();
      if (answer.more()) return;
      whole = std::move(so_far);
    }
  }
  AnswerCallback callback = Take(id);
  if (!callback) return;
  if (too_large) {
    callback(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     absl::StrCat("the answer of call-home partner ", org_id_, " is larger than ",
                                  kMaxAnswerBytes >> 20, " MiB, the most an answer may be")),
        {});
    return;
  }
  grpc::Status status = FromRpcStatus(answer.status(), org_id_);
  if (!status.ok() || !in_pieces) {
    callback(status, status.ok() ? std::move(*answer.mutable_response()) : v1::AggregateResponse());
    return;
  }
  v1::AggregateResponse response;
  if (!response.ParseFromString(whole)) {
    callback(grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("the answer of call-home partner ", org_id_,
                                       " came in pieces that do not make an answer")),
             {});
    return;
  }
  callback(status, std::move(response));
}

void CallHomeSession::Close(absl::string_view why) {
  std::map<uint64_t, AnswerCallback> ended;
  std::map<uint64_t, DescribeCallback> ended_describing;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    closed_why_ = std::string(why);
    std::function<void()> end_stream = std::move(end_stream_);
    ended.swap(pending_);
    ended_describing.swap(describing_);
    pieces_.clear();
    // Under mu_, so that a second Close (the stream's own reactor) returns
    // only after this one has ended the stream: the reactor finishes, and
    // its context goes, only after its own Close.
    if (end_stream) end_stream();
  }
  {
    absl::MutexLock lock(&send_mu_);
    send_ = nullptr;
  }
  const grpc::Status gone(
      grpc::StatusCode::UNAVAILABLE,
      absl::StrCat("the call-home stream of ", org_id_, " ended before the answer: ", why));
  for (auto& [id, callback] : ended) callback(gone, {});
  for (auto& [id, callback] : ended_describing) callback(gone, {});
}

bool CallHomeSession::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

void CallHomeHub::Attach(std::shared_ptr<CallHomeSession> session) {
  std::shared_ptr<CallHomeSession> replaced;
  std::string refused;  // why `session` is not put in force
  {
    absl::MutexLock lock(&mu_);
    if (!closed_why_.empty()) {
      refused = closed_why_;
    } else {
      std::shared_ptr<CallHomeSession>& slot = sessions_[session->org_id()];
      replaced = std::move(slot);
      slot = session;
      absl::Time& seen = last_seen_[session->org_id()];
      seen = std::max(seen, session->connected_at());
    }
  }
  if (!refused.empty()) {
    session->Close(refused);
    return;
  }
  if (replaced != nullptr) replaced->Close("replaced by a newer stream from the same partner");
}

void CallHomeHub::Detach(const CallHomeSession* session, absl::Time now) {
  absl::MutexLock lock(&mu_);
  // Even a replaced session's end is a sign of life: its org was connected
  // until then.
  absl::Time& seen = last_seen_[session->org_id()];
  seen = std::max(seen, now);
  auto it = sessions_.find(session->org_id());
  if (it != sessions_.end() && it->second.get() == session) sessions_.erase(it);
}

void CallHomeHub::CloseExcept(const absl::flat_hash_set<std::string>& keep, absl::string_view why) {
  std::vector<std::shared_ptr<CallHomeSession>> closing;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (keep.contains(it->first)) {
        ++it;
        continue;
      }
      closing.push_back(std::move(it->second));
      sessions_.erase(it++);
    }
  }
  for (const std::shared_ptr<CallHomeSession>& session : closing) session->Close(why);
}

void CallHomeHub::CloseAll(absl::string_view why) {
  absl::flat_hash_map<std::string, std::shared_ptr<CallHomeSession>> sessions;
  {
    absl::MutexLock lock(&mu_);
    closed_why_ = why.empty() ? "the node is shutting down" : std::string(why);
    sessions.swap(sessions_);
  }
  for (auto& [org, session] : sessions) session->Close(why);
}

absl::Time CallHomeHub::LastSeen(const std::string& org_id) const {
  absl::MutexLock lock(&mu_);
  auto it = last_seen_.find(org_id);
  return it == last_seen_.end() ? absl::InfinitePast() : it->second;
}

std::shared_ptr<CallHomeSession> CallHomeHub::Find(const std::string& org_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(org_id);
  if (it == sessions_.end() || it->second->closed()) return nullptr;
  return it->second;
}

}  // namespace fedshare::federation
