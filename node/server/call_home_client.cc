#include "node/server/call_home_client.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "node/identity/authenticator.h"
#include "node/identity/channel.h"
#include "node/server/answer_workers.h"
#include "node/service/peer_service.h"
#include "spdlog/spdlog.h"

namespace fedshare::server {
namespace {

constexpr absl::Duration kInitialBackoff = absl::Milliseconds(250);
constexpr absl::Duration kDefaultMaxBackoff = absl::Seconds(30);
// The foundation's peer listener permits a ping every 10 s (node.cc).
constexpr int kKeepaliveTimeMs = 20000;
constexpr int kKeepaliveTimeoutMs = 10000;
constexpr absl::string_view kMethod = "FederationService.Connect";

// `status` as it goes up the stream.
void SetRpcStatus(const grpc::Status& status, google::rpc::Status* out) {
  if (!status.error_details().empty() && out->ParseFromString(status.error_details())) {
    return;  // ToGrpcStatus put code, message and the refusal there
  }
  out->set_code(static_cast<int32_t>(status.error_code()));
  out->set_message(status.error_message());
}

// The reply to describe request `id`: what PeerService.Describe would answer
// `foundation` calling directly.
v1::CallHomeUp DescribedFor(uint64_t id, const service::ServiceEnv& env,
                            const identity::Identity& foundation) {
  v1::CallHomeUp up;
  v1::CallHomeDescribed* described = up.mutable_described();
  described->set_request_id(id);
  v1::DescribeResponse response;
  grpc::Status status = service::AnswerPeerDescribe(env, kMethod, foundation, &response);
  SetRpcStatus(status, described->mutable_status());
  if (status.ok()) *described->mutable_response() = std::move(response);
  return up;
}

absl::Duration TimeoutOf(const v1::CallHomeQuestion& question) {
  return absl::Seconds(question.timeout().seconds()) +
         absl::Nanoseconds(question.timeout().nanos());
}

}  // namespace

size_t MaxMessageBytesFor(const v1::CallHomeHello& hello) {
  return hello.max_message_bytes() > 0
             ? std::max<size_t>(2 * kAnswerOverheadBytes, hello.max_message_bytes())
             : std::numeric_limits<size_t>::max();
}

std::vector<v1::CallHomeUp> AnswerOf(uint64_t id, const grpc::Status& status,
                                     v1::AggregateResponse response, size_t max_message_bytes) {
  std::vector<v1::CallHomeUp> ups(1);
  v1::CallHomeAnswer* answer = ups[0].mutable_answer();
  answer->set_question_id(id);
  SetRpcStatus(status, answer->mutable_status());
  if (!status.ok()) return ups;
  if (response.ByteSizeLong() + kAnswerOverheadBytes <= max_message_bytes) {
    *answer->mutable_response() = std::move(response);
    return ups;
  }
  const std::string whole = response.SerializeAsString();
  const size_t piece = max_message_bytes - kAnswerOverheadBytes;
  ups.clear();
  for (size_t at = 0; at < whole.size(); at += piece) {
    v1::CallHomeAnswer* part = ups.emplace_back().mutable_answer();
    part->set_question_id(id);
    part->set_response_piece(whole.substr(at, piece));
    part->set_more(at + piece < whole.size());
    if (!part->more()) SetRpcStatus(status, part->mutable_status());
  }
  return ups;
}

CallHomeClient::CallHomeClient(const v1::NodeConfig* config, v1::UpstreamConfig upstream,
                               const service::ServiceEnv* env)
    : config_(config),
      upstream_(std::move(upstream)),
      env_(env),
      max_backoff_(config->call_home_max_backoff_ms() > 0
                       ? absl::Milliseconds(config->call_home_max_backoff_ms())
                       : kDefaultMaxBackoff) {}

CallHomeClient::~CallHomeClient() { Stop(); }

void CallHomeClient::Start() {
  thread_ = std::thread([this] { Run(); });
}

void CallHomeClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (current_ != nullptr) current_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool CallHomeClient::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

void CallHomeClient::Run() {
  absl::Duration backoff = kInitialBackoff;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (ServeOnce()) backoff = kInitialBackoff;
    // Full jitter over the upper half, so partners cut off together (a
    // foundation restart) do not all come back at the same instant.
    const absl::Duration wait = backoff / 2 + absl::Uniform(bitgen_, 0.0, 1.0) * (backoff / 2);
    backoff = std::min(backoff * 2, max_backoff_);
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
  }
}

