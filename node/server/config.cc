#include "node/server/config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/common/utf8.h"
#include "node/storage/encryption.h"
#include "policy/agreement.h"
#include "policy/purpose_tree.h"
#include "policy/schema.h"

namespace fedshare::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::TextFormat;

// Turns a field (and index, for repeated fields) into "NAME:LINE: " where the
// text is known, or "field[index]: " otherwise.
using Locator = std::function<std::string(absl::string_view field, int index)>;

class CollectingErrors : public google::protobuf::io::ErrorCollector {
 public:
  explicit CollectingErrors(std::string name) : name_(std::move(name)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) {
      first_ = absl::StrCat(name_, ":", line + 1, ":", column + 1, ": ", message);
    }
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string name_;
  std::string first_;
};

bool IsOrgId(absl::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  for (char c : id) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) return false;
  }
  return true;
}

bool IsTrustDomain(absl::string_view td) {
  if (td.empty() || td.size() > 255) return false;
  for (char c : td) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' || c == '.')) return false;
  }
  return true;
}

absl::Status CheckAddress(absl::string_view address) {
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' is not HOST:PORT (port 0 picks a free one)"));
  }
  return absl::OkStatus();
}

absl::Status Located(const Locator& where, absl::string_view field, int index,
                     const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(where(field, index), status.message()));
}

// One peer of the roster; `seen` collects the org ids so far.
absl::Status CheckPeer(absl::string_view own_org, const v1::PeerConfig& p,
                       std::set<std::string>& seen) {
  if (!IsOrgId(p.org_id())) {
    return absl::InvalidArgumentError("peer org_id must be 1-63 characters of [a-z0-9-]");
  }
  if (p.org_id() == own_org) {
    return absl::InvalidArgumentError("a node does not list its own org as a peer");
  }
  if (!seen.insert(p.org_id()).second) {
    return absl::InvalidArgumentError(absl::StrCat("peer '", p.org_id(), "' is listed twice"));
  }
  for (const std::string& g : p.groups()) {
    if (g.empty() || g.size() > 63) {
      return absl::InvalidArgumentError(
          absl::StrCat("peer '", p.org_id(), "' has a group name that is empty or over 63 bytes"));
    }
  }
  if (p.call_home()) {
    if (!p.address().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("peer '", p.org_id(),
                       "' calls home (call_home: true): it dials this node, so it has "
                       "no address here; remove the address"));
    }
    return absl::OkStatus();
  }
  return CheckAddress(p.address());
}

