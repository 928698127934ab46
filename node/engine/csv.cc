#include "node/engine/csv.h"

#include "node/common/utf8.h"

namespace fedshare::engine {

CsvReader::CsvReader(absl::string_view text, char delimiter) : text_(text), delimiter_(delimiter) {
  if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
}

CsvReader::CsvReader(absl::string_view text, char delimiter, int64_t first_line)
    : text_(text), delimiter_(delimiter), line_(first_line) {}

char DetectCsvDelimiter(absl::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  size_t pos = text.find_first_not_of("\r\n");
  if (pos == absl::string_view::npos) return ',';
  int commas = 0, semicolons = 0, tabs = 0;
  bool in_quotes = false;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (c == '"') in_quotes = !in_quotes;
    if (in_quotes) continue;
    if (c == '\n' || c == '\r') break;
    commas += c == ',';
    semicolons += c == ';';
    tabs += c == '\t';
  }
  if (semicolons > commas && semicolons >= tabs) return ';';
  if (tabs > commas && tabs > semicolons) return '\t';
  return ',';
}

bool CsvReader::Next(CsvRecord* record) {
  const size_t n = text_.size();
  // Skip empty lines.
  while (pos_ < n && (text_[pos_] == '\n' || text_[pos_] == '\r')) {
    if (text_[pos_] == '\r' && pos_ + 1 < n && text_[pos_ + 1] == '\n') ++pos_;
    ++pos_;
    ++line_;
  }
  if (pos_ >= n) return false;

  record->error.clear();
  record->terminated = false;
  record->line = line_;
  const size_t start = pos_;
  // The record's fields are reused from the last call, strings and all, so
  // reading a file allocates only when a field is longer than any before.
  size_t nfields = 0;
  auto next_field = [&]() -> CsvField& {
    if (nfields == record->fields.size()) record->fields.emplace_back();
    CsvField& f = record->fields[nfields++];
    f.value.clear();
    f.quoted = false;
    return f;
  };
  CsvField* field = &next_field();
  bool at_field_start = true;
  bool in_quotes = false;
  bool after_quote = false;  // a quoted field's closing quote was seen
  for (;;) {
    if (pos_ >= n) {
      if (in_quotes && record->error.empty()) {
        record->error = "unterminated quoted field";
      }
      break;
    }
    char c = text_[pos_];
    if (in_quotes) {
      ++pos_;
      if (c == '"') {
        if (pos_ < n && text_[pos_] == '"') {
          field->value.push_back('"');
          ++pos_;
        } else {
          in_quotes = false;
          after_quote = true;
        }
      } else {
        if (c == '\n' || (c == '\r' && !(pos_ < n && text_[pos_] == '\n'))) ++line_;
        field->value.push_back(c);
      }
      continue;
    }
    if (c == delimiter_) {
      ++pos_;
      field = &next_field();
      at_field_start = true;
      after_quote = false;
      continue;
    }
    if (c == '\n' || c == '\r') {
      ++pos_;
      if (c == '\r' && pos_ < n && text_[pos_] == '\n') ++pos_;
      ++line_;
      record->terminated = true;
      break;
    }
    if (c == '"' && at_field_start) {
      ++pos_;
      in_quotes = true;
      field->quoted = true;
      at_field_start = false;
      continue;
    }
    if (after_quote || c == '"') {
      if (record->error.empty()) {
        record->error =
            after_quote ? "text after a closing quote" : "quote inside an unquoted field";
      }
    }
    // The run of plain bytes up to the next special one, at once.
    size_t end = pos_ + 1;
    while (end < n) {
      const char d = text_[end];
      if (d == delimiter_ || d == '\n' || d == '\r' || d == '"') break;
      ++end;
    }
    field->value.append(text_.data() + pos_, end - pos_);
    at_field_start = false;
    pos_ = end;
  }
  record->fields.resize(nfields);
  record->raw = text_.substr(start, pos_ - start);
  if (record->error.empty()) {
    record->error = DescribeInvalidUtf8(record->raw);
    if (record->error.empty() && record->raw.find('\0') != absl::string_view::npos) {
      record->error = "NUL byte in the text: is the file UTF-16? save it as UTF-8";
    }
  }
  return true;
}

PlainCsvSplitter::PlainCsvSplitter(char delimiter) {
  for (int c = 0; c < 256; ++c) class_[c] = c >= 0x80 ? kOther : kPlain;
  class_[0] = kOther;
  class_[static_cast<uint8_t>('"')] = kOther;
  class_[static_cast<uint8_t>('\n')] = kLineEnd;
  class_[static_cast<uint8_t>('\r')] = kLineEnd;
  class_[static_cast<uint8_t>(delimiter)] = kDelimiter;
}

PlainCsvSplitter::Outcome PlainCsvSplitter::Split(absl::string_view text, bool at_end,
                                                  std::vector<absl::string_view>* fields,
                                                  size_t* length) const {
  fields->clear();
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  const char* field = begin;
  for (const char* p = begin; p < end; ++p) {
    const uint8_t c = class_[static_cast<uint8_t>(*p)];
    if (c == kPlain) continue;
    if (c == kDelimiter) {
      fields->emplace_back(field, p - field);
      field = p + 1;
      continue;
    }
    if (c == kOther) return kNotPlain;
    fields->emplace_back(field, p - field);
    if (*p == '\r') {
      if (p + 1 == end && !at_end) return kNoEnd;
      if (p + 1 < end && p[1] == '\n') ++p;
    }
    *length = p + 1 - begin;
    return kRecord;
  }
  if (!at_end) return kNoEnd;
  fields->emplace_back(field, end - field);
  *length = text.size();
  return kRecord;
}

void AppendCsvField(std::string* out, absl::string_view value, bool quote_empty) {
  bool needs_quotes = quote_empty && value.empty();
  for (char c : value) {
    if (c == ',' || c == '"' || c == '\r' || c == '\n') {
      needs_quotes = true;
      break;
    }
  }
  if (!needs_quotes) {
    out->append(value.data(), value.size());
    return;
  }
  out->push_back('"');
  for (char c : value) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace fedshare::engine
