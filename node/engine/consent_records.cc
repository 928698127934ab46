// Engine: reading the stored consent events back out, as a file that imports
// again (ExportConsent) and as counts per purpose (ConsentReport).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "node/engine/consent_dpv.h"
#include "node/engine/csv.h"
#include "node/engine/engine.h"
#include "node/engine/engine_internal.h"

namespace fedshare::engine {
namespace {

using storage::ColumnFamily;

// Calls fn(ordinal, event) for every stored event in key order (subject
// ordinal, purpose, time, event type).
template <typename Fn>
absl::Status ForEachConsentEvent(const storage::Storage& storage, const storage::Snapshot* snap,
                                 Fn fn) {
  return storage.ScanPrefix(
      ColumnFamily::kConsent, storage::ConsentPrefix(),
      [&](absl::string_view key, absl::string_view value) -> absl::Status {
        std::optional<storage::ConsentKey> k = storage::DecodeConsentKey(key);
        if (!k.has_value()) return absl::DataLossError("malformed consent key");
        std::optional<policy::ConsentEvent> e = DecodeConsentEvent(*k, value);
        if (!e.has_value()) return absl::DataLossError("malformed consent event");
        return fn(k->ordinal, *e);
      },
      snap);
}

void AppendCsvRow(std::string* out, absl::string_view subject, const policy::ConsentEvent& e) {
  AppendCsvField(out, subject);
  out->push_back(',');
  AppendCsvField(out, e.purpose);
  out->push_back(',');
  absl::StrAppend(out, policy::ConsentEventTypeName(e.type));
  out->push_back(',');
  out->append(fedshare::FormatTime(e.time));
  out->push_back(',');
  if (e.valid_until != absl::InfiniteFuture()) out->append(fedshare::FormatTime(e.valid_until));
  out->push_back(',');
  AppendCsvField(out, e.scope.empty() ? "*" : absl::StrJoin(e.scope, ";"));
  out->push_back('\n');
}

}  // namespace

absl::Status Engine::ExportConsent(v1::ConsentFormat format, const ExportSink& sink,
                                   size_t chunk_bytes) const {
  std::unique_ptr<storage::Snapshot> snap = storage_->GetSnapshot();
  // Subject ids by ordinal, from the same snapshot as the events.
  std::vector<std::string> ids;
  FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(
      ColumnFamily::kSubjects, storage::SubjectIdByOrdinalPrefix(),
      [&](absl::string_view key, absl::string_view value) {
        uint32_t ordinal = storage::DecodeFixed32BE(key.substr(1));
        if (ordinal >= ids.size()) ids.resize(ordinal + 1);
        ids[ordinal] = std::string(value);
        return absl::OkStatus();
      },
      snap.get()));

  const bool dpv = format == v1::CONSENT_FORMAT_DPV;
  std::string out;
  out.reserve(chunk_bytes + 4096);
  if (!dpv) out.append("subject,purpose,event,time,valid_until,scope\n");
  int64_t events = 0;
  absl::Status scanned = ForEachConsentEvent(
      *storage_, snap.get(), [&](uint32_t ordinal, const policy::ConsentEvent& e) -> absl::Status {
        if (ordinal >= ids.size() || ids[ordinal].empty()) {
          return absl::DataLossError("a consent event's subject has no stored id");
        }
        if (dpv) {
          AppendDpvRecord(&out, ids[ordinal], e);
        } else {
          AppendCsvRow(&out, ids[ordinal], e);
        }
        ++events;
        if (out.size() < chunk_bytes) return absl::OkStatus();
        absl::Status sent = sink(out, events);
        out.clear();
        return sent;
      });
  FEDSHARE_RETURN_IF_ERROR(scanned);
  if (!out.empty() || events == 0) FEDSHARE_RETURN_IF_ERROR(sink(out, events));
  return absl::OkStatus();
}

absl::StatusOr<v1::ConsentReportResponse> Engine::ConsentReport(absl::Time at) const {
  using policy::ConsentEventType;
  std::unique_ptr<storage::Snapshot> snap = storage_->GetSnapshot();
  v1::ConsentReportResponse report;
  absl::flat_hash_map<std::string, v1::PurposeConsentCount*> by_purpose;
  for (const v1::Purpose& purpose : tree_.purposes()) {
    v1::PurposeConsentCount* count = report.add_purposes();
    count->set_purpose(purpose.id());
    by_purpose[purpose.id()] = count;
  }

  // Events arrive grouped by subject, then purpose, then time: the state of
  // one (subject, purpose) is settled when the next pair starts.
  struct Current {
    bool active = false;
    uint32_t ordinal = 0;
    std::string purpose;
    absl::Time time = absl::InfinitePast();
    bool any = false;  // an event at or before `at`
    std::optional<ConsentEventType> negative;
    bool in_force = false;  // a positive event at `time` still valid at `at`
  } cur;
  int64_t subjects = 0;
  std::optional<uint32_t> last_subject;
  auto settle = [&] {
    if (!cur.active || !cur.any) return;
    auto it = by_purpose.find(cur.purpose);
    if (it == by_purpose.end()) return;  // a purpose no longer configured
    v1::PurposeConsentCount* c = it->second;
    if (!cur.negative.has_value()) {
      if (cur.in_force) {
        c->set_consenting(c->consenting() + 1);
      } else {
        c->set_expired(c->expired() + 1);
      }
      return;
    }
    switch (*cur.negative) {
      case ConsentEventType::kWithdrawn:
        c->set_withdrawn(c->withdrawn() + 1);
        break;
      case ConsentEventType::kRefused:
        c->set_refused(c->refused() + 1);
        break;
      case ConsentEventType::kRevoked:
        c->set_revoked(c->revoked() + 1);
        break;
      case ConsentEventType::kInvalidated:
        c->set_invalidated(c->invalidated() + 1);
        break;
      default:
        c->set_expired(c->expired() + 1);
        break;
    }
  };
  // Among negatives tied in time, the one the policy honours most: an
  // objection over an ending (policy/consent.h).
  auto rank = [](ConsentEventType t) {
    switch (t) {
      case ConsentEventType::kWithdrawn:
        return 5;
      case ConsentEventType::kRefused:
        return 4;
      case ConsentEventType::kRevoked:
        return 3;
      case ConsentEventType::kInvalidated:
        return 2;
      default:
        return 1;
    }
  };
  FEDSHARE_RETURN_IF_ERROR(ForEachConsentEvent(
      *storage_, snap.get(), [&](uint32_t ordinal, const policy::ConsentEvent& e) -> absl::Status {
        if (!cur.active || ordinal != cur.ordinal || e.purpose != cur.purpose) {
          settle();
          cur = Current();
          cur.active = true;
          cur.ordinal = ordinal;
          cur.purpose = e.purpose;
        }
        if (!last_subject.has_value() || *last_subject != ordinal) {
          ++subjects;
          last_subject = ordinal;
        }
        if (e.time > at) return absl::OkStatus();
        if (!cur.any || e.time > cur.time) {
          cur.time = e.time;
          cur.any = true;
          cur.negative.reset();
          cur.in_force = false;
        }
        const bool positive =
            e.type == ConsentEventType::kGiven || e.type == ConsentEventType::kRenewed;
        if (positive) {
          if (e.valid_until > at) cur.in_force = true;
        } else if (!cur.negative.has_value() || rank(e.type) > rank(*cur.negative)) {
          cur.negative = e.type;
        }
        return absl::OkStatus();
      }));
  settle();
  *report.mutable_at() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(at));
  report.set_subjects_with_consent_events(subjects);
  return report;
}

}  // namespace fedshare::engine
