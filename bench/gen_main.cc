// fedshare-gen: writes seeded synthetic data for demos and manual testing.
//
//   fedshare-gen --seed 1 --rows 3000 --out-dir DIR
//
// DIR/records.csv   program_outcomes records (canonical CSV)
// DIR/consent.csv   consent events
// DIR/config.textproto  the purposes and dataset schema as NodeConfig fields
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "bench/synthetic.h"
#include "node/common/files.h"

int main(int argc, char** argv) {
  CLI::App app{"Writes seeded synthetic program-outcome records and consents."};
  fedshare::synthetic::Options options;
  std::string out_dir;
  app.add_option("--seed", options.seed, "Random seed; the same seed gives the same files");
  app.add_option("--rows", options.rows, "Number of records")->check(CLI::NonNegativeNumber);
  app.add_option("--subjects", options.subjects, "Distinct subjects (default: 2/3 of rows)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--dataset", options.dataset, "Dataset name in config.textproto");
  app.add_option("--out-dir", out_dir, "Directory to write into (created if missing)")->required();
  CLI11_PARSE(app, argc, argv);

  if (::mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "fedshare-gen: cannot create %s\n", out_dir.c_str());
    return 1;
  }
  struct File {
    const char* name;
    std::string contents;
  } files[] = {
      {"records.csv", fedshare::synthetic::RecordsCsv(options)},
      {"consent.csv", fedshare::synthetic::ConsentCsv(options)},
      {"config.textproto", fedshare::synthetic::ConfigFragment(options)},
  };
  for (const File& f : files) {
    const std::string path = out_dir + "/" + f.name;
    absl::Status s = fedshare::WriteFileAtomic(path, f.contents);
    if (!s.ok()) {
      std::fprintf(stderr, "fedshare-gen: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::printf("%s\n", path.c_str());
  }
  return 0;
}
