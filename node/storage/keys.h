// Key and value encodings of every column family (docs/storage-format.md is
// the byte-by-byte description; keep the two in step). Stored enum values are
// written out explicitly and never renumbered.
//
// Conventions: integers in keys are big-endian so byte order is numeric
// order; integers in meta/subject/consent values are big-endian too; the
// arrays inside record blocks are little-endian (column_block.h). Times are
// microseconds since the Unix epoch as int64 with the sign bit flipped, then
// big-endian ("ordered int64"), so keys sort by time.
#ifndef FEDSHARE_NODE_STORAGE_KEYS_H_
#define FEDSHARE_NODE_STORAGE_KEYS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fedshare::storage {

// First byte of every key in the meta column family.
enum class MetaTag : uint8_t {
  kFormatVersionKey = 0x01,  // key: tag. value: u32 format version
  kNodeIdentity = 0x02,      // key: tag. value: org id (reserved for node/server)
  kNextDatasetId = 0x03,     // key: tag. value: u32 next dataset id to assign
  kSubjectCount = 0x04,      // key: tag. value: u32 ordinals allocated (next ordinal)
  // key: tag. value: 32 random bytes made at first start: the node secret that
  // keys cell-key perturbation and seeds repeated DP answers. Never leaves the
  // node (not in exports, answers, audit entries or logs).
  kNodeSecret = 0x05,
  // key: tag. value: 32 random bytes made at first start: the Ed25519 private
  // key (seed) that signs the audit log's checkpoints. Never leaves the node.
  kAuditSigningKey = 0x06,
  kDatasetByName = 0x10,  // key: tag + name. value: u32 dataset id
  kDatasetSchema = 0x11,  // key: tag + u32 id. value: fedshare.v1.DatasetSchema (protobuf)
  kDatasetStats = 0x12,   // key: tag + u32 id. value: DatasetStats (16 bytes)
  kCategoryValue = 0x13,  // key: tag + u32 id + u16 field + u32 code. value: the string
  // key: tag + u32 dataset id + 32-byte SHA-256 of the file + client id bytes.
  // value: fedshare.v1.IngestResponse (protobuf) without rejected_rows.
  kIngestOutcome = 0x14,
  // key: tag + u32 dataset id + 32-byte SHA-256 of a file loaded into it.
  // value: u64 unix ms of the load + u64 rows written.
  kIngestDigest = 0x15,
  // key: tag + u32 dataset id. value: bitmap of the subject ordinals with
  // records in the dataset (bit o % 8 of byte o / 8).
  kDatasetSubjects = 0x16,
  // key: tag + u32 dataset id + u32 block number. value: u32 UTC day (days
  // since 1970-01-01) on which every row of the block was loaded.
  kBlockLoadDay = 0x17,
};

// First byte of every key in the records column family.
enum class RecordsTag : uint8_t {
  kBlock = 0x01,  // key: tag + u32 dataset id + u32 block number. value: column_block.h
};

// First byte of every key in the subjects column family.
enum class SubjectsTag : uint8_t {
  kOrdinalById = 0x01,     // key: tag + subject id bytes. value: u32 ordinal
  kIdByOrdinal = 0x02,     // key: tag + u32 ordinal. value: subject id bytes
  kBlockOfSubject = 0x03,  // key: tag + u32 dataset + u32 ordinal + u32 block. value: empty
};

// First byte of every key in the consent column family.
enum class ConsentTag : uint8_t {
  // key: tag + u32 ordinal + purpose id + 0x00 + ordered-int64 time + u8 event
  // type (policy::ConsentEventType). value: ordered-int64 valid_until + scope.
  kEvent = 0x01,
};

// First byte of every key in the budget column family.
enum class BudgetTag : uint8_t {
  // key: tag + asking org id + 0x00 + dataset name. value: the ε ledger
  // (node/engine/dp_ledger.h encodes it; docs/storage-format.md).
  kLedger = 0x01,
};

// First byte of every key in the queries column family.
enum class QueriesTag : uint8_t {
  // key: tag + asking org id + 0x00 + dataset name + 0x00 + the applied
  // question's hash. value: u64 data version + the released
  // fedshare.v1.AggregateResult (protobuf) without receipt and privacy_budget.
  kDpAnswer = 0x01,
  // key: tag + asking org id + 0x00 + agreement id. value: the rate-limit
  // window, one big-endian u64 unix ms per answered question.
  kRateWindow = 'l',
  // key: tag + asking org id + 0x00 + applied question hash. value: the
  // repeat-limit window (exact mode), encoded as kRateWindow's.
  kRepeatWindow = 'r',
};

// ---- Fixed-width integers.
std::string EncodeFixed32BE(uint32_t v);
uint32_t DecodeFixed32BE(absl::string_view bytes);  // REQUIRES: bytes.size() >= 4
std::string EncodeFixed64BE(uint64_t v);
uint64_t DecodeFixed64BE(absl::string_view bytes);  // REQUIRES: bytes.size() >= 8
void AppendFixed16BE(std::string* out, uint16_t v);
void AppendFixed32BE(std::string* out, uint32_t v);
void AppendFixed64BE(std::string* out, uint64_t v);

