#include "node/server/logging.h"

#include <grpc/support/log.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "node/common/json_quote.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace fedshare::server {
namespace {

// Splits `key=value key="quoted \"value\""` pairs; false if `message` is not
// entirely such pairs.
bool ParseLogfmt(absl::string_view message,
                 std::vector<std::pair<std::string, std::string>>* pairs) {
  size_t i = 0;
  const size_t n = message.size();
  while (i < n) {
    while (i < n && message[i] == ' ') ++i;
    if (i == n) break;
    size_t eq = i;
    while (eq < n && message[eq] != '=' && message[eq] != ' ') ++eq;
    if (eq == n || message[eq] != '=' || eq == i) return false;
    std::string key(message.substr(i, eq - i));
    std::string value;
    i = eq + 1;
    if (i < n && message[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        char c = message[i++];
        if (c == '\\' && i < n) {
          value += message[i++];
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (!closed) return false;
    } else {
      size_t end = message.find(' ', i);
      if (end == absl::string_view::npos) end = n;
      value = std::string(message.substr(i, end - i));
      i = end;
    }
    pairs->emplace_back(std::move(key), std::move(value));
  }
  return !pairs->empty();
}

// %* in the pattern: the message as JSON fields.
class JsonFieldsFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string fields =
        LogfmtToJsonFields(absl::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(fields.data(), fields.data() + fields.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonFieldsFlag>();
  }
};

// gRPC's lines are kept short: file:line and the message, as logfmt.
void LogGrpcLine(gpr_log_func_args* args) {
  spdlog::level::level_enum level = args->severity == GPR_LOG_SEVERITY_ERROR ? spdlog::level::err
                                    : args->severity == GPR_LOG_SEVERITY_INFO
                                        ? spdlog::level::info
                                        : spdlog::level::debug;
  std::string message = args->message != nullptr ? args->message : "";
  std::string quoted;
  for (char c : message) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += (c == '\n' ? ' ' : c);
  }
  absl::string_view file = args->file != nullptr ? args->file : "";
  if (size_t slash = file.rfind('/'); slash != absl::string_view::npos) {
    file.remove_prefix(slash + 1);
  }
  spdlog::log(level, "event=grpc source={}:{} message=\"{}\"", std::string(file), args->line,
              quoted);
}

}  // namespace

std::string LogfmtToJsonFields(absl::string_view message) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (!ParseLogfmt(message, &pairs)) return absl::StrCat("\"msg\":", JsonQuote(message));
  std::string out;
  for (const auto& [key, value] : pairs) {
    if (!out.empty()) out += ",";
    absl::StrAppend(&out, JsonQuote(key), ":", JsonQuote(value));
  }
  return out;
}

void InitLogging(LogFormat format, const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("fedshare");
  if (format == LogFormat::kJson) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonFieldsFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%*})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  gpr_set_log_function(LogGrpcLine);
}

}  // namespace fedshare::server
