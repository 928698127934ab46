#include "node/engine/ingest.h"

#include <algorithm>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "node/common/utf8.h"
#include "node/engine/csv.h"
#include "node/engine/engine_internal.h"
#include "node/engine/ingest_cells.h"
#include "node/engine/ingest_writer.h"
#include "node/engine/json.h"
#include "openssl/evp.h"

namespace fedshare::engine {

using storage::ColumnFamily;
using storage::StoredType;

namespace {

void AppendRawLine(std::string* out, absl::string_view raw) {
  out->append(raw.data(), raw.size());
  if (raw.empty() || (raw.back() != '\n' && raw.back() != '\r')) out->push_back('\n');
}

// SHA-256 over bytes given in pieces.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(absl::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }
  std::string Final() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_, digest, &size);
    return std::string(reinterpret_cast<const char*>(digest), size);
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Whether `text` (the start of a CSV file) holds its first non-empty line up
// to its terminator, so DetectCsvDelimiter sees the whole header.
bool HasFirstLine(absl::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  size_t pos = text.find_first_not_of("\r\n");
  if (pos == absl::string_view::npos) return false;
  bool in_quotes = false;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (c == '"') in_quotes = !in_quotes;
    if (!in_quotes && (c == '\n' || c == '\r')) return true;
  }
  return false;
}

constexpr size_t kMiB = size_t{1} << 20;

}  // namespace

// One ingest between Engine::StartIngest and its end (ingest.h). Holds
// engine_->write_mu_, taken by StartIngest, and releases it when destroyed.
class IngestRun {
 public:
  IngestRun(Engine* engine, const DatasetDef& def, size_t ds, v1::DataFormat format,
            bool skip_invalid, IngestControl control, ColumnResolver columns)
      : engine_(engine),
        def_(def),
        schema_(def.schema),
        nfields_(def.schema.fields_size()),
        ds_(ds),
        format_(format),
        skip_invalid_(skip_invalid),
        control_(std::move(control)),
        columns_(std::move(columns)),
        cells_(nfields_),
        writer_(std::make_unique<IngestWriter>(engine, def, ds, control_.replace)) {}
  ~IngestRun() ABSL_UNLOCK_FUNCTION(engine_->write_mu_) {
    writer_.reset();  // drops what it staged while the lock is held
    engine_->write_mu_.Unlock();
  }

  absl::Status Start();
  // `bytes` already given to Hash if `hashed`.
  absl::Status Append(absl::string_view bytes, bool hashed = false);
  // Adds the next bytes of the file to its digest (the session does it on
  // the receiving thread, which has time to spare, for slices it hands to
  // the parser).
  void Hash(absl::string_view bytes) { sha_.Update(bytes); }
  absl::StatusOr<v1::IngestResponse> Finish();
  size_t peak_held_bytes() const { return peak_held_; }
  bool finished() const { return finished_; }

 private:
  enum class Phase { kHeader, kRows, kHeaderRejected };

  // Parses the complete records at the start of carry_ (all of it at the end
  // of the file) and drops them from carry_.
  void Consume(bool at_end);
  void ConsumeJsonl(bool at_end);
  void ConsumeCsv(bool at_end);
  void CsvHeader(const CsvRecord& record);
  // A record: its fields' text and, if any was written "...", quoted flags.
  void CsvRow(int64_t line, absl::string_view raw, absl::string_view error,
              const std::vector<absl::string_view>& values, const std::vector<char>* quoted);
  void JsonLine(int64_t line, absl::string_view raw);
  // Validates cells_ after parsing; returns whether the row is bad.
  bool CheckRow(int64_t line, bool bad);
  void FinishRow(absl::string_view raw, bool bad);
  size_t HeldBytes() const;
  absl::Status CheckBudget();
  absl::StatusOr<std::optional<v1::IngestResponse>> CheckDigest(const std::string& file_sha256,
                                                                const std::string& outcome_key);
  absl::StatusOr<v1::IngestResponse> Commit(const std::string& file_sha256,
                                            const std::string& outcome_key);

