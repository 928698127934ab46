#include "node/server/node.h"

#include <sys/stat.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "node/audit/audit_log.h"
#include "node/common/status_macros.h"
#include "node/engine/answerer.h"
#include "node/engine/engine.h"
#include "node/federation/fanout.h"
#include "node/identity/authenticator.h"
#include "node/identity/server_credentials.h"
#include "node/identity/tls_mirror.h"
#include "node/server/config.h"
#include "node/service/admin_service.h"
#include "node/service/federation_service.h"
#include "node/service/peer_service.h"
#include "node/service/service_env.h"
#include "node/storage/storage.h"
#include "policy/agreement.h"
#include "policy/purpose_tree.h"
#include "spdlog/spdlog.h"

namespace fedshare::server {
namespace {

// Enough for an ingest slice (1 MiB) or a large answer, with room to spare.
constexpr int kMaxMessageBytes = 16 << 20;

std::string HostOf(const std::string& address) { return address.substr(0, address.rfind(':')); }

absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
    const std::string& address, const v1::TlsConfig& tls,
    const std::vector<grpc::Service*>& services, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, identity::MakeServerCredentials(tls), port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  for (grpc::Service* s : services) builder.RegisterService(s);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address, ": the address is in use or not local to this machine"));
  }
  return server;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Node>> Node::Create(const v1::NodeConfig& config,
                                                   NodeOptions options) {
  std::unique_ptr<Node> node(new Node());
  node->config_ = config;
  node->clock_ = options.clock != nullptr ? options.clock : Clock::Real();
  const v1::NodeConfig& cfg = node->config_;

  // gRPC reports unreadable or mismatched TLS files only as failed handshakes;
  // refuse to start instead.
  FEDSHARE_RETURN_IF_ERROR(identity::CheckServerTlsConfig(cfg.tls()));
  storage::StorageOptions storage_options;
  storage_options.fault_injector = options.fault_injector;
  if (cfg.storage().disk_reserve_bytes() > 0) {
    storage_options.disk_reserve_bytes = cfg.storage().disk_reserve_bytes();
  }
  FEDSHARE_ASSIGN_OR_RETURN(node->storage_,
                            storage::Storage::Create(cfg.data_dir(), storage_options));
  FEDSHARE_ASSIGN_OR_RETURN(node->audit_,
                            audit::AuditLog::Open(node->storage_.get(), node->clock_));

  std::vector<v1::DatasetSchema> schemas(cfg.datasets().begin(), cfg.datasets().end());
  FEDSHARE_ASSIGN_OR_RETURN(policy::AgreementSet agreement_set, LoadAgreements(cfg));
  node->agreements_stamp_ = FileStamp(cfg.agreements_file());

  engine::EngineOptions engine_options;
  engine_options.org_id = cfg.org_id();
  engine_options.purposes.assign(cfg.purposes().begin(), cfg.purposes().end());
  engine_options.datasets = schemas;
  engine_options.clock = node->clock_;
  FEDSHARE_ASSIGN_OR_RETURN(
      node->engine_, engine::Engine::Create(node->storage_.get(), std::move(engine_options)));
  node->answerer_ = std::make_unique<engine::Answerer>(
      cfg.org_id(), node->engine_.get(), node->audit_.get(), node->storage_.get(),
      std::make_shared<const policy::AgreementSet>(std::move(agreement_set)), schemas,
      node->clock_);
  if (cfg.max_concurrent_questions() > 0) {
    node->answerer_->set_max_concurrent(cfg.max_concurrent_questions());
  }
  if (!cfg.agreements_file().empty()) {
    node->reloader_ = std::thread([n = node.get()] { n->WatchAgreements(); });
  }
  node->fanout_ = std::make_unique<federation::FanOut>(&node->config_, node->audit_.get());
  FEDSHARE_ASSIGN_OR_RETURN(node->authenticator_,
                            identity::Authenticator::Create(
                                cfg.tls().ca_file(), cfg.trust_domain(),
                                absl::Seconds(cfg.tls().reload_interval_seconds()), node->clock_));

  node->env_ = std::make_unique<service::ServiceEnv>();
  service::ServiceEnv& env = *node->env_;
  env.config = &node->config_;
  env.authenticator = node->authenticator_.get();
  env.engine = node->engine_.get();
  env.answerer = node->answerer_.get();
  env.audit = node->audit_.get();
  env.fanout = node->fanout_.get();
  env.started_at = node->clock_->Now();
  node->admin_service_ = std::make_unique<service::AdminServiceImpl>(&env);
  node->peer_service_ = std::make_unique<service::PeerServiceImpl>(&env);
  node->federation_service_ = std::make_unique<service::FederationServiceImpl>(&env);

  // gRPC watches validated copies, so bad files on disk never replace good ones.
  FEDSHARE_ASSIGN_OR_RETURN(
      node->tls_mirror_,
      identity::TlsMirror::Create(cfg.tls(), cfg.trust_domain(), cfg.org_id(), Clock::Real()));
  const v1::TlsConfig& tls = node->tls_mirror_->mirrored();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  FEDSHARE_ASSIGN_OR_RETURN(
      node->peer_server_,
      StartServer(cfg.peer_address(), tls, {node->peer_service_.get()}, &node->peer_port_));
  FEDSHARE_ASSIGN_OR_RETURN(node->local_server_, StartServer(cfg.local_address(), tls,
                                                             {node->admin_service_.get(),
                                                              node->federation_service_.get()},
                                                             &node->local_port_));
  env.peer_address = node->peer_address();
  env.local_address = node->local_address();
  spdlog::info("event=node_started org={} peer={} local={} data_dir={}", cfg.org_id(),
               env.peer_address, env.local_address, cfg.data_dir());
  return node;
}

Node::~Node() { Shutdown(absl::ZeroDuration()); }

std::string Node::peer_address() const {
  return absl::StrCat(HostOf(config_.peer_address()), ":", peer_port_);
}

std::string Node::local_address() const {
  return absl::StrCat(HostOf(config_.local_address()), ":", local_port_);
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

void Node::WatchAgreements() {
  const absl::Duration interval = absl::Seconds(config_.tls().reload_interval_seconds());
  absl::MutexLock lock(&mu_);
  while (!shut_down_) {
    mu_.AwaitWithTimeout(absl::Condition(&shut_down_), interval);
    if (shut_down_) break;
    std::string stamp = FileStamp(config_.agreements_file());
    if (stamp == agreements_stamp_) continue;
    agreements_stamp_ = stamp;
    absl::StatusOr<policy::AgreementSet> loaded = LoadAgreements(config_);
    if (!loaded.ok()) {
      // Keep the agreements in force: a broken file must not open or close anything.
      spdlog::error("event=agreements_reload_failed file={} reason=\"{}\"",
                    config_.agreements_file(), std::string(loaded.status().message()));
      continue;
    }
    size_t count = loaded->agreements().size();
    answerer_->SetAgreements(std::make_shared<const policy::AgreementSet>(*std::move(loaded)));
    spdlog::info("event=agreements_reloaded file={} agreements={}", config_.agreements_file(),
                 count);
  }
}

void Node::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (reloader_.joinable()) reloader_.join();
  auto deadline = absl::ToChronoTime(absl::Now() + grace);
  if (peer_server_ != nullptr) peer_server_->Shutdown(deadline);
  if (local_server_ != nullptr) local_server_->Shutdown(deadline);
  if (peer_server_ != nullptr) peer_server_->Wait();
  if (local_server_ != nullptr) local_server_->Wait();
  spdlog::info("event=node_stopped org={}", config_.org_id());
}

}  // namespace fedshare::server
