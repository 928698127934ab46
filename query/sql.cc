#include "query/sql.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fmt/format.h"
#include "google/rpc/error_details.pb.h"
#include "node/common/status_macros.h"
#include "policy/refusal.h"

namespace fedshare {
namespace {

enum class TokenKind { kWord, kInteger, kDecimal, kString, kPunct, kEnd };

struct Token {
  TokenKind kind;
  std::string text;  // words as written, numbers as written, strings unescaped
  size_t offset;     // byte offset of the token's first character
};

// Reserved words cannot name a field or a dataset, so that a missing field is
// reported where it is missing rather than as a strange field name.
bool IsReserved(absl::string_view lower_word) {
  static constexpr absl::string_view kReserved[] = {
      "select", "from",    "where",    "and",  "or",    "not",  "in",    "between", "group",
      "by",     "purpose", "distinct", "true", "false", "null", "order", "limit",   "having"};
  for (absl::string_view r : kReserved) {
    if (r == lower_word) return true;
  }
  return false;
}

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<v1::AggregateQuery> Parse();

 private:
  // Lexing.
  absl::Status Tokenize();
  absl::Status ErrorAt(size_t offset, absl::string_view message) const;
  absl::Status Expected(absl::string_view what) const;

  // Parsing.
  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  const Token& Next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
  bool IsKeyword(const Token& t, absl::string_view keyword) const {
    return t.kind == TokenKind::kWord && absl::EqualsIgnoreCase(t.text, keyword);
  }
  bool IsPunct(const Token& t, absl::string_view p) const {
    return t.kind == TokenKind::kPunct && t.text == p;
  }
  absl::Status ExpectKeyword(absl::string_view keyword);
  absl::Status ExpectPunct(absl::string_view p);
  absl::StatusOr<std::string> ExpectIdentifier(absl::string_view what);
  absl::Status ParseSelectItem(v1::AggregateQuery& query);
  absl::StatusOr<v1::Aggregate> ParseAggregate(const Token& name);
  absl::StatusOr<double> ParseNumber(absl::string_view what);
  absl::Status ParsePredicate(v1::AggregateQuery& query);
  absl::StatusOr<v1::Value> ParseLiteral();
  absl::Status RefuseNotOr() const;

  absl::string_view text_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  // Non-aggregate SELECT items, with where they were written.
  std::vector<std::pair<std::string, size_t>> selected_fields_;
};

std::string Describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::kWord:
      return absl::StrCat("'", t.text, "'");
    case TokenKind::kInteger:
    case TokenKind::kDecimal:
      return absl::StrCat("number ", t.text);
    case TokenKind::kString:
      return absl::StrCat("string '", t.text, "'");
    case TokenKind::kPunct:
      return absl::StrCat("'", t.text, "'");
    case TokenKind::kEnd:
      return "end of query";
  }
  return "?";
}

