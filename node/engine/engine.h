// The org's own data: ingest, consent import, export, dataset listing, and
// the read side the query executor scans (DESIGN §6, §11).
//
//   EngineOptions options;
//   options.org_id = "partner-a";
//   options.purposes = config.purposes();
//   options.datasets = {config.datasets().begin(), config.datasets().end()};
//   FEDSHARE_ASSIGN_OR_RETURN(auto engine, Engine::Create(storage.get(), options));
//   FEDSHARE_ASSIGN_OR_RETURN(v1::IngestResponse r,
//       engine->Ingest("program_outcomes", v1::CSV, /*skip_invalid=*/false, file_text));
//   FEDSHARE_ASSIGN_OR_RETURN(auto reader, engine->OpenReader("program_outcomes"));
//   reader->ForEachBlock([](const ColumnBlock& b) { ...; return absl::OkStatus(); });
//
// Canonical forms (what Export writes, and what makes ingest-then-export
// reproduce a file byte for byte; docs/storage-format.md has the details):
//   - columns in schema order, every schema field present, rows in ingestion
//     order, LF line ends, the last line ended by LF;
//   - CSV: header row of field names; a field is quoted only if it contains
//     ',', '"', CR or LF ('"' doubled), or is an empty CATEGORY string (""),
//     an unquoted empty field is null;
//   - JSONL: {"name":value,...} with no spaces, null for nulls, strings with
//     '"' and '\' escaped by '\', control characters as \u00xx, all other
//     bytes (UTF-8) as they are;
//   - INT64 in decimal; DOUBLE in the shortest form that reads back to the
//     same double (std::to_chars); BOOL true/false; DATE YYYY-MM-DD.
// Input may be looser: CRLF or CR line ends, a UTF-8 BOM, blank lines,
// numbers with redundant digits ("1.50"), BOOL as 1/0/TRUE/False/yes/no/y/n
// (CSV), quoting where not needed, ';', tab or '|' between CSV fields,
// column names differing from field names in case, spaces, '_' and '-', or
// mapped to fields, and dates in another order (IngestParseOptions). Such input is stored by value
// and exported canonically.
//
// Ingest errors. A file whose header cannot be used (CSV: no header, an
// unknown or repeated column, no subject column) is rejected whole: the
// response has rows_written 0 and errors naming line 1. Otherwise every bad
// row gets one RowError per bad cell (line where the row starts, column,
// reason). The reason starts with one of: "wrong type", "out of bounds",
// "unknown category" (listing the declared values), "missing subject", "unknown column", "wrong
// number of fields", "malformed CSV", "invalid JSON". Without skip_invalid, any bad row means
// nothing is written: the call returns OK with rows_written 0, rows_rejected = the number of bad
// rows and the errors (at most 1000 listed). With skip_invalid the good rows are written and
// rejected_rows holds the bad rows as they were in the input (CSV: preceded by the header line).
// Whatever is written becomes visible at once and synced (one batch, or for
// a large write one commit of staged table files: storage::BulkWrite).
//
// Thread safety: thread-safe. Writers (Ingest, ImportConsent, EraseSubject,
// PurgeExpired) are serialized; readers (Export, OpenReader, ConsentFor, ListDatasets) run
// concurrently with them and each other, each over one consistent snapshot.
// Lifetimes: the Storage and Clock outlive the Engine; a DatasetReader must
// not outlive its Engine.
#ifndef FEDSHARE_NODE_ENGINE_ENGINE_H_
#define FEDSHARE_NODE_ENGINE_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fedshare/v1/admin.pb.h"
#include "fedshare/v1/types.pb.h"
#include "node/common/clock.h"
#include "node/engine/ingest_parse.h"
#include "node/storage/column_block.h"
#include "node/storage/keys.h"
#include "node/storage/storage.h"
#include "policy/consent.h"
#include "policy/purpose_tree.h"

