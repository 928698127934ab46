// The foundation's side of call-home streams (DESIGN §10): partners behind
// NAT dial this node's peer listener and hold FederationService.Connect; the
// fan-out puts questions to them through the sessions kept here.
//
//   // In the Connect reactor, once the partner is authenticated:
//   auto session = std::make_shared<CallHomeSession>(org, queue_write, cancel_stream);
//   hub->Attach(session);
//   // ... each answer read (OnReadDone): session->Deliver(up.answer());
//   // ... each describe reply: session->DeliverDescribed(up.described());
//   // ... when reading ends:
//   hub->Detach(session.get(), absl::Now());
//   session->Close("the stream ended");
//
//   // In the fan-out:
//   if (auto s = hub->Find("acme")) status = s->Ask(request, timeout, &response);
//   if (auto s = hub->Find("acme")) status = s->Describe(timeout, &described);
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
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fedshare/v1/federation.pb.h"
#include "grpcpp/support/status.h"

namespace fedshare::federation {

// One partner's stream.
class CallHomeSession {
 public:
  // `send` puts one message on its way down the stream without waiting for
  // the partner (the Connect reactor queues it) and returns false once the
  // stream is broken, or when it cannot take more because the partner does
  // not read; never called twice at once, nor after Close returns.
  // `end_stream` makes the stream's reader stop (the handler's
  // ServerContext::TryCancel); called at most once, by Close.
  using Sender = std::function<bool(const v1::CallHomeDown&)>;
  CallHomeSession(std::string org_id, Sender send, std::function<void()> end_stream,
                  absl::Time connected_at);

  const std::string& org_id() const { return org_id_; }
  absl::Time connected_at() const { return connected_at_; }

  // Called exactly once per question, on whichever thread ends it, with the
  // partner's status and, when OK, its response.
  using AnswerCallback = std::function<void(const grpc::Status&, v1::AggregateResponse)>;

  // Sends `request` down the stream as a question with `timeout` and returns
  // its id. `done` is called with the answer; UNAVAILABLE if the stream is
  // closed or breaks before the answer (possibly before Start returns); or
  // DEADLINE_EXCEEDED from Expire. Never re-sends a question, so a partner
  // never answers one twice.
  uint64_t Start(const v1::AggregateRequest& request, absl::Duration timeout, AnswerCallback done);
  // Gives up on question `id` if it is still waiting: the partner is told to
  // stop (CallHomeCancel) and its callback gets DEADLINE_EXCEEDED with `why`.
  void Expire(uint64_t id, absl::string_view why);

  // Start, then waits up to `timeout` for the answer (Expire after it).
  grpc::Status Ask(const v1::AggregateRequest& request, absl::Duration timeout,
                   v1::AggregateResponse* response);

  // Hands an answer read from the stream to its question's callback. An
  // answer nobody waits for any more (expired) is dropped. An answer in
  // pieces (CallHomeAnswer.response_piece) is kept until its last piece,
  // up to kMaxAnswerBytes in all; past that the question ends
  // RESOURCE_EXHAUSTED.
  void Deliver(v1::CallHomeAnswer answer);
  // The most an answer in pieces may add up to: what a direct call's
  // channel receives (gRPC's default, 4 MiB).
  static constexpr size_t kMaxAnswerBytes = size_t{4} << 20;

  // Sends a describe request down the stream and waits up to `timeout` for
  // the partner's reply: its status (a refusal keeps its code) and, when OK,
  // `*response`. UNAVAILABLE if the stream is closed, cannot take the
  // request, or ends first; DEADLINE_EXCEEDED after `timeout` (nothing is
  // sent to the partner: describing is cheap and it answers one at a time).
  grpc::Status Describe(absl::Duration timeout, v1::DescribeResponse* response);
  // Describe without waiting: sends the request and returns its id. `done`
  // is called exactly once: with the partner's reply, UNAVAILABLE as above
  // (possibly before StartDescribe returns), or DEADLINE_EXCEEDED from
  // ExpireDescribe.
  using DescribeCallback = std::function<void(const grpc::Status&, v1::DescribeResponse)>;
  uint64_t StartDescribe(DescribeCallback done);
  // Gives up on describe request `id` if it is still waiting: its callback
  // gets DEADLINE_EXCEEDED with `why`.
  void ExpireDescribe(uint64_t id, absl::string_view why);
  // Hands a describe reply read from the stream to the Describe waiting for
  // it; one nobody waits for any more is dropped.
  void DeliverDescribed(v1::CallHomeDescribed described);

  // The stream ended or was replaced: every waiting question and describe
  // request ends UNAVAILABLE with `why`, and later ones at once. Idempotent.
  void Close(absl::string_view why);
  bool closed() const;

 private:
  // Removes and returns question `id`'s callback; null if it has ended.
  AnswerCallback Take(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes and returns describe request `id`'s callback; null if it has ended.
  DescribeCallback TakeDescribe(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
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
  std::map<uint64_t, AnswerCallback> pending_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, DescribeCallback> describing_ ABSL_GUARDED_BY(mu_);
  // Per question answered in pieces: the pieces so far, in order.
  std::map<uint64_t, std::string> pieces_ ABSL_GUARDED_BY(mu_);
};

// The sessions in force, one per partner org.
class CallHomeHub {
 public:
  // Puts `session` in force for its org. An older session of the same org
  // (the partner reconnected before the old stream was noticed broken) is
  // closed. After CloseAll, `session` itself is closed at once: a stream
  // that arrives while the node stops must not hold the server until its
  // shutdown deadline.
  void Attach(std::shared_ptr<CallHomeSession> session);
  // Removes `session` if it is still the one in force for its org, and
  // notes `now` as when its org was last seen (its stream ended).
  void Detach(const CallHomeSession* session, absl::Time now);
  // Closes the sessions of every org not in `keep` (peers no longer
  // configured to call home, after a reload).
  void CloseExcept(const absl::flat_hash_set<std::string>& keep, absl::string_view why);
  // Closes every session, and every one attached later (the node is shutting
  // down), so their streams end now rather than at the server's shutdown
  // deadline.
  void CloseAll(absl::string_view why);
  // The session in force for `org_id`, or null when that partner is not
  // connected.
  std::shared_ptr<CallHomeSession> Find(const std::string& org_id) const;
  // When `org_id` was last seen: the latest of its streams' connections and
  // ends (Attach, Detach); absl::InfinitePast() if it never connected since
  // this hub was made.
  absl::Time LastSeen(const std::string& org_id) const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<CallHomeSession>> sessions_ ABSL_GUARDED_BY(mu_);
  // Only orgs that were allowed to connect (configured call-home peers).
  absl::flat_hash_map<std::string, absl::Time> last_seen_ ABSL_GUARDED_BY(mu_);
  std::string closed_why_ ABSL_GUARDED_BY(mu_);  // set by CloseAll
};

}  // namespace fedshare::federation

#endif  // FEDSHARE_NODE_FEDERATION_CALL_HOME_H_
