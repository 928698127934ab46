// Issue 13: what a call-home partner's upstream can make it do is bounded.
// The upstream here is hostile: it sends a flood of questions down the
// stream and does not read the answers for a while. The partner is a real
// node (in this process, so its threads are this process's); the upstream is
// a gRPC server of this test speaking FederationService.Connect with the
// foundation's node certificate, as a compromised foundation would.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/identity/server_credentials.h"
#include "node/server/call_home_client.h"
#include "node/server/node.h"
#include "query/sql.h"
#include "testing/poll.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;

constexpr char kTrustDomain[] = "fedshare.test";

// The threads of this process, as samples taken now and then, that were
// question threads (named `name`) when sampled. A thread another starts
// carries its starter's name until it names itself: gRPC's own threads,
// started from a question thread while it writes its answer, show the
// question threads' name for a moment, so a thread seen under another name
// after it was seen under `name` is not counted in any sample. (A question
// thread itself shows its starter's name before it names itself.)
class ThreadSamples {
 public:
  explicit ThreadSamples(std::string name) : name_(std::move(name)) {}

  void Take() {
    std::set<std::string> named;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      absl::StatusOr<std::string> comm = ReadFile((task.path() / "comm").string());
      if (!comm.ok()) continue;  // it ended
      const std::string tid = task.path().filename().string();
      if (*comm == name_ + "\n") {
        named.insert(tid);
        ever_named_.insert(tid);
      } else if (ever_named_.count(tid) != 0) {
        other_.insert(tid);
      }
    }
    samples_.push_back(std::move(named));
  }

  // The most question threads in one sample.
  int Most() const {
    size_t most = 0;
    for (const std::set<std::string>& sample : samples_) {
      size_t n = 0;
      for (const std::string& tid : sample) n += other_.count(tid) == 0;
      most = std::max(most, n);
    }
    return static_cast<int>(most);
  }

  // How many question threads were seen in all.
  int Distinct() const {
    std::set<std::string> all;
    for (const std::set<std::string>& sample : samples_) {
      for (const std::string& tid : sample) {
        if (other_.count(tid) == 0) all.insert(tid);
      }
    }
    return static_cast<int>(all.size());
  }

 private:
  const std::string name_;
  std::vector<std::set<std::string>> samples_;
  std::set<std::string> ever_named_;  // seen under `name_`
  std::set<std::string> other_;       // and later under another name
};

// Accepts the partner's stream, sends `questions` questions at once from a
// writer thread, and reads no answer until Drain(); then reads them all.
class FloodingUpstream final : public v1::FederationService::Service {
 public:
  explicit FloodingUpstream(int questions) : questions_(questions) {
    query_ = *ParseSql(
        "SELECT program, COUNT(*) FROM program_outcomes GROUP BY program "
        "PURPOSE 'program-evaluation'");
  }

  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::CallHomeDown, v1::CallHomeUp>* stream) override {
    v1::CallHomeDown hello;
    hello.mutable_hello()->set_org_id("foundation");
    if (!stream->Write(hello)) return grpc::Status::CANCELLED;
    // Reads and writes of a synchronous stream may run on two threads.
    std::thread writer([this, stream] {
      for (int i = 1; i <= questions_; ++i) {
        v1::CallHomeDown down;
        down.mutable_question()->set_question_id(i);
        *down.mutable_question()->mutable_request()->mutable_query() = query_;
        down.mutable_question()->mutable_timeout()->set_seconds(60);
        if (!stream->Write(down)) return;
        written_.fetch_add(1);
      }
    });
    while (!drain_.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
      if (context->IsCancelled()) break;
    }
    v1::CallHomeUp up;
    while (answers_.load() < questions_ && stream->Read(&up)) {
      if (up.has_answer()) answers_.fetch_add(1);
    }
    context->TryCancel();  // the writer's blocked Write, if any, ends
    writer.join();
    return grpc::Status::OK;
  }

  void Drain() { drain_.Notify(); }
  int written() const { return written_.load(); }
  int answers() const { return answers_.load(); }

 private:
  const int questions_;
  v1::AggregateQuery query_;
  absl::Notification drain_;
  std::atomic<int> written_{0};
  std::atomic<int> answers_{0};
};

TEST(CallHomeFloodTest, UpstreamThatDoesNotReadCannotMakeAThreadPerQuestion) {
  constexpr int kQuestions = 1000;
  TempDir tmp("call_home_flood");
  Pki pki(tmp.Sub("pki"), kTrustDomain);

  v1::NodeConfig upstream_config = BaseNodeConfig("foundation", kTrustDomain, tmp.Sub("upstream"),
                                                  pki.Issue("foundation", Role::kNode));
  FloodingUpstream upstream(kQuestions);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", identity::MakeServerCredentials(upstream_config.tls()),
                           &port);
  builder.RegisterService(&upstream);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  // The partner's question threads, at most at once.
  std::atomic<bool> sampling{true};
  ThreadSamples threads(server::kAnswerThreadName);
  std::thread sampler([&] {
    while (sampling.load()) {
      threads.Take();
      absl::SleepFor(absl::Milliseconds(5));  // sampling interval, not synchronization
    }
    threads.Take();  // names given since the last sample
  });

  // The partner has no agreement with the foundation: each question is
  // refused at once, and each refusal must still be written up the stream.
  v1::NodeConfig partner_config = BaseNodeConfig("partner-1", kTrustDomain, tmp.Sub("partner"),
                                                 pki.Issue("partner-1", Role::kNode));
  *partner_config.add_datasets() = ProgramOutcomesSchema();
  v1::UpstreamConfig* up = partner_config.add_upstreams();
  up->set_org_id("foundation");
  up->set_address(absl::StrCat("127.0.0.1:", port));
  absl::StatusOr<std::unique_ptr<server::Node>> partner =
      server::Node::Create(partner_config, server::NodeOptions());
  ASSERT_OK(partner.status());

  // While the upstream reads nothing: every question written (an unbounded
  // partner reads them all and starts a thread each), or the partner
  // stopped reading them.
  PollUntil([&] { return upstream.written() == kQuestions; }, absl::Seconds(5));
  const int written_unread = upstream.written();
  upstream.Drain();
  EXPECT_TRUE(PollUntil([&] { return upstream.answers() == kQuestions; }, absl::Seconds(120)))
      << upstream.answers() << " of " << kQuestions << " questions answered";
  sampling.store(false);
  sampler.join();
  const int most = threads.Most();
  const int distinct = threads.Distinct();
  partner->reset();
  server->Shutdown();

  // At most limits.max_calls_per_caller (4) questions run at once, each on
  // a thread; the rest wait, unread, and none is lost.
  EXPECT_GT(most, 0) << "no question thread was seen";
  EXPECT_LE(most, 4) << "question threads at once: " << most
                     << "; questions written before the upstream read any answer: "
                     << written_unread;
  // And those threads answer question after question: the partner does not
  // start one per question.
  EXPECT_LE(distinct, 4) << "question threads seen in all";
}

}  // namespace
}  // namespace fedshare::testing
