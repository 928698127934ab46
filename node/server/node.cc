#include "node/server/node.h"

#include <malloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "node/audit/audit_log.h"
#include "node/audit/peer_checkpoints.h"
#include "node/common/status_macros.h"
#include "node/common/wire_limits.h"
#include "node/engine/answerer.h"
#include "node/engine/engine.h"
#include "node/engine/question_memory.h"
#include "node/federation/call_home.h"
#include "node/federation/fanout.h"
#include "node/identity/authenticator.h"
#include "node/identity/server_credentials.h"
#include "node/identity/spiffe.h"
#include "node/identity/tls_mirror.h"
#include "node/metrics/http_server.h"
#include "node/metrics/metrics.h"
#include "node/server/call_home_client.h"
#include "node/server/config.h"
#include "node/server/listener.h"
#include "node/server/node_metrics.h"
#include "node/server/reload.h"
#include "node/service/admin_service.h"
#include "node/service/federation_service.h"
#include "node/service/lifecycle.h"
#include "node/service/limits.h"
#include "node/service/peer_service.h"
#include "node/service/service_env.h"
#include "node/service/unparsable_request.h"
#include "node/storage/storage.h"
#include "policy/agreement.h"
#include "policy/purpose_tree.h"
#include "spdlog/spdlog.h"

namespace fedshare::server {
namespace {

std::string HostOf(const std::string& address) { return address.substr(0, address.rfind(':')); }

// `name` labels the listener ("peer" or "local") in its resource quota and logs.
absl::Status StartServer(const std::string& name, const std::string& address,
                         const v1::TlsConfig& tls, const v1::Limits& limits, int max_message_bytes,
                         const std::vector<grpc::Service*>& services,
                         std::unique_ptr<Listener>* listener,
                         std::unique_ptr<grpc::Server>* server) {
  Listener::Options listener_options;
  listener_options.name = name;
  listener_options.max_connections = limits.max_connections();
  FEDSHARE_ASSIGN_OR_RETURN(*listener, Listener::Bind(address, listener_options));
  grpc::ServerBuilder builder;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor =
      builder.experimental().AddExternalConnectionAcceptor(
          grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
          identity::MakeServerCredentials(tls));
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(kMaxReplyBytes);
  // Memory and threads for calls in flight are bounded per listener, so one
  // listener's flood cannot starve the other.
  grpc::ResourceQuota quota(absl::StrCat("fedshare-", name));
  quota.Resize(static_cast<size_t>(limits.memory_budget_bytes()));
  quota.SetMaxThreads(limits.max_threads());
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, limits.handshake_timeout_ms());
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, limits.idle_timeout_ms());
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_calls_per_caller());
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // Call-home partners ping every 20 s to keep NAT mappings and find a dead
  // link (call_home_client.cc); pings closer than 10 s still count as abuse.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  for (grpc::Service* s : services) builder.RegisterService(s);
  builder.experimental().SetInterceptorCreators(service::UnparsableRequestInterceptors());
  *server = builder.BuildAndStart();
  if (*server == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve on ", address));
  }
  (*listener)->Start(std::move(acceptor));
  return absl::OkStatus();
}

// One audit entry for a throttled storm (node/service/limits.h), with the
// rule and reason `names` give.
void AuditStorm(audit::AuditLog* audit, const service::StormThrottle::Names& names,
                const std::string& caller, int64_t throttled, absl::Time from, absl::Time to) {
  v1::AuditEntry entry;
  entry.set_caller(caller);
  entry.set_method("PeerService.Aggregate");
  entry.set_decision(v1::AuditEntry::REFUSED);
  entry.set_rule(names.storm_rule);
  entry.set_reason(absl::StrCat(throttled, " questions turned away between ",
                                absl::FormatTime(from), " and ", absl::FormatTime(to),
                                " after too many ", names.after));
  absl::StatusOr<audit::AuditLog::Appended> appended = audit->Append(std::move(entry));
  spdlog::warn("event=refusal_storm rule={} caller={} throttled={} audited={}", names.storm_rule,
               caller, throttled, appended.ok());
}

// Drops the server builder plugins (server reflection) from a builder, so a
// plaintext listener serves only what is registered on it.
class NoPluginsOption : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