  Engine* engine_;
  const DatasetDef& def_;
  const v1::DatasetSchema& schema_;
  const int nfields_;
  const size_t ds_;
  const v1::DataFormat format_;
  const bool skip_invalid_;
  const IngestControl control_;
  const ColumnResolver columns_;

  absl::Status failed_;
  absl::Status write_error_;  // of staging a row (I/O, disk full)
  bool finished_ = false;
  Sha256 sha_;
  size_t peak_held_ = 0;

  // Parsing.
  std::string carry_;             // bytes not yet parsed: the record in progress
  size_t carry_scanned_ = 0;      // JSONL: carry_ holds no '\n' before this
  bool terminator_seen_ = false;  // CSV: an appended slice held CR or LF
  int64_t line_ = 1;              // line number where carry_ starts
  bool at_file_start_ = true;     // carry_ starts at the file's first byte
  Phase phase_ = Phase::kHeader;
  char delimiter_ = 0;
  std::vector<int> column_field_;  // CSV: field of each column
  size_t subject_column_ = 0;      // CSV: the column of the subject field
  CsvRecord record_;               // CSV: reused, so its fields keep their buffers
  std::optional<PlainCsvSplitter> splitter_;
  std::vector<absl::string_view> values_;  // CSV: the record's fields
  std::vector<char> quoted_;
  std::vector<Cell> cells_;
  std::vector<JsonMember> members_;

  // Outcome so far.
  v1::IngestResponse response_;
  std::string rejects_;
  int64_t bad_rows_ = 0;
  uint64_t rows_ = 0;

  // Staging; stops writing once a bad row means nothing will be written.
  std::unique_ptr<IngestWriter> writer_;
};

absl::Status IngestRun::Start() {
  engine_->write_mu_.AssertHeld();
  if (format_ == v1::JSONL) phase_ = Phase::kRows;
  FEDSHARE_RETURN_IF_ERROR(writer_->Start());
  return CheckBudget();
}

absl::Status IngestRun::Append(absl::string_view bytes, bool hashed) {
  if (!failed_.ok()) return failed_;
  if (finished_) return absl::FailedPreconditionError("the ingest has finished");
  if (!hashed) sha_.Update(bytes);
  if (phase_ == Phase::kHeaderRejected) return absl::OkStatus();
  if (bytes.find_first_of("\r\n") != absl::string_view::npos) terminator_seen_ = true;
  carry_.append(bytes.data(), bytes.size());
  Consume(/*at_end=*/false);
  // The slice's full blocks are staged on the writer's thread while later
  // rows are parsed; by the slice's end they are, so the budget is checked
  // on what is held, as if they were staged here.
  if (write_error_.ok()) write_error_ = writer_->Sync();
  failed_ = write_error_.ok() ? CheckBudget() : write_error_;
  return failed_;
}

void IngestRun::Consume(bool at_end) {
  if (format_ == v1::JSONL) {
    ConsumeJsonl(at_end);
  } else {
    ConsumeCsv(at_end);
  }
  // A long record once carried must not keep its capacity counted.
  if (carry_.capacity() > 4 * kMiB && carry_.capacity() > 4 * carry_.size()) carry_.shrink_to_fit();
}

void IngestRun::ConsumeJsonl(bool at_end) {
  size_t pos = 0;
  for (;;) {
    size_t end = carry_.find('\n', std::max(pos, carry_scanned_));
    if (end == std::string::npos) {
      if (!at_end || pos >= carry_.size()) break;
      end = carry_.size();
    }
    const size_t next = end == carry_.size() ? end : end + 1;
    JsonLine(line_++, absl::string_view(carry_).substr(pos, next - pos));
    pos = next;
  }
  carry_.erase(0, pos);
  carry_scanned_ = carry_.size();
}