absl::Status ValidateImpl(const v1::NodeConfig& config, const Locator& where,
                          const std::vector<v1::Agreement>& extra_agreements) {
  auto fail = [&](absl::string_view field, int index, absl::string_view reason) {
    return absl::InvalidArgumentError(absl::StrCat(where(field, index), reason));
  };
  if (!IsOrgId(config.org_id())) {
    return fail("org_id", -1, "org_id must be 1-63 characters of [a-z0-9-]");
  }
  if (!IsTrustDomain(config.trust_domain())) {
    return fail("trust_domain", -1,
                "trust_domain must be set, lowercase [a-z0-9.-], e.g. \"fedshare.example\"");
  }
  if (config.data_dir().empty()) {
    return fail("data_dir", -1, "data_dir must name the folder for the node's RocksDB store");
  }
  if (auto s = CheckAddress(config.peer_address()); !s.ok()) {
    return Located(where, "peer_address", -1, s);
  }
  if (auto s = CheckAddress(config.local_address()); !s.ok()) {
    return Located(where, "local_address", -1, s);
  }
  if (!config.health_address().empty()) {
    if (auto s = CheckAddress(config.health_address()); !s.ok()) {
      return Located(where, "health_address", -1, s);
    }
  }
  if (!config.metrics_address().empty()) {
    if (auto s = CheckAddress(config.metrics_address()); !s.ok()) {
      return Located(where, "metrics_address", -1, s);
    }
  }
  const v1::TlsConfig& tls = config.tls();
  if (tls.cert_file().empty() || tls.key_file().empty() || tls.ca_file().empty()) {
    return fail("tls", -1,
                "tls needs cert_file, key_file and ca_file: every listener is mutual TLS "
                "(make development ones with `fedshare certs`)");
  }
  if (tls.reload_interval_seconds() < 0) {
    return fail("tls", -1, "tls.reload_interval_seconds must be >= 0");
  }
  if (config.storage().retention_interval_seconds() < 0) {
    return fail("storage", -1, "storage.retention_interval_seconds must be >= 0 (0 means hourly)");
  }
  if (config.peer_deadline_ms() < 0) {
    return fail("peer_deadline_ms", -1, "peer_deadline_ms must be >= 0");
  }
  if (const int64_t budget = config.limits().ingest_memory_budget_bytes();
      budget != 0 && budget < (int64_t{1} << 20)) {
    return fail("limits", -1,
                "limits.ingest_memory_budget_bytes must be 0 (the default, 268435456) or at "
                "least 1048576 (1 MiB)");
  }

  if (config.limits().query_memory_budget_bytes() < 0) {
    return fail("limits", -1, "limits.query_memory_budget_bytes must be >= 0 (0: the default)");
  }
  if (const int64_t budget = config.limits().federated_answer_budget_bytes();
      budget != 0 && budget < (int64_t{4} << 20)) {
    return fail("limits", -1,
                "limits.federated_answer_budget_bytes must be 0 (the default, 536870912) or at "
                "least 4194304 (4 MiB, the most one partner's answer may be)");
  }
  if (config.limits().scan_threads() < 0 || config.limits().scan_threads() > 256) {
    return fail("limits", -1, "limits.scan_threads must be 0 (the machine's cores) to 256");
  }

  int bad_purpose = -1;
  absl::StatusOr<policy::PurposeTree> tree_or =
      policy::PurposeTree::Create(config.purposes(), &bad_purpose);
  if (!tree_or.ok()) return Located(where, "purposes", bad_purpose, tree_or.status());
  const policy::PurposeTree& tree = *tree_or;

  std::set<std::string> dataset_names;
  std::vector<v1::DatasetSchema> datasets;
  for (int i = 0; i < config.datasets_size(); ++i) {
    const v1::DatasetSchema& d = config.datasets(i);
    if (auto s = policy::ValidateSchema(d); !s.ok()) return Located(where, "datasets", i, s);
    if (!dataset_names.insert(d.name()).second) {
      return fail("datasets", i, absl::StrCat("dataset '", d.name(), "' is declared twice"));
    }
    datasets.push_back(d);
  }

  // Each agreement is checked alone (linear in their number); the only check
  // across agreements is that ids are unique.
  absl::flat_hash_map<std::string, const v1::Agreement*> by_id;
  auto check_agreement = [&](const v1::Agreement& a) -> absl::Status {
    FEDSHARE_RETURN_IF_ERROR(policy::AgreementSet::CheckOne(a, tree, datasets));
    if (auto [it, inserted] = by_id.emplace(a.id(), &a); !inserted) {
      // Create names a duplicate id in its own words.
      return policy::AgreementSet::Create({*it->second, a}, tree, datasets).status();
    }
    return absl::OkStatus();
  };
  for (int i = 0; i < config.agreements_size(); ++i) {
    if (auto s = check_agreement(config.agreements(i)); !s.ok()) {
      return Located(where, "agreements", i, s);
    }
  }
  for (const v1::Agreement& a : extra_agreements) {
    if (auto s = check_agreement(a); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(config.agreements_file(), ": ", s.message()));
    }
  }

  std::set<std::string> peer_ids;
  for (int i = 0; i < config.peers_size(); ++i) {
    if (auto s = CheckPeer(config.org_id(), config.peers(i), peer_ids); !s.ok()) {
      return Located(where, "peers", i, s);
    }
  }
  std::set<std::string> upstream_ids;
  for (int i = 0; i < config.upstreams_size(); ++i) {
    const v1::UpstreamConfig& u = config.upstreams(i);
    if (!IsOrgId(u.org_id())) {
      return fail("upstreams", i, "upstream org_id must be 1-63 characters of [a-z0-9-]");
    }
    if (u.org_id() == config.org_id()) {
      return fail("upstreams", i, "a node does not call home to its own org");
    }
    if (!upstream_ids.insert(u.org_id()).second) {
      return fail("upstreams", i, absl::StrCat("upstream '", u.org_id(), "' is listed twice"));
    }
    if (auto s = CheckAddress(u.address()); !s.ok()) return Located(where, "upstreams", i, s);
  }
  if (config.call_home_max_backoff_ms() < 0) {
    return fail("call_home_max_backoff_ms", -1, "call_home_max_backoff_ms must be >= 0");
  }
  return absl::OkStatus();
}