// Answers every method not registered on a server UNIMPLEMENTED, saying why.
class RefuseOtherMethods : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Refusal : public grpc::ServerGenericBidiReactor {
     public:
      Refusal() {
        Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                            "this plaintext listener serves only grpc.health.v1.Health; data and "
                            "admin calls go to the mTLS listeners"));
      }
      void OnDone() override { delete this; }
    };
    return new Refusal();
  }
};

}  // namespace

// The optional plaintext probe listener: grpc.health.v1.Health and nothing
// else (no data or admin service, no reflection).
absl::StatusOr<std::unique_ptr<grpc::Server>> Node::StartHealthServer(const std::string& address,
                                                                      int* port) {
  health_fallback_ = std::make_unique<RefuseOtherMethods>();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), port);
  builder.SetOption(std::make_unique<NoPluginsOption>());
  builder.RegisterCallbackGenericService(health_fallback_.get());
  builder.SetMaxReceiveMessageSize(4 << 10);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address,
                                               " (health_address): the address is in use or "
                                               "not local to this machine"));
  }
  return server;
}

void TuneMallocForQuestions(const v1::Limits& limits) {
  // The buffers a question's scan grows and drops (each cell's subjects and
  // contributions), kept for the next question up to one question's budget:
  // at 10M records Q1's are about 100 MiB, and kept only up to 64 MiB they
  // were grown again by every question (Q1 on 2 threads 128.9-136.0 ms,
  // 120.3-122.0 with them kept). Those are within what the questions at
  // once may hold, and what malloc is told to keep below.
  engine::SpareBuffers::Get().SetMaxBytes(
      static_cast<size_t>(std::max<int64_t>(0, limits.query_memory_budget_bytes())));
#ifdef M_ARENA_MAX
  // glibc gives each thread that allocates its own malloc arena (up to 8 per
  // core) and keeps what a question freed there for that thread. Answered on
  // whichever gRPC thread took the call, questions would each leave their
  // peak in an arena of their own (16 callers: 2.4x the RSS of one, measured).
  // As many arenas as questions answered at once reuse one another's memory.
  const int questions = std::max(2, limits.scan_threads());
  mallopt(M_ARENA_MAX, questions);
  // A question's state (each cell's subjects and contributions: tens of MB
  // at 10M records) is freed when it is answered. By default glibc returns
  // freed memory at the top of a heap beyond twice the largest chunk freed
  // (at most 64 MiB) and maps chunks over that size on their own, so the next
  // question faults every page in again, on every scan thread at once: Q1 at
  // 10M records on 2 threads took 198-279 ms, 130-147 ms with memory kept.
  // What the questions may hold at once stays, within the node's budget.
  const int64_t keep = int64_t{questions} * limits.query_memory_budget_bytes();
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest glibc takes
  mallopt(M_TRIM_THRESHOLD,
          static_cast<int>(std::clamp<int64_t>(keep, 64 << 20, std::numeric_limits<int>::max())));
#else
  (void)limits;
#endif
}