void IngestRun::JsonLine(int64_t line, absl::string_view raw) {
  absl::string_view text = raw;
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (absl::StripAsciiWhitespace(text).empty()) return;
  for (Cell& c : cells_) {
    c.null = true;
    c.s = absl::string_view();
  }
  auto* errors = response_.mutable_errors();
  bool bad = false;
  absl::Status parsed = ParseJsonObject(text, &members_);
  if (!parsed.ok()) {
    AddError(errors, line, "", parsed.message());
    FinishRow(raw, true);
    return;
  }
  for (const JsonMember& m : members_) {
    const int f = columns_.Resolve(m.key);
    if (f < 0) {
      AddError(errors, line, m.key,
               absl::StrCat("unknown column: dataset '", schema_.name(), "' has no field ",
                            Quote(m.key)));
      bad = true;
      continue;
    }
    std::string reason =
        ParseJsonCell(schema_.fields(f), m.value, control_.parse.date_format, &cells_[f]);
    if (!reason.empty()) {
      AddError(errors, line, m.key, reason);
      bad = true;
    }
  }
  FinishRow(raw, CheckRow(line, bad));
}

void IngestRun::ConsumeCsv(bool at_end) {
  if (!at_end && !terminator_seen_) return;  // no record can have ended
  terminator_seen_ = false;
  if (at_file_start_) {
    if (!at_end && carry_.size() < 3 &&
        absl::string_view("\xEF\xBB\xBF").substr(0, carry_.size()) == carry_) {
      return;
    }
    if (absl::string_view(carry_).substr(0, 3) == "\xEF\xBB\xBF") carry_.erase(0, 3);
    if (delimiter_ == 0) {
      if (!at_end && control_.parse.delimiter == 0 && !HasFirstLine(carry_)) return;
      delimiter_ =
          control_.parse.delimiter != 0 ? control_.parse.delimiter : DetectCsvDelimiter(carry_);
    }
    at_file_start_ = false;
  }
  if (!splitter_.has_value()) splitter_.emplace(delimiter_);
  const absl::string_view text(carry_);
  size_t done = 0;  // carry_ up to here is parsed
  while (phase_ != Phase::kHeaderRejected) {
    // Blank lines, as CsvReader skips them; a CR at the end may start a CRLF.
    size_t pos = done;
    int64_t line = line_;
    while (pos < text.size() && (text[pos] == '\n' || text[pos] == '\r')) {
      if (text[pos] == '\r') {
        if (pos + 1 == text.size() && !at_end) break;
        if (pos + 1 < text.size() && text[pos + 1] == '\n') ++pos;
      }
      ++pos;
      ++line;
    }
    if (pos >= text.size() || text[pos] == '\r' || text[pos] == '\n') break;
    const absl::string_view rest = text.substr(pos);
    if (phase_ == Phase::kRows) {
      size_t length = 0;
      const PlainCsvSplitter::Outcome plain = splitter_->Split(rest, at_end, &values_, &length);
      if (plain == PlainCsvSplitter::kNoEnd) break;
      if (plain == PlainCsvSplitter::kRecord) {
        CsvRow(line, rest.substr(0, length), "", values_, nullptr);
        done = pos + length;
        line_ = line + 1;
        continue;
      }
    }
    // Quotes or bytes beyond ASCII: CsvReader reads the record.
    CsvReader reader(rest, delimiter_, line);
    CsvRecord& record = record_;
    if (!reader.Next(&record)) break;
    const bool complete = at_end || (record.terminated &&
                                     !(record.raw.back() == '\r' && reader.pos() == rest.size()));
    if (!complete) break;
    if (phase_ == Phase::kHeader) {
      CsvHeader(record);
    } else {
      values_.clear();
      quoted_.clear();
      for (const CsvField& field : record.fields) {
        values_.push_back(field.value);
        quoted_.push_back(field.quoted);
      }
      CsvRow(record.line, record.raw, record.error, values_, &quoted_);
    }
    done = pos + reader.pos();
    line_ = reader.line();
  }
  if (phase_ == Phase::kHeaderRejected || at_end) {
    carry_.clear();
  } else {
    carry_.erase(0, done);
  }
}

