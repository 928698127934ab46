#include "node/engine/ingest_cells.h"

#include <charconv>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "node/common/time_util.h"
#include "node/common/utf8.h"
#include "node/engine/engine_internal.h"
#include "policy/schema.h"

namespace fedshare::engine {
namespace {

std::string WrongType(const v1::FieldSchema& f, absl::string_view got) {
  return absl::StrCat("wrong type: expected ", policy::TypeName(f.type()), ", got ", got);
}

bool ParseInt64(absl::string_view text, int64_t* out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && p == end && !text.empty();
}

bool ParseDouble(absl::string_view text, double* out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, *out, std::chars_format::general);
  return ec == std::errc() && p == end && !text.empty() && std::isfinite(*out);
}

// Parses a CSV cell for field f. Returns "" on success, else the reason.
std::string DateHint(absl::string_view date_format) {
  if (date_format.empty())
    return " (use YYYY-MM-DD, or say how dates are written with --date-format)";
  return absl::StrCat(" (use ", date_format, ")");
}

absl::string_view JsonKindName(JsonScalar::Kind kind) {
  switch (kind) {
    case JsonScalar::Kind::kNull:
      return "null";
    case JsonScalar::Kind::kBool:
      return "a boolean";
    case JsonScalar::Kind::kNumber:
      return "a number";
    case JsonScalar::Kind::kString:
      return "a string";
  }
  return "a value";
}

// An INT64 subject id as the text its ordinal is keyed by.
void SubjectText(Cell* cell) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), cell->i);
  cell->own.assign(buf, p - buf);
  cell->s = cell->own;
}

bool HasBounds(const v1::FieldSchema& f) {
  return f.role() == v1::FieldSchema::MEASURE && !(f.lower() == 0 && f.upper() == 0);
}

}  // namespace

std::string ParseTextCell(const v1::FieldSchema& f, absl::string_view text, bool quoted,
                          absl::string_view date_format, Cell* cell) {
  cell->null = true;
  if (text.empty() && (!quoted || f.type() != v1::FieldSchema::CATEGORY)) return "";
  cell->null = false;
  switch (f.type()) {
    case v1::FieldSchema::INT64:
      if (!ParseInt64(text, &cell->i)) return WrongType(f, Quote(text));
      if (f.role() == v1::FieldSchema::SUBJECT) SubjectText(cell);
      return "";
    case v1::FieldSchema::DOUBLE:
      if (!ParseDouble(text, &cell->d)) return WrongType(f, Quote(text));
      return "";
    case v1::FieldSchema::BOOL:
      if (!ParseBoolText(text, &cell->i)) return WrongType(f, Quote(text));
      return "";
    case v1::FieldSchema::DATE: {
      absl::StatusOr<int32_t> days = ParseDateWithFormat(text, date_format);
      if (!days.ok()) return WrongType(f, absl::StrCat(Quote(text), DateHint(date_format)));
      cell->i = *days;
      return "";
    }
    case v1::FieldSchema::CATEGORY:
      cell->s = text;
      return "";
    default:
      return "wrong type: field has no type";
  }
}

std::string ParseJsonCell(const v1::FieldSchema& f, const JsonScalar& v,
                          absl::string_view date_format, Cell* cell) {
  cell->null = true;
  if (v.kind == JsonScalar::Kind::kNull) return "";
  cell->null = false;
  auto wrong = [&] {
    std::string got(JsonKindName(v.kind));
    if (v.kind == JsonScalar::Kind::kNumber || v.kind == JsonScalar::Kind::kString) {
      absl::StrAppend(&got, " ", Quote(v.text));
    }
    return WrongType(f, got);
  };
  switch (f.type()) {
    case v1::FieldSchema::INT64:
      if (v.kind != JsonScalar::Kind::kNumber || !JsonNumberIsInteger(v.text) ||
          !ParseInt64(v.text, &cell->i)) {
        return wrong();
      }
      if (f.role() == v1::FieldSchema::SUBJECT) SubjectText(cell);
      return "";
    case v1::FieldSchema::DOUBLE:
      if (v.kind != JsonScalar::Kind::kNumber || !ParseDouble(v.text, &cell->d)) return wrong();
      return "";
    case v1::FieldSchema::BOOL:
      if (v.kind != JsonScalar::Kind::kBool) return wrong();
      cell->i = v.bool_value ? 1 : 0;
      return "";
    case v1::FieldSchema::DATE: {
      if (v.kind != JsonScalar::Kind::kString) return wrong();
      absl::StatusOr<int32_t> days = ParseDateWithFormat(v.text, date_format);
      if (!days.ok()) return WrongType(f, absl::StrCat(Quote(v.text), DateHint(date_format)));
      cell->i = *days;
      return "";
    }
    case v1::FieldSchema::CATEGORY:
      if (v.kind != JsonScalar::Kind::kString) return wrong();
      cell->s = v.text;
      return "";
    default:
      return "wrong type: field has no type";
  }
}

// Checks a parsed, non-null cell against the schema's constraints.
std::string CheckCell(const v1::FieldSchema& f, const Cell& cell,
                      const absl::flat_hash_set<std::string>* declared) {
  if (cell.null) return "";
  if (HasBounds(f)) {
    double v = f.type() == v1::FieldSchema::DOUBLE ? cell.d : static_cast<double>(cell.i);
    if (v < f.lower() || v > f.upper()) {
      std::string shown =
          f.type() == v1::FieldSchema::DOUBLE ? absl::StrCat(cell.d) : absl::StrCat(cell.i);
      return absl::StrCat("out of bounds: ", shown, " is outside [", f.lower(), ", ", f.upper(),
                          "]");
    }
  }
  if (f.type() == v1::FieldSchema::CATEGORY && f.role() != v1::FieldSchema::SUBJECT &&
      declared != nullptr && !declared->empty() && !declared->contains(cell.s)) {
    return absl::StrCat(
        "unknown category: ", Quote(cell.s), " is not a declared value of ", f.name(),
        " (allowed: ", ListValues({f.categories().begin(), f.categories().end()}), ")");
  }
  return "";
}

}  // namespace fedshare::engine
