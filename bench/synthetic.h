// Seeded synthetic program-outcome records and consents, for tests, the
// benchmark and the demo federation (deploy/local/federation.sh uses the same
// schema and purposes).
//
//   synthetic::Options options;
//   options.seed = 7;
//   options.rows = 3000;
//   std::string records = synthetic::RecordsCsv(options);   // canonical CSV
//   std::string consent = synthetic::ConsentCsv(options);
//   v1::DatasetSchema schema = synthetic::ProgramOutcomesSchema();
//
// Output depends only on the options (a hash of seed and position, no
// library distributions), so it is identical across runs and machines, and
// any row range can be generated on its own. Records are in the canonical CSV
// form of node/engine/engine.h, so export reproduces them exactly.
#ifndef FEDSHARE_BENCH_SYNTHETIC_H_
#define FEDSHARE_BENCH_SYNTHETIC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "fedshare/v1/types.pb.h"

namespace fedshare::synthetic {

struct Options {
  uint64_t seed = 1;
  int64_t rows = 1000;
  // Distinct subjects; 0 means rows * 2 / 3 (most people have one record,
  // some have several).
  int64_t subjects = 0;
  std::string dataset = "program_outcomes";
  // Consent events are dated before this time; some expire before it.
  absl::Time now = absl::FromUnixSeconds(1767225600);  // 2026-01-01
};

// The schema: participant_id (SUBJECT CATEGORY), program (DIMENSION CATEGORY,
// declared values, public_values), region (DIMENSION CATEGORY, declared),
// cohort_year (DIMENSION INT64), age (DIMENSION INT64, granularity 5),
// completed (DIMENSION BOOL), outcome_score (MEASURE DOUBLE 0..100),
// sessions_attended (MEASURE INT64 0..200), income (PRIVATE DOUBLE).
v1::DatasetSchema ProgramOutcomesSchema(const std::string& name = "program_outcomes");

// research > program-evaluation, and marketing.
std::vector<v1::Purpose> Purposes();

// The subject id of subject number i ("P000042"-style).
std::string SubjectId(int64_t i);

// The header line (with LF) and rows [from, to) appended to `out`.
void AppendRecordsHeader(std::string* out);
void AppendRecords(const Options& options, int64_t from, int64_t to, std::string* out);
// Header plus all options.rows rows.
std::string RecordsCsv(const Options& options);

// Consent events (header subject,purpose,event,time,valid_until,scope) for
// every subject: about 72% GIVEN for program-evaluation (of which about 12%
// WITHDRAWN later and some RENEWED), 4% GIVEN for research (covering
// program-evaluation), 8% REFUSED, 6% GIVEN but expired before `now`, 3%
// GIVEN only for marketing, the rest no event at all.
std::string ConsentCsv(const Options& options);

// A NodeConfig text-format fragment with the purposes and the dataset.
std::string ConfigFragment(const Options& options);

}  // namespace fedshare::synthetic

#endif  // FEDSHARE_BENCH_SYNTHETIC_H_