void IngestRun::CsvHeader(const CsvRecord& record) {
  auto* errors = response_.mutable_errors();
  phase_ = Phase::kHeaderRejected;
  const int64_t header_line = record.line;
  if (!record.error.empty()) {
    AddError(errors, header_line, "", absl::StrCat("malformed CSV: ", record.error));
    return;
  }
  std::vector<bool> seen(nfields_, false);
  bool header_bad = false;
  std::vector<std::string> header_names;
  std::vector<std::string> names;  // the schema's, for errors
  for (const v1::FieldSchema& field : schema_.fields()) names.push_back(field.name());
  for (const CsvField& h : record.fields) {
    header_names.push_back(h.value);
    const int f = columns_.Resolve(h.value);
    if (f < 0) {
      // A header read as one column whose name holds a separator was split
      // on the wrong one: say so before offering --map.
      const size_t sep = h.value.find_first_of("|;,\t");
      const std::string named = sep == std::string::npos ? ""
                                : h.value[sep] == '\t'   ? std::string("tab")
                                                         : std::string(1, h.value[sep]);
      const std::string hint = named.empty()
                                   ? absl::StrCat("to read it as one, pass --map \"",
                                                  TruncateUtf8(h.value, 40), "=FIELD\"")
                                   : absl::StrCat("if the file separates columns with ", named,
                                                  ", pass --delimiter '", named, "'");
      AddError(errors, header_line, h.value,
               absl::StrCat("unknown column: dataset '", schema_.name(), "' has no field ",
                            Quote(h.value), " (fields: ", ListValues(names), "; ", hint, ")"));
      header_bad = true;
      column_field_.push_back(-1);
      continue;
    }
    if (seen[f]) {
      AddError(errors, header_line, h.value, "unknown column: the column is named twice");
      header_bad = true;
    }
    seen[f] = true;
    if (f == def_.subject_field) subject_column_ = column_field_.size();
    column_field_.push_back(f);
  }
  for (const std::string& unused : columns_.UnusedMappings(header_names)) {
    AddError(errors, header_line, unused,
             absl::StrCat("unknown column: --map names the column ", Quote(unused),
                          " but the header has no such column (its columns: ",
                          ListValues(header_names), ")"));
    header_bad = true;
  }
  if (!seen[def_.subject_field]) {
    AddError(errors, header_line, schema_.fields(def_.subject_field).name(),
             "missing subject: the header has no subject column");
    header_bad = true;
  }
  if (header_bad) return;
  phase_ = Phase::kRows;
  if (skip_invalid_) AppendRawLine(&rejects_, record.raw);
}

void IngestRun::CsvRow(int64_t line, absl::string_view raw, absl::string_view error,
                       const std::vector<absl::string_view>& values,
                       const std::vector<char>* quoted) {
  for (Cell& c : cells_) {
    c.null = true;
    c.s = absl::string_view();
  }
  auto* errors = response_.mutable_errors();
  if (!error.empty()) {
    AddError(errors, line, "", absl::StrCat("malformed CSV: ", error));
    FinishRow(raw, true);
    return;
  }
  if (values.size() != column_field_.size()) {
    AddError(errors, line, "",
             absl::StrCat("wrong number of fields: expected ", column_field_.size(), ", got ",
                          values.size()));
    FinishRow(raw, true);
    return;
  }
  bool bad = false;
  for (size_t i = 0; i < values.size(); ++i) {
    const int f = column_field_[i];
    const bool is_quoted = quoted != nullptr && (*quoted)[i];
    std::string reason = ParseTextCell(schema_.fields(f), values[i], is_quoted,
                                       control_.parse.date_format, &cells_[f]);
    if (!reason.empty()) {
      AddError(errors, line, schema_.fields(f).name(), reason);
      bad = true;
    }
  }
  FinishRow(raw, CheckRow(line, bad));
}

