#include "bench/synthetic.h"

#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedshare/v1/config.pb.h"
#include "google/protobuf/text_format.h"

namespace fedshare::synthetic {
namespace {

constexpr const char* kPrograms[] = {"literacy", "numeracy", "mentoring", "employment"};
constexpr const char* kRegions[] = {"north", "south", "east", "west", "central"};

uint64_t Mix(uint64_t x) {  // SplitMix64 finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A deterministic random stream for one (seed, kind, index).
class Stream {
 public:
  Stream(uint64_t seed, uint64_t kind, uint64_t index)
      : state_(Mix(Mix(seed) ^ Mix(kind * 0x100000001b3ULL) ^ index)) {}
  uint64_t Next() { return Mix(state_++); }
  // Uniform in [0, n).
  int64_t Below(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }
  // Uniform in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Normal() {  // Box-Muller
    double u1 = Unit(), u2 = Unit();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }

 private:
  uint64_t state_;
};

int64_t NumSubjects(const Options& o) {
  if (o.subjects > 0) return o.subjects;
  return std::max<int64_t>(1, o.rows * 2 / 3);
}

void AppendDouble(std::string* out, double v) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, p - buf);
}

std::string Date(absl::Time t) { return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()); }

}  // namespace

v1::DatasetSchema ProgramOutcomesSchema(const std::string& name) {
  v1::DatasetSchema s;
  s.set_name(name);
  s.set_description("Program participants and their outcomes (synthetic)");
  s.set_consent_basis(v1::OPT_IN);
  auto add = [&](const char* field, v1::FieldSchema::Type type, v1::FieldSchema::Role role) {
    v1::FieldSchema* f = s.add_fields();
    f->set_name(field);
    f->set_type(type);
    f->set_role(role);
    return f;
  };
  add("participant_id", v1::FieldSchema::CATEGORY, v1::FieldSchema::SUBJECT);
  v1::FieldSchema* program = add("program", v1::FieldSchema::CATEGORY, v1::FieldSchema::DIMENSION);
  for (const char* p : kPrograms) program->add_categories(p);
  program->set_public_values(true);
  v1::FieldSchema* region = add("region", v1::FieldSchema::CATEGORY, v1::FieldSchema::DIMENSION);
  for (const char* r : kRegions) region->add_categories(r);
  add("cohort_year", v1::FieldSchema::INT64, v1::FieldSchema::DIMENSION);
  add("age", v1::FieldSchema::INT64, v1::FieldSchema::DIMENSION)->set_granularity(5);
  add("completed", v1::FieldSchema::BOOL, v1::FieldSchema::DIMENSION);
  v1::FieldSchema* score = add("outcome_score", v1::FieldSchema::DOUBLE, v1::FieldSchema::MEASURE);
  score->set_lower(0);
  score->set_upper(100);
  v1::FieldSchema* sessions =
      add("sessions_attended", v1::FieldSchema::INT64, v1::FieldSchema::MEASURE);
  sessions->set_lower(0);
  sessions->set_upper(200);
  add("income", v1::FieldSchema::DOUBLE, v1::FieldSchema::PRIVATE);
  return s;
}

std::vector<v1::Purpose> Purposes() {
  v1::Purpose research, evaluation, marketing;
  research.set_id("research");
  research.set_description("Research on program effects");
  evaluation.set_id("program-evaluation");
  evaluation.set_parent("research");
  evaluation.set_dpv("dpv:ServiceOptimisation");
  marketing.set_id("marketing");
  marketing.set_dpv("dpv:Marketing");
  return {research, evaluation, marketing};
}

std::string SubjectId(int64_t i) { return absl::StrFormat("P%07d", i); }