// Times: microseconds since the epoch, sign bit flipped, big-endian.
// InfinitePast/InfiniteFuture map to INT64_MIN/INT64_MAX microseconds.
void AppendOrderedTime(std::string* out, absl::Time t);
absl::Time DecodeOrderedTime(absl::string_view bytes);  // REQUIRES: bytes.size() >= 8

// ---- meta
std::string MetaFormatVersionKey();
std::string MetaNodeIdentityKey();
std::string MetaNextDatasetIdKey();
std::string MetaSubjectCountKey();
std::string MetaNodeSecretKey();
std::string MetaAuditSigningKey();
std::string MetaDatasetByNameKey(absl::string_view name);
std::string MetaDatasetSchemaKey(uint32_t dataset_id);
std::string MetaDatasetStatsKey(uint32_t dataset_id);
// Prefix of every category value of one field, and one value's key.
std::string MetaCategoryPrefix(uint32_t dataset_id, uint16_t field_index);
std::string MetaCategoryKey(uint32_t dataset_id, uint16_t field_index, uint32_t code);
// The code in a MetaCategoryKey. REQUIRES: key has the prefix above.
uint32_t DecodeMetaCategoryCode(absl::string_view key);
// The outcome of the ingest named by (dataset, file digest, client id).
// REQUIRES: file_sha256.size() == 32.
std::string MetaIngestOutcomeKey(uint32_t dataset_id, absl::string_view file_sha256,
                                 absl::string_view client_id);
// A file loaded into a dataset, by its digest (MetaTag::kIngestDigest), and
// the prefix of every such key of one dataset. REQUIRES: file_sha256.size() == 32.
std::string MetaIngestDigestKey(uint32_t dataset_id, absl::string_view file_sha256);
std::string MetaIngestDigestPrefix(uint32_t dataset_id);

// Per-dataset counters kept in meta (MetaTag::kDatasetStats).
struct DatasetStats {
  uint64_t rows = 0;      // records stored
  uint32_t blocks = 0;    // record blocks (numbered 0 .. blocks-1)
  uint32_t subjects = 0;  // distinct subjects with records in the dataset
};
std::string EncodeDatasetStats(const DatasetStats& stats);
std::optional<DatasetStats> DecodeDatasetStats(absl::string_view value);

// The subjects with records in a dataset (MetaTag::kDatasetSubjects): a
// bitmap over ordinals, bit o % 64 of word o / 64, stored as bytes with bit
// o % 8 of byte o / 8 and without trailing zero bytes.
std::string MetaDatasetSubjectsKey(uint32_t dataset_id);
std::string EncodeSubjectBitmap(const std::vector<uint64_t>& words);
// Decodes into `words` words (bytes past them must be zero). False if not.
bool DecodeSubjectBitmap(absl::string_view value, size_t words, std::vector<uint64_t>* out);

// The load day of one record block (MetaTag::kBlockLoadDay), and the prefix
// of every such key of one dataset.
std::string MetaBlockLoadDayPrefix(uint32_t dataset_id);
std::string MetaBlockLoadDayKey(uint32_t dataset_id, uint32_t block);
// The block number in a MetaBlockLoadDayKey. REQUIRES: key.size() == 9.
uint32_t DecodeMetaBlockLoadDayBlock(absl::string_view key);

// ---- records
std::string RecordsDatasetPrefix(uint32_t dataset_id);
std::string RecordsBlockKey(uint32_t dataset_id, uint32_t block);
// The block number in a RecordsBlockKey. REQUIRES: key.size() == 9.
uint32_t DecodeRecordsBlockNumber(absl::string_view key);

// ---- subjects
std::string SubjectOrdinalByIdKey(absl::string_view subject_id);
std::string SubjectIdByOrdinalKey(uint32_t ordinal);
std::string SubjectIdByOrdinalPrefix();
std::string SubjectOrdinalByIdPrefix();
std::string SubjectBlockKey(uint32_t dataset_id, uint32_t ordinal, uint32_t block);
std::string SubjectBlockDatasetPrefix(uint32_t dataset_id);
// Ordinal and block of a SubjectBlockKey. REQUIRES: key.size() == 13.
uint32_t DecodeSubjectBlockOrdinal(absl::string_view key);
uint32_t DecodeSubjectBlockNumber(absl::string_view key);

// ---- budget
std::string BudgetLedgerKey(absl::string_view org_id, absl::string_view dataset);

// ---- queries
std::string QueriesDpAnswerKey(absl::string_view org_id, absl::string_view dataset,
                               absl::string_view question_hash);
std::string QueriesRateWindowKey(absl::string_view org_id, absl::string_view agreement_id);
std::string QueriesRepeatWindowKey(absl::string_view org_id, absl::string_view question_hash);

// ---- consent
struct ConsentKey {
  uint32_t ordinal = 0;
  std::string purpose;
  absl::Time time;
  uint8_t event_type = 0;
};
std::string EncodeConsentKey(const ConsentKey& key);
std::optional<ConsentKey> DecodeConsentKey(absl::string_view key);
std::string ConsentPrefix();

}  // namespace fedshare::storage

#endif  // FEDSHARE_NODE_STORAGE_KEYS_H_
