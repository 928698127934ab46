#include "client/dashboard.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/dashboard_assets.h"
#include "client/format.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "node/common/files.h"
#include "node/common/json_quote.h"
#include "openssl/crypto.h"
#include "openssl/rand.h"
#include "policy/refusal.h"
#include "query/sql.h"

namespace fedshare::client {
namespace {

// saved_answer.proto's format tag (issue 16 item 2, `fedshare query --save`).
constexpr absl::string_view kSavedAnswerFormat = "fedshare.saved-answer.v1";

// Protobuf's JSON mapping as `fedshare query --output json` prints it.
std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "null";
  return out;
}

const std::string kSecurityHeaders[][2] = {
    {"Cache-Control", "no-store"},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
    {"X-Frame-Options", "DENY"},
    // Everything the page needs is served here; downloads are blob: URLs.
    {"Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
     "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
};

HttpResponse Json(int status, std::string body) {
  return HttpResponse{status, "application/json; charset=utf-8", std::move(body), {}};
}

HttpResponse Forbidden() {
  return HttpResponse{403,
                      "text/plain; charset=utf-8",
                      "forbidden: open the URL `fedshare dashboard` printed, with its token\n",
                      {}};
}

// {"error": {...}} for a failed call, with the refusal's rule and agreement.
HttpResponse Error(const absl::Status& status) {
  std::string body =
      absl::StrCat("{\"error\":{\"code\":", JsonQuote(absl::StatusCodeToString(status.code())),
                   ",\"message\":", JsonQuote(status.message()));
  if (std::optional<google::rpc::ErrorInfo> info = policy::RefusalOf(status)) {
    absl::StrAppend(&body, ",\"rule\":", JsonQuote(info->reason()));
    for (absl::string_view key :
         {policy::kMetaAgreement, policy::kMetaField, policy::kMetaRetryAfterSeconds}) {
      auto it = info->metadata().find(std::string(key));
      if (it != info->metadata().end()) {
        absl::StrAppend(&body, ",", JsonQuote(key), ":", JsonQuote(it->second));
      }
    }
  }
  absl::StrAppend(&body, "}}\n");
  int http = 502;  // the node or a partner said no or failed
  if (status.code() == absl::StatusCode::kInvalidArgument) http = 400;
  return Json(http, std::move(body));
}

// The question in the body: {"sql": TEXT} or {"query": AggregateQuery}.
absl::StatusOr<v1::FederatedAggregateRequest> ParseQueryBody(const std::string& body,
                                                             int default_deadline_ms) {
  google::protobuf::Struct fields;
  if (!google::protobuf::util::JsonStringToMessage(body, &fields).ok()) {
    return absl::InvalidArgumentError("the body is not a JSON object");
  }
  const auto& f = fields.fields();
  v1::FederatedAggregateRequest request;
  auto sql = f.find("sql");
  auto query = f.find("query");
  if (sql != f.end() && sql->second.has_string_value() &&
      !absl::StripAsciiWhitespace(sql->second.string_value()).empty()) {
    absl::StatusOr<v1::AggregateQuery> parsed = ParseSql(sql->second.string_value());
    if (!parsed.ok()) return parsed.status();
    *request.mutable_query() = *std::move(parsed);
  } else if (query != f.end() && query->second.has_struct_value()) {
    std::string text;
    if (!google::protobuf::util::MessageToJsonString(query->second.struct_value(), &text).ok() ||
        !google::protobuf::util::JsonStringToMessage(text, request.mutable_query()).ok()) {
      return absl::InvalidArgumentError("\"query\" is not an AggregateQuery");
    }
  } else {
    return absl::InvalidArgumentError("send {\"sql\": TEXT} or {\"query\": {...}}");
  }
  request.mutable_query()->set_query_id(absl::StrCat("dash-", absl::ToUnixMillis(absl::Now())));
  auto peers = f.find("peers");
  if (peers != f.end() && peers->second.has_list_value()) {
    for (const google::protobuf::Value& p : peers->second.list_value().values()) {
      if (p.has_string_value()) request.add_peers(p.string_value());
    }
  }
  request.set_all_peers(request.peers_size() == 0);
  request.set_deadline_ms(default_deadline_ms);
  auto deadline = f.find("deadline_ms");
  if (deadline != f.end() && deadline->second.has_number_value()) {
    const double ms = deadline->second.number_value();
    if (!(ms >= 0 && ms <= 3600 * 1000)) {
      return absl::InvalidArgumentError("\"deadline_ms\" must be 0 to 3600000");
    }
    request.set_deadline_ms(static_cast<int32_t>(ms));
  }
  return request;
}

absl::Status MakeDirs(const std::string& path) {
  std::string so_far;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    absl::StrAppend(&so_far, part, "/");
    if (part.empty()) continue;
    if (mkdir(so_far.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError(
          absl::StrCat("cannot create ", so_far, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    std::abort();  // no randomness: a guessable token would be worse than none
  }
  return absl::BytesToHexString(raw);
}

std::string CookieValue(const std::string& cookies, const std::string& name) {
  for (absl::string_view c : absl::StrSplit(cookies, ';')) {
    c = absl::StripAsciiWhitespace(c);
    if (absl::ConsumePrefix(&c, name) && absl::ConsumePrefix(&c, "=")) return std::string(c);
  }
  return "";
}

}  // namespace

std::string DefaultHistoryDir() {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && state[0] == '/') return absl::StrCat(state, "/fedshare/answers");
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : ".", "/.local/state/fedshare/answers");
}

Dashboard::Dashboard(NodeClient* client, std::string node, std::string token, int port,
                     std::string history_dir, int deadline_ms)
    : client_(client),
      node_(std::move(node)),
      token_(std::move(token)),
      port_(port),
      cookie_name_(absl::StrCat("fedshare_dashboard_", port)),
      history_dir_(std::move(history_dir)),
      deadline_ms_(deadline_ms) {}

bool Dashboard::HostAllowed(const HttpRequest& request) const {
  const std::string host = request.Header("host");
  return host == absl::StrCat("127.0.0.1:", port_) || host == absl::StrCat("localhost:", port_);
}

bool Dashboard::TokenMatches(const std::string& given) const {
  return given.size() == token_.size() &&
         CRYPTO_memcmp(given.data(), token_.data(), token_.size()) == 0;
}

HttpResponse Dashboard::Handle(const HttpRequest& request) {
  if (!HostAllowed(request)) return Forbidden();
  auto param = request.query.find("token");
  const bool by_url = param != request.query.end() && TokenMatches(param->second);
  const bool by_header = TokenMatches(request.Header("x-fedshare-token"));
  const bool by_cookie = TokenMatches(CookieValue(request.Header("cookie"), cookie_name_));
  const bool api = absl::StartsWith(request.path, "/api/");
  if (!(by_url || by_header || (!api && by_cookie))) return Forbidden();

  HttpResponse response;
  if (api) {
    const bool get = request.method == "GET";
    if (request.path == "/api/describe" && get) {
      response = Describe();
    } else if (request.path == "/api/query" && request.method == "POST") {
      response = Query(request);
    } else if (request.path == "/api/history" && get) {
      response = History();
    } else if (absl::StartsWith(request.path, "/api/history/") && get) {
      response = HistoryEntry(request.path.substr(strlen("/api/history/")));
    } else {
      response = Json(404, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no such call\"}}\n");
    }
  } else {
    const std::string path = request.path == "/" ? "/index.html" : request.path;
    response = HttpResponse{404, "text/plain; charset=utf-8", "not found\n", {}};
    for (size_t i = 0; i < kDashboardFileCount; ++i) {
      const EmbeddedFile& file = kDashboardFiles[i];
      if (path != file.path) continue;
      if (request.method != "GET") {
        response = HttpResponse{405, "text/plain; charset=utf-8", "use GET\n", {}};
        break;
      }
      response = HttpResponse{200,
                              file.content_type,
                              std::string(reinterpret_cast<const char*>(file.data), file.size),
                              {}};
      break;
    }
    if (by_url && response.status == 200) {
      // The page's own requests (scripts, styles) then carry the token as a
      // cookie that no other site's page can make the browser send.
      response.headers.emplace_back(
          "Set-Cookie",
          absl::StrCat(cookie_name_, "=", token_, "; Path=/; HttpOnly; SameSite=Strict"));
    }
  }
  for (const auto& [name, value] : kSecurityHeaders) response.headers.emplace_back(name, value);
  return response;
}

HttpResponse Dashboard::Describe() {
  absl::StatusOr<v1::ListPeersResponse> peers = client_->ListPeers(/*probe=*/false);
  if (!peers.ok()) return Error(peers.status());
  std::string body = "{\"peers\":[";
  bool first = true;
  for (const v1::PeerStatus& p : peers->peers()) {
    absl::StrAppend(&body, first ? "" : ",", "{\"org_id\":", JsonQuote(p.org_id()),
                    ",\"address\":", JsonQuote(p.address()));
    first = false;
    absl::StatusOr<v1::DescribeResponse> d = client_->DescribePeer(p.org_id());
    if (d.ok()) {
      absl::StrAppend(&body, ",\"describe\":", ToJson(*d), "}");
    } else {
      absl::StrAppend(&body, ",\"error\":", JsonQuote(d.status().message()), "}");
    }
  }
  absl::StrAppend(&body, "]}\n");
  return Json(200, std::move(body));
}

HttpResponse Dashboard::Query(const HttpRequest& request) {
  absl::StatusOr<v1::FederatedAggregateRequest> fed = ParseQueryBody(request.body, deadline_ms_);
  if (!fed.ok()) return Error(fed.status());
  const std::string sql = FormatSql(fed->query());
  // The stream, which brings an answer of any number of partners in parts.
  absl::StatusOr<v1::FederatedAggregateResponse> answer =
      client_->FederatedAggregateStream(*fed, nullptr);
  if (!answer.ok()) return Error(answer.status());
  std::string document = FormatFederated(*answer, OutputFormat::kJson);

  const absl::Time now = absl::Now();
  Saved saved;
  saved.id =
      absl::StrCat(absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone()), "-", RandomHex(3));
  saved.sql = sql;
  saved.asked_at = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now, absl::UTCTimeZone());
  saved.file = absl::StrCat(history_dir_, "/", saved.id, ".json");
  // A SavedAnswer (saved_answer.proto) in its JSON mapping, as `fedshare
  // query --save` writes it, so `fedshare show` reads it.
  const std::string file = absl::StrCat(
      "{\n  \"format\": ", JsonQuote(kSavedAnswerFormat), ",\n  \"sql\": ", JsonQuote(sql),
      ",\n  \"question\": ", ToJson(fed->query()), ",\n  \"node\": ", JsonQuote(node_),
      ",\n  \"saved_at\": ", JsonQuote(saved.asked_at),
      ",\n  \"federated\": ", absl::StripTrailingAsciiWhitespace(document), "\n}\n");
  std::string saved_json = "null";
  if (absl::Status written = WriteFileAtomic(saved.file, file, 0600); written.ok()) {
    saved_json =
        absl::StrCat("{\"id\":", JsonQuote(saved.id), ",\"file\":", JsonQuote(saved.file), "}");
    absl::MutexLock lock(&mu_);
    saved_.push_back(saved);
  } else {
    std::cerr << "fedshare dashboard: answer not saved: " << written.message() << "\n";
  }
  std::string body =
      absl::StrCat("{\"sql\":", JsonQuote(sql), ",\"question\":", ToJson(fed->query()),
                   ",\"saved\":", saved_json,
                   ",\"answer\":", absl::StripTrailingAsciiWhitespace(document), "}\n");
  return Json(200, std::move(body));
}