namespace fedshare::engine {

using storage::ColumnBlock;

class IngestRun;
class IngestSession;
class ScanPool;

// What a replacing ingest is about to do (IngestControl::before_replace).
struct IngestReplace {
  std::string dataset;
  int64_t rows_removed = 0;  // rows the dataset holds now
  int64_t rows_written = 0;  // rows the file brings
  std::string file_sha256;   // 32 bytes
};

inline constexpr size_t kDefaultIngestMemoryBudgetBytes = size_t{256} << 20;
inline constexpr size_t kDefaultMaxSubjectIdBytes = 256;  // limits.max_string_bytes' default

// Per-call controls of Engine::Ingest.
struct IngestControl {
  // Client-chosen id (at most kMaxIdempotencyKeyBytes); empty for none.
  std::string idempotency_key;
  // Delimiter, column mappings and date format (ingest_parse.h).
  IngestParseOptions parse;
  // Load a file whose bytes were already loaded into the dataset.
  bool allow_duplicate = false;
  // Swap the dataset's rows for the file's good rows in the one write.
  bool replace = false;
  // Asked just before the commit (e.g. "has the caller gone away?").
  std::function<absl::Status()> before_commit;
  // With replace, asked after before_commit and just before the commit (e.g.
  // to append an audit entry); its error is returned and nothing is written.
  std::function<absl::Status(const IngestReplace&)> before_replace;
  // Bytes the ingest may hold at once: the record being received, the staged
  // write (counted twice: the commit copies it once), new subject ids
  // and dictionary values, and rejected rows. Past it the ingest fails with
  // RESOURCE_EXHAUSTED and writes nothing (docs/limits.md).
  size_t memory_budget_bytes = kDefaultIngestMemoryBudgetBytes;
  // The longest subject id a row may carry: no more than EraseSubject
  // accepts (limits.max_string_bytes), so every stored subject can be erased.
  size_t max_subject_id_bytes = kDefaultMaxSubjectIdBytes;
};
inline constexpr size_t kMaxIdempotencyKeyBytes = 128;

// What Engine::EraseSubject removed: counts and dataset names, never the id.
struct Erasure {
  int64_t records = 0;
  int64_t consent_events = 0;
  // Each dataset that held records of the subject, in config order.
  std::vector<std::pair<std::string, int64_t>> datasets;
  // Whether the erased bytes were also removed from every file of the store
  // (Storage::CompactAway). The erasure is committed either way.
  absl::Status physical;
};

// What Engine::PurgeExpired did to one dataset with retention_days > 0.
struct RetentionPurge {
  std::string dataset;
  int32_t retention_days = 0;
  // Records loaded before this instant (00:00 UTC of a day) are purged.
  absl::Time cutoff;
  int64_t records_purged = 0;
  uint32_t blocks_purged = 0;
  int64_t records_kept = 0;
  // Kept because their block has no load day (written before load days were
  // stored): never purged.
  int64_t records_without_load_day = 0;
};

struct EngineOptions {
  // The node's own org: the asker for ListDatasets' consent coverage.
  std::string org_id;
  std::vector<v1::Purpose> purposes;
  std::vector<v1::DatasetSchema> datasets;
  // Not owned; must outlive the Engine.
  Clock* clock = Clock::Real();
  // Check the store against the datasets exactly as opening it does (schema
  // changes included) but write nothing, e.g. on a read-only store
  // (fedshare-node --check-config). Such an engine is for Create's status only.
  bool check_only = false;
  // Threads of the one pool every question's block scan shares
  // (node/engine/scan_pool.h); 0 scans on each caller's thread.
  int scan_threads = 0;
  // What one question's scan may keep (node/engine/question_memory.h); over
  // it the question is refused with RESOURCE_EXHAUSTED. 0: no budget.
  int64_t query_memory_budget_bytes = 0;
  // The most cells (groups) one answer may have (limits.max_answer_cells);
  // a question whose records fall into more is refused with
  // RESOURCE_EXHAUSTED once its scan finds them. 0: no bound.
  int max_answer_cells = 0;
};

// What the engine knows about one configured dataset. Immutable after
// Engine::Create.
struct DatasetDef {
  uint32_t id = 0;  // the dataset id in storage keys
  v1::DatasetSchema schema;
  std::vector<storage::StoredType> types;  // per field; kNone for the SUBJECT field
  int subject_field = 0;
};

// Reads one dataset under one RocksDB snapshot taken by Engine::OpenReader.
// Thread-compatible; ForEachBlock may be called several times.
class DatasetReader {
 public:
  ~DatasetReader();