bool CallHomeClient::ServeOnce() {
  identity::ClientTlsFiles files;
  files.cert_file = config_->tls().cert_file();
  files.key_file = config_->tls().key_file();
  files.ca_file = config_->tls().ca_file();
  identity::ServerExpectation expect;
  expect.trust_domain = config_->trust_domain();
  expect.org_id = upstream_.org_id();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // A channel of its own each attempt, so gRPC's own reconnect backoff (shared
  // through the global subchannel pool) does not add to ours.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      identity::MakeChannel(upstream_.address(), files, expect, args);
  if (!channel.ok()) {
    spdlog::warn("event=call_home_failed upstream={} address={} reason=\"{}\"", upstream_.org_id(),
                 upstream_.address(), std::string(channel.status().message()));
    return false;
  }
  std::unique_ptr<v1::FederationService::Stub> stub = v1::FederationService::NewStub(*channel);
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    current_ = &context;
  }
  std::unique_ptr<grpc::ClientReaderWriter<v1::CallHomeUp, v1::CallHomeDown>> stream =
      stub->Connect(&context);
  v1::CallHomeDown down;
  bool accepted = stream->Read(&down) && down.has_hello();
  // The largest message the foundation takes; larger answers go in pieces.
  const size_t max_message_bytes = MaxMessageBytesFor(down.hello());
  std::string refused;  // why this node refused the foundation
  absl::StatusOr<identity::Identity> foundation =
      absl::UnavailableError("the foundation did not accept the stream");
  if (accepted) {
    // The handshake checked the foundation's certificate against `expect`;
    // this is the same Identity a direct call from it would be given.
    foundation = env_->authenticator->Authenticate(*context.auth_context());
    if (foundation.ok() &&
        (foundation->role != identity::Role::kNode || foundation->org_id != upstream_.org_id())) {
      foundation =
          absl::PermissionDeniedError(absl::StrCat("the upstream is ", foundation->Describe(),
                                                   ", not the node of org ", upstream_.org_id()));
    }
    accepted = foundation.ok();
    if (!accepted) {
      refused = std::string(foundation.status().message());
      context.TryCancel();
    }
  }
  if (accepted) {
    absl::MutexLock lock(&mu_);
    connected_ = true;
    spdlog::info("event=call_home_connected upstream={} address={}", upstream_.org_id(),
                 upstream_.address());
  }

  // Questions in flight, on at most limits.max_calls_per_caller answering
  // threads: as HTTP/2 lets a direct caller have that many calls open
  // (GRPC_ARG_MAX_CONCURRENT_STREAMS), past it the next question waits,
  // unread, until one ends. So a foundation that sends questions and never
  // reads the answers cannot make this node start a thread per question.
  absl::Mutex write_mu;  // before the workers, which write under it
  AnswerWorkers workers(env_->limits.max_calls_per_caller(), kAnswerThreadName);
  while (accepted && stream->Read(&down)) {
    if (down.has_cancel()) {
      workers.Cancel(down.cancel().question_id());
      continue;
    }
    if (down.has_describe()) {
      // Answered here, on the reading thread: describing is cheap and reads
      // no data, and the next message is read only once this reply is
      // written, so a foundation cannot queue up describe work on this node.
      v1::CallHomeUp up = DescribedFor(down.describe().request_id(), *env_, *foundation);
      absl::MutexLock lock(&write_mu);
      stream->Write(up);
      continue;
    }
    if (!down.has_question()) continue;
    // From when it is read: waiting for room spends the question's time.
    const absl::Time deadline = absl::Now() + TimeoutOf(down.question());
    if (!workers.AwaitRoom([this] {
          absl::MutexLock lock(&mu_);
          return stopping_;
        })) {
      break;
    }
    const uint64_t id = down.question().question_id();
    workers.Add(id, [this, &stream, &write_mu, max_message_bytes, who = *foundation, deadline,
                     question =
                         std::move(*down.mutable_question())](const std::atomic<bool>& cancelled) {
      v1::AggregateResponse response;
      grpc::Status status = service::AnswerPeerAggregate(
          *env_, kMethod, who, question.request(), deadline,
          [&cancelled] { return cancelled.load(); }, &response);
      std::vector<v1::CallHomeUp> ups =
          AnswerOf(question.question_id(), status, std::move(response), max_message_bytes);
      // An answer's pieces go up together, in order.
      absl::MutexLock lock(&write_mu);
      for (const v1::CallHomeUp& up : ups) {
        if (!stream->Write(up)) break;
      }
    });
  }
  workers.CancelAllAndJoin();
  {
    absl::MutexLock lock(&mu_);
    current_ = nullptr;
    connected_ = false;
  }
  grpc::Status finished = stream->Finish();
  const std::string why = refused.empty() ? finished.error_message() : refused;
  spdlog::info("event=call_home_{} upstream={} address={} code={} reason=\"{}\"",
               accepted ? "disconnected" : "failed", upstream_.org_id(), upstream_.address(),
               static_cast<int>(finished.error_code()), why);
  return accepted;
}

}  // namespace fedshare::server