absl::StatusOr<std::unique_ptr<Node>> Node::Create(const v1::NodeConfig& config,
                                                   NodeOptions options) {
  std::unique_ptr<Node> node(new Node());
  node->config_ = config;
  node->clock_ = options.clock != nullptr ? options.clock : Clock::Real();
  const v1::NodeConfig& cfg = node->config_;
  // Before the store and the servers start their threads.
  TuneMallocForQuestions(service::EffectiveLimits(cfg.limits()));

  // gRPC reports unreadable or mismatched TLS files only as failed handshakes;
  // refuse to start instead.
  FEDSHARE_RETURN_IF_ERROR(identity::CheckServerTlsConfig(cfg.tls()));
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<std::string> cert_warnings,
                            identity::CheckOwnCertificate(cfg.tls(), cfg.trust_domain(),
                                                          cfg.org_id(), node->clock_->Now()));
  for (const std::string& w : cert_warnings) {
    spdlog::warn("event=certificate_expiring message=\"{}\"",
                 absl::StrReplaceAll(w, {{"\\", "\\\\"}, {"\"", "\\\""}}));
  }
  storage::StorageOptions storage_options;
  storage_options.fault_injector = options.fault_injector;
  if (cfg.storage().disk_reserve_bytes() > 0) {
    storage_options.disk_reserve_bytes = cfg.storage().disk_reserve_bytes();
  }
  storage_options.block_cache_bytes = cfg.storage().block_cache_bytes() > 0
                                          ? cfg.storage().block_cache_bytes()
                                          : storage::kDefaultBlockCacheBytes;
  FEDSHARE_ASSIGN_OR_RETURN(storage_options.encryption_key, LoadStorageKey(cfg));
  FEDSHARE_ASSIGN_OR_RETURN(node->storage_,
                            storage::Storage::Create(cfg.data_dir(), storage_options));
  FEDSHARE_ASSIGN_OR_RETURN(
      node->audit_, audit::AuditLog::Open(node->storage_.get(), node->clock_, cfg.org_id()));
  if (absl::Status health = node->audit_->health(); !health.ok()) {
    // Fail closed: every question fails until the store is restored; the
    // node still serves `fedshare status` and `audit show` to say why.
    spdlog::error("event=audit_log_broken entries={} error=\"{}\" action=\"answering nothing\"",
                  node->audit_->size(), std::string(health.message()));
  }

  std::vector<v1::DatasetSchema> schemas(cfg.datasets().begin(), cfg.datasets().end());
  FEDSHARE_ASSIGN_OR_RETURN(policy::AgreementSet agreement_set, LoadAgreements(cfg));
  {
    absl::MutexLock lock(&node->mu_);  // the reloader thread starts below
    node->agreements_stamp_ = FileStamp(cfg.agreements_file());
    node->agreements_source_ = cfg;
  }

  engine::EngineOptions engine_options;
  engine_options.org_id = cfg.org_id();
  engine_options.purposes.assign(cfg.purposes().begin(), cfg.purposes().end());
  engine_options.datasets = schemas;
  engine_options.clock = node->clock_;
  const v1::Limits limits = service::EffectiveLimits(cfg.limits());
  engine_options.scan_threads = limits.scan_threads();
  engine_options.query_memory_budget_bytes = limits.query_memory_budget_bytes();
  engine_options.max_answer_cells = limits.max_answer_cells();
  FEDSHARE_ASSIGN_OR_RETURN(
      node->engine_, engine::Engine::Create(node->storage_.get(), std::move(engine_options)));
  node->answerer_ = std::make_unique<engine::Answerer>(
      cfg.org_id(), node->engine_.get(), node->audit_.get(), node->storage_.get(),
      std::make_shared<const policy::AgreementSet>(std::move(agreement_set)), schemas,
      node->clock_);
  if (cfg.max_concurrent_questions() > 0) {
    node->answerer_->set_max_concurrent(cfg.max_concurrent_questions());
  }
  // As many questions at once as the scan pool has threads; the rest wait.
  node->answerer_->set_answer_slots(limits.scan_threads());
  node->answerer_->set_share_scans(!limits.unshared_scans());
  node->call_home_hub_ = std::make_unique<federation::CallHomeHub>();
  node->fanout_ = std::make_unique<federation::FanOut>(&node->config_, node->audit_.get(),
                                                       node->call_home_hub_.get());
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<v1::PeerConfig> roster, LoadPeers(cfg));
  node->fanout_->SetPeers(std::move(roster));
  {
    absl::MutexLock lock(&node->mu_);  // the reloader thread starts below
    node->peers_stamp_ = FileStamp(cfg.peers_file());
    node->peers_source_ = cfg;
  }
  if (!cfg.agreements_file().empty() || !cfg.peers_file().empty()) {
    node->reloader_ = std::thread([n = node.get()] { n->WatchFiles(); });
  }
  node->peer_checkpoints_ = std::make_unique<audit::PeerCheckpoints>(node->storage_.get());
  node->fanout_->SetPeerCheckpoints(node->peer_checkpoints_.get());
  node->fanout_->SetAnswerBudget(limits.federated_answer_budget_bytes());
  FEDSHARE_ASSIGN_OR_RETURN(node->authenticator_,
                            identity::Authenticator::Create(
                                cfg.tls().ca_file(), cfg.trust_domain(),
                                absl::Seconds(cfg.tls().reload_interval_seconds()), node->clock_));

  node->env_ = std::make_unique<service::ServiceEnv>();
  service::ServiceEnv& env = *node->env_;
  env.config = &node->config_;
  env.authenticator = node->authenticator_.get();
  env.engine = node->engine_.get();
  env.storage = node->storage_.get();
  env.answerer = node->answerer_.get();
  env.audit = node->audit_.get();
  env.fanout = node->fanout_.get();
  env.call_home_hub = node->call_home_hub_.get();
  env.started_at = node->clock_->Now();
  env.clock = node->clock_;
  node->metrics_ = std::make_unique<metrics::Metrics>();
  InstallNodeMetrics(node->metrics_.get(), &node->config_, node->audit_.get(), node->fanout_.get(),
                     &env, node->storage_.get(), node->clock_);
  env.status_metrics = [m = node->metrics_.get()] { return SummarizeNodeMetrics(m); };
  env.reload_warnings = [n = node.get()] { return n->ReloadWarnings(); };
  env.limits = service::EffectiveLimits(cfg.limits());
  node->call_gate_ = std::make_unique<service::CallGate>(env.limits.max_calls_per_caller());
  // Each audits its storms as one entry.
  auto throttle = [audit = node->audit_.get()](const service::StormThrottle::Names& names,
                                               int limit, int window_seconds) {
    return std::make_unique<service::StormThrottle>(
        names, limit, absl::Seconds(window_seconds),
        [audit, names](const std::string& caller, int64_t throttled, absl::Time from,
                       absl::Time to) { AuditStorm(audit, names, caller, throttled, from, to); });
  };
  node->refusal_throttle_ =
      throttle(service::StormThrottle::Refusals(), env.limits.refusals_per_window(),
               env.limits.refusal_window_seconds());
  node->dry_run_throttle_ =
      throttle(service::StormThrottle::DryRuns(), env.limits.dry_runs_per_window(),
               env.limits.dry_run_window_seconds());
  env.call_gate = node->call_gate_.get();
  env.refusal_throttle = node->refusal_throttle_.get();
  env.dry_run_throttle = node->dry_run_throttle_.get();
  // Records past retention go before the node serves, so a node that was
  // down never answers over them; then the schedule takes over.
  bool retention = false;
  for (const v1::DatasetSchema& d : cfg.datasets()) retention = retention || d.retention_days() > 0;
  if (retention) node->PurgeExpiredRecords();
  node->admin_service_ = std::make_unique<service::AdminServiceImpl>(&env);
  node->peer_service_ = std::make_unique<service::PeerServiceImpl>(&env);
  node->federation_service_ = std::make_unique<service::FederationServiceImpl>(&env);
  node->federation_peer_service_ = std::make_unique<service::FederationPeerServiceImpl>(&env);

  // gRPC watches validated copies, so bad files on disk never replace good
  // ones. They live in $TMPDIR (a tmpfs where the deployment gives one), not
  // in the data_dir: the key copy stays out of the store's volume and its
  // snapshots; what a killed node left there the next start removes.
  FEDSHARE_ASSIGN_OR_RETURN(
      node->tls_mirror_,
      identity::TlsMirror::Create(cfg.tls(), cfg.trust_domain(), cfg.org_id(), Clock::Real()));
  // The mirror changes only when it has checked a new set (its timer, or
  // Reload at SIGHUP), so gRPC may watch it closely: new connections get a
  // reloaded certificate within a second.
  v1::TlsConfig tls = node->tls_mirror_->mirrored();
  tls.set_reload_interval_seconds(1);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  if (!cfg.disable_peer_listener()) {
    FEDSHARE_RETURN_IF_ERROR(StartServer(
        "peer", cfg.peer_address(), tls, env.limits, env.limits.peer_max_message_bytes(),
        {node->peer_service_.get(), node->federation_peer_service_.get()}, &node->peer_listener_,
        &node->peer_server_));
  }
  FEDSHARE_RETURN_IF_ERROR(StartServer(
      "local", cfg.local_address(), tls, env.limits, env.limits.local_max_message_bytes(),
      {node->admin_service_.get(), node->federation_service_.get()}, &node->local_listener_,
      &node->local_server_));
  node->peer_port_ = node->peer_listener_ != nullptr ? node->peer_listener_->port() : 0;
  node->local_port_ = node->local_listener_->port();
  {
    absl::MutexLock lock(&env.addresses_mu);
    env.peer_address = node->peer_address();
    env.local_address = node->local_address();
  }
  if (!cfg.health_address().empty()) {
    FEDSHARE_ASSIGN_OR_RETURN(node->health_server_,
                              node->StartHealthServer(cfg.health_address(), &node->health_port_));
  }
  if (!cfg.metrics_address().empty()) {
    FEDSHARE_ASSIGN_OR_RETURN(
        node->metrics_server_,
        metrics::MetricsHttpServer::Start(cfg.metrics_address(),
                                          [m = node->metrics_.get()] { return m->Render(); }));
  }
  for (const v1::UpstreamConfig& upstream : cfg.upstreams()) {
    node->call_home_clients_.push_back(
        std::make_unique<CallHomeClient>(&node->config_, upstream, &env));
    node->call_home_clients_.back()->Start();
  }
  if (retention) node->retention_ = std::thread([n = node.get()] { n->PurgeOnSchedule(); });
  spdlog::info("event=node_started org={} peer={} local={} data_dir={}", cfg.org_id(),
               node->peer_address(), node->local_address(), cfg.data_dir());
  return node;
}

