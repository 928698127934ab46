// fedshare-bench: ingest and scan throughput over column blocks at 1M records
// (DESIGN §11). `make bench` runs it with the defaults.
//
//   fedshare-bench [--rows 1000000] [--batch 100000] [--seed 1] [--repeat 5]
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/synthetic.h"
#include "node/common/status_macros.h"
#include "node/engine/engine.h"
#include "node/engine/query_executor.h"
#include "node/storage/storage.h"
#include "policy/disclosure.h"
#include "policy/query_rules.h"

namespace fedshare {
namespace {

struct Row {
  std::string operation;
  int64_t rows;
  double seconds;
};

void Print(const Row& r) {
  std::printf("%-44s %10lld %10.3f %14.0f\n", r.operation.c_str(), static_cast<long long>(r.rows),
              r.seconds, r.rows / r.seconds);
  std::fflush(stdout);
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "fedshare-bench: %s\n", s.ToString().c_str());
  return 1;
}

int Run(int argc, char** argv) {
  CLI::App app{"Measures ingest and scan throughput of the column-block store."};
  synthetic::Options options;
  options.rows = 1000000;
  int64_t batch = 100000;
  int repeat = 5;
  std::string dir;
  app.add_option("--rows", options.rows, "Records to ingest");
  app.add_option("--batch", batch, "Records per ingest call (one atomic batch)");
  app.add_option("--seed", options.seed, "Generator seed");
  app.add_option("--repeat", repeat, "Scans to run; the best is reported");
  app.add_option("--dir", dir, "Store directory (default: a fresh temporary one, removed)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  bool remove_dir = false;
  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fedshare-bench.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return Fail(absl::InternalError("mkdtemp failed"));
    dir = tmpl;
    remove_dir = true;
  }

  int rc = 0;
  {
    auto storage = storage::Storage::Create(dir, storage::StorageOptions());
    if (!storage.ok()) return Fail(storage.status());
    engine::EngineOptions engine_options;
    engine_options.org_id = "bench";
    engine_options.purposes = synthetic::Purposes();
    engine_options.datasets = {synthetic::ProgramOutcomesSchema()};
    auto engine = engine::Engine::Create(storage->get(), engine_options);
    if (!engine.ok()) return Fail(engine.status());
    engine::Engine& e = **engine;

    std::printf("fedshare-bench: %lld synthetic records (seed %llu), store in %s\n\n",
                static_cast<long long>(options.rows), static_cast<unsigned long long>(options.seed),
                dir.c_str());
    std::printf("%-44s %10s %10s %14s\n", "operation", "rows", "seconds", "rows/s");

    // Ingest: generation time is excluded; parsing, validation, block
    // building and the synced batch are included.
    double ingest_seconds = 0;
    for (int64_t from = 0; from < options.rows; from += batch) {
      const int64_t to = std::min(options.rows, from + batch);
      std::string csv;
      synthetic::AppendRecordsHeader(&csv);
      synthetic::AppendRecords(options, from, to, &csv);
      absl::Time start = absl::Now();
      auto r = e.Ingest("program_outcomes", v1::CSV, false, csv);
      ingest_seconds += absl::ToDoubleSeconds(absl::Now() - start);
      if (!r.ok()) return Fail(r.status());
      if (r->rows_written() != to - from) {
        return Fail(absl::InternalError(absl::StrCat("batch refused: ", r->DebugString())));
      }
    }
    Print({absl::StrFormat("ingest CSV (batches of %d, synced)", batch), options.rows,
           ingest_seconds});

    auto consent = e.ImportConsent(synthetic::ConsentCsv(options));
    if (!consent.ok()) return Fail(consent.status());

    const int score = 6, program = 1;
    double last_best = 0;
    auto best_of = [&](const std::string& name,
                       const std::function<absl::Status(const engine::DatasetReader&)>& scan) {
      double best = 1e300;
      for (int i = 0; i < repeat; ++i) {
        absl::Time start = absl::Now();
        auto reader = e.OpenReader("program_outcomes");
        if (!reader.ok()) return reader.status();
        FEDSHARE_RETURN_IF_ERROR(scan(**reader));
        best = std::min(best, absl::ToDoubleSeconds(absl::Now() - start));
      }
      Print({name, options.rows, best});
      last_best = best;
      return absl::OkStatus();
    };

    double sum = 0;
    absl::Status s = best_of("full scan: SUM(outcome_score)", [&](const engine::DatasetReader& r) {
      sum = 0;
      return r.ForEachBlock([&](const engine::ColumnBlock& b) {
        const auto& col = b.columns[score];
        for (uint32_t i = 0; i < b.rows; ++i) {
          if (!col.IsNull(i)) sum += col.doubles[i];
        }
        return absl::OkStatus();
      });
    });
    if (!s.ok()) return Fail(s);

    policy::ConsentQuestion question{"program-evaluation", "foundation", absl::Now()};
    s = best_of("scan + consent bitmap + GROUP BY program", [&](const engine::DatasetReader& r) {
      auto bitmap = e.ConsentFor("program_outcomes", question);
      if (!bitmap.ok()) return bitmap.status();
      double sums[8] = {0};
      int64_t counts[8] = {0};
      return r.ForEachBlock([&](const engine::ColumnBlock& b) {
        const auto& col = b.columns[score];
        const auto& group = b.columns[program].ints;
        for (uint32_t i = 0; i < b.rows; ++i) {
          if (!bitmap->Test(b.subjects[i]) || col.IsNull(i)) continue;
          sums[group[i] & 7] += col.doubles[i];
          ++counts[group[i] & 7];
        }
        return absl::OkStatus();
      });
    });
    if (!s.ok()) return Fail(s);
    const double block_scan_seconds = last_best;

    // The answerer's real path for the same question: normalization, the
    // executor's filter/group/aggregate with per-subject statistics for
    // disclosure control.
    auto query = policy::NormalizeQuery(synthetic::ProgramOutcomesSchema(), [] {
      v1::AggregateQuery q;
      q.set_dataset("program_outcomes");
      q.set_purpose("program-evaluation");
      q.add_group_by("program");
      q.add_aggregates()->set_kind(v1::COUNT);
      v1::Aggregate* avg = q.add_aggregates();
      avg->set_kind(v1::AVG);
      avg->set_field("outcome_score");
      return q;
    }());
    if (!query.ok()) return Fail(query.status());
    s = best_of("query executor: program, COUNT, AVG(score)", [&](const engine::DatasetReader& r) {
      auto bitmap = e.ConsentFor("program_outcomes", question);
      if (!bitmap.ok()) return bitmap.status();
      return engine::ExecuteQuery(r, *query, *bitmap, 0).status();
    });
    if (!s.ok()) return Fail(s);
    const double executor_seconds = last_best;

    // Disclosure control on a 3-way grouped question (issue 8: union pools,
    // margin lines and the interval audit), against the executor's own time
    // on the same question. A narrow age band and a strict agreement
    // (min_subjects 100) make a good share of the cells small.
    auto grouped = policy::NormalizeQuery(synthetic::ProgramOutcomesSchema(), [] {
      v1::AggregateQuery q;
      q.set_dataset("program_outcomes");
      q.set_purpose("program-evaluation");
      for (const char* g : {"program", "region", "cohort_year"}) q.add_group_by(g);
      v1::Predicate* age = q.add_where();
      age->set_field("age");
      age->set_op(v1::Predicate::GE);
      age->add_values()->set_int_value(70);
      q.add_aggregates()->set_kind(v1::COUNT);
      v1::Aggregate* sessions = q.add_aggregates();
      sessions->set_kind(v1::SUM);
      sessions->set_field("sessions_attended");
      return q;
    }());
    if (!grouped.ok()) return Fail(grouped.status());
    std::vector<policy::CellStats> cells;
    s = best_of("query executor: 3-way GROUP BY, COUNT, SUM", [&](const engine::DatasetReader& r) {
      auto bitmap = e.ConsentFor("program_outcomes", question);
      if (!bitmap.ok()) return bitmap.status();
      auto execution = engine::ExecuteQuery(r, *grouped, *bitmap, 0);
      if (!execution.ok()) return execution.status();
      cells.clear();
      for (const engine::ExecutedCell& c : execution->cells) {
        cells.push_back(c.stats);
        for (const v1::Value& v : c.key) cells.back().key.push_back(v.SerializeAsString());
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return Fail(s);
    const double grouped_executor_seconds = last_best;
    double rules_seconds = 1e300;
    size_t withheld = 0;
    policy::DisclosureParams strict;
    strict.min_subjects = 100;
    for (int i = 0; i < repeat; ++i) {
      absl::Time start = absl::Now();
      std::vector<policy::CellVerdict> verdicts = policy::ApplyCellRules(strict, *grouped, cells);
      rules_seconds = std::min(rules_seconds, absl::ToDoubleSeconds(absl::Now() - start));
      withheld = 0;
      for (const policy::CellVerdict& v : verdicts) withheld += v.released ? 0 : 1;
    }
    Print({absl::StrFormat("disclosure rules: %zu cells, %zu withheld", cells.size(), withheld),
           options.rows, rules_seconds});

    // Baseline: the same consent-filtered grouped sum over plain in-memory
    // arrays, copied out of the store once (copy not timed).
    std::vector<uint32_t> subjects;
    std::vector<int64_t> groups;
    std::vector<double> scores;
    std::vector<uint8_t> present;
    {
      auto reader = e.OpenReader("program_outcomes");
      if (!reader.ok()) return Fail(reader.status());
      s = (*reader)->ForEachBlock([&](const engine::ColumnBlock& b) {
        for (uint32_t i = 0; i < b.rows; ++i) {
          subjects.push_back(b.subjects[i]);
          groups.push_back(b.columns[program].ints[i]);
          scores.push_back(b.columns[score].doubles[i]);
          present.push_back(!b.columns[score].IsNull(i));
        }
        return absl::OkStatus();
      });
      if (!s.ok()) return Fail(s);
    }
    auto bitmap = e.ConsentFor("program_outcomes", question);
    if (!bitmap.ok()) return Fail(bitmap.status());
    double array_seconds = 1e300;
    double checksum = 0;
    for (int i = 0; i < repeat; ++i) {
      absl::Time start = absl::Now();
      double sums[8] = {0};
      int64_t counts[8] = {0};
      for (size_t row = 0; row < subjects.size(); ++row) {
        if (!bitmap->Test(subjects[row]) || !present[row]) continue;
        sums[groups[row] & 7] += scores[row];
        ++counts[groups[row] & 7];
      }
      array_seconds = std::min(array_seconds, absl::ToDoubleSeconds(absl::Now() - start));
      checksum = sums[0] + static_cast<double>(counts[0]);
    }
    Print({"baseline: plain arrays, same grouped sum", options.rows, array_seconds});

    {
      int64_t bytes = 0;
      absl::Time start = absl::Now();
      s = e.Export("program_outcomes", v1::CSV, [&](absl::string_view chunk, int64_t) {
        bytes += chunk.size();
        return absl::OkStatus();
      });
      if (!s.ok()) return Fail(s);
      Print({"export CSV", options.rows, absl::ToDoubleSeconds(absl::Now() - start)});
    }
    std::printf("\nratios to the plain-array baseline (same process, best of %d):\n", repeat);
    std::printf("  column blocks + consent bitmap, hand-written scan  %6.1fx\n",
                block_scan_seconds / array_seconds);
    std::printf("  query executor (what an answer costs before disclosure control)  %6.1fx\n",
                executor_seconds / array_seconds);
    std::printf("  disclosure rules on the 3-way question, to its executor time  %6.3fx\n",
                rules_seconds / grouped_executor_seconds);
    std::printf("\n(sum of outcome_score: %.1f; consent events imported: %lld; checksum %.1f)\n",
                sum, static_cast<long long>(consent->events_new()), checksum);
  }
  if (remove_dir) std::filesystem::remove_all(dir);
  return rc;
}

}  // namespace
}  // namespace fedshare

int main(int argc, char** argv) { return fedshare::Run(argc, argv); }