  const v1::DatasetSchema& schema() const { return def_->schema; }
  // Subject ordinals allocated node-wide (valid ordinals are 0 .. count-1).
  uint32_t subject_count() const { return subject_count_; }
  uint64_t rows() const { return stats_.rows; }
  uint32_t blocks() const { return stats_.blocks; }
  // Distinct subjects with records in this dataset.
  uint32_t subjects() const { return stats_.subjects; }

  // CATEGORY field `field_index`: code -> value. Empty for other fields.
  const std::vector<std::string>& dictionary(int field_index) const;
  // The code of `value` in CATEGORY field `field_index`, or nullopt if the
  // value never occurred (so no record can match it).
  std::optional<int64_t> CategoryCode(int field_index, absl::string_view value) const;

  // Calls fn for each block in block order (rows in ingestion order). The
  // block is reused between calls. Stops at and returns fn's first error.
  // With `columns` (one flag per schema field), only those columns are
  // decoded; the others are empty in the block fn sees.
  absl::Status ForEachBlock(const std::function<absl::Status(const ColumnBlock&)>& fn,
                            const std::vector<bool>* columns = nullptr) const;
  struct BlockRange {
    const std::vector<bool>* columns = nullptr;  // as ForEachBlock's
    // Block numbers [first, end): blocks outside are not read.
    uint32_t first = 0;
    uint32_t end = UINT32_MAX;
    // Asked with each block's zone map (storage::DecodeZoneMap: present is
    // false for a block written before zone maps) before the block is
    // decoded; when it returns true the block is not decoded and fn is not
    // called for it. Unset: no block is skipped.
    std::function<bool(const storage::ZoneMap&)> skip;
    // With `columns`: narrow columns are read where the block is stored
    // rather than copied (storage::DecodeColumnBlock's in_place); fn reads
    // them through ColumnBlock::Column's IntAt/DoubleAt or WithInts/WithDoubles.
    bool in_place = false;
  };
  // As ForEachBlock, over `range`. May be called from several threads at
  // once on one reader (each call decodes into its own block).
  absl::Status ForEachBlock(const std::function<absl::Status(const ColumnBlock&)>& fn,
                            const BlockRange& range) const;
  // Blocks ForEachBlock has decoded (not skipped) through this reader, over
  // every call.
  uint64_t blocks_decoded() const { return blocks_decoded_.load(std::memory_order_relaxed); }
  // The engine's scan pool (null without one) and question memory budget
  // (0: none), for the query executor.
  ScanPool* scan_pool() const { return scan_pool_; }
  int64_t query_memory_budget_bytes() const { return query_memory_budget_bytes_; }
  int max_answer_cells() const { return max_answer_cells_; }  // 0: no bound
  void set_max_answer_cells(int max_cells) { max_answer_cells_ = max_cells; }
  // Asked before each block of ForEachBlock; when it returns true the scan
  // stops with CANCELLED. Unset: never cancelled.
  void set_cancelled(std::function<bool()> cancelled) { cancelled_ = std::move(cancelled); }

  // Subject ids of every allocated ordinal (index = ordinal), read from the
  // snapshot. Costs one scan of the subjects column family.
  absl::StatusOr<std::vector<std::string>> SubjectIds() const;

 private:
  friend class Engine;
  DatasetReader() = default;