HttpResponse Dashboard::History() {
  std::string body = "{\"answers\":[";
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < saved_.size(); ++i) {
    const Saved& s = saved_[i];
    absl::StrAppend(&body, i == 0 ? "" : ",", "{\"id\":", JsonQuote(s.id),
                    ",\"sql\":", JsonQuote(s.sql), ",\"asked_at\":", JsonQuote(s.asked_at),
                    ",\"file\":", JsonQuote(s.file), "}");
  }
  absl::StrAppend(&body, "]}\n");
  return Json(200, std::move(body));
}

HttpResponse Dashboard::HistoryEntry(const std::string& id) {
  std::optional<Saved> found;
  {
    absl::MutexLock lock(&mu_);
    // Only this session's answers, by their exact id: never a path.
    for (const Saved& s : saved_) {
      if (s.id == id) found = s;
    }
  }
  if (!found) {
    return Json(404, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no such answer\"}}\n");
  }
  absl::StatusOr<std::string> text = ReadFile(found->file);
  if (!text.ok()) return Error(text.status());
  google::protobuf::Struct saved;
  if (!google::protobuf::util::JsonStringToMessage(*text, &saved).ok() ||
      saved.fields().count("federated") == 0 || saved.fields().count("question") == 0) {
    return Error(absl::DataLossError(absl::StrCat(found->file, " is not a saved answer")));
  }
  return Json(200,
              absl::StrCat("{\"id\":", JsonQuote(found->id), ",\"sql\":", JsonQuote(found->sql),
                           ",\"question\":", ToJson(saved.fields().at("question")),
                           ",\"asked_at\":", JsonQuote(found->asked_at),
                           ",\"answer\":", ToJson(saved.fields().at("federated")), "}\n"));
}

