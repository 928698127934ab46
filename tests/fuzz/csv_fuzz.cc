// CsvReader on any bytes. Every well-formed record, written back with
// AppendCsvField (after a first record), reads back as the same fields.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "node/engine/csv.h"
#include "tests/fuzz/fuzz_assert.h"

using fedshare::engine::AppendCsvField;
using fedshare::engine::CsvReader;
using fedshare::engine::CsvRecord;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  CsvReader reader(text);
  CsvRecord record;
  int64_t last_line = 0;
  while (reader.Next(&record)) {
    FEDSHARE_FUZZ_ASSERT(record.line >= last_line && record.raw.data() >= text.data() &&
                             record.raw.data() + record.raw.size() <= text.data() + text.size(),
                         "records come in line order and their raw text lies within the input");
    last_line = record.line;
    if (!record.error.empty()) continue;
    // After a first record, so that a field starting with a byte order mark
    // is not at the start of the text (where the reader skips the mark).
    std::string written = "first\n";
    for (size_t i = 0; i < record.fields.size(); ++i) {
      if (i > 0) written.push_back(',');
      AppendCsvField(&written, record.fields[i].value, /*quote_empty=*/true);
    }
    written.push_back('\n');
    CsvReader again(written);
    CsvRecord copy;
    FEDSHARE_FUZZ_ASSERT(again.Next(&copy) && again.Next(&copy) && copy.error.empty() &&
                             copy.fields.size() == record.fields.size(),
                         absl::StrCat("record did not read back: ", written));
    for (size_t i = 0; i < copy.fields.size(); ++i) {
      FEDSHARE_FUZZ_ASSERT(copy.fields[i].value == record.fields[i].value,
                           absl::StrCat("field ", i, " did not read back: ", written));
    }
  }
  return 0;
}