  const storage::Storage* storage_ = nullptr;
  const DatasetDef* def_ = nullptr;
  std::unique_ptr<storage::Snapshot> snapshot_;
  uint32_t subject_count_ = 0;
  storage::DatasetStats stats_;
  std::vector<std::vector<std::string>> dictionaries_;  // per field
  std::vector<absl::flat_hash_map<std::string, int64_t>> codes_;
  std::function<bool()> cancelled_;
  mutable std::atomic<uint64_t> blocks_decoded_{0};
  ScanPool* scan_pool_ = nullptr;
  int64_t query_memory_budget_bytes_ = 0;
  int max_answer_cells_ = 0;
};

class Engine {
 public:
  // Validates the purposes and every dataset schema, registers new datasets,
  // and checks each stored schema against the configured one
  // (policy::CheckSchemaEvolution: FAILED_PRECONDITION naming the field when
  // a field was removed, moved or changed type). Declared category values get
  // dictionary codes in declaration order. `storage` is borrowed.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(storage::Storage* storage,
                                                        EngineOptions options);
  ~Engine();

  // Ingests a whole CSV or JSONL file into `dataset` (see the header comment
  // for errors and canonical forms). NOT_FOUND for an unknown dataset;
  // UNAVAILABLE/INTERNAL if the store fails (then nothing was written).
  // new_subjects counts subjects that had no record in this dataset before.
  // With control.idempotency_key, an earlier ingest of the same file into the
  // same dataset with the same key is reported again (replayed set) and
  // nothing is written. Otherwise a file whose bytes (SHA-256) were loaded
  // into the dataset before, and not since replaced, is FAILED_PRECONDITION
  // unless control.allow_duplicate or control.replace. With control.replace
  // the dataset's rows are exactly the file's good rows after the one write
  // (a file with no good rows writes nothing). Bad parse options (delimiter,
  // date format, a mapping to no field) are INVALID_ARGUMENT.
  // control.before_commit, then control.before_replace, when set, are asked
  // last before the write; an error is returned and nothing is written.
  absl::StatusOr<v1::IngestResponse> Ingest(absl::string_view dataset, v1::DataFormat format,
                                            bool skip_invalid, absl::string_view data,
                                            const IngestControl& control = IngestControl());

  // The same ingest fed as the file arrives (ingest.h): the session takes the
  // file in slices and holds at most control.memory_budget_bytes of it. The
  // dataset, format and control are checked here (the errors of Ingest);
  // the digest checks (idempotency key, duplicate file) come at Finish. The
  // session holds the engine's write lock until it is destroyed: other
  // ingests and consent imports wait for it.
  absl::StatusOr<std::unique_ptr<IngestSession>> StartIngest(
      absl::string_view dataset, v1::DataFormat format, bool skip_invalid,
      IngestControl control) ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // Receives an export in chunks (Export, ExportConsent).
  using ExportSink = std::function<absl::Status(absl::string_view chunk, int64_t rows_so_far)>;

  // Imports consent events from CSV with the header columns subject, purpose,
  // event, time (required) and valid_until, scope (optional), in any order,
  // or from DPV consent records (node/engine/consent_dpv.h) with the same
  // meaning. time/valid_until: RFC 3339 or YYYY-MM-DD (empty valid_until: no
  // expiry); scope: "" or "*" for any member, else org ids separated by ';'.
  // An event is identified by (subject, purpose, time, event): re-importing
  // it adds nothing; the same identity with another valid_until or scope is a
  // row error, and so is a valid_until not after time. Like ingest without
  // skip_invalid, any bad row means nothing is written (events_new 0, errors
  // listed; a DPV error names the DPV key). Subjects seen only here get
  // ordinals too. Atomic and synced. When `known_orgs` is given, a scope
  // naming another org is imported as written and listed in the response's
  // warnings (line, column scope); so is a DPV key fedshare does not read.
  // A subject id longer than `max_subject_id_bytes` is a row error, as in
  // ingest (IngestControl::max_subject_id_bytes).
  absl::StatusOr<v1::ConsentImportResponse> ImportConsent(
      absl::string_view data, const absl::flat_hash_set<std::string>* known_orgs = nullptr,
      v1::ConsentFormat format = v1::CONSENT_FORMAT_CSV,
      size_t max_subject_id_bytes = kDefaultMaxSubjectIdBytes);