bool IngestRun::CheckRow(int64_t line, bool bad) {
  engine_->write_mu_.AssertHeld();
  auto* errors = response_.mutable_errors();
  for (int f = 0; f < nfields_; ++f) {
    const v1::FieldSchema& field = schema_.fields(f);
    if (f == def_.subject_field) {
      if (cells_[f].null || cells_[f].s.empty()) {
        AddError(errors, line, field.name(), "missing subject: every row needs a subject id");
        bad = true;
      } else if (cells_[f].s.size() > control_.max_subject_id_bytes) {
        AddError(errors, line, field.name(),
                 SubjectIdTooLong(cells_[f].s.size(), control_.max_subject_id_bytes));
        bad = true;
      }
      continue;
    }
    std::string reason = CheckCell(
        field, cells_[f],
        def_.types[f] == StoredType::kCategory ? &engine_->writer_->dicts[ds_][f].declared
                                               : nullptr);
    if (!reason.empty()) {
      AddError(errors, line, field.name(), reason);
      bad = true;
    }
  }
  return bad;
}

void IngestRun::FinishRow(absl::string_view raw, bool bad) {
  if (!bad) {
    ++rows_;
    if (write_error_.ok()) write_error_ = writer_->Stage(cells_);
    return;
  }
  ++bad_rows_;
  if (skip_invalid_) {
    AppendRawLine(&rejects_, raw);
  } else {
    writer_->Stop();
  }
}

size_t IngestRun::HeldBytes() const {
  return carry_.capacity() + rejects_.capacity() + writer_->held_bytes();
}

absl::Status IngestRun::CheckBudget() {
  const size_t held = HeldBytes();
  peak_held_ = std::max(peak_held_, held);
  if (held <= control_.memory_budget_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("ingest into '", schema_.name(), "' stopped at line ", line_, ": it would hold ",
                   held / kMiB, " MiB (staged write in memory ", writer_->staged_bytes() / kMiB,
                   " MiB, counted twice for the commit; new subject ids and the rest ",
                   (writer_->held_bytes() - 2 * writer_->staged_bytes()) / kMiB,
                   " MiB; record in progress ", carry_.size() / kMiB,
                   " MiB; rejected rows ", rejects_.size() / kMiB,
                   " MiB), over limits.ingest_memory_budget_bytes = ", control_.memory_budget_bytes,
                   "; nothing was written. Split the file into several ingests or raise "
                   "limits.ingest_memory_budget_bytes"));
}

absl::StatusOr<v1::IngestResponse> IngestRun::Finish() {
  if (!failed_.ok()) return failed_;
  if (finished_) return absl::FailedPreconditionError("the ingest has finished");
  finished_ = true;
  if (phase_ != Phase::kHeaderRejected) Consume(/*at_end=*/true);
  if (phase_ == Phase::kHeader) {
    AddError(response_.mutable_errors(), 1, "",
             "wrong number of fields: the file is empty; expected a header row");
    phase_ = Phase::kHeaderRejected;
  }
  const std::string file_sha256 = sha_.Final();
  std::string outcome_key;
  if (!control_.idempotency_key.empty()) {
    outcome_key = storage::MetaIngestOutcomeKey(def_.id, file_sha256, control_.idempotency_key);
  }
  FEDSHARE_ASSIGN_OR_RETURN(std::optional<v1::IngestResponse> earlier,
                            CheckDigest(file_sha256, outcome_key));
  if (earlier.has_value()) return *std::move(earlier);
  if (phase_ == Phase::kHeaderRejected) return std::move(response_);
  response_.set_rows_rejected(bad_rows_);
  if (skip_invalid_ && bad_rows_ > 0) response_.set_rejected_rows(std::move(rejects_));
  if ((bad_rows_ > 0 && !skip_invalid_) || rows_ == 0) return std::move(response_);
  return Commit(file_sha256, outcome_key);
}

