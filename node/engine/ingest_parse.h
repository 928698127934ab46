// How ingest reads files written by spreadsheets: the field separator, which
// column is which field, how dates and booleans are spelled, and how a
// refused CATEGORY value names the allowed ones. Pure functions; no I/O.
//
//   IngestParseOptions options;
//   options.delimiter = ';';
//   options.column_map = {{"Participant ID", "participant_id"}};
//   options.date_format = "%d/%m/%Y";
//   FEDSHARE_ASSIGN_OR_RETURN(ColumnResolver columns,
//                             ColumnResolver::Create(schema, options.column_map));
//   int field = columns.Resolve("Cohort Year");  // cohort_year's index
#ifndef FEDSHARE_NODE_ENGINE_INGEST_PARSE_H_
#define FEDSHARE_NODE_ENGINE_INGEST_PARSE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/types.pb.h"

namespace fedshare::engine {

inline constexpr size_t kMaxColumnMappings = 256;
inline constexpr size_t kMaxDateFormatBytes = 64;

struct IngestParseOptions {
  // CSV field separator; 0 detects it from the header line (csv.h).
  char delimiter = 0;
  // (file column, schema field) pairs.
  std::vector<std::pair<std::string, std::string>> column_map;
  // strftime-style, see ValidateDateFormat; empty means "%Y-%m-%d".
  std::string date_format;
};

// The separator named by `text`: "" (0: detect), ",", ";", "\t" or "|".
// INVALID_ARGUMENT otherwise.
absl::StatusOr<char> ParseDelimiter(absl::string_view text);

// OK if `format` has each of %Y, %m and %d exactly once, no other directive
// but %%, and at most kMaxDateFormatBytes bytes; INVALID_ARGUMENT saying what
// is wrong otherwise.
absl::Status ValidateDateFormat(absl::string_view format);

// Days since 1970-01-01 of `text` written in `format` (already validated):
// %Y is four digits, %m and %d one or two. INVALID_ARGUMENT if it does not
// match or is not a calendar date.
absl::StatusOr<int32_t> ParseDateWithFormat(absl::string_view text, absl::string_view format);

// true/false, 1/0, yes/no and y/n, ignoring case. False if none of them.
bool ParseBoolText(absl::string_view text, int64_t* out);

// A column name as matched without a mapping: ASCII lower case, without
// spaces, tabs, '_' and '-' ("Cohort Year" and "cohort_year" give
// "cohortyear").
std::string NormalizeColumnName(absl::string_view name);

// ", "-joined values, each cut to 40 bytes on a character boundary, at most
// 20 of them and then "and N more".
std::string ListValues(const std::vector<std::string>& values);

// Finds the schema field a file column holds.
class ColumnResolver {
 public:
  // INVALID_ARGUMENT if a mapping names no field of `schema`, has an empty
  // column, names a column twice, or there are more than kMaxColumnMappings.
  static absl::StatusOr<ColumnResolver> Create(
      const v1::DatasetSchema& schema,
      const std::vector<std::pair<std::string, std::string>>& column_map);

  // The field index for `column`: a mapping whose column matches it
  // (NormalizeColumnName on both) wins, then a field named exactly so, then
  // the one field whose normalized name matches. -1 if none.
  int Resolve(absl::string_view column) const;

  // The mapped columns that none of `columns` matched.
  std::vector<std::string> UnusedMappings(const std::vector<std::string>& columns) const;

 private:
  absl::flat_hash_map<std::string, int> mapped_;      // normalized column -> field
  std::vector<std::string> mapped_columns_;           // as given
  absl::flat_hash_map<std::string, int> exact_;       // field name -> field
  absl::flat_hash_map<std::string, int> normalized_;  // -1 where two fields collide
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_INGEST_PARSE_H_
