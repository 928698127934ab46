// fedshare-bench-config: how config checking scales with the number of
// agreements and the depth of the purpose tree. Each size is checked with
// ValidateNodeConfig; doubling a size should about double the time.
//
//   fedshare-bench-config [--agreements 3000] [--depth 20000]
#include <chrono>
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "bench/synthetic.h"
#include "node/server/config.h"

namespace fedshare {
namespace {

v1::NodeConfig MakeConfig(int agreements, int depth) {
  v1::NodeConfig config;
  config.set_org_id("partner-a");
  config.set_trust_domain("fedshare.test");
  config.set_data_dir("data");
  config.set_peer_address("127.0.0.1:0");
  config.set_local_address("127.0.0.1:0");
  config.mutable_tls()->set_cert_file("cert.pem");
  config.mutable_tls()->set_key_file("key.pem");
  config.mutable_tls()->set_ca_file("ca.pem");
  *config.add_datasets() = synthetic::ProgramOutcomesSchema();
  std::string parent;
  for (int i = 0; i < depth; ++i) {
    v1::Purpose* p = config.add_purposes();
    p->set_id(absl::StrCat("purpose-", i));
    p->set_parent(parent);
    parent = p->id();
  }
  for (int i = 0; i < agreements; ++i) {
    v1::Agreement* a = config.add_agreements();
    a->set_id(absl::StrCat("agreement-", i));
    a->add_peers(absl::StrCat("peer-", i % 50));
    a->set_dataset("program_outcomes");
    a->add_purposes(parent);
    a->add_aggregates(v1::COUNT);
    a->add_group_fields("program");
  }
  return config;
}

double SecondsToCheck(int agreements, int depth) {
  v1::NodeConfig config = MakeConfig(agreements, depth);
  auto start = std::chrono::steady_clock::now();
  absl::Status s = server::ValidateNodeConfig(config);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!s.ok()) std::fprintf(stderr, "invalid: %s\n", std::string(s.message()).c_str());
  return seconds;
}

int Run(int argc, char** argv) {
  CLI::App app{"fedshare-bench-config: config checking time against size"};
  int agreements = 3000;
  int depth = 20000;
  app.add_option("--agreements", agreements, "agreements at the largest size");
  app.add_option("--depth", depth, "purpose chain depth at the largest size");
  CLI11_PARSE(app, argc, argv);
  std::printf("%12s %8s %10s\n", "agreements", "depth", "seconds");
  for (int div : {8, 4, 2, 1}) {
    std::printf("%12d %8d %10.3f\n", agreements / div, depth / div,
                SecondsToCheck(agreements / div, depth / div));
  }
  return 0;
}

}  // namespace
}  // namespace fedshare

int main(int argc, char** argv) { return fedshare::Run(argc, argv); }
