#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/format.h"
#include "client/format_internal.h"
#include "fmt/format.h"
#include "node/common/time_util.h"
#include "query/sql.h"

namespace fedshare::client {
namespace {

using format_internal::CsvLine;
using format_internal::Json;
using format_internal::OneLine;
using format_internal::StateName;

// The question's shape as SQL, without its WHERE (values are not recorded).
std::string ShapeSql(const v1::AggregateQuery& question) {
  v1::AggregateQuery shape = question;
  shape.clear_where();
  return FormatSql(shape);
}

std::string FiltersOn(const v1::AggregateQuery& question) {
  std::vector<std::string> filters;
  for (const v1::Predicate& p : question.where()) {
    filters.push_back(absl::StrCat(p.field(), " ", v1::Predicate::Op_Name(p.op())));
  }
  return absl::StrJoin(filters, ", ");
}

std::string AuditTable(const v1::ListAuditResponse& response) {
  std::string out = fmt::format("{:<6} {:<24} {:<9} {:<22} {:<18} {}\n", "INDEX", "TIME",
                                "DECISION", "DATASET", "RULE", "CALLER / REASON");
  for (const v1::AuditEntry& e : response.entries()) {
    const std::string decision = absl::AsciiStrToLower(v1::AuditEntry::Decision_Name(e.decision()));
    const std::string rule = e.rule().empty() ? e.agreement_id() : e.rule();
    out += fmt::format("{:<6} {:<24} {:<9} {:<22} {:<18} {}\n", e.index(),
                       fedshare::FormatTimeMillis(absl::FromUnixMillis(e.time_unix_ms())), decision,
                       e.dataset(), rule, e.caller());
    const std::string indent(7, ' ');
    if (!e.on_behalf_of().empty()) {
      absl::StrAppend(&out, indent, "on behalf of (unverified): ", e.on_behalf_of(), "\n");
    }
    if (e.has_question()) {
      absl::StrAppend(&out, indent, "question ",
                      absl::BytesToHexString(e.question_hash()).substr(0, 16), ": ",
                      ShapeSql(e.question()), "\n");
      if (!e.applied_where_text().empty()) {
        absl::StrAppend(&out, indent, "as applied: ", e.applied_where_text(), "\n");
      } else if (e.question().where_size() > 0) {
        absl::StrAppend(&out, indent, "filters on: ", FiltersOn(e.question()), "\n");
      }
    }
    if (!e.reason().empty()) absl::StrAppend(&out, indent, OneLine(e.reason()), "\n");
  }
  absl::StrAppend(&out, response.entries_size(), " of ", response.total(), " entries shown; ",
                  "audit log ",
                  response.chain_valid() ? "verifies" : "BROKEN: " + response.chain_error(), "\n");
  return out;
}

std::string AuditCsv(const v1::ListAuditResponse& response) {
  std::string out;
  CsvLine(
      {"index", "time", "decision", "caller", "on_behalf_of_unverified", "method", "dataset",
       "purpose", "question_hash", "question", "applied_where", "agreement_id", "rule", "reason"},
      &out);
  for (const v1::AuditEntry& e : response.entries()) {
    std::string applied = e.applied_where_text();
    if (applied.empty() && e.question().where_size() > 0) {
      applied = absl::StrCat("(not applied; filters on: ", FiltersOn(e.question()), ")");
    }
    CsvLine(
        {absl::StrCat(e.index()),
         fedshare::FormatTimeMillis(absl::FromUnixMillis(e.time_unix_ms())),
         absl::AsciiStrToLower(v1::AuditEntry::Decision_Name(e.decision())), e.caller(),
         e.on_behalf_of(), e.method(), e.dataset(), e.purpose(),
         absl::BytesToHexString(e.question_hash()), e.has_question() ? ShapeSql(e.question()) : "",
         applied, e.agreement_id(), e.rule(), OneLine(e.reason())},
        &out);
  }
  return out;
}

absl::Time TimeOf(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// "12.4ms probe", "310ms last answer", or "-".
std::string RoundTripText(const v1::PeerStatus& p) {
  if (p.round_trip_source() == v1::PeerStatus::ROUND_TRIP_SOURCE_UNSPECIFIED) return "-";
  const absl::Duration d =
      absl::Seconds(p.round_trip().seconds()) + absl::Nanoseconds(p.round_trip().nanos());
  return absl::StrCat(
      absl::StrFormat("%.1fms", absl::ToDoubleMilliseconds(d)),
      p.round_trip_source() == v1::PeerStatus::ROUND_TRIP_SOURCE_PROBE ? " probe" : " last answer");
}

// Whole days the peer's certificate has left ("-" if never seen; negative
// once expired).
std::string DaysLeftText(const v1::PeerStatus& p, absl::Time now) {
  if (!p.has_certificate_expires()) return "-";
  return absl::StrCat(absl::ToInt64Hours(TimeOf(p.certificate_expires()) - now) / 24);
}

}  // namespace

std::string FormatAudit(const v1::ListAuditResponse& response, OutputFormat format) {
  switch (format) {
    case OutputFormat::kTable:
      return AuditTable(response);
    case OutputFormat::kCsv:
      return AuditCsv(response);
    case OutputFormat::kJson:
      return Json(response);
  }
  return std::string();
}

std::string FormatPeers(const v1::ListPeersResponse& response, OutputFormat format, bool probed,
                        absl::Time now) {
  if (format == OutputFormat::kJson) return Json(response);
  std::string out;
  if (format == OutputFormat::kCsv) {
    CsvLine({"org_id", "mode", "connection", "address", "last_contact", "round_trip_ms",
             "round_trip_source", "certificate_expires", "certificate_days_left",
             "certificate_warning", "state", "reason", "groups", "audit_tree_size", "audit_error"},
            &out);
  } else {
    out = absl::StrFormat("%-20s %-10s %-13s %-24s %-20s %-20s %-6s %-12s %s\n", "PEER", "MODE",
                          "CONNECTION", "ADDRESS", "LAST CONTACT", "ROUND TRIP", "CERT", "STATE",
                          "DETAIL");
  }
  auto time_text = [](const google::protobuf::Timestamp& t) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", TimeOf(t), absl::UTCTimeZone());
  };
  for (const v1::PeerStatus& p : response.peers()) {
    const bool call_home = p.mode() == v1::PeerStatus::MODE_CALL_HOME;
    // Direct peers are dialled per question: there is no standing connection.
    const std::string connection = !call_home ? "-" : p.connected() ? "connected" : "disconnected";
    const std::string last_contact = p.has_last_contact() ? time_text(p.last_contact()) : "never";
    if (format == OutputFormat::kCsv) {
      const absl::Duration rtt =
          absl::Seconds(p.round_trip().seconds()) + absl::Nanoseconds(p.round_trip().nanos());
      const bool timed = p.round_trip_source() != v1::PeerStatus::ROUND_TRIP_SOURCE_UNSPECIFIED;
      CsvLine({p.org_id(), call_home ? "call-home" : "direct", connection, p.address(),
               p.has_last_contact() ? last_contact : "",
               timed ? absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(rtt)) : "",
               !timed                                                             ? ""
               : p.round_trip_source() == v1::PeerStatus::ROUND_TRIP_SOURCE_PROBE ? "probe"
                                                                                  : "last_answer",
               p.has_certificate_expires() ? time_text(p.certificate_expires()) : "",
               p.has_certificate_expires() ? DaysLeftText(p, now) : "", p.certificate_warning(),
               probed ? StateName(p.state()) : "", p.reason(), absl::StrJoin(p.groups(), ";"),
               absl::StrCat(p.audit_tree_size()), p.audit_error()},
              &out);
      continue;
    }
    std::string state = probed ? StateName(p.state()) : "not probed";
    std::string detail = p.state() == v1::PartnerCoverage::ANSWERED
                             ? absl::StrCat(p.datasets_offered(), " dataset(s) offered")
                             : p.reason();
    if (p.groups_size() > 0) {
      absl::StrAppend(&detail, detail.empty() ? "" : "; ",
                      "groups: ", absl::StrJoin(p.groups(), ","));
    }
    if (!p.audit_error().empty()) {
      state = "audit_failed";
      absl::StrAppend(&detail, detail.empty() ? "" : "; ", "AUDIT LOG FAILED: ", p.audit_error());
    } else if (p.audit_tree_size() > 0) {
      absl::StrAppend(&detail, detail.empty() ? "" : "; ", "audit checkpoint held at ",
                      p.audit_tree_size(), " entries");
    }
    std::string cert = DaysLeftText(p, now);
    if (cert != "-") absl::StrAppend(&cert, "d");
    if (!p.certificate_warning().empty()) {
      absl::StrAppend(&cert, "!");
      absl::StrAppend(&detail, detail.empty() ? "" : "; ",
                      "CERTIFICATE: ", p.certificate_warning());
    }
    absl::StrAppend(&out, absl::StrFormat("%-20s %-10s %-13s %-24s %-20s %-20s %-6s %-12s %s\n",
                                          p.org_id(), call_home ? "call-home" : "direct",
                                          connection, p.address().empty() ? "-" : p.address(),
                                          last_contact, RoundTripText(p), cert, state, detail));
  }
  return out;
}

}  // namespace fedshare::client