Node::~Node() { Shutdown(absl::ZeroDuration()); }

std::string Node::peer_address() const {
  if (config_.disable_peer_listener()) return "none";
  return absl::StrCat(HostOf(config_.peer_address()), ":", peer_port_);
}

std::string Node::local_address() const {
  return absl::StrCat(HostOf(config_.local_address()), ":", local_port_);
}

absl::StatusOr<std::vector<std::string>> Node::CheckConfig(const v1::NodeConfig& cfg,
                                                           absl::Time now) {
  FEDSHARE_RETURN_IF_ERROR(identity::CheckServerTlsConfig(cfg.tls()));
  FEDSHARE_ASSIGN_OR_RETURN(
      std::vector<std::string> warnings,
      identity::CheckOwnCertificate(cfg.tls(), cfg.trust_domain(), cfg.org_id(), now));
  FEDSHARE_RETURN_IF_ERROR(LoadAgreements(cfg).status());
  struct stat st;
  if (::stat(cfg.data_dir().c_str(), &st) != 0) return warnings;  // Create makes a new store
  storage::StorageOptions storage_options;
  storage_options.read_only = true;
  FEDSHARE_ASSIGN_OR_RETURN(storage_options.encryption_key, LoadStorageKey(cfg));
  absl::StatusOr<std::unique_ptr<storage::Storage>> store =
      storage::Storage::Create(cfg.data_dir(), storage_options);
  if (absl::IsNotFound(store.status())) return warnings;  // an empty folder: a new store
  FEDSHARE_RETURN_IF_ERROR(store.status());
  engine::EngineOptions engine_options;
  engine_options.org_id = cfg.org_id();
  engine_options.purposes.assign(cfg.purposes().begin(), cfg.purposes().end());
  engine_options.datasets.assign(cfg.datasets().begin(), cfg.datasets().end());
  engine_options.check_only = true;
  FEDSHARE_RETURN_IF_ERROR(
      engine::Engine::Create(store->get(), std::move(engine_options)).status());
  return warnings;
}

