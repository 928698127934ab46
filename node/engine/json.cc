#include "node/engine/json.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "node/common/utf8.h"

namespace fedshare::engine {
namespace {

class Parser {
 public:
  explicit Parser(absl::string_view text, std::vector<JsonArrayMember>* arrays = nullptr)
      : text_(text), arrays_(arrays) {}

  absl::Status ParseObject(std::vector<JsonMember>* members) {
    members->clear();
    if (arrays_ != nullptr) arrays_->clear();
    SkipSpace();
    if (!Consume('{')) return Error("expected '{'");
    SkipSpace();
    if (Consume('}')) return End();
    for (;;) {
      SkipSpace();
      JsonMember member;
      if (Peek() != '"') return Error("expected a string key");
      absl::Status s = ParseString(&member.key);
      if (!s.ok()) return s;
      for (const JsonMember& m : *members) {
        if (m.key == member.key) return Error(absl::StrCat("duplicate key \"", member.key, "\""));
      }
      if (arrays_ != nullptr) {
        for (const JsonArrayMember& m : *arrays_) {
          if (m.key == member.key) {
            return Error(absl::StrCat("duplicate key \"", member.key, "\""));
          }
        }
      }
      SkipSpace();
      if (!Consume(':')) return Error("expected ':'");
      SkipSpace();
      if (arrays_ != nullptr && Peek() == '[') {
        JsonArrayMember array{std::move(member.key), {}};
        s = ParseStringArray(&array.items);
        if (!s.ok()) return s;
        arrays_->push_back(std::move(array));
      } else {
        s = ParseScalar(&member.value);
        if (!s.ok()) return s;
        members->push_back(std::move(member));
      }
      SkipSpace();
      if (Consume(',')) continue;
      if (Consume('}')) return End();
      return Error("expected ',' or '}'");
    }
  }

 private:
  absl::Status End() {
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the object");
    return absl::OkStatus();
  }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON at byte ", pos_ + 1, ": ", what));
  }

  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool Consume(char c) {
    if (Peek() != c || pos_ >= text_.size()) return false;
    ++pos_;
    return true;
  }
  bool ConsumeWord(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\n')) {
      ++pos_;
    }
  }

  absl::Status ParseScalar(JsonScalar* out) {
    char c = Peek();
    if (c == '"') {
      out->kind = JsonScalar::Kind::kString;
      return ParseString(&out->text);
    }
    if (ConsumeWord("null")) {
      out->kind = JsonScalar::Kind::kNull;
      return absl::OkStatus();
    }
    if (ConsumeWord("true")) {
      out->kind = JsonScalar::Kind::kBool;
      out->bool_value = true;
      return absl::OkStatus();
    }
    if (ConsumeWord("false")) {
      out->kind = JsonScalar::Kind::kBool;
      out->bool_value = false;
      return absl::OkStatus();
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      out->kind = JsonScalar::Kind::kNumber;
      return ParseNumber(&out->text);
    }
    if (c == '[' || c == '{') return Error("nested arrays and objects are not supported");
    return Error("expected a value");
  }

  // '[' string (',' string)* ']' or '[' ']'.
  absl::Status ParseStringArray(std::vector<std::string>* items) {
    Consume('[');
    SkipSpace();
    if (Consume(']')) return absl::OkStatus();
    for (;;) {
      SkipSpace();
      if (Peek() != '"') return Error("an array may hold only strings");
      std::string item;
      absl::Status s = ParseString(&item);
      if (!s.ok()) return s;
      items->push_back(std::move(item));
      SkipSpace();
      if (Consume(',')) continue;
      if (Consume(']')) return absl::OkStatus();
      return Error("expected ',' or ']'");
    }
  }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  absl::Status ParseNumber(std::string* out) {
    size_t start = pos_;
    Consume('-');
    if (Consume('0')) {
      if (IsDigit(Peek())) return Error("leading zero in a number");
    } else if (IsDigit(Peek())) {
      while (IsDigit(Peek())) ++pos_;
    } else {
      return Error("expected a digit");
    }
    if (Consume('.')) {
      if (!IsDigit(Peek())) return Error("expected a digit after '.'");
      while (IsDigit(Peek())) ++pos_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!IsDigit(Peek())) return Error("expected a digit in the exponent");
      while (IsDigit(Peek())) ++pos_;
    }
    out->assign(text_.data() + start, pos_ - start);
    return absl::OkStatus();
  }

  bool ParseHex4(uint32_t* out) {
    if (pos_ + 4 > text_.size()) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_ + i];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v |= c - 'A' + 10;
      } else {
        return false;
      }
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  static void AppendUtf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  absl::Status ParseString(std::string* out) {
    out->clear();
    ++pos_;  // opening quote
    for (;;) {
      if (pos_ >= text_.size()) return Error("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in a string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return Error("unterminated string");
      char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!ParseHex4(&cp)) return Error("bad \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low;
            if (!ConsumeWord("\\u") || !ParseHex4(&low) || low < 0xDC00 || low > 0xDFFF) {
              return Error("unpaired surrogate in \\u escape");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Error("unpaired surrogate in \\u escape");
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Error(absl::StrCat("bad escape \\", std::string(1, e)));
      }
    }
  }

  absl::string_view text_;
  std::vector<JsonArrayMember>* arrays_;
  size_t pos_ = 0;
};

}  // namespace

absl::Status ParseJsonObject(absl::string_view text, std::vector<JsonMember>* members) {
  if (std::string bad = DescribeInvalidUtf8(text); !bad.empty()) {
    return absl::InvalidArgumentError(bad);
  }
  return Parser(text).ParseObject(members);
}

absl::Status ParseJsonObjectWithStringArrays(absl::string_view text,
                                             std::vector<JsonMember>* members,
                                             std::vector<JsonArrayMember>* arrays) {
  if (std::string bad = DescribeInvalidUtf8(text); !bad.empty()) {
    return absl::InvalidArgumentError(bad);
  }
  return Parser(text, arrays).ParseObject(members);
}

bool JsonNumberIsInteger(absl::string_view text) {
  return text.find_first_of(".eE") == absl::string_view::npos;
}

void AppendJsonString(std::string* out, absl::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 15]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

}  // namespace fedshare::engine
