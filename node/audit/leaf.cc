#include "node/audit/leaf.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fedshare::audit {
namespace {

constexpr absl::string_view kMagic("FSAL\x01", 5);

// Stored tags; they never change (docs/storage-format.md).
enum Tag : uint8_t {
  kIndex = 0x01,
  kTime = 0x02,
  kCaller = 0x03,
  kMethod = 0x04,
  kQuestionHash = 0x05,
  kDataset = 0x06,
  kPurpose = 0x07,
  kDecision = 0x08,
  kAgreement = 0x09,
  kRule = 0x0a,
  kReason = 0x0b,
  kResultHash = 0x0c,
  kPreviousHash = 0x0d,
  kEpsilon = 0x0e,
  kQuestion = 0x0f,
  kAppliedWhere = 0x10,  // once per predicate, in order
  kAppliedWhereText = 0x11,
  kOnBehalfOf = 0x12,
  kManifest = 0x13,
};

std::string U64(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (56 - 8 * i)));
  return out;
}

uint64_t ReadU64(absl::string_view s) {
  uint64_t v = 0;
  for (char c : s) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

void Put(std::string& out, Tag tag, absl::string_view value) {
  if (value.empty()) return;
  out.push_back(static_cast<char>(tag));
  const uint32_t n = static_cast<uint32_t>(value.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (24 - 8 * i)));
  out.append(value.data(), value.size());
}

void PutU64(std::string& out, Tag tag, uint64_t v) {
  if (v != 0) Put(out, tag, U64(v));
}

}  // namespace

std::string DeterministicBytes(const google::protobuf::MessageLite& message) {
  std::string serialized;
  {
    google::protobuf::io::StringOutputStream stream(&serialized);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return serialized;
}

std::string EncodeLeaf(const v1::AuditEntry& e) {
  std::string out(kMagic);
  PutU64(out, kIndex, e.index());
  PutU64(out, kTime, static_cast<uint64_t>(e.time_unix_ms()));
  Put(out, kCaller, e.caller());
  Put(out, kMethod, e.method());
  Put(out, kQuestionHash, e.question_hash());
  Put(out, kDataset, e.dataset());
  Put(out, kPurpose, e.purpose());
  PutU64(out, kDecision, static_cast<uint64_t>(static_cast<uint32_t>(e.decision())));
  Put(out, kAgreement, e.agreement_id());
  Put(out, kRule, e.rule());
  Put(out, kReason, e.reason());
  Put(out, kResultHash, e.result_hash());
  Put(out, kPreviousHash, e.previous_hash());
  uint64_t eps_bits;
  const double eps = e.epsilon_spent();
  std::memcpy(&eps_bits, &eps, sizeof eps_bits);
  PutU64(out, kEpsilon, eps_bits);
  if (e.has_question()) Put(out, kQuestion, DeterministicBytes(e.question()));
  for (const v1::Predicate& p : e.applied_where()) {
    // An empty predicate still takes its place, so the list keeps its length.
    std::string bytes = DeterministicBytes(p);
    out.push_back(static_cast<char>(kAppliedWhere));
    const uint32_t n = static_cast<uint32_t>(bytes.size());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (24 - 8 * i)));
    out += bytes;
  }
  Put(out, kAppliedWhereText, e.applied_where_text());
  Put(out, kOnBehalfOf, e.on_behalf_of());
  if (e.has_manifest()) Put(out, kManifest, DeterministicBytes(e.manifest()));
  return out;
}

absl::StatusOr<v1::AuditEntry> DecodeLeaf(absl::string_view leaf) {
  auto bad = [](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("malformed audit leaf: ", why));
  };
  if (leaf.substr(0, kMagic.size()) != kMagic) return bad("no FSAL v1 header");
  v1::AuditEntry e;
  absl::string_view rest = leaf.substr(kMagic.size());
  while (!rest.empty()) {
    if (rest.size() < 5) return bad("truncated field header");
    const uint8_t tag = static_cast<uint8_t>(rest[0]);
    const uint64_t n = ReadU64(rest.substr(1, 4));
    if (rest.size() - 5 < n) return bad("truncated field");
    const absl::string_view v = rest.substr(5, n);
    rest.remove_prefix(5 + n);
    auto u64 = [&](uint64_t& out) {
      if (v.size() != 8) return false;
      out = ReadU64(v);
      return true;
    };
    uint64_t x = 0;
    bool ok = true;
    switch (tag) {
      case kIndex:
        ok = u64(x);
        e.set_index(x);
        break;
      case kTime:
        ok = u64(x);
        e.set_time_unix_ms(static_cast<int64_t>(x));
        break;
      case kCaller:
        e.set_caller(std::string(v));
        break;
      case kMethod:
        e.set_method(std::string(v));
        break;
      case kQuestionHash:
        e.set_question_hash(std::string(v));
        break;
      case kDataset:
        e.set_dataset(std::string(v));
        break;
      case kPurpose:
        e.set_purpose(std::string(v));
        break;
      case kDecision:
        ok = u64(x) && x <= UINT32_MAX;
        e.set_decision(static_cast<v1::AuditEntry::Decision>(static_cast<int>(x)));
        break;
      case kAgreement:
        e.set_agreement_id(std::string(v));
        break;
      case kRule:
        e.set_rule(std::string(v));
        break;
      case kReason:
        e.set_reason(std::string(v));
        break;
      case kResultHash:
        e.set_result_hash(std::string(v));
        break;
      case kPreviousHash:
        e.set_previous_hash(std::string(v));
        break;
      case kEpsilon: {
        ok = u64(x);
        double eps;
        std::memcpy(&eps, &x, sizeof eps);
        e.set_epsilon_spent(eps);
        break;
      }
      case kQuestion:
        ok = e.mutable_question()->ParseFromArray(v.data(), static_cast<int>(v.size()));
        break;
      case kAppliedWhere:
        ok = e.add_applied_where()->ParseFromArray(v.data(), static_cast<int>(v.size()));
        break;
      case kAppliedWhereText:
        e.set_applied_where_text(std::string(v));
        break;
      case kOnBehalfOf:
        e.set_on_behalf_of(std::string(v));
        break;
      case kManifest:
        ok = e.mutable_manifest()->ParseFromArray(v.data(), static_cast<int>(v.size()));
        break;
      default:
        return bad(absl::StrCat("unknown tag ", tag));
    }
    if (!ok) return bad(absl::StrCat("bad value for tag ", tag));
  }
  // Only the canonical encoding is accepted: order, omissions and the nested
  // messages' bytes must be exactly what EncodeLeaf makes.
  if (EncodeLeaf(e) != leaf) return bad("not in canonical form");
  return e;
}

}  // namespace fedshare::audit
