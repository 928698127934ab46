#include "node/federation/call_home.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace fedshare::federation {

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
  struct Result {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    grpc::Status status ABSL_GUARDED_BY(mu);
    v1::AggregateResponse response ABSL_GUARDED_BY(mu);
  };
  auto result = std::make_shared<Result>();
  const absl::Time deadline = absl::Now() + timeout;
  const uint64_t id =
      Start(request, timeout, [result](const grpc::Status& status, v1::AggregateResponse r) {
        absl::MutexLock lock(&result->mu);
        result->status = status;
        result->response = std::move(r);
        result->done = true;
      });
  {
    absl::MutexLock lock(&result->mu);
    if (!result->mu.AwaitWithDeadline(absl::Condition(&result->done), deadline)) {
      result->mu.Unlock();
      Expire(id, absl::StrCat("call-home partner ", org_id_, " did not answer within ",
                              absl::FormatDuration(timeout)));
      result->mu.Lock();
      result->mu.Await(absl::Condition(&result->done));
    }
  }
  absl::MutexLock lock(&result->mu);
  *response = std::move(result->response);
  return result->status;
}

bool CallHomeSession::Send(const v1::CallHomeDown& down) {
  absl::MutexLock lock(&send_mu_);
  return send_ != nullptr && send_(down);
}

void CallHomeSession::Deliver(v1::CallHomeAnswer answer) {
  AnswerCallback callback = Take(answer.question_id());
  if (!callback) return;
  const google::rpc::Status& status = answer.status();
  if (status.code() == 0) {
    callback(grpc::Status::OK, std::move(*answer.mutable_response()));
    return;
  }
  callback(grpc::Status(static_cast<grpc::StatusCode>(status.code()), status.message(),
                        status.details_size() > 0 ? status.SerializeAsString() : ""),
           {});
}

void CallHomeSession::Close(absl::string_view why) {
  std::map<uint64_t, AnswerCallback> ended;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    closed_why_ = std::string(why);
    std::function<void()> end_stream = std::move(end_stream_);
    ended.swap(pending_);
    // Under mu_, so that a second Close (the stream's own reactor) returns
    // only after this one has ended the stream: the reactor finishes, and
    // its context goes, only after its own Close.
    if (end_stream) end_stream();
  }
  {
    absl::MutexLock lock(&send_mu_);
    send_ = nullptr;
  }
  for (auto& [id, callback] : ended) {
    callback(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("the call-home stream of ", org_id_,
                                       " ended before the answer: ", why)),
             {});
  }
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
    }
  }
  if (!refused.empty()) {
    session->Close(refused);
    return;
  }
  if (replaced != nullptr) replaced->Close("replaced by a newer stream from the same partner");
}

void CallHomeHub::Detach(const CallHomeSession* session) {
  absl::MutexLock lock(&mu_);
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

std::shared_ptr<CallHomeSession> CallHomeHub::Find(const std::string& org_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(org_id);
  if (it == sessions_.end() || it->second->closed()) return nullptr;
  return it->second;
}

}  // namespace fedshare::federation