absl::StatusOr<policy::AgreementSet> Node::LoadAgreements(const v1::NodeConfig& cfg) {
  FEDSHARE_ASSIGN_OR_RETURN(policy::PurposeTree purposes,
                            policy::PurposeTree::Create(cfg.purposes()));
  std::vector<v1::DatasetSchema> schemas(cfg.datasets().begin(), cfg.datasets().end());
  std::vector<v1::Agreement> agreements(cfg.agreements().begin(), cfg.agreements().end());
  if (!cfg.agreements_file().empty()) {
    FEDSHARE_ASSIGN_OR_RETURN(v1::AgreementSet more, LoadAgreementsFile(cfg.agreements_file()));
    agreements.insert(agreements.end(), more.agreements().begin(), more.agreements().end());
  }
  return policy::AgreementSet::Create(agreements, purposes, schemas);
}

std::string Node::FileStamp(const std::string& path) {
  struct stat st;
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return "";
  return absl::StrCat(st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, ":", st.st_size, ":", st.st_ino);
}

void Node::PurgeExpiredRecords() {
  const std::string caller =
      identity::MakeSpiffeId(config_.trust_domain(), config_.org_id(), identity::Role::kNode, "")
          .value_or("fedshare-node");
  absl::StatusOr<v1::RunRetentionResponse> run = service::RunRetention(*env_, caller);
  if (absl::IsAborted(run.status())) {
    // A purge an operator started is still running: this one's work is
    // being done; the next interval tries again.
    spdlog::info("event=retention_skipped reason=\"{}\"", std::string(run.status().message()));
  } else if (!run.ok()) {
    spdlog::error("event=retention_failed error=\"{}\"", std::string(run.status().message()));
  }
}