// The earlier outcome under the idempotency key, if any; FAILED_PRECONDITION
// if the file was loaded before (unless allowed).
absl::StatusOr<std::optional<v1::IngestResponse>> IngestRun::CheckDigest(
    const std::string& file_sha256, const std::string& outcome_key) {
  const storage::Storage& store = *engine_->storage_;
  if (!outcome_key.empty()) {
    FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> earlier,
                              store.Get(ColumnFamily::kMeta, outcome_key));
    if (earlier.has_value()) {
      v1::IngestResponse response;
      if (!response.ParseFromString(*earlier)) {
        return absl::DataLossError("a stored ingest outcome does not parse");
      }
      response.set_replayed(true);
      return response;
    }
  }
  if (control_.allow_duplicate || control_.replace) return std::nullopt;
  FEDSHARE_ASSIGN_OR_RETURN(
      std::optional<std::string> loaded,
      store.Get(ColumnFamily::kMeta, storage::MetaIngestDigestKey(def_.id, file_sha256)));
  if (!loaded.has_value() || loaded->size() < 16) return std::nullopt;
  const uint64_t rows = storage::DecodeFixed64BE(absl::string_view(*loaded).substr(8));
  return absl::FailedPreconditionError(absl::StrCat(
      "this file (SHA-256 ", absl::BytesToHexString(file_sha256).substr(0, 16),
      "...) was already loaded into dataset '", schema_.name(), "' at ",
      fedshare::FormatTime(
          absl::FromUnixMillis(static_cast<int64_t>(storage::DecodeFixed64BE(*loaded)))),
      " (", rows, rows == 1 ? " row" : " rows",
      "); loading it again would count its rows twice. Pass --allow-duplicate to load "
      "it anyway, or --replace to make it the dataset's whole content"));
}

// Stages the rest (last block, the file's digest, the dataset's counters,
// new subjects and dictionary values, the outcome) and commits the write.
absl::StatusOr<v1::IngestResponse> IngestRun::Commit(const std::string& file_sha256,
                                                     const std::string& outcome_key) {
  engine_->write_mu_.AssertHeld();
  FEDSHARE_RETURN_IF_ERROR(write_error_);
  FEDSHARE_RETURN_IF_ERROR(writer_->Finish(rows_, file_sha256, outcome_key, &response_));
  FEDSHARE_RETURN_IF_ERROR(CheckBudget());
  if (control_.before_commit) FEDSHARE_RETURN_IF_ERROR(control_.before_commit());
  if (control_.replace && control_.before_replace) {
    IngestReplace replace;
    replace.dataset = schema_.name();
    replace.rows_removed = response_.rows_removed();
    replace.rows_written = response_.rows_written();
    replace.file_sha256 = file_sha256;
    FEDSHARE_RETURN_IF_ERROR(control_.before_replace(replace));
  }
  FEDSHARE_RETURN_IF_ERROR(writer_->Commit());
  return std::move(response_);
}

// ---- Engine and IngestSession

// ---- Ingest

absl::StatusOr<std::unique_ptr<IngestSession>> Engine::StartIngest(absl::string_view dataset,
                                                                   v1::DataFormat format,
                                                                   bool skip_invalid,
                                                                   IngestControl control) {
  const DatasetDef* def = FindDataset(dataset);
  if (def == nullptr) return UnknownDataset(dataset, datasets_);
  if (format != v1::DATA_FORMAT_UNSPECIFIED && format != v1::CSV && format != v1::JSONL) {
    return absl::InvalidArgumentError(absl::StrCat("unknown data format ", format));
  }
  if (control.idempotency_key.size() > kMaxIdempotencyKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the idempotency key is longer than ", kMaxIdempotencyKeyBytes, " bytes"));
  }
  if (control.parse.delimiter != 0) {
    FEDSHARE_RETURN_IF_ERROR(ParseDelimiter(std::string(1, control.parse.delimiter)).status());
  }
  if (!control.parse.date_format.empty()) {
    FEDSHARE_RETURN_IF_ERROR(ValidateDateFormat(control.parse.date_format));
  }
  FEDSHARE_ASSIGN_OR_RETURN(ColumnResolver columns,
                            ColumnResolver::Create(def->schema, control.parse.column_map));
  size_t ds = 0;
  while (datasets_[ds].get() != def) ++ds;
  // The run releases the lock when destroyed, whatever happens from here.
  write_mu_.Lock();
  auto run = std::make_unique<IngestRun>(this, *def, ds, format, skip_invalid, std::move(control),
                                         std::move(columns));
  FEDSHARE_RETURN_IF_ERROR(run->Start());
  return std::unique_ptr<IngestSession>(new IngestSession(std::move(run)));
}

