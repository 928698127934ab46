#include "testing/bruteforce_data.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tests/test_env.h"

namespace fedshare::testing::bruteforce {
namespace {

// Every consent event is dated in 2025; every validity ends in 2025 or in
// 2099. So the decision is the same at any time in between, and the brute
// force decides at a fixed time rather than the wall clock the node uses.
const absl::Time kDecisionTime = absl::FromCivil(absl::CivilDay(2030, 1, 1), absl::UTCTimeZone());

absl::Time Day(int month, int day, int hour = 12) {
  return absl::FromCivil(absl::CivilSecond(2025, month, day, hour, 0, 0), absl::UTCTimeZone());
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// --- Consent, as DESIGN §6 and policy/consent.h state it (OPT_IN). ---------

bool IsNegative(const std::string& event) {
  return event == "WITHDRAWN" || event == "REFUSED" || event == "EXPIRED";
}

bool ScopeIncludes(const std::string& scope, const std::string& org) {
  if (scope.empty() || scope == "*") return true;
  for (absl::string_view s : absl::StrSplit(scope, ';')) {
    if (s == org) return true;
  }
  return false;
}

// A subject counts iff some purpose covering program-evaluation (itself or
// research) has as its latest events a valid, in-scope GIVEN/RENEWED, and no
// covering purpose's latest events include a negative one.
bool Consents(const std::vector<ConsentRow>& rows) {
  bool positive = false;
  for (const char* purpose : {"program-evaluation", "research"}) {
    std::optional<absl::Time> latest;
    for (const ConsentRow& r : rows) {
      if (r.purpose == purpose && r.time <= kDecisionTime && (!latest || r.time > *latest)) {
        latest = r.time;
      }
    }
    if (!latest) continue;
    for (const ConsentRow& r : rows) {
      if (r.purpose != purpose || r.time != *latest) continue;
      if (IsNegative(r.event)) return false;
      bool valid = !r.valid_until || *r.valid_until > kDecisionTime;
      if (valid && ScopeIncludes(r.scope, kAsker)) positive = true;
    }
  }
  return positive;
}

ConsentRow Given(const std::string& purpose, absl::Time t, const std::string& scope = "*",
                 std::optional<absl::Time> until = std::nullopt) {
  return ConsentRow{purpose, "GIVEN", t, until, scope};
}
ConsentRow Event(const std::string& purpose, const std::string& event, absl::Time t) {
  return ConsentRow{purpose, event, t, std::nullopt, "*"};
}

// One of the consent histories below, chosen by r in [0, 100).
std::vector<ConsentRow> ConsentHistory(int r, std::mt19937& rng) {
  const std::string pe = "program-evaluation";
  const absl::Time t = Day(1 + static_cast<int>(rng() % 4), 1 + static_cast<int>(rng() % 28));
  const absl::Time later = t + absl::Hours(24 * (30 + rng() % 120));
  const absl::Time far = absl::FromCivil(absl::CivilDay(2099, 12, 31), absl::UTCTimeZone());
  if (r < 55) return {Given(pe, t)};
  if (r < 62) return {Given("research", t)};  // the parent purpose covers the question
  if (r < 66) return {Event(pe, "REFUSED", t)};
  if (r < 71) return {Given(pe, t), Event(pe, "WITHDRAWN", later)};
  if (r < 75) return {Given(pe, t, "*", Day(9, 30))};  // expired
  if (r < 79) return {Given(pe, t, "other-org")};      // not for the asker
  if (r < 82) return {Given(pe, t, "foundation")};
  if (r < 84) return {Given(pe, t, "other-org;foundation")};
  if (r < 88) return {};                                                   // never asked
  if (r < 90) return {Given(pe, t), Event("research", "REFUSED", later)};  // broader "no" wins
  if (r < 92) {
    return {Given(pe, t), Event(pe, "WITHDRAWN", later),
            ConsentRow{pe, "RENEWED", later + absl::Hours(48), std::nullopt, "*"}};
  }
  if (r < 94) return {Given(pe, t, "*", far)};
  if (r < 96) return {Given(pe, t), Event(pe, "EXPIRED", later)};
  if (r < 98) return {Given(pe, t), Event(pe, "WITHDRAWN", t)};  // a tie: the "no" wins
  if (r < 99) return {Given("research", t, "other-org"), Given(pe, later)};
  return {Given("marketing", t)};
}

double Score(std::mt19937& rng) {
  // Two decimals, so the CSV text round-trips to the same double.
  return std::stod(absl::StrFormat("%.2f", (rng() % 10001) / 100.0));
}

}  // namespace

Data Generate() {
  std::mt19937 rng(20250415);
  Data data;
  const char* programs[] = {"literacy", "numeracy", "mentoring", "employment"};
  const char* regions[] = {"north", "south", "east", "west"};
  auto add_subject = [&](const std::string& id, std::vector<ConsentRow> history) {
    if (Consents(history)) data.counting.insert(id);
    data.consent[id] = std::move(history);
  };
  auto record = [&](const std::string& id, const std::string& program, const std::string& region,
                    int64_t cohort, int64_t age, int64_t sessions) {
    Record r;
    r.subject = id;
    r.program = program;
    r.region = region;
    r.cohort_year = cohort;
    r.age = age;
    r.completed = rng() % 10 < 6;
    if (rng() % 100 >= 5) r.outcome_score = Score(rng);
    r.sessions_attended = sessions;
    r.income = 1000.0 * (rng() % 90);
    data.records.push_back(r);
  };
  int n = 0;
  auto next_id = [&] { return absl::StrFormat("p%04d", n++); };

  // The bulk: four regions, cohorts 2020-2024, mostly one program per person.
  for (int i = 0; i < 467; ++i) {
    const std::string id = next_id();
    const std::string region = regions[rng() % 4];
    const int64_t age = 18 + rng() % 55;
    const int p = rng() % 20;
    const std::string primary = programs[p < 6 ? 0 : p < 12 ? 1 : p < 17 ? 2 : 3];
    const int roll = rng() % 100;
    const int records = roll < 50 ? 1 : roll < 85 ? 2 : 3;
    for (int j = 0; j < records; ++j) {
      const std::string program = rng() % 5 == 0 ? programs[rng() % 4] : primary;
      record(id, program, region, 2020 + rng() % 5, age, rng() % 61);
    }
    add_subject(id, ConsentHistory(static_cast<int>(rng() % 100), rng));
  }
  // A rare region: 11 people, of whom 8 count (too few for a cell).
  for (int i = 0; i < 11; ++i) {
    const std::string id = next_id();
    const int64_t age = 18 + rng() % 55;
    const int records = 1 + rng() % 2;
    for (int j = 0; j < records; ++j) {
      record(id, programs[rng() % 4], "central", 2020 + rng() % 5, age, rng() % 61);
    }
    add_subject(id,
                i < 8 ? std::vector<ConsentRow>{Given("program-evaluation", Day(2, 1))}
                      : std::vector<ConsentRow>{Event("program-evaluation", "REFUSED", Day(2, 1))});
  }
  // A rare program/cohort: 6 employment participants of 2019.
  for (int i = 0; i < 6; ++i) {
    const std::string id = next_id();
    record(id, "employment", regions[rng() % 4], 2019, 18 + rng() % 55, rng() % 61);
    add_subject(id, {Given("program-evaluation", Day(3, 1))});
  }
  // Literacy 2018: 14 people, one of whom attended 200 sessions and the
  // others 2 to 8, so any sum or mean of sessions there is dominated by one.
  for (int i = 0; i < 14; ++i) {
    const std::string id = next_id();
    record(id, "literacy", regions[rng() % 4], 2018, 18 + rng() % 55, i == 0 ? 200 : 2 + rng() % 7);
    add_subject(id, {Given("program-evaluation", Day(3, 2))});
  }
  return data;
}

std::string RecordsCsv(const Data& data) {
  std::string csv = kProgramOutcomesCsvHeader;
  for (const Record& r : data.records) {
    absl::StrAppend(&csv, r.subject, ",", r.program, ",", r.region, ",", r.cohort_year, ",", r.age,
                    ",", r.completed ? "true" : "false", ",",
                    r.outcome_score ? absl::StrFormat("%.2f", *r.outcome_score) : "", ",",
                    r.sessions_attended, ",", r.income, "\n");
  }
  return csv;
}

std::string ConsentCsv(const Data& data) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (const auto& [subject, rows] : data.consent) {
    for (const ConsentRow& r : rows) {
      absl::StrAppend(&csv, subject, ",", r.purpose, ",", r.event, ",", Rfc3339(r.time), ",",
                      r.valid_until ? Rfc3339(*r.valid_until) : "", ",", r.scope, "\n");
    }
  }
  return csv;
}

}  // namespace fedshare::testing::bruteforce