void Node::PurgeOnSchedule() {
  const int32_t seconds = config_.storage().retention_interval_seconds();
  const absl::Duration interval = absl::Seconds(seconds > 0 ? seconds : 3600);
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (shut_down_) return;
      mu_.AwaitWithTimeout(absl::Condition(&shut_down_), interval);
      if (shut_down_) return;
    }
    PurgeExpiredRecords();
  }
}

void Node::WatchFiles() {
  const absl::Duration interval = absl::Seconds(config_.tls().reload_interval_seconds());
  absl::MutexLock lock(&mu_);
  while (!shut_down_) {
    mu_.AwaitWithTimeout(absl::Condition(&shut_down_), interval);
    if (shut_down_) break;
    if (!config_.agreements_file().empty()) {
      std::string stamp = FileStamp(config_.agreements_file());
      if (stamp != agreements_stamp_) {
        agreements_stamp_ = stamp;
        ReloadAgreementsLocked().IgnoreError();  // logged; the old agreements stay
      }
    }
    if (!config_.peers_file().empty()) {
      std::string stamp = FileStamp(config_.peers_file());
      if (stamp != peers_stamp_) {
        peers_stamp_ = stamp;
        ReloadPeersLocked().IgnoreError();  // logged; the old roster stays
      }
    }
  }
}

absl::StatusOr<size_t> Node::ReloadPeersLocked(
    const google::protobuf::RepeatedPtrField<v1::PeerConfig>* inline_next) {
  v1::NodeConfig source = peers_source_;
  if (inline_next != nullptr) *source.mutable_peers() = *inline_next;
  absl::StatusOr<std::vector<v1::PeerConfig>> roster = LoadPeers(source);
  if (!roster.ok()) {
    // Keep the roster in force: a broken file must not drop or add partners.
    peers_error_ = std::string(roster.status().message());
    spdlog::error("event=peers_reload_failed file={} reason=\"{}\"", config_.peers_file(),
                  peers_error_);
    return roster.status();
  }
  peers_source_ = std::move(source);
  peers_error_.clear();
  // A partner no longer configured to call home loses its stream now (a
  // new one is refused), not at its next reconnection.
  absl::flat_hash_set<std::string> call_home;
  for (const v1::PeerConfig& p : *roster) {
    if (p.call_home()) call_home.insert(p.org_id());
  }
  const size_t count = roster->size();
  fanout_->SetPeers(*std::move(roster));
  call_home_hub_->CloseExcept(call_home, "no longer a call-home peer of this node");
  spdlog::info("event=peers_reloaded file={} peers={}",
               config_.peers_file().empty() ? "(inline)" : config_.peers_file(), count);
  return count;
}

std::vector<std::string> Node::ReloadWarnings() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> warnings;
  if (!agreements_error_.empty()) {
    warnings.push_back(absl::StrCat(
        "agreements_file ", config_.agreements_file(),
        " was not reloaded, the previous agreements stay in force: ", agreements_error_));
  }
  if (!peers_error_.empty()) {
    warnings.push_back(absl::StrCat("peers_file ", config_.peers_file(),
                                    " was not reloaded, the previous ", fanout_->peers()->size(),
                                    " peers stay in force: ", peers_error_));
  }
  return warnings;
}