CLI::App* AddDashboardCommand(CLI::App& app, DashboardOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "dashboard",
      "serve a page on 127.0.0.1 to ask federated questions and see charts (prints its URL)");
  cmd->add_option("--port", options.port, "port on 127.0.0.1 (default: a free one)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--history-dir", options.history_dir,
                  "where answers are saved (default $XDG_STATE_HOME/fedshare/answers or "
                  "~/.local/state/fedshare/answers)");
  cmd->add_option("--deadline-ms", options.deadline_ms, "per-partner deadline");
  return cmd;
}

int RunDashboard(const Globals& g, const DashboardOptions& options) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  const std::string history =
      options.history_dir.empty() ? DefaultHistoryDir() : options.history_dir;
  if (absl::Status s = MakeDirs(history); !s.ok()) return Fail(s);

  std::unique_ptr<Dashboard> dashboard;
  LoopbackHttpServer::Options server_options;
  server_options.port = options.port;
  absl::StatusOr<std::unique_ptr<LoopbackHttpServer>> server = LoopbackHttpServer::Create(
      [&dashboard](const HttpRequest& r) { return dashboard->Handle(r); }, server_options);
  if (!server.ok()) return Fail(server.status());
  const std::string token = RandomHex(24);
  dashboard = std::make_unique<Dashboard>(client->get(), g.node.empty() ? "127.0.0.1:7444" : g.node,
                                          token, (*server)->port(), history, options.deadline_ms);
  std::cout << "dashboard: http://127.0.0.1:" << (*server)->port() << "/?token=" << token << "\n"
            << "answers are saved in " << history << "\n"
            << "stop with Ctrl-C" << std::endl;
  (*server)->Serve();
  return 0;
}

}  // namespace fedshare::client