absl::StatusOr<v1::IngestResponse> Engine::Ingest(absl::string_view dataset, v1::DataFormat format,
                                                  bool skip_invalid, absl::string_view data,
                                                  const IngestControl& control) {
  FEDSHARE_ASSIGN_OR_RETURN(std::unique_ptr<IngestSession> session,
                            StartIngest(dataset, format, skip_invalid, control));
  // In slices, as they would arrive, so the file is not copied whole.
  for (size_t pos = 0; pos < data.size(); pos += kMiB) {
    FEDSHARE_RETURN_IF_ERROR(session->Append(data.substr(pos, kMiB)));
  }
  return session->Finish();
}

// Parses large slices on its own thread, so that receiving the next slice
// (TLS, gRPC) overlaps parsing this one. One slice waits at most.
struct IngestSession::Parser {
  explicit Parser(IngestRun* run) : thread([this, run] { Loop(run); }) {}
  ~Parser() {
    {
      absl::MutexLock lock(&mu);
      stop = true;
    }
    thread.join();
  }

  void Loop(IngestRun* run) {
    std::string slice;
    for (;;) {
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(this, &Parser::HasWork));
        if (stop) return;
        slice.swap(pending);
        waiting = false;
        busy = true;
      }
      absl::Status s = run->Append(slice, /*hashed=*/true);
      absl::MutexLock lock(&mu);
      if (status.ok()) status = s;
      busy = false;
    }
  }

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return waiting || stop; }
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !waiting && !busy; }
  bool CanQueue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !waiting; }

  absl::Mutex mu;
  std::string pending ABSL_GUARDED_BY(mu);
  bool waiting ABSL_GUARDED_BY(mu) = false;  // `pending` holds a slice
  bool busy ABSL_GUARDED_BY(mu) = false;     // a slice is being parsed
  bool stop ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);   // the first error
  std::thread thread;                        // last: started once the rest is
};

IngestSession::IngestSession(std::unique_ptr<IngestRun> run) : run_(std::move(run)) {}

// The parser stops before the run (and its lock) goes.
IngestSession::~IngestSession() { parser_.reset(); }

absl::Status IngestSession::Drain() {
  if (parser_ == nullptr) return absl::OkStatus();
  Parser& p = *parser_;
  absl::MutexLock lock(&p.mu);
  p.mu.Await(absl::Condition(&p, &Parser::Idle));
  return p.status;
}

absl::Status IngestSession::Append(absl::string_view bytes) {
  if (bytes.size() < kParseAheadBytes || run_->finished()) {
    FEDSHARE_RETURN_IF_ERROR(Drain());
    return run_->Append(bytes);
  }
  if (parser_ == nullptr) parser_ = std::make_unique<Parser>(run_.get());
  Parser& p = *parser_;
  absl::MutexLock lock(&p.mu);
  p.mu.Await(absl::Condition(&p, &Parser::CanQueue));
  if (!p.status.ok()) return p.status;
  // In order: the previous slice was hashed before it was queued.
  run_->Hash(bytes);
  p.pending.assign(bytes.data(), bytes.size());
  p.waiting = true;
  return absl::OkStatus();
}

absl::StatusOr<v1::IngestResponse> IngestSession::Finish() {
  FEDSHARE_RETURN_IF_ERROR(Drain());
  return run_->Finish();
}

size_t IngestSession::peak_held_bytes() const { return run_->peak_held_bytes(); }

}  // namespace fedshare::engine