absl::StatusOr<size_t> Node::ReloadAgreementsLocked(
    const google::protobuf::RepeatedPtrField<v1::Agreement>* inline_next) {
  v1::NodeConfig source = agreements_source_;
  if (inline_next != nullptr) *source.mutable_agreements() = *inline_next;
  absl::StatusOr<policy::AgreementSet> loaded = LoadAgreements(source);
  if (!loaded.ok()) {
    // Keep the agreements in force: a broken file must not open or close anything.
    agreements_error_ = std::string(loaded.status().message());
    spdlog::error("event=agreements_reload_failed file={} reason=\"{}\"", config_.agreements_file(),
                  std::string(loaded.status().message()));
    return loaded.status();
  }
  agreements_source_ = std::move(source);
  agreements_error_.clear();
  size_t count = loaded->agreements().size();
  answerer_->SetAgreements(std::make_shared<const policy::AgreementSet>(*std::move(loaded)));
  spdlog::info("event=agreements_reloaded file={} agreements={}",
               config_.agreements_file().empty() ? "(inline)" : config_.agreements_file(), count);
  return count;
}

Node::ReloadSummary Node::Reload(const absl::StatusOr<v1::NodeConfig>& next) {
  ReloadSummary summary;
  {
    absl::MutexLock lock(&mu_);
    agreements_stamp_ = FileStamp(config_.agreements_file());
    summary.agreements = ReloadAgreementsLocked(next.ok() ? &next->agreements() : nullptr);
    if (next.ok()) {
      peers_stamp_ = FileStamp(config_.peers_file());
      summary.peers = ReloadPeersLocked(&next->peers());
    } else {
      summary.peers = next.status();
    }
  }
  if (next.ok()) summary.needs_restart = SettingsNeedingRestart(config_, *next);
  summary.certificates = tls_mirror_->Refresh();
  authenticator_->ReloadNow();
  if (!summary.needs_restart.empty()) {
    spdlog::warn(
        "event=reload_needs_restart settings={} reason=\"changed in the config file but applied "
        "only at start; restart the node to apply them\"",
        absl::StrJoin(summary.needs_restart, ","));
  }
  spdlog::info("event=reloaded {}", summary.Line().substr(sizeof("reloaded ") - 1));
  return summary;
}

std::string Node::ReloadSummary::Line() const {
  auto part = [](const absl::Status& s, const std::string& ok) {
    return s.ok() ? ok : absl::StrCat("kept-old (", s.message(), ")");
  };
  return absl::StrCat("reloaded agreements=",
                      part(agreements.status(), agreements.ok() ? absl::StrCat(*agreements) : ""),
                      " peers=", part(peers.status(), peers.ok() ? absl::StrCat(*peers) : ""),
                      " certificates=", part(certificates, "ok"));
}

void Node::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (reloader_.joinable()) reloader_.join();
  if (retention_.joinable()) retention_.join();
  // Outbound streams first: their questions use the answerer.
  for (std::unique_ptr<CallHomeClient>& client : call_home_clients_) client->Stop();
  if (peer_listener_ != nullptr) peer_listener_->Stop();
  // Partners' streams would otherwise hold the peer server until `grace`.
  if (call_home_hub_ != nullptr) call_home_hub_->CloseAll("the node is shutting down");
  if (local_listener_ != nullptr) local_listener_->Stop();
  auto deadline = absl::ToChronoTime(absl::Now() + grace);
  if (peer_server_ != nullptr) peer_server_->Shutdown(deadline);
  if (local_server_ != nullptr) local_server_->Shutdown(deadline);
  if (health_server_ != nullptr) health_server_->Shutdown(deadline);
  if (peer_server_ != nullptr) peer_server_->Wait();
  if (local_server_ != nullptr) local_server_->Wait();
  if (health_server_ != nullptr) health_server_->Wait();
  // Their destructors audit an unfinished storm; run them now, with no call
  // left that could use them, while the metrics their audit appends report
  // to still exist (metrics_ is destroyed before the throttles).
  refusal_throttle_.reset();
  dry_run_throttle_.reset();
  if (metrics_server_ != nullptr) metrics_server_->Stop();
  spdlog::info("event=node_stopped org={}", config_.org_id());
}

}  // namespace fedshare::server