void AppendRecordsHeader(std::string* out) {
  out->append(
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n");
}

void AppendRecords(const Options& o, int64_t from, int64_t to, std::string* out) {
  const int64_t subjects = NumSubjects(o);
  for (int64_t i = from; i < to; ++i) {
    Stream row(o.seed, 1, static_cast<uint64_t>(i));
    // The first `subjects` rows give every subject a record; later rows
    // revisit random subjects (people enrolled in several programs).
    const int64_t subject = i < subjects ? i : row.Below(subjects);
    Stream person(o.seed, 2, static_cast<uint64_t>(subject));
    const int64_t region = person.Below(5);
    const int64_t birth_year = 1950 + person.Below(58);  // aged 18..75 in 2025
    const double income_level = person.Unit();
    const int64_t program = row.Below(4);
    const int64_t cohort = 2018 + row.Below(8);
    const int64_t age = std::max<int64_t>(16, cohort - birth_year);
    const int64_t sessions = std::min<int64_t>(200, row.Below(60) + row.Below(60) + row.Below(40));
    const bool completed = row.Unit() < 0.35 + sessions / 400.0;
    double score = 40 + 8 * program + (completed ? 15 : 0) + sessions / 12.0 + 10 * row.Normal();
    score = std::round(std::clamp(score, 0.0, 100.0) * 10) / 10;
    const bool score_missing = row.Unit() < 0.02;
    const bool income_missing = row.Unit() < 0.05;
    const double income =
        std::round((9000 + 70000 * income_level * income_level + 2000 * row.Normal()) * 100) / 100;

    absl::StrAppend(out, SubjectId(subject), ",", kPrograms[program], ",", kRegions[region], ",",
                    cohort, ",", age, ",", completed ? "true" : "false", ",");
    if (!score_missing) AppendDouble(out, score);
    absl::StrAppend(out, ",", sessions, ",");
    if (!income_missing) AppendDouble(out, std::max(0.0, income));
    out->push_back('\n');
  }
}

std::string RecordsCsv(const Options& o) {
  std::string out;
  out.reserve(static_cast<size_t>(o.rows) * 72 + 128);
  AppendRecordsHeader(&out);
  AppendRecords(o, 0, o.rows, &out);
  return out;
}

std::string ConsentCsv(const Options& o) {
  const int64_t subjects = NumSubjects(o);
  std::string out = "subject,purpose,event,time,valid_until,scope\n";
  const absl::Time start = o.now - absl::Hours(24 * 730);  // two years back
  for (int64_t s = 0; s < subjects; ++s) {
    Stream r(o.seed, 3, static_cast<uint64_t>(s));
    const std::string id = SubjectId(s);
    const double kind = r.Unit();
    const absl::Time given = start + absl::Hours(24 * r.Below(540));
    auto event = [&](const char* purpose, const char* type, absl::Time t,
                     const std::string& until = "") {
      absl::StrAppend(&out, id, ",", purpose, ",", type, ",", Date(t), ",", until, ",\n");
    };
    if (kind < 0.72) {
      event("program-evaluation", "GIVEN", given);
      const double later = r.Unit();
      if (later < 0.12) {
        event("program-evaluation", "WITHDRAWN", given + absl::Hours(24 * (30 + r.Below(150))));
      } else if (later < 0.20) {
        event("program-evaluation", "RENEWED", given + absl::Hours(24 * (60 + r.Below(120))));
      }
    } else if (kind < 0.76) {
      event("research", "GIVEN", given);
    } else if (kind < 0.84) {
      event("program-evaluation", "REFUSED", given);
    } else if (kind < 0.90) {
      event("program-evaluation", "GIVEN", given - absl::Hours(24 * 400),
            Date(given - absl::Hours(24 * 30)));
    } else if (kind < 0.93) {
      event("marketing", "GIVEN", given);
    }
  }
  return out;
}

std::string ConfigFragment(const Options& o) {
  v1::NodeConfig config;
  for (const v1::Purpose& p : Purposes()) *config.add_purposes() = p;
  *config.add_datasets() = ProgramOutcomesSchema(o.dataset);
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  return text;
}

}  // namespace fedshare::synthetic
