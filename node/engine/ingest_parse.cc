#include "node/engine/ingest_parse.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/common/time_util.h"
#include "node/common/utf8.h"

namespace fedshare::engine {

absl::StatusOr<char> ParseDelimiter(absl::string_view text) {
  if (text.empty()) return '\0';
  if (text == "," || text == ";" || text == "\t" || text == "|") return text[0];
  return absl::InvalidArgumentError(absl::StrCat("the delimiter '", TruncateUtf8(text, 8),
                                                 "' is not one of ',', ';', tab or '|'"));
}

absl::Status ValidateDateFormat(absl::string_view format) {
  if (format.size() > kMaxDateFormatBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the date format is longer than ", kMaxDateFormatBytes, " bytes"));
  }
  int years = 0, months = 0, days = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') continue;
    const char d = i + 1 < format.size() ? format[i + 1] : '\0';
    ++i;
    if (d == 'Y') {
      ++years;
    } else if (d == 'm') {
      ++months;
    } else if (d == 'd') {
      ++days;
    } else if (d != '%') {
      return absl::InvalidArgumentError(
          absl::StrCat("the date format '", TruncateUtf8(format, 64),
                       "' may use only %Y, %m, %d and %% (e.g. %d/%m/%Y)"));
    }
  }
  if (years != 1 || months != 1 || days != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the date format '", TruncateUtf8(format, 64),
                     "' must have %Y, %m and %d once each (e.g. %d/%m/%Y)"));
  }
  return absl::OkStatus();
}

namespace {

// Reads `min`..`max` ASCII digits at text[*pos]; false if fewer than `min`.
bool TakeDigits(absl::string_view text, size_t* pos, size_t min, size_t max, std::string* out) {
  size_t n = 0;
  while (n < max && *pos + n < text.size() && absl::ascii_isdigit(text[*pos + n])) ++n;
  if (n < min) return false;
  out->assign(text.data() + *pos, n);
  if (out->size() < 2) out->insert(0, "0");
  *pos += n;
  return true;
}

}  // namespace

absl::StatusOr<int32_t> ParseDateWithFormat(absl::string_view text, absl::string_view format) {
  if (format.empty() || format == "%Y-%m-%d") return ParseDateDays(text);
  std::string year, month, day;
  size_t pos = 0;
  bool ok = true;
  for (size_t i = 0; ok && i < format.size(); ++i) {
    char c = format[i];
    if (c == '%' && i + 1 < format.size() && format[i + 1] != '%') {
      const char d = format[++i];
      if (d == 'Y') ok = TakeDigits(text, &pos, 4, 4, &year);
      if (d == 'm') ok = TakeDigits(text, &pos, 1, 2, &month);
      if (d == 'd') ok = TakeDigits(text, &pos, 1, 2, &day);
      continue;
    }
    if (c == '%') ++i;  // "%%" is a literal '%'
    ok = pos < text.size() && text[pos] == c;
    ++pos;
  }
  if (!ok || pos != text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", TruncateUtf8(text, 40), "' is not a date in the form ", format));
  }
  return ParseDateDays(absl::StrCat(year, "-", month, "-", day));
}

bool ParseBoolText(absl::string_view text, int64_t* out) {
  if (absl::EqualsIgnoreCase(text, "true") || text == "1" || absl::EqualsIgnoreCase(text, "yes") ||
      absl::EqualsIgnoreCase(text, "y")) {
    *out = 1;
    return true;
  }
  if (absl::EqualsIgnoreCase(text, "false") || text == "0" || absl::EqualsIgnoreCase(text, "no") ||
      absl::EqualsIgnoreCase(text, "n")) {
    *out = 0;
    return true;
  }
  return false;
}

std::string NormalizeColumnName(absl::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == ' ' || c == '\t' || c == '_' || c == '-') continue;
    out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string ListValues(const std::vector<std::string>& values) {
  constexpr size_t kListed = 20;
  std::vector<std::string> shown;
  for (size_t i = 0; i < values.size() && i < kListed; ++i) {
    shown.push_back(TruncateUtf8(values[i], 40));
  }
  std::string out = absl::StrJoin(shown, ", ");
  if (values.size() > kListed) absl::StrAppend(&out, " and ", values.size() - kListed, " more");
  return out;
}

absl::StatusOr<ColumnResolver> ColumnResolver::Create(
    const v1::DatasetSchema& schema,
    const std::vector<std::pair<std::string, std::string>>& column_map) {
  ColumnResolver r;
  for (int f = 0; f < schema.fields_size(); ++f) {
    const std::string& name = schema.fields(f).name();
    r.exact_.emplace(name, f);
    auto [it, inserted] = r.normalized_.emplace(NormalizeColumnName(name), f);
    if (!inserted) it->second = -1;
  }
  if (column_map.size() > kMaxColumnMappings) {
    return absl::InvalidArgumentError(
        absl::StrCat("more than ", kMaxColumnMappings, " column mappings"));
  }
  for (const auto& [column, field] : column_map) {
    auto target = r.exact_.find(field);
    if (target == r.exact_.end()) {
      std::vector<std::string> names;
      for (const v1::FieldSchema& f : schema.fields()) names.push_back(f.name());
      return absl::InvalidArgumentError(
          absl::StrCat("--map \"", TruncateUtf8(column, 40), "=", TruncateUtf8(field, 40),
                       "\": dataset '", schema.name(), "' has no field '", TruncateUtf8(field, 40),
                       "'; its fields: ", ListValues(names)));
    }
    const std::string key = NormalizeColumnName(column);
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--map \"=", TruncateUtf8(field, 40), "\": the column name is empty"));
    }
    if (!r.mapped_.emplace(key, target->second).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--map names the column '", TruncateUtf8(column, 40), "' twice"));
    }
    r.mapped_columns_.push_back(column);
  }
  return r;
}

int ColumnResolver::Resolve(absl::string_view column) const {
  const std::string key = NormalizeColumnName(column);
  if (auto it = mapped_.find(key); it != mapped_.end()) return it->second;
  if (auto it = exact_.find(column); it != exact_.end()) return it->second;
  if (auto it = normalized_.find(key); it != normalized_.end()) return it->second;
  return -1;
}

std::vector<std::string> ColumnResolver::UnusedMappings(
    const std::vector<std::string>& columns) const {
  absl::flat_hash_set<std::string> present;
  for (const std::string& c : columns) present.insert(NormalizeColumnName(c));
  std::vector<std::string> unused;
  for (const std::string& mapped : mapped_columns_) {
    if (!present.contains(NormalizeColumnName(mapped))) unused.push_back(mapped);
  }
  return unused;
}

}  // namespace fedshare::engine
