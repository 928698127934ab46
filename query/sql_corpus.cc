#include "query/sql_corpus.h"

namespace fedshare {

const std::vector<SqlCorpusCase>& SqlValidCorpus() {
  static const auto* const kCases = new std::vector<SqlCorpusCase>{
      {"DesignExample",
       "SELECT program, COUNT(*), AVG(outcome_score) FROM program_outcomes WHERE "
       "cohort_year >= 2020 AND region IN ('north','south') GROUP BY program PURPOSE "
       "'program-evaluation'",
       ""},
      {"EveryAggregate",
       "select count(*), Count(Distinct SUBJECT), sum(a), AVG(b), stddev(c), "
       "variance(d), histogram(e, -10, 2.5e1, 7) from ds purpose 'p'",
       ""},
      {"EveryOperatorAndLiteral",
       "select count(*) from ds where a = 1 and b != -2.0 and c < 0.1 and d <= -3 "
       "and e > true and f >= 'x''y' and g between date '2020-01-01' and date '2021-01-01' and "
       "h in (1, 2.5, 'z', false) and i <> 0.0 and j = -0.5e-7 purpose 'p';",
       ""},
      {"MixedCaseAndComment",
       "SELECT Region, SUM(Score), Program FROM Outcomes\n  -- a comment\n"
       "GROUP BY PROGRAM, region PURPOSE 'Mixed-Case'",
       ""},
      {"LargeIntegers",
       "SELECT COUNT(*) FROM ds WHERE a = 9223372036854775807 AND b = "
       "-9223372036854775808 PURPOSE 'p'",
       ""},
      {"Utf8String", "SELECT COUNT(*) FROM ds WHERE a = '\xc3\xa9t\xc3\xa9' PURPOSE 'p'", ""},
  };
  return *kCases;
}

const std::vector<SqlCorpusCase>& SqlErrorCorpus() {
  static const auto* const kCases = new std::vector<SqlCorpusCase>{

      {"UnterminatedString", "SELECT COUNT(*) FROM ds WHERE a = 'abc PURPOSE 'p'",
       "at 1:50: unterminated string"},
      {"UnterminatedPurpose", "SELECT COUNT(*) FROM ds PURPOSE 'p", "at 1:33: unterminated string"},
      {"UnknownAggregate",
       "SELECT program, MEAN(x) FROM ds GROUP BY program "
       "PURPOSE 'p'",
       "at 1:17: unknown aggregate 'MEAN'"},
      {"MinRefused", "SELECT MIN(x) FROM ds PURPOSE 'p'", "at 1:8: MIN is not supported"},
      {"MissingPurposeAfterGroupBy", "SELECT a, COUNT(*) FROM ds GROUP BY a",
       "at 1:38: expected ',' or PURPOSE 'purpose-id' but found end of query"},
      {"GroupByWithoutField", "SELECT COUNT(*) FROM ds GROUP BY",
       "at 1:33: expected a field to group by but found end of query"},
      {"MissingPurposeAtEnd", "SELECT COUNT(*) FROM ds WHERE a = 1",
       "at 1:36: expected AND, GROUP BY or PURPOSE 'purpose-id' but found end of "
       "query"},
      {"MissingPurposeNoWhere", "SELECT COUNT(*) FROM ds",
       "at 1:24: expected WHERE, GROUP BY or PURPOSE 'purpose-id' but found end "
       "of query"},
      {"EmptyPurpose", "SELECT COUNT(*) FROM ds PURPOSE ''",
       "at 1:33: the purpose must not be empty"},
      {"PurposeNotString", "SELECT COUNT(*) FROM ds PURPOSE p",
       "at 1:33: expected the purpose as a string"},
      {"OrUsed", "SELECT COUNT(*) FROM ds WHERE a = 1 OR b = 2 PURPOSE 'p'",
       "at 1:37: OR is not supported"},
      {"NotUsed", "SELECT COUNT(*) FROM ds WHERE NOT a = 1 PURPOSE 'p'",
       "at 1:31: NOT is not supported"},
      {"NotInUsed", "SELECT COUNT(*) FROM ds WHERE a NOT IN (1) PURPOSE 'p'",
       "at 1:33: NOT is not supported"},
      {"SelectFieldNotGrouped",
       "SELECT program, region, COUNT(*) FROM ds GROUP BY program PURPOSE 'p'",
       "at 1:17: 'region' is selected but not in GROUP BY"},
      {"SelectFieldNoGroupBy", "SELECT program, COUNT(*) FROM ds PURPOSE 'p'",
       "at 1:8: 'program' is selected but not in GROUP BY"},
      {"GroupedFieldNotSelected", "SELECT COUNT(*) FROM ds GROUP BY program PURPOSE 'p'",
       "at 1:34: 'program' is in GROUP BY but not in SELECT"},
      {"GroupedTwice", "SELECT a, COUNT(*) FROM ds GROUP BY a, a PURPOSE 'p'",
       "at 1:40: 'a' is grouped by twice"},
      {"TrailingGarbage", "SELECT COUNT(*) FROM ds PURPOSE 'p' LIMIT 10",
       "at 1:37: expected end of query but found 'LIMIT'"},
      {"TrailingAfterSemicolon", "SELECT COUNT(*) FROM ds PURPOSE 'p'; x",
       "at 1:38: expected end of query but found 'x'"},
      {"NoAggregate", "SELECT a FROM ds GROUP BY a PURPOSE 'p'",
       "at 1:8: SELECT needs at least one aggregate"},
      {"NotSelect", "COUNT(*) FROM ds PURPOSE 'p'", "at 1:1: expected SELECT but found 'COUNT'"},
      {"MissingFrom", "SELECT COUNT(*) ds PURPOSE 'p'",
       "at 1:17: expected ',' or FROM but found 'ds'"},
      {"ReservedWordAsDataset", "SELECT COUNT(*) FROM where PURPOSE 'p'",
       "at 1:22: expected a dataset name but found reserved word 'where'"},
      {"CountField", "SELECT COUNT(x) FROM ds PURPOSE 'p'",
       "at 1:14: expected '*' or DISTINCT subject"},
      {"CountDistinctOther", "SELECT COUNT(DISTINCT x) FROM ds PURPOSE 'p'",
       "at 1:23: expected 'subject'"},
      {"MissingCloseParen", "SELECT SUM(x FROM ds PURPOSE 'p'",
       "at 1:14: expected ')' but found 'FROM'"},
      {"HistogramBoundsReversed", "SELECT HISTOGRAM(x, 10, 0, 5) FROM ds PURPOSE 'p'",
       "at 1:21: the histogram's lower bound must be below"},
      {"HistogramZeroBins", "SELECT HISTOGRAM(x, 0, 10, 0) FROM ds PURPOSE 'p'",
       "at 1:28: the number of bins must be a positive integer"},
      {"HistogramFractionalBins", "SELECT HISTOGRAM(x, 0, 10, 2.5) FROM ds PURPOSE 'p'",
       "at 1:28: expected the number of bins (an integer) but found number 2.5"},
      {"MissingOperator", "SELECT COUNT(*) FROM ds WHERE a 1 PURPOSE 'p'",
       "at 1:33: expected an operator"},
      {"MissingLiteral", "SELECT COUNT(*) FROM ds WHERE a = PURPOSE 'p'",
       "at 1:35: expected a literal"},
      {"BetweenWithoutAnd", "SELECT COUNT(*) FROM ds WHERE a BETWEEN 1 OR 2 PURPOSE 'p'",
       "at 1:43: expected AND but found 'OR'"},
      {"EmptyIn", "SELECT COUNT(*) FROM ds WHERE a IN () PURPOSE 'p'",
       "at 1:37: expected a literal"},
      {"BadDate", "SELECT COUNT(*) FROM ds WHERE d = DATE '2020-13-01' PURPOSE 'p'",
       "at 1:40: malformed date '2020-13-01'"},
      {"NullLiteral", "SELECT COUNT(*) FROM ds WHERE d = NULL PURPOSE 'p'",
       "at 1:35: NULL is not supported"},
      {"DoubleQuotes", "SELECT COUNT(*) FROM ds PURPOSE \"p\"",
       "at 1:33: quoted identifiers are not supported"},
      {"StrayCharacter", "SELECT COUNT(*) FROM ds WHERE a = 1 & b = 2 PURPOSE 'p'",
       "at 1:37: unexpected character '&'"},
      {"SelectStar", "SELECT * FROM ds PURPOSE 'p'", "at 1:8: SELECT * is not supported"},
      {"MalformedNumber", "SELECT COUNT(*) FROM ds WHERE a = 12abc PURPOSE 'p'",
       "at 1:35: malformed number"},
      {"SecondLine", "SELECT COUNT(*)\nFROM ds\nWHERE a = 1 OR b = 2\nPURPOSE 'p'",
       "at 3:13: OR is not supported"},
      {"IntegerOverflow", "SELECT COUNT(*) FROM ds WHERE a = 9223372036854775808 PURPOSE 'p'",
       "at 1:35: integer"},
      {"OrAfterUtf8", "SELECT COUNT(*) FROM ds WHERE a = '\xc3\xa9' OR b = 1 PURPOSE 'p'",
       "at 1:39: OR"},
  };
  return *kCases;
}

}  // namespace fedshare
