// Issue 4's generated data for tests/query_bruteforce_test.cc: ~500 subjects
// with 1-3 program_outcomes records each and varied consent histories, seeded
// so that every run sees the same data, with the subjects whose consent
// counts worked out here, independently of the node's code, as DESIGN §6 and
// policy/consent.h state it (OPT_IN, purpose program-evaluation under
// research, asker kAsker).
#ifndef FEDSHARE_TESTING_BRUTEFORCE_DATA_H_
#define FEDSHARE_TESTING_BRUTEFORCE_DATA_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace fedshare::testing::bruteforce {

// The peer that asks, whose consent scope decides.
inline constexpr char kAsker[] = "foundation";

// One program_outcomes record.
struct Record {
  std::string subject;
  std::string program;
  std::string region;
  int64_t cohort_year = 0;
  int64_t age = 0;
  bool completed = false;
  std::optional<double> outcome_score;
  int64_t sessions_attended = 0;
  double income = 0;
};

// One consent event of a subject.
struct ConsentRow {
  std::string purpose;
  std::string event;  // GIVEN, RENEWED, WITHDRAWN, REFUSED, EXPIRED
  absl::Time time;
  std::optional<absl::Time> valid_until;
  std::string scope;  // "*" or orgs separated by ';'
};

struct Data {
  std::vector<Record> records;
  std::map<std::string, std::vector<ConsentRow>> consent;  // by subject
  std::set<std::string> counting;                          // subjects whose consent counts
};

// The generated data (the same on every call).
Data Generate();

// The records as program_outcomes CSV, and the consent events as consent CSV.
std::string RecordsCsv(const Data& data);
std::string ConsentCsv(const Data& data);

}  // namespace fedshare::testing::bruteforce

#endif  // FEDSHARE_TESTING_BRUTEFORCE_DATA_H_