void FillDefaults(v1::NodeConfig& config) {
  if (config.peer_address().empty()) config.set_peer_address(std::string(kDefaultPeerAddress));
  if (config.local_address().empty()) config.set_local_address(std::string(kDefaultLocalAddress));
  if (config.tls().reload_interval_seconds() == 0) {
    config.mutable_tls()->set_reload_interval_seconds(60);
  }
  if (config.peer_deadline_ms() == 0) config.set_peer_deadline_ms(10000);
}

std::string Resolve(absl::string_view base_dir, const std::string& path) {
  if (base_dir.empty() || path.empty() || path[0] == '/') return path;
  return absl::StrCat(base_dir, "/", path);
}

void ResolvePaths(v1::NodeConfig& config, absl::string_view base_dir) {
  config.set_data_dir(Resolve(base_dir, config.data_dir()));
  config.set_agreements_file(Resolve(base_dir, config.agreements_file()));
  config.set_peers_file(Resolve(base_dir, config.peers_file()));
  v1::TlsConfig* tls = config.mutable_tls();
  tls->set_cert_file(Resolve(base_dir, tls->cert_file()));
  tls->set_key_file(Resolve(base_dir, tls->key_file()));
  tls->set_ca_file(Resolve(base_dir, tls->ca_file()));
}

bool LooksLikeJson(absl::string_view text) {
  for (char c : text) {
    if (absl::ascii_isspace(c)) continue;
    return c == '{';
  }
  return false;
}

// Parses text or JSON into `message`, recording field locations for text.
absl::Status ParseMessage(absl::string_view text, absl::string_view name, Message* message,
                          TextFormat::ParseInfoTree* tree) {
  // Every string in a config must be UTF-8; say where one is not.
  if (std::string bad = DescribeInvalidUtf8(text); !bad.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", bad));
  }
  if (LooksLikeJson(text)) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto status = google::protobuf::util::JsonStringToMessage(std::string(text), message, options);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", status.message().as_string()));
    }
    return absl::OkStatus();
  }
  TextFormat::Parser parser;
  CollectingErrors errors{std::string(name)};
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(tree);
  if (!parser.ParseFromString(std::string(text), message)) {
    return absl::InvalidArgumentError(errors.first().empty() ? absl::StrCat(name, ": parse error")
                                                             : errors.first());
  }
  return absl::OkStatus();
}

Locator MakeLocator(absl::string_view name, const Descriptor* descriptor,
                    const TextFormat::ParseInfoTree* tree) {
  return [name = std::string(name), descriptor, tree](absl::string_view field, int index) {
    const FieldDescriptor* fd = descriptor->FindFieldByName(std::string(field));
    if (fd != nullptr && tree != nullptr) {
      auto loc = tree->GetLocation(fd, fd->is_repeated() ? std::max(index, 0) : -1);
      if (loc.line >= 0) return absl::StrCat(name, ":", loc.line + 1, ": ", field, ": ");
    }
    if (index >= 0) return absl::StrCat(name, ": ", field, "[", index, "]: ");
    return absl::StrCat(name, ": ", field, ": ");
  };
}

}  // namespace

absl::StatusOr<v1::AgreementSet> LoadAgreementsFile(const std::string& path) {
  FEDSHARE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  v1::AgreementSet set;
  TextFormat::ParseInfoTree tree;
  FEDSHARE_RETURN_IF_ERROR(ParseMessage(text, path, &set, &tree));
  return set;
}

