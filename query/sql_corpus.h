// The SQL test corpus: questions that parse and questions that must fail at a
// known position. query/sql_test.cc checks ParseSql against it, and
// tests/sql_parity_test.cc checks that the node's parse of the same text (a
// FederatedAggregateRequest with `sql`) answers the same. Test-only.
#ifndef FEDSHARE_QUERY_SQL_CORPUS_H_
#define FEDSHARE_QUERY_SQL_CORPUS_H_

#include <vector>

namespace fedshare {

struct SqlCorpusCase {
  const char* name;
  const char* sql;
  // For an error case, the expected start of the message's first line
  // ("at LINE:COLUMN: ..."); empty for a question that parses.
  const char* error;
};

const std::vector<SqlCorpusCase>& SqlValidCorpus();
const std::vector<SqlCorpusCase>& SqlErrorCorpus();

}  // namespace fedshare

#endif  // FEDSHARE_QUERY_SQL_CORPUS_H_