absl::Status Parser::ErrorAt(size_t offset, absl::string_view message) const {
  offset = std::min(offset, text_.size());
  size_t line_start = 0;
  int line = 1;
  for (size_t i = 0; i < offset; ++i) {
    if (text_[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  size_t line_end = text_.find('\n', line_start);
  if (line_end == absl::string_view::npos) line_end = text_.size();
  // Columns count characters, not bytes, so the caret sits under the right
  // character of a UTF-8 line.
  int column = 1;
  for (size_t i = line_start; i < offset; ++i) {
    if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) ++column;
  }
  std::string echoed(text_.substr(line_start, line_end - line_start));
  for (char& c : echoed) {
    if (c == '\t') c = ' ';
  }
  absl::Status status =
      absl::InvalidArgumentError(absl::StrCat("at ", line, ":", column, ": ", message, "\n  ",
                                              echoed, "\n  ", std::string(column - 1, ' '), "^"));
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(kSqlSyntaxReason));
  info.set_domain(std::string(policy::kErrorDomain));
  (*info.mutable_metadata())[std::string(kSqlLineKey)] = absl::StrCat(line);
  (*info.mutable_metadata())[std::string(kSqlColumnKey)] = absl::StrCat(column);
  status.SetPayload(policy::kErrorInfoTypeUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

absl::Status Parser::Expected(absl::string_view what) const {
  return ErrorAt(Peek().offset, absl::StrCat("expected ", what, " but found ", Describe(Peek())));
}

absl::Status Parser::Tokenize() {
  size_t i = 0;
  const size_t n = text_.size();
  auto is_ident_start = [](char c) { return absl::ascii_isalpha(c) || c == '_'; };
  auto is_ident_char = [](char c) { return absl::ascii_isalnum(c) || c == '_'; };
  while (i < n) {
    const char c = text_[i];
    if (absl::ascii_isspace(c)) {
      ++i;
    } else if (c == '-' && i + 1 < n && text_[i + 1] == '-') {
      while (i < n && text_[i] != '\n') ++i;
    } else if (is_ident_start(c)) {
      size_t start = i;
      while (i < n && is_ident_char(text_[i])) ++i;
      tokens_.push_back({TokenKind::kWord, std::string(text_.substr(start, i - start)), start});
    } else if (absl::ascii_isdigit(c) ||
               (c == '.' && i + 1 < n && absl::ascii_isdigit(text_[i + 1]))) {
      size_t start = i;
      bool decimal = false;
      while (i < n && absl::ascii_isdigit(text_[i])) ++i;
      if (i < n && text_[i] == '.') {
        decimal = true;
        ++i;
        while (i < n && absl::ascii_isdigit(text_[i])) ++i;
      }
      if (i < n && (text_[i] == 'e' || text_[i] == 'E')) {
        size_t exp = i + 1;
        if (exp < n && (text_[exp] == '+' || text_[exp] == '-')) ++exp;
        if (exp < n && absl::ascii_isdigit(text_[exp])) {
          decimal = true;
          i = exp;
          while (i < n && absl::ascii_isdigit(text_[i])) ++i;
        }
      }
      if (i < n && is_ident_char(text_[i])) {
        return ErrorAt(start,
                       absl::StrCat("malformed number '", text_.substr(start, i + 1 - start), "'"));
      }
      tokens_.push_back({decimal ? TokenKind::kDecimal : TokenKind::kInteger,
                         std::string(text_.substr(start, i - start)), start});
    } else if (c == '\'') {
      size_t start = i++;
      std::string value;
      bool closed = false;
      while (i < n) {
        if (text_[i] == '\'') {
          if (i + 1 < n && text_[i + 1] == '\'') {
            value.push_back('\'');
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        value.push_back(text_[i++]);
      }
      if (!closed) {
        return ErrorAt(start,
                       "unterminated string: a string opened here has no closing quote "
                       "(write a quote inside a string as '')");
      }
      tokens_.push_back({TokenKind::kString, std::move(value), start});
    } else if (c == '"' || c == '`') {
      return ErrorAt(i,
                     "quoted identifiers are not supported; write strings in single quotes "
                     "('like this') and fields without quotes");
    } else {
      static constexpr absl::string_view kTwo[] = {"<=", ">=", "<>", "!="};
      static constexpr absl::string_view kOne = "(),*=<>;-";
      bool matched = false;
      for (absl::string_view two : kTwo) {
        if (text_.substr(i, 2) == two) {
          tokens_.push_back({TokenKind::kPunct, std::string(two), i});
          i += 2;
          matched = true;
          break;
        }
      }
      if (!matched) {
        if (kOne.find(c) == absl::string_view::npos) {
          return ErrorAt(i, absl::StrCat("unexpected character '", std::string(1, c), "'"));
        }
        tokens_.push_back({TokenKind::kPunct, std::string(1, c), i});
        ++i;
      }
    }
  }
  tokens_.push_back({TokenKind::kEnd, "", n});
  return absl::OkStatus();
}

absl::Status Parser::ExpectKeyword(absl::string_view keyword) {
  if (!IsKeyword(Peek(), keyword)) return Expected(keyword);
  Next();
  return absl::OkStatus();
}

absl::Status Parser::ExpectPunct(absl::string_view p) {
  if (!IsPunct(Peek(), p)) return Expected(absl::StrCat("'", p, "'"));
  Next();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Parser::ExpectIdentifier(absl::string_view what) {
  const Token& t = Peek();
  if (t.kind != TokenKind::kWord) return Expected(what);
  std::string lower = absl::AsciiStrToLower(t.text);
  if (IsReserved(lower)) {
    return ErrorAt(t.offset,
                   absl::StrCat("expected ", what, " but found reserved word '", t.text, "'"));
  }
  Next();
  return lower;
}

absl::Status Parser::RefuseNotOr() const {
  const Token& t = Peek();
  if (IsKeyword(t, "or")) {
    return ErrorAt(t.offset,
                   "OR is not supported: predicates can only be joined with AND (ask one "
                   "question per alternative, or use IN (...) for several values of one field)");
  }
  if (IsKeyword(t, "not")) {
    return ErrorAt(t.offset,
                   "NOT is not supported: use != or <> for one value, or a range, instead");
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Parser::ParseNumber(absl::string_view what) {
  bool negative = false;
  if (IsPunct(Peek(), "-")) {
    Next();
    negative = true;
  }
  const Token& t = Peek();
  if (t.kind != TokenKind::kInteger && t.kind != TokenKind::kDecimal) return Expected(what);
  double v = 0;
  if (!absl::SimpleAtod(t.text, &v) || !std::isfinite(v)) {
    return ErrorAt(t.offset, absl::StrCat("number ", t.text, " is out of range"));
  }
  Next();
  return negative ? -v : v;
}

absl::StatusOr<v1::Aggregate> Parser::ParseAggregate(const Token& name) {
  const std::string fn = absl::AsciiStrToUpper(name.text);
  v1::Aggregate agg;
  FEDSHARE_RETURN_IF_ERROR(ExpectPunct("("));
  if (fn == "COUNT") {
    if (IsPunct(Peek(), "*")) {
      Next();
      agg.set_kind(v1::COUNT);
    } else if (IsKeyword(Peek(), "distinct")) {
      Next();
      if (!IsKeyword(Peek(), "subject")) {
        return Expected("'subject' (only COUNT(DISTINCT subject) is supported)");
      }
      Next();
      agg.set_kind(v1::COUNT_SUBJECTS);
    } else {
      return Expected("'*' or DISTINCT subject (COUNT(field) is not supported)");
    }
  } else if (fn == "SUM" || fn == "AVG" || fn == "STDDEV" || fn == "VARIANCE" ||
             fn == "HISTOGRAM") {
    agg.set_kind(fn == "SUM"        ? v1::SUM
                 : fn == "AVG"      ? v1::AVG
                 : fn == "STDDEV"   ? v1::STDDEV
                 : fn == "VARIANCE" ? v1::VARIANCE
                                    : v1::HISTOGRAM);
    FEDSHARE_ASSIGN_OR_RETURN(std::string field, ExpectIdentifier("a measure field"));
    agg.set_field(field);
    if (agg.kind() == v1::HISTOGRAM) {
      FEDSHARE_RETURN_IF_ERROR(ExpectPunct(","));
      const size_t lo_at = Peek().offset;
      FEDSHARE_ASSIGN_OR_RETURN(double lo, ParseNumber("the histogram's lower bound"));
      FEDSHARE_RETURN_IF_ERROR(ExpectPunct(","));
      FEDSHARE_ASSIGN_OR_RETURN(double hi, ParseNumber("the histogram's upper bound"));
      if (!(lo < hi)) {
        return ErrorAt(lo_at, "the histogram's lower bound must be below its upper bound");
      }
      FEDSHARE_RETURN_IF_ERROR(ExpectPunct(","));
      const Token& bins = Peek();
      int bins_value = 0;
      if (bins.kind != TokenKind::kInteger) return Expected("the number of bins (an integer)");
      if (!absl::SimpleAtoi(bins.text, &bins_value) || bins_value < 1) {
        return ErrorAt(bins.offset, "the number of bins must be a positive integer");
      }
      Next();
      agg.set_lo(lo);
      agg.set_hi(hi);
      agg.set_bins(bins_value);
    }
  } else if (fn == "MIN" || fn == "MAX" || fn == "MEDIAN" || fn == "PERCENTILE" ||
             fn == "QUANTILE") {
    return ErrorAt(name.offset, absl::StrCat(fn,
                                             " is not supported: it discloses an individual's "
                                             "value (use AVG, STDDEV or HISTOGRAM)"));
  } else {
    return ErrorAt(name.offset,
                   absl::StrCat("unknown aggregate '", name.text,
                                "' (supported: COUNT(*), COUNT(DISTINCT subject), SUM, AVG, "
                                "STDDEV, VARIANCE, HISTOGRAM)"));
  }
  FEDSHARE_RETURN_IF_ERROR(ExpectPunct(")"));
  return agg;
}

absl::Status Parser::ParseSelectItem(v1::AggregateQuery& query) {
  const Token& t = Peek();
  if (t.kind == TokenKind::kWord && IsPunct(Peek(1), "(")) {
    const Token name = Next();
    FEDSHARE_ASSIGN_OR_RETURN(*query.add_aggregates(), ParseAggregate(name));
    return absl::OkStatus();
  }
  if (IsPunct(t, "*")) {
    return ErrorAt(t.offset, "SELECT * is not supported: name group fields and aggregates");
  }
  const size_t at = t.offset;
  FEDSHARE_ASSIGN_OR_RETURN(std::string field, ExpectIdentifier("a field or an aggregate"));
  for (const auto& [seen, unused] : selected_fields_) {
    if (seen == field) return ErrorAt(at, absl::StrCat("'", field, "' is selected twice"));
  }
  selected_fields_.emplace_back(std::move(field), at);
  return absl::OkStatus();
}

absl::StatusOr<v1::Value> Parser::ParseLiteral() {
  v1::Value value;
  const Token& t = Peek();
  if (IsPunct(t, "-") || t.kind == TokenKind::kInteger || t.kind == TokenKind::kDecimal) {
    bool negative = false;
    if (IsPunct(t, "-")) {
      Next();
      negative = true;
    }
    const Token& num = Peek();
    if (num.kind == TokenKind::kInteger) {
      int64_t v = 0;
      // Parse with the sign so that INT64_MIN is accepted.
      if (!absl::SimpleAtoi(absl::StrCat(negative ? "-" : "", num.text), &v)) {
        return ErrorAt(num.offset, absl::StrCat("integer ", num.text, " is out of range"));
      }
      value.set_int_value(v);
    } else if (num.kind == TokenKind::kDecimal) {
      double v = 0;
      if (!absl::SimpleAtod(num.text, &v) || !std::isfinite(v)) {
        return ErrorAt(num.offset, absl::StrCat("number ", num.text, " is out of range"));
      }
      value.set_double_value(negative ? -v : v);
    } else {
      return Expected("a number after '-'");
    }
    Next();
    return value;
  }
  if (t.kind == TokenKind::kString) {
    value.set_string_value(t.text);
    Next();
    return value;
  }
  if (IsKeyword(t, "true") || IsKeyword(t, "false")) {
    value.set_bool_value(IsKeyword(t, "true"));
    Next();
    return value;
  }
  if (IsKeyword(t, "date") && Peek(1).kind == TokenKind::kString) {
    Next();
    const Token& s = Peek();
    int y = 0, m = 0, d = 0;
    const bool shaped = s.text.size() == 10 && s.text[4] == '-' && s.text[7] == '-' &&
                        absl::SimpleAtoi(s.text.substr(0, 4), &y) &&
                        absl::SimpleAtoi(s.text.substr(5, 2), &m) &&
                        absl::SimpleAtoi(s.text.substr(8, 2), &d);
    if (!shaped || m < 1 || m > 12 || d < 1 || d > 31) {
      return ErrorAt(s.offset,
                     absl::StrCat("malformed date '", s.text, "': write DATE 'YYYY-MM-DD'"));
    }
    value.set_string_value(s.text);
    Next();
    return value;
  }
  if (IsKeyword(t, "null")) {
    return ErrorAt(t.offset, "NULL is not supported in predicates");
  }
  return Expected("a literal (number, 'string', TRUE, FALSE or DATE 'YYYY-MM-DD')");
}

absl::Status Parser::ParsePredicate(v1::AggregateQuery& query) {
  FEDSHARE_RETURN_IF_ERROR(RefuseNotOr());
  v1::Predicate& pred = *query.add_where();
  FEDSHARE_ASSIGN_OR_RETURN(std::string field, ExpectIdentifier("a field"));
  pred.set_field(field);
  FEDSHARE_RETURN_IF_ERROR(RefuseNotOr());
  const Token& op = Peek();
  if (op.kind == TokenKind::kPunct) {
    static const std::pair<absl::string_view, v1::Predicate::Op> kOps[] = {
        {"=", v1::Predicate::EQ}, {"!=", v1::Predicate::NE}, {"<>", v1::Predicate::NE},
        {"<", v1::Predicate::LT}, {"<=", v1::Predicate::LE}, {">", v1::Predicate::GT},
        {">=", v1::Predicate::GE}};
    for (const auto& [text, code] : kOps) {
      if (op.text == text) {
        Next();
        pred.set_op(code);
        FEDSHARE_ASSIGN_OR_RETURN(*pred.add_values(), ParseLiteral());
        return absl::OkStatus();
      }
    }
  } else if (IsKeyword(op, "in")) {
    Next();
    pred.set_op(v1::Predicate::IN);
    FEDSHARE_RETURN_IF_ERROR(ExpectPunct("("));
    do {
      FEDSHARE_ASSIGN_OR_RETURN(*pred.add_values(), ParseLiteral());
    } while (IsPunct(Peek(), ",") && (Next(), true));
    return ExpectPunct(")");
  } else if (IsKeyword(op, "between")) {
    Next();
    pred.set_op(v1::Predicate::BETWEEN);
    FEDSHARE_ASSIGN_OR_RETURN(*pred.add_values(), ParseLiteral());
    FEDSHARE_RETURN_IF_ERROR(ExpectKeyword("AND"));
    FEDSHARE_ASSIGN_OR_RETURN(*pred.add_values(), ParseLiteral());
    return absl::OkStatus();
  } else if (IsKeyword(op, "is")) {
    return ErrorAt(op.offset, "IS [NOT] NULL is not supported");
  } else if (IsKeyword(op, "like")) {
    return ErrorAt(op.offset, "LIKE is not supported: use = or IN (...)");
  }
  return Expected("an operator (= != <> < <= > >= IN BETWEEN)");
}

absl::StatusOr<v1::AggregateQuery> Parser::Parse() {
  FEDSHARE_RETURN_IF_ERROR(Tokenize());
  v1::AggregateQuery query;
  FEDSHARE_RETURN_IF_ERROR(ExpectKeyword("SELECT"));
  const size_t select_list_at = Peek().offset;
  do {
    FEDSHARE_RETURN_IF_ERROR(ParseSelectItem(query));
  } while (IsPunct(Peek(), ",") && (Next(), true));
  if (!IsKeyword(Peek(), "from")) return Expected("',' or FROM");
  Next();
  FEDSHARE_ASSIGN_OR_RETURN(std::string dataset, ExpectIdentifier("a dataset name"));
  query.set_dataset(dataset);
  if (query.aggregates_size() == 0) {
    return ErrorAt(select_list_at,
                   "SELECT needs at least one aggregate (COUNT(*), SUM(field), AVG(field), ...)");
  }

  if (IsKeyword(Peek(), "where")) {
    Next();
    do {
      FEDSHARE_RETURN_IF_ERROR(ParsePredicate(query));
      FEDSHARE_RETURN_IF_ERROR(RefuseNotOr());
    } while (IsKeyword(Peek(), "and") && (Next(), true));
  }

  if (IsKeyword(Peek(), "group")) {
    Next();
    FEDSHARE_RETURN_IF_ERROR(ExpectKeyword("BY"));
    do {
      const size_t at = Peek().offset;
      FEDSHARE_ASSIGN_OR_RETURN(std::string field, ExpectIdentifier("a field to group by"));
      for (const std::string& seen : query.group_by()) {
        if (seen == field) return ErrorAt(at, absl::StrCat("'", field, "' is grouped by twice"));
      }
      bool selected = false;
      for (const auto& [name, unused] : selected_fields_) selected |= name == field;
      if (!selected) {
        return ErrorAt(
            at, absl::StrCat("'", field, "' is in GROUP BY but not in SELECT; add it to SELECT"));
      }
      query.add_group_by(field);
    } while (IsPunct(Peek(), ",") && (Next(), true));
  }
  for (const auto& [name, at] : selected_fields_) {
    bool grouped = false;
    for (const std::string& g : query.group_by()) grouped |= g == name;
    if (!grouped) {
      return ErrorAt(at, absl::StrCat("'", name,
                                      "' is selected but not in GROUP BY; group by it or select "
                                      "only aggregates"));
    }
  }

  if (!IsKeyword(Peek(), "purpose")) {
    if (query.group_by_size() == 0 && query.where_size() == 0) {
      return Expected("WHERE, GROUP BY or PURPOSE 'purpose-id'");
    }
    return Expected(query.group_by_size() == 0 ? "AND, GROUP BY or PURPOSE 'purpose-id'"
                                               : "',' or PURPOSE 'purpose-id'");
  }
  Next();
  if (Peek().kind != TokenKind::kString) return Expected("the purpose as a string, e.g. 'x'");
  if (Peek().text.empty()) return ErrorAt(Peek().offset, "the purpose must not be empty");
  query.set_purpose(Next().text);
  if (IsPunct(Peek(), ";")) Next();
  if (Peek().kind != TokenKind::kEnd) return Expected("end of query");
  return query;
}

// Shortest text that reads back as the same double, always with a decimal
// point or exponent so that it parses as a decimal, not an integer.
std::string DoubleSql(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string ValueSql(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kIntValue:
      return absl::StrCat(v.int_value());
    case v1::Value::kDoubleValue:
      return DoubleSql(v.double_value());
    case v1::Value::kBoolValue:
      return v.bool_value() ? "TRUE" : "FALSE";
    case v1::Value::kStringValue: {
      std::string out = "'";
      for (char c : v.string_value()) {
        out.push_back(c);
        if (c == '\'') out.push_back('\'');
      }
      out.push_back('\'');
      return out;
    }
    case v1::Value::KIND_NOT_SET:
      break;
  }
  return "NULL";
}

std::string PredicateSql(const v1::Predicate& p) {
  auto value = [&](int i) { return i < p.values_size() ? ValueSql(p.values(i)) : "NULL"; };
  switch (p.op()) {
    case v1::Predicate::EQ:
      return absl::StrCat(p.field(), " = ", value(0));
    case v1::Predicate::NE:
      return absl::StrCat(p.field(), " != ", value(0));
    case v1::Predicate::LT:
      return absl::StrCat(p.field(), " < ", value(0));
    case v1::Predicate::LE:
      return absl::StrCat(p.field(), " <= ", value(0));
    case v1::Predicate::GT:
      return absl::StrCat(p.field(), " > ", value(0));
    case v1::Predicate::GE:
      return absl::StrCat(p.field(), " >= ", value(0));
    case v1::Predicate::IN:
      return absl::StrCat(
          p.field(), " IN (",
          absl::StrJoin(p.values(), ", ",
                        [](std::string* out, const v1::Value& v) { out->append(ValueSql(v)); }),
          ")");
    case v1::Predicate::BETWEEN:
      return absl::StrCat(p.field(), " BETWEEN ", value(0), " AND ", value(1));
    default:
      break;
  }
  return absl::StrCat(p.field(), " ? ", value(0));
}

}  // namespace

absl::StatusOr<v1::AggregateQuery> ParseSql(absl::string_view text) { return Parser(text).Parse(); }

std::string AggregateSql(const v1::Aggregate& a) {
  switch (a.kind()) {
    case v1::COUNT:
      return "COUNT(*)";
    case v1::COUNT_SUBJECTS:
      return "COUNT(DISTINCT subject)";
    case v1::SUM:
      return absl::StrCat("SUM(", a.field(), ")");
    case v1::AVG:
      return absl::StrCat("AVG(", a.field(), ")");
    case v1::STDDEV:
      return absl::StrCat("STDDEV(", a.field(), ")");
    case v1::VARIANCE:
      return absl::StrCat("VARIANCE(", a.field(), ")");
    case v1::HISTOGRAM:
      return fmt::format("HISTOGRAM({}, {}, {}, {})", a.field(), a.lo(), a.hi(), a.bins());
    default:
      break;
  }
  return absl::StrCat("UNKNOWN(", a.field(), ")");
}

std::string FormatSql(const v1::AggregateQuery& query) {
  std::vector<std::string> items(query.group_by().begin(), query.group_by().end());
  for (const v1::Aggregate& a : query.aggregates()) items.push_back(AggregateSql(a));
  std::string sql = absl::StrCat("SELECT ", absl::StrJoin(items, ", "), " FROM ", query.dataset());
  if (query.where_size() > 0) {
    absl::StrAppend(
        &sql, " WHERE ",
        absl::StrJoin(query.where(), " AND ", [](std::string* out, const v1::Predicate& p) {
          out->append(PredicateSql(p));
        }));
  }
  if (query.group_by_size() > 0) {
    absl::StrAppend(&sql, " GROUP BY ", absl::StrJoin(query.group_by(), ", "));
  }
  absl::StrAppend(&sql, " PURPOSE ", ValueSql([&] {
    v1::Value v;
    v.set_string_value(query.purpose());
    return v;
  }()));
  return sql;
}

}  // namespace fedshare