absl::StatusOr<std::vector<v1::PeerConfig>> LoadPeers(const v1::NodeConfig& config) {
  std::vector<v1::PeerConfig> roster(config.peers().begin(), config.peers().end());
  const std::string& path = config.peers_file();
  if (path.empty()) return roster;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("peers_file ", path, " cannot be read"));
  }
  if (st.st_size > static_cast<off_t>(kMaxPeersFileBytes)) {
    return absl::InvalidArgumentError(absl::StrCat("peers_file ", path, " is ", st.st_size,
                                                   " bytes; at most ", kMaxPeersFileBytes));
  }
  FEDSHARE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  if (text.size() > kMaxPeersFileBytes) {  // it grew since the stat
    return absl::InvalidArgumentError(
        absl::StrCat("peers_file ", path, " is over ", kMaxPeersFileBytes, " bytes"));
  }
  v1::PeerSet set;
  TextFormat::ParseInfoTree tree;
  FEDSHARE_RETURN_IF_ERROR(ParseMessage(text, path, &set, &tree));
  if (roster.size() + static_cast<size_t>(set.peers_size()) > static_cast<size_t>(kMaxPeers)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", config.peers_size(), " peers in the config and ", set.peers_size(),
                     " in peers_file; at most ", kMaxPeers, " in all"));
  }
  const Locator where = MakeLocator(path, v1::PeerSet::descriptor(), &tree);
  std::set<std::string> seen;
  for (const v1::PeerConfig& p : roster) seen.insert(p.org_id());
  for (int i = 0; i < set.peers_size(); ++i) {
    if (auto s = CheckPeer(config.org_id(), set.peers(i), seen); !s.ok()) {
      return Located(where, "peers", i, s);
    }
    roster.push_back(set.peers(i));
  }
  absl::flat_hash_map<std::string, v1::PeerConfig*> by_org;
  for (v1::PeerConfig& p : roster) by_org[p.org_id()] = &p;
  for (int i = 0; i < set.groups_size(); ++i) {
    const v1::PeerGroup& group = set.groups(i);
    if (group.name().empty() || group.name().size() > 63) {
      return Located(where, "groups", i,
                     absl::InvalidArgumentError("a group name must be 1-63 bytes"));
    }
    for (const std::string& member : group.members()) {
      auto it = by_org.find(member);
      if (it == by_org.end()) {
        return Located(where, "groups", i,
                       absl::InvalidArgumentError(absl::StrCat(
                           "group '", group.name(), "' names '", TruncateUtf8(member, 64),
                           "', which is not a peer in the config or this file")));
      }
      const auto& groups = it->second->groups();
      if (std::find(groups.begin(), groups.end(), group.name()) == groups.end()) {
        it->second->add_groups(group.name());
      }
    }
  }
  return roster;
}

absl::StatusOr<v1::NodeConfig> ParseNodeConfig(absl::string_view text, absl::string_view name,
                                               absl::string_view base_dir) {
  v1::NodeConfig config;
  TextFormat::ParseInfoTree tree;
  FEDSHARE_RETURN_IF_ERROR(ParseMessage(text, name, &config, &tree));
  FillDefaults(config);
  ResolvePaths(config, base_dir);
  std::vector<v1::Agreement> extra;
  if (!config.agreements_file().empty()) {
    FEDSHARE_ASSIGN_OR_RETURN(v1::AgreementSet set, LoadAgreementsFile(config.agreements_file()));
    extra.assign(set.agreements().begin(), set.agreements().end());
  }
  FEDSHARE_RETURN_IF_ERROR(
      ValidateImpl(config, MakeLocator(name, v1::NodeConfig::descriptor(), &tree), extra));
  FEDSHARE_RETURN_IF_ERROR(LoadPeers(config).status());
  return config;
}

absl::StatusOr<v1::NodeConfig> LoadNodeConfig(const std::string& path) {
  FEDSHARE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::string base_dir = ".";
  if (size_t slash = path.rfind('/'); slash != std::string::npos) {
    base_dir = path.substr(0, slash == 0 ? 1 : slash);
  }
  return ParseNodeConfig(text, path, base_dir);
}

absl::Status ValidateNodeConfig(const v1::NodeConfig& config) {
  v1::NodeConfig filled = config;
  FillDefaults(filled);
  return ValidateImpl(filled, MakeLocator("config", v1::NodeConfig::descriptor(), nullptr), {});
}

absl::StatusOr<std::string> LoadStorageKey(const v1::NodeConfig& config) {
  if (const char* env = std::getenv("FEDSHARE_STORAGE_KEY"); env != nullptr && *env != '\0') {
    absl::StatusOr<std::string> key = storage::ParseEncryptionKey(env);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("FEDSHARE_STORAGE_KEY: ", key.status().message()));
    }
    return key;
  }
  const std::string& file = config.storage().encryption_key_file();
  if (file.empty()) return std::string();
  absl::StatusOr<std::string> text = ReadFile(file);
  if (!text.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "storage.encryption_key_file ", file, " cannot be read: ", text.status().message()));
  }
  absl::StatusOr<std::string> key = storage::ParseEncryptionKey(*text);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("storage.encryption_key_file ", file, ": ", key.status().message()));
  }
  return key;
}

}  // namespace fedshare::server