  // Streams every stored consent event, from one snapshot, ordered by
  // subject ordinal, purpose and time: CSV with the import's header (so the
  // file imports back) or DPV records. sink(chunk, events so far) with
  // chunks of about `chunk_bytes`; stops at and returns the sink's first
  // error. Erasure aside, importing the export into an empty node gives the
  // same consent state.
  absl::Status ExportConsent(v1::ConsentFormat format, const ExportSink& sink,
                             size_t chunk_bytes = 64 << 10) const;

  // Per configured purpose, how many people's consent for exactly that
  // purpose is in each state at `at` (the latest event at or before it; a
  // negative event wins a tie; a GIVEN or RENEWED consent past its
  // valid_until counts as expired), whatever its scope. For the org's
  // operators only: served on the local listener, never to a peer.
  absl::StatusOr<v1::ConsentReportResponse> ConsentReport(absl::Time at) const;

  // Streams the dataset in canonical CSV or JSONL: sink(chunk, rows so far)
  // with chunks of about `chunk_bytes`; stops at and returns the sink's first
  // error. NOT_FOUND for an unknown dataset.
  absl::Status Export(absl::string_view dataset, v1::DataFormat format, const ExportSink& sink,
                      size_t chunk_bytes = 64 << 10) const;

  // Erases one subject everywhere in one synced write: its rows in every
  // dataset (each block holding them is rewritten without them, a block left
  // empty is deleted), the datasets' counters and subject bitmaps, its
  // consent events, its id <-> ordinal keys (the ordinal is never reused) and
  // its id wherever a stored ingest outcome quotes it; caches forget it.
  // `before_commit` (e.g. the audit append) is called last before the write
  // with what will be removed; its error is returned and nothing is written.
  // Then the store is compacted so the id is in no file (Erasure::physical).
  // NOT_FOUND if no record or consent event names the subject; nothing is
  // written then.
  absl::StatusOr<Erasure> EraseSubject(
      absl::string_view subject_id,
      const std::function<absl::Status(const Erasure&)>& before_commit);

  // Purges, for each dataset with retention_days > 0, the records loaded on
  // a UTC day before today - retention_days (so a record is kept at least
  // retention_days and at most one day more), one synced write per dataset.
  // `before_commit` is called before each dataset's write that purges
  // anything; its error stops the run and that dataset is left unchanged.
  // Returns one entry per dataset with retention_days > 0, config order.
  absl::StatusOr<std::vector<RetentionPurge>> PurgeExpired(
      const std::function<absl::Status(const RetentionPurge&)>& before_commit);

  // Every configured dataset (config order) with rows, subjects, blocks and,
  // for each of `purposes` (every configured purpose if empty), the subjects
  // with records in it whose consent counts for a question with that purpose
  // asked by the node's own org now. INVALID_ARGUMENT for an unknown purpose.
  absl::StatusOr<v1::ListDatasetsResponse> ListDatasets(
      const std::vector<std::string>& purposes) const;

  // A reader over one snapshot of `dataset`. NOT_FOUND for an unknown dataset.
  absl::StatusOr<std::unique_ptr<DatasetReader>> OpenReader(absl::string_view dataset) const;

  // The subjects (node-wide ordinals) whose consent lets `dataset`'s records
  // count for `question` (policy/consent.h, the dataset's consent basis).
  // The bitmap's size is the number of ordinals allocated when it was built;
  // ordinals at or past it must be treated as not counting (Test() does so).
  // Cached per (basis, purpose, asker) until consent or the subject set
  // changes, or question.now leaves the span over which the answer cannot
  // change. NOT_FOUND for an unknown dataset, INVALID_ARGUMENT for an
  // unknown purpose.
  absl::StatusOr<policy::ConsentBitmap> ConsentFor(absl::string_view dataset,
                                                   const policy::ConsentQuestion& question) const;

