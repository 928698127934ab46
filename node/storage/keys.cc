#include "node/storage/keys.h"

#include <limits>

namespace fedshare::storage {
namespace {

std::string Tagged(uint8_t tag) { return std::string(1, static_cast<char>(tag)); }

}  // namespace

void AppendFixed16BE(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

void AppendFixed32BE(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

void AppendFixed64BE(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

std::string EncodeFixed32BE(uint32_t v) {
  std::string s;
  AppendFixed32BE(&s, v);
  return s;
}

std::string EncodeFixed64BE(uint64_t v) {
  std::string s;
  AppendFixed64BE(&s, v);
  return s;
}

uint32_t DecodeFixed32BE(absl::string_view b) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

uint64_t DecodeFixed64BE(absl::string_view b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

void AppendOrderedTime(std::string* out, absl::Time t) {
  int64_t micros;
  if (t == absl::InfiniteFuture()) {
    micros = std::numeric_limits<int64_t>::max();
  } else if (t == absl::InfinitePast()) {
    micros = std::numeric_limits<int64_t>::min();
  } else {
    micros = absl::ToUnixMicros(t);
  }
  AppendFixed64BE(out, static_cast<uint64_t>(micros) ^ (uint64_t{1} << 63));
}

absl::Time DecodeOrderedTime(absl::string_view bytes) {
  int64_t micros = static_cast<int64_t>(DecodeFixed64BE(bytes) ^ (uint64_t{1} << 63));
  if (micros == std::numeric_limits<int64_t>::max()) return absl::InfiniteFuture();
  if (micros == std::numeric_limits<int64_t>::min()) return absl::InfinitePast();
  return absl::FromUnixMicros(micros);
}

std::string MetaFormatVersionKey() {
  return Tagged(static_cast<uint8_t>(MetaTag::kFormatVersionKey));
}
std::string MetaNodeIdentityKey() { return Tagged(static_cast<uint8_t>(MetaTag::kNodeIdentity)); }
std::string MetaNextDatasetIdKey() { return Tagged(static_cast<uint8_t>(MetaTag::kNextDatasetId)); }
std::string MetaSubjectCountKey() { return Tagged(static_cast<uint8_t>(MetaTag::kSubjectCount)); }
std::string BudgetLedgerKey(absl::string_view org_id, absl::string_view dataset) {
  std::string k = Tagged(static_cast<uint8_t>(BudgetTag::kLedger));
  k.append(org_id.data(), org_id.size());
  k.push_back('\0');
  k.append(dataset.data(), dataset.size());
  return k;
}

std::string QueriesDpAnswerKey(absl::string_view org_id, absl::string_view dataset,
                               absl::string_view question_hash) {
  std::string k = Tagged(static_cast<uint8_t>(QueriesTag::kDpAnswer));
  k.append(org_id.data(), org_id.size());
  k.push_back('\0');
  k.append(dataset.data(), dataset.size());
  k.push_back('\0');
  k.append(question_hash.data(), question_hash.size());
  return k;
}

std::string QueriesRateWindowKey(absl::string_view org_id, absl::string_view agreement_id) {
  std::string k = Tagged(static_cast<uint8_t>(QueriesTag::kRateWindow));
  k.append(org_id.data(), org_id.size());
  k.push_back('\0');
  k.append(agreement_id.data(), agreement_id.size());
  return k;
}

std::string QueriesRepeatWindowKey(absl::string_view org_id, absl::string_view question_hash) {
  std::string k = Tagged(static_cast<uint8_t>(QueriesTag::kRepeatWindow));
  k.append(org_id.data(), org_id.size());
  k.push_back('\0');
  k.append(question_hash.data(), question_hash.size());
  return k;
}

std::string MetaNodeSecretKey() { return Tagged(static_cast<uint8_t>(MetaTag::kNodeSecret)); }

std::string MetaAuditSigningKey() {
  return Tagged(static_cast<uint8_t>(MetaTag::kAuditSigningKey));
}

std::string MetaDatasetByNameKey(absl::string_view name) {
  std::string k = Tagged(static_cast<uint8_t>(MetaTag::kDatasetByName));
  k.append(name.data(), name.size());
  return k;
}

std::string MetaDatasetSchemaKey(uint32_t dataset_id) {
  std::string k = Tagged(static_cast<uint8_t>(MetaTag::kDatasetSchema));
  AppendFixed32BE(&k, dataset_id);
  return k;
}

std::string MetaDatasetStatsKey(uint32_t dataset_id) {
  std::string k = Tagged(static_cast<uint8_t>(MetaTag::kDatasetStats));
  AppendFixed32BE(&k, dataset_id);
  return k;
}

std::string MetaCategoryPrefix(uint32_t dataset_id, uint16_t field_index) {
  std::string k = Tagged(static_cast<uint8_t>(MetaTag::kCategoryValue));
  AppendFixed32BE(&k, dataset_id);
  AppendFixed16BE(&k, field_index);
  return k;
}

std::string MetaCategoryKey(uint32_t dataset_id, uint16_t field_index, uint32_t code) {
  std::string k = MetaCategoryPrefix(dataset_id, field_index);
  AppendFixed32BE(&k, code);
  return k;
}

uint32_t DecodeMetaCategoryCode(absl::string_view key) { return DecodeFixed32BE(key.substr(7)); }

std::string MetaIngestOutcomeKey(uint32_t dataset_id, absl::string_view file_sha256,
                                 absl::string_view client_id) {
  std::string k = Tagged(static_cast<uint8_t>(MetaTag::kIngestOutcome));
  AppendFixed32BE(&k, dataset_id);
  k.append(file_sha256.data(), file_sha256.size());
  k.append(client_id.data(), client_id.size());
  return k;
}

std::string MetaIngestDigestPrefix(uint32_t dataset_id) {
  std::string k = Tagged(static_cast<uint8_t>(MetaTag::kIngestDigest));
  AppendFixed32BE(&k, dataset_id);
  return k;
}

std::string MetaIngestDigestKey(uint32_t dataset_id, absl::string_view file_sha256) {
  std::string k = MetaIngestDigestPrefix(dataset_id);
  k.append(file_sha256.data(), file_sha256.size());
  return k;
}

std::string EncodeDatasetStats(const DatasetStats& stats) {
  std::string v;
  AppendFixed64BE(&v, stats.rows);
  AppendFixed32BE(&v, stats.blocks);
  AppendFixed32BE(&v, stats.subjects);
  return v;
}

std::optional<DatasetStats> DecodeDatasetStats(absl::string_view value) {
  if (value.size() != 16) return std::nullopt;
  DatasetStats stats;
  stats.rows = DecodeFixed64BE(value);
  stats.blocks = DecodeFixed32BE(value.substr(8));
  stats.subjects = DecodeFixed32BE(value.substr(12));
  return stats;
}

std::string MetaDatasetSubjectsKey(uint32_t dataset_id) {
  std::string k = Tagged(static_cast<uint8_t>(MetaTag::kDatasetSubjects));
  AppendFixed32BE(&k, dataset_id);
  return k;
}

std::string EncodeSubjectBitmap(const std::vector<uint64_t>& words) {
  std::string v(words.size() * 8, '\0');
  for (size_t w = 0; w < words.size(); ++w) {
    for (int b = 0; b < 8; ++b) v[w * 8 + b] = static_cast<char>(words[w] >> (8 * b));
  }
  while (!v.empty() && v.back() == '\0') v.pop_back();
  return v;
}

bool DecodeSubjectBitmap(absl::string_view value, size_t words, std::vector<uint64_t>* out) {
  out->assign(words, 0);
  for (size_t i = 0; i < value.size(); ++i) {
    const uint64_t byte = static_cast<unsigned char>(value[i]);
    if (i / 8 >= words) {
      if (byte != 0) return false;
      continue;
    }
    (*out)[i / 8] |= byte << (8 * (i % 8));
  }
  return true;
}

std::string MetaBlockLoadDayPrefix(uint32_t dataset_id) {
  std::string k = Tagged(static_cast<uint8_t>(MetaTag::kBlockLoadDay));
  AppendFixed32BE(&k, dataset_id);
  return k;
}

std::string MetaBlockLoadDayKey(uint32_t dataset_id, uint32_t block) {
  std::string k = MetaBlockLoadDayPrefix(dataset_id);
  AppendFixed32BE(&k, block);
  return k;
}

uint32_t DecodeMetaBlockLoadDayBlock(absl::string_view key) {
  return DecodeFixed32BE(key.substr(5));
}

std::string RecordsDatasetPrefix(uint32_t dataset_id) {
  std::string k = Tagged(static_cast<uint8_t>(RecordsTag::kBlock));
  AppendFixed32BE(&k, dataset_id);
  return k;
}

std::string RecordsBlockKey(uint32_t dataset_id, uint32_t block) {
  std::string k = RecordsDatasetPrefix(dataset_id);
  AppendFixed32BE(&k, block);
  return k;
}

uint32_t DecodeRecordsBlockNumber(absl::string_view key) { return DecodeFixed32BE(key.substr(5)); }

std::string SubjectOrdinalByIdPrefix() {
  return Tagged(static_cast<uint8_t>(SubjectsTag::kOrdinalById));
}

std::string SubjectOrdinalByIdKey(absl::string_view subject_id) {
  std::string k = SubjectOrdinalByIdPrefix();
  k.append(subject_id.data(), subject_id.size());
  return k;
}

std::string SubjectIdByOrdinalPrefix() {
  return Tagged(static_cast<uint8_t>(SubjectsTag::kIdByOrdinal));
}

std::string SubjectIdByOrdinalKey(uint32_t ordinal) {
  std::string k = SubjectIdByOrdinalPrefix();
  AppendFixed32BE(&k, ordinal);
  return k;
}

std::string SubjectBlockDatasetPrefix(uint32_t dataset_id) {
  std::string k = Tagged(static_cast<uint8_t>(SubjectsTag::kBlockOfSubject));
  AppendFixed32BE(&k, dataset_id);
  return k;
}

std::string SubjectBlockKey(uint32_t dataset_id, uint32_t ordinal, uint32_t block) {
  std::string k = SubjectBlockDatasetPrefix(dataset_id);
  AppendFixed32BE(&k, ordinal);
  AppendFixed32BE(&k, block);
  return k;
}

uint32_t DecodeSubjectBlockOrdinal(absl::string_view key) { return DecodeFixed32BE(key.substr(5)); }
uint32_t DecodeSubjectBlockNumber(absl::string_view key) { return DecodeFixed32BE(key.substr(9)); }

std::string ConsentPrefix() { return Tagged(static_cast<uint8_t>(ConsentTag::kEvent)); }

std::string EncodeConsentKey(const ConsentKey& key) {
  std::string k = ConsentPrefix();
  AppendFixed32BE(&k, key.ordinal);
  k.append(key.purpose);
  k.push_back('\0');
  AppendOrderedTime(&k, key.time);
  k.push_back(static_cast<char>(key.event_type));
  return k;
}

std::optional<ConsentKey> DecodeConsentKey(absl::string_view key) {
  // tag(1) ordinal(4) purpose(>=1) 0x00 time(8) type(1)
  if (key.size() < 1 + 4 + 1 + 1 + 8 + 1 || key[0] != static_cast<char>(ConsentTag::kEvent)) {
    return std::nullopt;
  }
  ConsentKey out;
  out.ordinal = DecodeFixed32BE(key.substr(1));
  absl::string_view rest = key.substr(5, key.size() - 5 - 10);
  if (key[key.size() - 10] != '\0') return std::nullopt;
  out.purpose = std::string(rest);
  out.time = DecodeOrderedTime(key.substr(key.size() - 9));
  out.event_type = static_cast<uint8_t>(key.back());
  return out;
}

}  // namespace fedshare::storage
