// RFC 4180 CSV reading and writing as used by ingest, consent import and
// export.
//
// Reading: fields are separated by ',' (or another delimiter), records by
// LF, CRLF or a lone CR. A field may be quoted with '"'; inside quotes, '""'
// is a quote and delimiters, CR and LF are data. A completely empty line (outside quotes) is
// skipped. A leading UTF-8 byte order mark is skipped. A record with bytes that are not UTF-8 (or
// with NUL bytes, as in UTF-16) has an `error` naming the column of the first such byte.
//
//   CsvReader reader(text);
//   CsvRecord record;
//   while (reader.Next(&record)) {
//     if (!record.error.empty()) ... // bad quoting; record.raw is the bad text
//     use(record.fields, record.line);
//   }
#ifndef FEDSHARE_NODE_ENGINE_CSV_H_
#define FEDSHARE_NODE_ENGINE_CSV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fedshare::engine {

struct CsvField {
  std::string value;
  bool quoted = false;  // written as "..." (so "" is an empty string, not null)
};

struct CsvRecord {
  std::vector<CsvField> fields;
  int64_t line = 0;       // 1-based line where the record starts
  absl::string_view raw;  // the record's text including its line terminator
  std::string error;      // non-empty: malformed quoting or not UTF-8; fields unusable
  // Ended by a line terminator outside quotes (false: by the end of the text,
  // so in a text that is only part of a file, more of the record may follow).
  bool terminated = false;
};

// Reads records from a whole text. The text must outlive the reader and the
// `raw` views it hands out.
class CsvReader {
 public:
  explicit CsvReader(absl::string_view text, char delimiter = ',');
  // Reads `text` as the continuation of a file at line `first_line`: no byte
  // order mark is skipped.
  CsvReader(absl::string_view text, char delimiter, int64_t first_line);
  // Fills `record` with the next non-empty record; false at end of input.
  bool Next(CsvRecord* record);
  // Where the next record would start: its offset in the text and its line.
  size_t pos() const { return pos_; }
  int64_t line() const { return line_; }

 private:
  absl::string_view text_;
  char delimiter_;
  size_t pos_ = 0;
  int64_t line_ = 1;
};

// Splits CSV records at memory speed when they are plain: no quote, NUL or
// non-ASCII byte before the line's end. Such a record reads exactly as
// CsvReader reads it (fields unquoted, no error); any other record is left
// for CsvReader. Ingest reads files with it.
//
//   PlainCsvSplitter split(',');
//   std::vector<absl::string_view> fields;
//   size_t length;
//   if (split.Split(text, at_end, &fields, &length) == PlainCsvSplitter::kRecord) ...
class PlainCsvSplitter {
 public:
  enum Outcome {
    kRecord,    // `fields` and `length` (terminator included) are set
    kNotPlain,  // read this record with CsvReader
    kNoEnd,     // the text ends before the record's terminator, more may come
  };
  explicit PlainCsvSplitter(char delimiter);
  // The record at the start of `text`, which must not start with CR or LF
  // (blank lines are skipped by the caller as CsvReader skips them). With
  // `at_end`, the text is the rest of the file: a record may end with it,
  // and a CR at its end is a line end. Else a record ending in a CR at the
  // text's end is kNoEnd (an LF may follow).
  Outcome Split(absl::string_view text, bool at_end, std::vector<absl::string_view>* fields,
                size_t* length) const;

 private:
  enum : uint8_t { kPlain = 0, kDelimiter = 1, kLineEnd = 2, kOther = 3 };
  uint8_t class_[256];
};

// The delimiter of `text`'s first non-empty line (after a UTF-8 BOM): the
// most frequent of ',', ';' and tab outside quotes; ',' when none occurs or
// on a tie with ','.
char DetectCsvDelimiter(absl::string_view text);

// Appends `value` to `out` as a CSV field, quoted only if it is empty and
// `quote_empty`, or contains ',', '"', CR or LF.
void AppendCsvField(std::string* out, absl::string_view value, bool quote_empty = false);

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_CSV_H_