  // The node secret (32 bytes, made at first start, stored in meta): keys
  // cell-key perturbation and seeds repeated DP answers. Never release it.
  const std::string& node_secret() const { return node_secret_; }
  static constexpr int kNodeSecretBytes = 32;

  // Counts the writes a question's figures can depend on: ingest, consent
  // import, erasure and retention purges. Bumped after each one's write
  // (committed or not) and before it is acknowledged, so a generation read
  // before a reader is opened, and read again unchanged later, means no
  // write was acknowledged in between (node/engine/shared_scans.h).
  uint64_t data_generation() const { return data_generation_.load(std::memory_order_acquire); }

  const policy::PurposeTree& purpose_tree() const { return tree_; }
  // The dataset's definition, or nullptr if not configured.
  const DatasetDef* FindDataset(absl::string_view name) const;
  const std::vector<std::unique_ptr<DatasetDef>>& datasets() const { return datasets_; }

 private:
  struct WriterState;  // dictionaries, subject map and counters (engine.cc)
  struct CacheEntry {
    uint64_t generation = 0;
    absl::Time built_at;
    absl::Time valid_until;
    policy::ConsentBitmap bitmap;
  };

  friend class IngestRun;     // ingest.cc: parses and checks under write_mu_
  friend class IngestWriter;  // ingest_writer.cc: stages and commits under write_mu_

  Engine() = default;
  absl::Status Load() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::StatusOr<Erasure> EraseLocked(
      absl::string_view subject_id,
      const std::function<absl::Status(const Erasure&)>& before_commit,
      std::vector<storage::Storage::KeyRange>* ranges) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Stages into `batch` the rewrite of every block of `def` holding rows of
  // `ordinal`; returns the rows removed and adjusts stats->blocks.
  absl::StatusOr<int64_t> EraseFromDataset(const DatasetDef& def, uint32_t ordinal,
                                           storage::DatasetStats* stats, storage::WriteBatch* batch,
                                           std::vector<storage::Storage::KeyRange>* ranges) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::StatusOr<RetentionPurge> PurgeDataset(
      size_t ds, int64_t today,
      const std::function<absl::Status(const RetentionPurge&)>& before_commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::StatusOr<policy::ConsentBitmap> BuildConsentBitmap(v1::ConsentBasis basis,
                                                           const policy::ConsentQuestion& question,
                                                           absl::Time* valid_until) const;

  storage::Storage* storage_ = nullptr;
  Clock* clock_ = nullptr;
  std::unique_ptr<ScanPool> scan_pool_;  // null without scan threads
  int64_t query_memory_budget_bytes_ = 0;
  int max_answer_cells_ = 0;
  std::string org_id_;
  std::string node_secret_;
  bool check_only_ = false;
  policy::PurposeTree tree_;
  std::vector<std::unique_ptr<DatasetDef>> datasets_;

  absl::Mutex write_mu_;  // serializes Ingest, ImportConsent, erasure and retention
  std::unique_ptr<WriterState> writer_ ABSL_GUARDED_BY(write_mu_);

  // Per dataset (index as in datasets_): bit o set if subject ordinal o has
  // records in the dataset. Updated after each committed ingest.
  mutable absl::Mutex state_mu_;
  std::vector<std::vector<uint64_t>> present_ ABSL_GUARDED_BY(state_mu_);
  // Bumped after every commit that changes consent or allocates ordinals.
  uint64_t consent_generation_ ABSL_GUARDED_BY(state_mu_) = 0;
  std::atomic<uint64_t> data_generation_{0};  // data_generation()

  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, CacheEntry> consent_cache_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_ENGINE_H_
