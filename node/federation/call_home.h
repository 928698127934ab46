// The foundation's side of call-home streams (DESIGN §10): partners behind
// NAT dial this node's peer listener and hold FederationService.Connect; the
// fan-out puts questions to them through the sessions kept here.
//
//   // In the Connect handler, once the partner is authenticated:
//   auto session = std::make_shared<CallHomeSession>(org, send, cancel_stream);
//   hub->Attach(session);
//   while (stream->Read(&up)) session->Deliver(up.answer());
//   hub->Detach(session.get());
//   session->Close("the stream ended");
//
//   // In the fan-out:
//   if (auto s = hub->Find("acme")) status = s->Ask(request, timeout, &response);
//
// Thread-safe.
#ifndef FEDSHARE_NODE_FEDERATION_CALL_HOME_H_
#define FEDSHARE_NODE_FEDERATION_CALL_HOME_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fedshare/v1/federation.pb.h"
#include "grpcpp/support/status.h"

namespace fedshare::federation {

// One partner's stream.
class CallHomeSession {
 public:
  // `send` writes one message down the stream and returns false once the
  // stream is broken; never called twice at once, nor after Close returns. `end_stream` makes the
  // stream's reader stop (the handler's ServerContext::TryCancel); called at most once, by Close.
  using Sender = std::function<bool(const v1::CallHomeDown&)>;
  CallHomeSession(std::string org_id, Sender send, std::function<void()> end_stream,
                  absl::Time connected_at);

  const std::string& org_id() const { return org_id_; }
  absl::Time connected_at() const { return connected_at_; }

  // Sends `request` down the stream and waits up to `timeout` for its answer:
  // the partner's status and, when OK, `*response`. UNAVAILABLE if the stream
  // is closed or breaks before the answer; DEADLINE_EXCEEDED after `timeout`,
  // when the partner is also told to stop (CallHomeCancel). Never re-sends a
  // question, so a partner never answers one twice.
  grpc::Status Ask(const v1::AggregateRequest& request, absl::Duration timeout,
                   v1::AggregateResponse* response);

  // Hands an answer read from the stream to the Ask waiting for it. An answer
  // nobody waits for any more (timed out) is dropped.
  void Deliver(v1::CallHomeAnswer answer);

  // The stream ended or was replaced: every waiting Ask ends UNAVAILABLE with
  // `why`, and later ones at once. Idempotent.
  void Close(absl::string_view why);
  bool closed() const;

 private:
  struct Pending {
    bool done = false;    // answered
    bool closed = false;  // the stream ended first
    v1::CallHomeAnswer answer;
    static bool Ready(Pending* p) { return p->done || p->closed; }
  };

  // Writes one message down the stream; false if it is closed or broken.
  bool Send(const v1::CallHomeDown& down) ABSL_LOCKS_EXCLUDED(mu_, send_mu_);

  const std::string org_id_;
  const absl::Time connected_at_;
  // Writes are serialized apart from mu_, so a slow write never holds up
  // answers being delivered.
  absl::Mutex send_mu_;
  Sender send_ ABSL_GUARDED_BY(send_mu_);
  mutable absl::Mutex mu_;
  std::function<void()> end_stream_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::string closed_why_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Pending*> pending_ ABSL_GUARDED_BY(mu_);
};

// The sessions in force, one per partner org.
class CallHomeHub {
 public:
  // Puts `session` in force for its org. An older session of the same org
  // (the partner reconnected before the old stream was noticed broken) is
  // closed.
  void Attach(std::shared_ptr<CallHomeSession> session);
  // Removes `session` if it is still the one in force for its org.
  void Detach(const CallHomeSession* session);
  // Closes every session (the node is shutting down), so their streams end
  // now rather than at the server's shutdown deadline.
  void CloseAll(absl::string_view why);
  // The session in force for `org_id`, or null when that partner is not
  // connected.
  std::shared_ptr<CallHomeSession> Find(const std::string& org_id) const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<CallHomeSession>> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedshare::federation

#endif  // FEDSHARE_NODE_FEDERATION_CALL_HOME_H_
