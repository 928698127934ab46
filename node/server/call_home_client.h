// The partner's side of call-home (DESIGN §10): for one configured upstream
// foundation, dials its peer listener with this node's certificate, holds
// FederationService.Connect, and answers the questions that come down the
// stream through the same path as a direct PeerService.Aggregate call from
// that foundation's node (service::AnswerPeerAggregate): the asking org is
// the foundation as its TLS certificate says, under this node's agreements,
// audit, disclosure control and receipts. Describe requests are answered
// as PeerService.Describe answers that node (service::AnswerPeerDescribe),
// one at a time on the stream's reading thread.
//
// Reconnects by itself whenever the stream ends or cannot be opened, after a
// jittered exponential backoff (250 ms doubling up to max_backoff; back to the
// start after a stream that was accepted). HTTP/2 keepalive pings find a
// silent foundation within about 30 s. A question stops when the foundation
// cancels it, when its timeout passes, or when the stream ends.
//
//   auto client = std::make_unique<CallHomeClient>(&config, upstream, &env);
//   client->Start();
//   ...
//   client->Stop();   // before env's objects go away
//
// Thread-safe. `config` and `env` must outlive the client.
#ifndef FEDSHARE_NODE_SERVER_CALL_HOME_CLIENT_H_
#define FEDSHARE_NODE_SERVER_CALL_HOME_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fedshare/v1/config.pb.h"
#include "fedshare/v1/federation.pb.h"
#include "node/service/service_env.h"

namespace grpc {
class ClientContext;
class Status;
}

namespace fedshare::server {

// The name of the thread each question runs on (at most
// limits.max_calls_per_caller of them per upstream at once).
inline constexpr char kAnswerThreadName[] = "callhome-answer";

// Room in a message for what surrounds an answer's piece (ids, status,
// framing).
inline constexpr size_t kAnswerOverheadBytes = 1024;

// The largest message to send up a stream whose foundation said `hello`:
// its max_message_bytes, at least 2 x kAnswerOverheadBytes; unbounded when it
// does not say (an earlier build, which cannot put pieces back together: its
// answers go whole, as they did).
size_t MaxMessageBytesFor(const v1::CallHomeHello& hello);

// What to send up for question `id` that ended with `status`: one message,
// or, for an answer whose message would pass `max_message_bytes`, its
// serialized bytes in pieces, in order, each message within the bound, the
// last with more = false and the status. tests/fuzz/call_home_answer_fuzz.cc
// checks this against any answer and bound.
std::vector<v1::CallHomeUp> AnswerOf(uint64_t id, const grpc::Status& status,
                                     v1::AggregateResponse response, size_t max_message_bytes);

class CallHomeClient {
 public:
  CallHomeClient(const v1::NodeConfig* config, v1::UpstreamConfig upstream,
                 const service::ServiceEnv* env);
  ~CallHomeClient();  // Stop()

  // Starts the connecting thread. Called once.
  void Start();
  // Ends the stream and the thread; questions in flight are cancelled.
  // Idempotent.
  void Stop();

  // Whether the foundation has accepted the stream and it is still up.
  bool connected() const;

 private:
  // Runs one stream until it ends. Returns whether the foundation accepted it.
  bool ServeOnce();
  void Run();

  const v1::NodeConfig* config_;
  const v1::UpstreamConfig upstream_;
  const service::ServiceEnv* env_;
  const absl::Duration max_backoff_;
  absl::BitGen bitgen_;  // jitter only
  std::thread thread_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* current_ ABSL_GUARDED_BY(mu_) = nullptr;  // the stream's, to cancel it
};

}  // namespace fedshare::server

#endif  // FEDSHARE_NODE_SERVER_CALL_HOME_CLIENT_H_
