// The brute force of tests/query_bruteforce_test.cc: from its own copy of the
// records and consents (tests/bruteforce_data.h) and independently of the
// node's code, the answer the documented rules give to a question:
//   - the filter, with range bounds snapped as policy/query_rules.h says;
//   - the predicate-removal rule (each predicate drops records of no subject
//     or of >= k, overall and in each non-empty cell and histogram bin),
//     which refuses the whole question;
//   - exact figures per cell (measures clamped, AVG over non-null values,
//     sample variance with n-1);
//   - the cell rules of policy/disclosure.h, applied by
//     policy::ApplyCellRules to the per-cell figures computed here (the
//     attacker oracle, tests/attacker_oracle_test.cc, checks independently
//     that those rules protect).
#ifndef FEDSHARE_TESTING_BRUTEFORCE_REFERENCE_H_
#define FEDSHARE_TESTING_BRUTEFORCE_REFERENCE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fedshare/v1/config.pb.h"
#include "fedshare/v1/query.pb.h"
#include "testing/bruteforce_data.h"

namespace fedshare::testing::bruteforce {

inline constexpr int kK = 10;  // DisclosureParams defaults (policy/agreement.h)

// A cell's key: one text per GROUP BY field, in the node's key order.
using Key = std::vector<std::string>;

// The text of a key value in a node's answer, as Key holds it.
std::string KeyPart(const v1::Value& v);

struct ExpectedValue {
  double value = 0;
  double count = 0;
  double sum = 0;
  double sum_squares = 0;
  std::vector<double> bins;
  std::vector<int32_t> withheld_bins;
};

struct ExpectedCell {
  Key key;
  int64_t subjects = 0;
  std::vector<ExpectedValue> values;
  bool withheld = false;
  std::string rule;
};

struct Expected {
  bool refused = false;
  std::string refused_field;        // a field whose predicate leaves out 1..k-1 subjects
  std::vector<ExpectedCell> cells;  // key order
  std::map<std::string, int> withholdings;
};

// The answer the rules give to `q` over `data` (whose schema is `schema`).
Expected BruteForce(const Data& data, const v1::DatasetSchema& schema, const v1::AggregateQuery& q);

}  // namespace fedshare::testing::bruteforce

#endif  // FEDSHARE_TESTING_BRUTEFORCE_REFERENCE_H_
