#include "node/engine/engine.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/repeated_field.h"
#include "google/protobuf/util/message_differencer.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "node/common/utf8.h"
#include "node/engine/csv.h"
#include "node/engine/json.h"
#include "openssl/sha.h"
#include "policy/schema.h"

namespace fedshare::engine {

using storage::ColumnFamily;
using storage::StoredType;

namespace {

constexpr int kMaxListedErrors = 1000;

// ---- Cell values

// One parsed cell before dictionary codes and ordinals are assigned.
struct Cell {
  bool null = true;
  int64_t i = 0;
  double d = 0;
  std::string s;  // CATEGORY value, or the subject id
};

std::string Quote(absl::string_view text) { return absl::StrCat("'", TruncateUtf8(text, 40), "'"); }

std::string WrongType(const v1::FieldSchema& f, absl::string_view got) {
  return absl::StrCat("wrong type: expected ", policy::TypeName(f.type()), ", got ", got);
}

bool ParseInt64(absl::string_view text, int64_t* out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && p == end && !text.empty();
}

bool ParseDouble(absl::string_view text, double* out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, *out, std::chars_format::general);
  return ec == std::errc() && p == end && !text.empty() && std::isfinite(*out);
}

// Parses a CSV cell for field f. Returns "" on success, else the reason.
std::string DateHint(absl::string_view date_format) {
  if (date_format.empty())
    return " (use YYYY-MM-DD, or say how dates are written with --date-format)";
  return absl::StrCat(" (use ", date_format, ")");
}

std::string ParseTextCell(const v1::FieldSchema& f, const CsvField& field,
                          absl::string_view date_format, Cell* cell) {
  const std::string& text = field.value;
  cell->null = true;
  if (text.empty() && (!field.quoted || f.type() != v1::FieldSchema::CATEGORY)) return "";
  cell->null = false;
  switch (f.type()) {
    case v1::FieldSchema::INT64:
      if (!ParseInt64(text, &cell->i)) return WrongType(f, Quote(text));
      if (f.role() == v1::FieldSchema::SUBJECT) cell->s = absl::StrCat(cell->i);
      return "";
    case v1::FieldSchema::DOUBLE:
      if (!ParseDouble(text, &cell->d)) return WrongType(f, Quote(text));
      return "";
    case v1::FieldSchema::BOOL:
      if (!ParseBoolText(text, &cell->i)) return WrongType(f, Quote(text));
      return "";
    case v1::FieldSchema::DATE: {
      absl::StatusOr<int32_t> days = ParseDateWithFormat(text, date_format);
      if (!days.ok()) return WrongType(f, absl::StrCat(Quote(text), DateHint(date_format)));
      cell->i = *days;
      return "";
    }
    case v1::FieldSchema::CATEGORY:
      cell->s = text;
      return "";
    default:
      return "wrong type: field has no type";
  }
}

absl::string_view JsonKindName(JsonScalar::Kind kind) {
  switch (kind) {
    case JsonScalar::Kind::kNull:
      return "null";
    case JsonScalar::Kind::kBool:
      return "a boolean";
    case JsonScalar::Kind::kNumber:
      return "a number";
    case JsonScalar::Kind::kString:
      return "a string";
  }
  return "a value";
}

std::string ParseJsonCell(const v1::FieldSchema& f, const JsonScalar& v,
                          absl::string_view date_format, Cell* cell) {
  cell->null = true;
  if (v.kind == JsonScalar::Kind::kNull) return "";
  cell->null = false;
  auto wrong = [&] {
    std::string got(JsonKindName(v.kind));
    if (v.kind == JsonScalar::Kind::kNumber || v.kind == JsonScalar::Kind::kString) {
      absl::StrAppend(&got, " ", Quote(v.text));
    }
    return WrongType(f, got);
  };
  switch (f.type()) {
    case v1::FieldSchema::INT64:
      if (v.kind != JsonScalar::Kind::kNumber || !JsonNumberIsInteger(v.text) ||
          !ParseInt64(v.text, &cell->i)) {
        return wrong();
      }
      if (f.role() == v1::FieldSchema::SUBJECT) cell->s = absl::StrCat(cell->i);
      return "";
    case v1::FieldSchema::DOUBLE:
      if (v.kind != JsonScalar::Kind::kNumber || !ParseDouble(v.text, &cell->d)) return wrong();
      return "";
    case v1::FieldSchema::BOOL:
      if (v.kind != JsonScalar::Kind::kBool) return wrong();
      cell->i = v.bool_value ? 1 : 0;
      return "";
    case v1::FieldSchema::DATE: {
      if (v.kind != JsonScalar::Kind::kString) return wrong();
      absl::StatusOr<int32_t> days = ParseDateWithFormat(v.text, date_format);
      if (!days.ok()) return WrongType(f, absl::StrCat(Quote(v.text), DateHint(date_format)));
      cell->i = *days;
      return "";
    }
    case v1::FieldSchema::CATEGORY:
      if (v.kind != JsonScalar::Kind::kString) return wrong();
      cell->s = v.text;
      return "";
    default:
      return "wrong type: field has no type";
  }
}

bool HasBounds(const v1::FieldSchema& f) {
  return f.role() == v1::FieldSchema::MEASURE && !(f.lower() == 0 && f.upper() == 0);
}

// Checks a parsed, non-null cell against the schema's constraints.
std::string CheckCell(const v1::FieldSchema& f, const Cell& cell,
                      const absl::flat_hash_set<std::string>* declared) {
  if (cell.null) return "";
  if (HasBounds(f)) {
    double v = f.type() == v1::FieldSchema::DOUBLE ? cell.d : static_cast<double>(cell.i);
    if (v < f.lower() || v > f.upper()) {
      std::string shown =
          f.type() == v1::FieldSchema::DOUBLE ? absl::StrCat(cell.d) : absl::StrCat(cell.i);
      return absl::StrCat("out of bounds: ", shown, " is outside [", f.lower(), ", ", f.upper(),
                          "]");
    }
  }
  if (f.type() == v1::FieldSchema::CATEGORY && f.role() != v1::FieldSchema::SUBJECT &&
      declared != nullptr && !declared->empty() && !declared->contains(cell.s)) {
    return absl::StrCat(
        "unknown category: ", Quote(cell.s), " is not a declared value of ", f.name(),
        " (allowed: ", ListValues({f.categories().begin(), f.categories().end()}), ")");
  }
  return "";
}

// ---- Dictionaries and subjects staged by one write until it commits.

struct Dictionary {
  std::vector<std::string> values;
  absl::flat_hash_map<std::string, uint32_t> index;
  absl::flat_hash_set<std::string> declared;

  void Add(std::string value) {
    index.emplace(value, static_cast<uint32_t>(values.size()));
    values.push_back(std::move(value));
  }
};

}  // namespace

struct Engine::WriterState {
  std::vector<std::vector<Dictionary>> dicts;           // [dataset][field]
  std::vector<storage::DatasetStats> stats;             // [dataset]
  absl::flat_hash_map<std::string, uint32_t> subjects;  // id -> ordinal
  uint32_t subject_count = 0;
};

namespace {

class SubjectStaging {
 public:
  SubjectStaging(const absl::flat_hash_map<std::string, uint32_t>& existing, uint32_t base)
      : existing_(existing), base_(base) {}

  uint32_t Ordinal(const std::string& id) {
    auto it = existing_.find(id);
    if (it != existing_.end()) return it->second;
    auto [added, inserted] = added_.try_emplace(id, base_ + static_cast<uint32_t>(ids_.size()));
    if (inserted) ids_.push_back(id);
    return added->second;
  }
  uint32_t base() const { return base_; }
  const std::vector<std::string>& new_ids() const { return ids_; }
  uint32_t total() const { return base_ + static_cast<uint32_t>(ids_.size()); }

  void AddTo(storage::WriteBatch* batch) const {
    for (size_t k = 0; k < ids_.size(); ++k) {
      uint32_t ordinal = base_ + static_cast<uint32_t>(k);
      batch->Put(ColumnFamily::kSubjects, storage::SubjectOrdinalByIdKey(ids_[k]),
                 storage::EncodeFixed32BE(ordinal));
      batch->Put(ColumnFamily::kSubjects, storage::SubjectIdByOrdinalKey(ordinal), ids_[k]);
    }
    if (!ids_.empty()) {
      batch->Put(ColumnFamily::kMeta, storage::MetaSubjectCountKey(),
                 storage::EncodeFixed32BE(total()));
    }
  }
  void CommitTo(absl::flat_hash_map<std::string, uint32_t>* map, uint32_t* count) const {
    for (size_t k = 0; k < ids_.size(); ++k) map->emplace(ids_[k], base_ + k);
    *count = total();
  }

 private:
  const absl::flat_hash_map<std::string, uint32_t>& existing_;
  uint32_t base_;
  absl::flat_hash_map<std::string, uint32_t> added_;
  std::vector<std::string> ids_;
};

class DictionaryStaging {
 public:
  explicit DictionaryStaging(const Dictionary& dict) : dict_(dict) {}
  uint32_t Code(const std::string& value) {
    auto it = dict_.index.find(value);
    if (it != dict_.index.end()) return it->second;
    auto [added, inserted] =
        added_.try_emplace(value, static_cast<uint32_t>(dict_.values.size() + values_.size()));
    if (inserted) values_.push_back(value);
    return added->second;
  }
  const std::vector<std::string>& new_values() const { return values_; }
  uint32_t first_new_code() const { return static_cast<uint32_t>(dict_.values.size()); }

 private:
  const Dictionary& dict_;
  absl::flat_hash_map<std::string, uint32_t> added_;
  std::vector<std::string> values_;
};

// Good rows of one ingest, column-wise, ready to be cut into blocks.
struct PendingRows {
  size_t rows = 0;
  std::vector<uint32_t> subjects;
  std::vector<std::vector<int64_t>> ints;
  std::vector<std::vector<double>> doubles;
  std::vector<std::vector<uint8_t>> nulls;
};

void AddError(google::protobuf::RepeatedPtrField<v1::RowError>* errors, int64_t line,
              absl::string_view column, absl::string_view reason) {
  if (errors->size() >= kMaxListedErrors) return;
  v1::RowError* e = errors->Add();
  e->set_line(line);
  // Both may quote the input; the reply must be valid UTF-8 whatever it held.
  e->set_column(SanitizeUtf8(column));
  e->set_reason(SanitizeUtf8(reason));
}

void AppendRawLine(std::string* out, absl::string_view raw) {
  out->append(raw.data(), raw.size());
  if (raw.empty() || (raw.back() != '\n' && raw.back() != '\r')) out->push_back('\n');
}

std::string EncodeConsentValue(absl::Time valid_until, const std::vector<std::string>& scope) {
  std::string v;
  storage::AppendOrderedTime(&v, valid_until);
  v.append(absl::StrJoin(scope, ";"));
  return v;
}

std::optional<policy::ConsentEvent> DecodeConsentEvent(const storage::ConsentKey& key,
                                                       absl::string_view value) {
  if (value.size() < 8 || key.event_type < 1 || key.event_type > 5) return std::nullopt;
  policy::ConsentEvent e;
  e.purpose = key.purpose;
  e.type = static_cast<policy::ConsentEventType>(key.event_type);
  e.time = key.time;
  e.valid_until = storage::DecodeOrderedTime(value);
  absl::string_view scope = value.substr(8);
  if (!scope.empty()) e.scope = absl::StrSplit(scope, ';');
  return e;
}

void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, p - buf);
}

void AppendDouble(std::string* out, double v) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, p - buf);
}

}  // namespace

// ---- DatasetReader

DatasetReader::~DatasetReader() = default;

const std::vector<std::string>& DatasetReader::dictionary(int field_index) const {
  return dictionaries_[field_index];
}

std::optional<int64_t> DatasetReader::CategoryCode(int field_index, absl::string_view value) const {
  const auto& codes = codes_[field_index];
  auto it = codes.find(value);
  if (it == codes.end()) return std::nullopt;
  return it->second;
}

absl::Status DatasetReader::ForEachBlock(
    const std::function<absl::Status(const ColumnBlock&)>& fn) const {
  ColumnBlock block;
  const std::string prefix = storage::RecordsDatasetPrefix(def_->id);
  std::unique_ptr<storage::Iterator> it =
      storage_->NewIterator(ColumnFamily::kRecords, prefix, snapshot_.get());
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    if (cancelled_ && cancelled_()) {
      return absl::CancelledError(
          "the caller gave up (cancelled or past its deadline); the scan "
          "stopped and nothing was released");
    }
    absl::Status s = storage::DecodeColumnBlock(it->value(), def_->types, &block);
    if (!s.ok()) {
      return absl::DataLossError(absl::StrCat("dataset '", def_->schema.name(), "' block ",
                                              storage::DecodeRecordsBlockNumber(it->key()), ": ",
                                              s.message()));
    }
    FEDSHARE_RETURN_IF_ERROR(fn(block));
  }
  return it->status();
}

absl::StatusOr<std::vector<std::string>> DatasetReader::SubjectIds() const {
  std::vector<std::string> ids(subject_count_);
  FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(
      ColumnFamily::kSubjects, storage::SubjectIdByOrdinalPrefix(),
      [&](absl::string_view key, absl::string_view value) {
        uint32_t ordinal = storage::DecodeFixed32BE(key.substr(1));
        if (ordinal < ids.size()) ids[ordinal] = std::string(value);
        return absl::OkStatus();
      },
      snapshot_.get()));
  return ids;
}

// ---- Engine: opening

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(storage::Storage* storage,
                                                       EngineOptions options) {
  std::unique_ptr<Engine> engine(new Engine());
  engine->storage_ = storage;
  engine->clock_ = options.clock;
  engine->org_id_ = options.org_id;
  engine->check_only_ = options.check_only;
  google::protobuf::RepeatedPtrField<v1::Purpose> purposes(options.purposes.begin(),
                                                           options.purposes.end());
  FEDSHARE_ASSIGN_OR_RETURN(engine->tree_, policy::PurposeTree::Create(purposes));
  absl::flat_hash_set<std::string> names;
  for (v1::DatasetSchema& schema : options.datasets) {
    FEDSHARE_RETURN_IF_ERROR(policy::ValidateSchema(schema));
    if (!names.insert(schema.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset '", schema.name(), "' is declared twice"));
    }
    auto def = std::make_unique<DatasetDef>();
    def->schema = std::move(schema);
    def->subject_field = policy::SubjectFieldIndex(def->schema);
    for (int i = 0; i < def->schema.fields_size(); ++i) {
      def->types.push_back(i == def->subject_field
                               ? StoredType::kNone
                               : static_cast<StoredType>(def->schema.fields(i).type()));
    }
    engine->datasets_.push_back(std::move(def));
  }
  absl::MutexLock lock(&engine->write_mu_);
  FEDSHARE_RETURN_IF_ERROR(engine->Load());
  return engine;
}

Engine::~Engine() = default;

absl::Status Engine::Load() {
  auto writer = std::make_unique<WriterState>();
  storage::WriteBatch batch;

  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> next_id_value,
                            storage_->Get(ColumnFamily::kMeta, storage::MetaNextDatasetIdKey()));
  uint32_t next_id = next_id_value.has_value() && next_id_value->size() == 4
                         ? storage::DecodeFixed32BE(*next_id_value)
                         : 1;
  const uint32_t first_next_id = next_id;

  for (const std::unique_ptr<DatasetDef>& def : datasets_) {
    const std::string& name = def->schema.name();
    FEDSHARE_ASSIGN_OR_RETURN(
        std::optional<std::string> id_value,
        storage_->Get(ColumnFamily::kMeta, storage::MetaDatasetByNameKey(name)));
    storage::DatasetStats stats;
    if (id_value.has_value()) {
      if (id_value->size() != 4) {
        return absl::DataLossError(absl::StrCat("dataset '", name, "': malformed id in meta"));
      }
      def->id = storage::DecodeFixed32BE(*id_value);
      FEDSHARE_ASSIGN_OR_RETURN(
          std::optional<std::string> schema_value,
          storage_->Get(ColumnFamily::kMeta, storage::MetaDatasetSchemaKey(def->id)));
      v1::DatasetSchema stored;
      if (!schema_value.has_value() || !stored.ParseFromString(*schema_value)) {
        return absl::DataLossError(absl::StrCat("dataset '", name, "': stored schema unreadable"));
      }
      FEDSHARE_RETURN_IF_ERROR(policy::CheckSchemaEvolution(stored, def->schema));
      if (!google::protobuf::util::MessageDifferencer::Equals(stored, def->schema)) {
        batch.Put(ColumnFamily::kMeta, storage::MetaDatasetSchemaKey(def->id),
                  def->schema.SerializeAsString());
      }
      FEDSHARE_ASSIGN_OR_RETURN(
          std::optional<std::string> stats_value,
          storage_->Get(ColumnFamily::kMeta, storage::MetaDatasetStatsKey(def->id)));
      std::optional<storage::DatasetStats> decoded =
          stats_value.has_value() ? storage::DecodeDatasetStats(*stats_value) : std::nullopt;
      if (!decoded.has_value()) {
        return absl::DataLossError(absl::StrCat("dataset '", name, "': stored stats unreadable"));
      }
      stats = *decoded;
    } else {
      def->id = next_id++;
      batch.Put(ColumnFamily::kMeta, storage::MetaDatasetByNameKey(name),
                storage::EncodeFixed32BE(def->id));
      batch.Put(ColumnFamily::kMeta, storage::MetaDatasetSchemaKey(def->id),
                def->schema.SerializeAsString());
      batch.Put(ColumnFamily::kMeta, storage::MetaDatasetStatsKey(def->id),
                storage::EncodeDatasetStats(stats));
    }
    writer->stats.push_back(stats);

    std::vector<Dictionary> dicts(def->schema.fields_size());
    for (int f = 0; f < def->schema.fields_size(); ++f) {
      if (def->types[f] != StoredType::kCategory) continue;
      Dictionary& dict = dicts[f];
      FEDSHARE_RETURN_IF_ERROR(
          storage_->ScanPrefix(ColumnFamily::kMeta, storage::MetaCategoryPrefix(def->id, f),
                               [&](absl::string_view key, absl::string_view value) {
                                 if (storage::DecodeMetaCategoryCode(key) != dict.values.size()) {
                                   return absl::DataLossError(absl::StrCat(
                                       "dataset '", name, "': category codes of field ",
                                       def->schema.fields(f).name(), " are not dense"));
                                 }
                                 dict.Add(std::string(value));
                                 return absl::OkStatus();
                               }));
      for (const std::string& value : def->schema.fields(f).categories()) {
        dict.declared.insert(value);
        if (dict.index.contains(value)) continue;
        batch.Put(ColumnFamily::kMeta,
                  storage::MetaCategoryKey(def->id, f, static_cast<uint32_t>(dict.values.size())),
                  value);
        dict.Add(value);
      }
    }
    writer->dicts.push_back(std::move(dicts));
  }
  if (next_id != first_next_id) {
    batch.Put(ColumnFamily::kMeta, storage::MetaNextDatasetIdKey(),
              storage::EncodeFixed32BE(next_id));
  }
  if (batch.Count() > 0 && !check_only_) FEDSHARE_RETURN_IF_ERROR(storage_->Write(batch));

  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> count_value,
                            storage_->Get(ColumnFamily::kMeta, storage::MetaSubjectCountKey()));
  writer->subject_count = count_value.has_value() && count_value->size() == 4
                              ? storage::DecodeFixed32BE(*count_value)
                              : 0;
  writer->subjects.reserve(writer->subject_count);
  FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(
      ColumnFamily::kSubjects, storage::SubjectOrdinalByIdPrefix(),
      [&](absl::string_view key, absl::string_view value) {
        if (value.size() != 4) return absl::DataLossError("malformed subject ordinal");
        writer->subjects.emplace(std::string(key.substr(1)), storage::DecodeFixed32BE(value));
        return absl::OkStatus();
      }));

  std::vector<std::vector<uint64_t>> present;
  for (const std::unique_ptr<DatasetDef>& def : datasets_) {
    std::vector<uint64_t> bits((uint64_t{writer->subject_count} + 63) / 64, 0);
    FEDSHARE_RETURN_IF_ERROR(
        storage_->ScanPrefix(ColumnFamily::kSubjects, storage::SubjectBlockDatasetPrefix(def->id),
                             [&](absl::string_view key, absl::string_view) {
                               uint32_t ordinal = storage::DecodeSubjectBlockOrdinal(key);
                               if (ordinal / 64 < bits.size())
                                 bits[ordinal / 64] |= uint64_t{1} << (ordinal % 64);
                               return absl::OkStatus();
                             }));
    present.push_back(std::move(bits));
  }
  writer_ = std::move(writer);
  absl::MutexLock lock(&state_mu_);
  present_ = std::move(present);
  return absl::OkStatus();
}

const DatasetDef* Engine::FindDataset(absl::string_view name) const {
  for (const auto& def : datasets_) {
    if (def->schema.name() == name) return def.get();
  }
  return nullptr;
}

namespace {

absl::Status UnknownDataset(absl::string_view name,
                            const std::vector<std::unique_ptr<DatasetDef>>& datasets) {
  std::vector<std::string> names;
  for (const auto& def : datasets) names.push_back(def->schema.name());
  return absl::NotFoundError(absl::StrCat("unknown dataset '", name, "'; configured datasets: ",
                                          names.empty() ? "none" : absl::StrJoin(names, ", ")));
}

}  // namespace

// Adds to `batch` the deletion of every row of `def` (its blocks, its
// subject-block index) and of its loaded-file digests.
absl::Status Engine::AddDatasetDeletes(const DatasetDef& def, const storage::DatasetStats& stats,
                                       storage::WriteBatch* batch) const {
  for (uint32_t b = 0; b < stats.blocks; ++b) {
    batch->Delete(ColumnFamily::kRecords, storage::RecordsBlockKey(def.id, b));
  }
  FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(ColumnFamily::kSubjects,
                                                storage::SubjectBlockDatasetPrefix(def.id),
                                                [&](absl::string_view key, absl::string_view) {
                                                  batch->Delete(ColumnFamily::kSubjects, key);
                                                  return absl::OkStatus();
                                                }));
  return storage_->ScanPrefix(ColumnFamily::kMeta, storage::MetaIngestDigestPrefix(def.id),
                              [&](absl::string_view key, absl::string_view) {
                                batch->Delete(ColumnFamily::kMeta, key);
                                return absl::OkStatus();
                              });
}

// ---- Ingest

absl::StatusOr<v1::IngestResponse> Engine::Ingest(absl::string_view dataset, v1::DataFormat format,
                                                  bool skip_invalid, absl::string_view data,
                                                  const IngestControl& control) {
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
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  const std::string file_sha256(reinterpret_cast<const char*>(digest), sizeof(digest));
  std::string outcome_key;
  if (!control.idempotency_key.empty()) {
    outcome_key = storage::MetaIngestOutcomeKey(def->id, file_sha256, control.idempotency_key);
  }
  absl::MutexLock lock(&write_mu_);
  if (!outcome_key.empty()) {
    FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> earlier,
                              storage_->Get(ColumnFamily::kMeta, outcome_key));
    if (earlier.has_value()) {
      v1::IngestResponse response;
      if (!response.ParseFromString(*earlier)) {
        return absl::DataLossError("a stored ingest outcome does not parse");
      }
      response.set_replayed(true);
      return response;
    }
  }
  if (!control.allow_duplicate && !control.replace) {
    FEDSHARE_ASSIGN_OR_RETURN(
        std::optional<std::string> loaded,
        storage_->Get(ColumnFamily::kMeta, storage::MetaIngestDigestKey(def->id, file_sha256)));
    if (loaded.has_value() && loaded->size() >= 16) {
      const uint64_t rows = storage::DecodeFixed64BE(absl::string_view(*loaded).substr(8));
      return absl::FailedPreconditionError(absl::StrCat(
          "this file (SHA-256 ", absl::BytesToHexString(file_sha256).substr(0, 16),
          "...) was already loaded into dataset '", def->schema.name(), "' at ",
          fedshare::FormatTime(
              absl::FromUnixMillis(static_cast<int64_t>(storage::DecodeFixed64BE(*loaded)))),
          " (", rows, rows == 1 ? " row" : " rows",
          "); loading it again would count its rows twice. Pass --allow-duplicate to load "
          "it anyway, or --replace to make it the dataset's whole content"));
    }
  }
  return IngestLocked(*def, format, skip_invalid, data, control, columns, file_sha256, outcome_key);
}

absl::StatusOr<v1::IngestResponse> Engine::IngestLocked(
    const DatasetDef& def, v1::DataFormat format, bool skip_invalid, absl::string_view data,
    const IngestControl& control, const ColumnResolver& columns, const std::string& file_sha256,
    const std::string& outcome_key) {
  const v1::DatasetSchema& schema = def.schema;
  const int nfields = schema.fields_size();
  size_t ds = 0;
  while (datasets_[ds].get() != &def) ++ds;
  WriterState& w = *writer_;

  v1::IngestResponse response;
  auto* errors = response.mutable_errors();
  std::string rejects;

  SubjectStaging subjects(w.subjects, w.subject_count);
  std::vector<std::unique_ptr<DictionaryStaging>> dicts(nfields);
  for (int f = 0; f < nfields; ++f) {
    if (def.types[f] == StoredType::kCategory) {
      dicts[f] = std::make_unique<DictionaryStaging>(w.dicts[ds][f]);
    }
  }
  PendingRows pending;
  pending.ints.resize(nfields);
  pending.doubles.resize(nfields);
  pending.nulls.resize(nfields);

  const std::string& date_format = control.parse.date_format;
  std::vector<Cell> cells(nfields);
  int64_t bad_rows = 0;
  auto finish_row = [&](int64_t line, absl::string_view raw, bool bad) {
    if (!bad) {
      // The subject is present and every cell valid: assign codes and ordinals.
      const Cell& subject = cells[def.subject_field];
      pending.subjects.push_back(subjects.Ordinal(subject.s));
      for (int f = 0; f < nfields; ++f) {
        const Cell& c = cells[f];
        switch (def.types[f]) {
          case StoredType::kNone:
            continue;
          case StoredType::kDouble:
            pending.doubles[f].push_back(c.null ? 0.0 : c.d);
            break;
          case StoredType::kCategory:
            pending.ints[f].push_back(c.null ? 0 : dicts[f]->Code(c.s));
            break;
          default:
            pending.ints[f].push_back(c.null ? 0 : c.i);
            break;
        }
        pending.nulls[f].push_back(c.null ? 1 : 0);
      }
      ++pending.rows;
      return;
    }
    (void)line;
    ++bad_rows;
    if (skip_invalid) AppendRawLine(&rejects, raw);
  };
  // Validates cells[] after parsing; returns whether the row is bad.
  auto check_row = [&](int64_t line, bool bad) {
    for (int f = 0; f < nfields; ++f) {
      const v1::FieldSchema& field = schema.fields(f);
      if (f == def.subject_field) {
        if (cells[f].null || cells[f].s.empty()) {
          AddError(errors, line, field.name(), "missing subject: every row needs a subject id");
          bad = true;
        }
        continue;
      }
      std::string reason =
          CheckCell(field, cells[f], dicts[f] != nullptr ? &w.dicts[ds][f].declared : nullptr);
      if (!reason.empty()) {
        AddError(errors, line, field.name(), reason);
        bad = true;
      }
    }
    return bad;
  };
  auto reset_cells = [&] {
    for (Cell& c : cells) {
      c.null = true;
      c.s.clear();
    }
  };

  if (format == v1::JSONL) {
    std::vector<JsonMember> members;
    std::vector<bool> seen(nfields);
    int64_t line = 0;
    size_t pos = 0;
    while (pos < data.size()) {
      ++line;
      size_t end = data.find('\n', pos);
      size_t next = end == absl::string_view::npos ? data.size() : end + 1;
      absl::string_view raw = data.substr(pos, next - pos);
      absl::string_view text =
          data.substr(pos, (end == absl::string_view::npos ? data.size() : end) - pos);
      pos = next;
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      if (absl::StripAsciiWhitespace(text).empty()) continue;
      reset_cells();
      bool bad = false;
      absl::Status parsed = ParseJsonObject(text, &members);
      if (!parsed.ok()) {
        AddError(errors, line, "", parsed.message());
        finish_row(line, raw, true);
        continue;
      }
      for (const JsonMember& m : members) {
        const int f = columns.Resolve(m.key);
        if (f < 0) {
          AddError(errors, line, m.key,
                   absl::StrCat("unknown column: dataset '", schema.name(), "' has no field ",
                                Quote(m.key)));
          bad = true;
          continue;
        }
        std::string reason = ParseJsonCell(schema.fields(f), m.value, date_format, &cells[f]);
        if (!reason.empty()) {
          AddError(errors, line, m.key, reason);
          bad = true;
        }
      }
      bad = check_row(line, bad);
      finish_row(line, raw, bad);
    }
  } else {
    CsvReader reader(
        data, control.parse.delimiter != 0 ? control.parse.delimiter : DetectCsvDelimiter(data));
    CsvRecord record;
    auto header_error = [&](absl::string_view column, absl::string_view reason) {
      AddError(errors, 1, column, reason);
    };
    if (!reader.Next(&record)) {
      header_error("", "wrong number of fields: the file is empty; expected a header row");
      return response;
    }
    const int64_t header_line = record.line;
    const std::string header_raw(record.raw);
    if (!record.error.empty()) {
      AddError(errors, header_line, "", absl::StrCat("malformed CSV: ", record.error));
      return response;
    }
    std::vector<int> column_field;
    std::vector<bool> seen(nfields, false);
    bool header_bad = false;
    std::vector<std::string> header_names;
    std::vector<std::string> names;  // the schema's, for errors
    for (const v1::FieldSchema& field : schema.fields()) names.push_back(field.name());
    for (const CsvField& h : record.fields) {
      header_names.push_back(h.value);
      const int f = columns.Resolve(h.value);
      if (f < 0) {
        // A header read as one column whose name holds a separator was split
        // on the wrong one: say so before offering --map.
        const size_t sep = h.value.find_first_of("|;,\t");
        const std::string named =
            sep == std::string::npos ? ""
            : h.value[sep] == '\t'  ? std::string("tab")
                                    : std::string(1, h.value[sep]);
        const std::string hint =
            named.empty() ? absl::StrCat("to read it as one, pass --map \"",
                                         TruncateUtf8(h.value, 40), "=FIELD\"")
                          : absl::StrCat("if the file separates columns with ", named,
                                         ", pass --delimiter '", named, "'");
        AddError(errors, header_line, h.value,
                 absl::StrCat("unknown column: dataset '", schema.name(), "' has no field ",
                              Quote(h.value), " (fields: ", ListValues(names), "; ", hint, ")"));
        header_bad = true;
        column_field.push_back(-1);
        continue;
      }
      if (seen[f]) {
        AddError(errors, header_line, h.value, "unknown column: the column is named twice");
        header_bad = true;
      }
      seen[f] = true;
      column_field.push_back(f);
    }
    for (const std::string& unused : columns.UnusedMappings(header_names)) {
      AddError(errors, header_line, unused,
               absl::StrCat("unknown column: --map names the column ", Quote(unused),
                            " but the header has no such column (its columns: ",
                            ListValues(header_names), ")"));
      header_bad = true;
    }
    if (!seen[def.subject_field]) {
      AddError(errors, header_line, schema.fields(def.subject_field).name(),
               "missing subject: the header has no subject column");
      header_bad = true;
    }
    if (header_bad) return response;
    if (skip_invalid) AppendRawLine(&rejects, header_raw);

    while (reader.Next(&record)) {
      reset_cells();
      const int64_t line = record.line;
      if (!record.error.empty()) {
        AddError(errors, line, "", absl::StrCat("malformed CSV: ", record.error));
        finish_row(line, record.raw, true);
        continue;
      }
      if (record.fields.size() != column_field.size()) {
        AddError(errors, line, "",
                 absl::StrCat("wrong number of fields: expected ", column_field.size(), ", got ",
                              record.fields.size()));
        finish_row(line, record.raw, true);
        continue;
      }
      bool bad = false;
      for (size_t i = 0; i < record.fields.size(); ++i) {
        int f = column_field[i];
        std::string reason =
            ParseTextCell(schema.fields(f), record.fields[i], date_format, &cells[f]);
        if (!reason.empty()) {
          AddError(errors, line, schema.fields(f).name(), reason);
          bad = true;
        }
      }
      bad = check_row(line, bad);
      finish_row(line, record.raw, bad);
    }
  }

  response.set_rows_rejected(bad_rows);
  if (skip_invalid && bad_rows > 0) response.set_rejected_rows(std::move(rejects));
  if ((bad_rows > 0 && !skip_invalid) || pending.rows == 0) return response;

  // Build the one batch: tail block and new blocks, subject-block index,
  // new subjects, new dictionary values and the dataset's counters.
  storage::WriteBatch batch;
  storage::DatasetStats stats = w.stats[ds];
  std::vector<uint64_t> present;
  {
    absl::MutexLock lock(&state_mu_);
    present = present_[ds];
  }
  std::vector<uint64_t> present_before;
  if (control.replace) {
    // Deletes come first in the batch, so the new rows' keys that equal old
    // ones are written after them and win.
    FEDSHARE_RETURN_IF_ERROR(AddDatasetDeletes(def, stats, &batch));
    present_before = std::move(present);
    present.clear();
    response.set_replaced(true);
    response.set_rows_removed(static_cast<int64_t>(stats.rows));
    stats = storage::DatasetStats();
  }
  present.resize((uint64_t{subjects.total()} + 63) / 64, 0);
  int64_t new_subjects = 0;

  ColumnBlock block;
  uint32_t block_no = 0;
  block.Reset(nfields);
  if (stats.blocks > 0) {
    FEDSHARE_ASSIGN_OR_RETURN(
        std::optional<std::string> tail,
        storage_->Get(ColumnFamily::kRecords, storage::RecordsBlockKey(def.id, stats.blocks - 1)));
    if (!tail.has_value()) {
      return absl::DataLossError(
          absl::StrCat("dataset '", schema.name(), "': tail block ", stats.blocks - 1, " missing"));
    }
    FEDSHARE_RETURN_IF_ERROR(storage::DecodeColumnBlock(*tail, def.types, &block));
    block_no = stats.blocks - 1;
    if (block.rows >= storage::kBlockRows) {
      block.Reset(nfields);
      block_no = stats.blocks;
    }
  }
  size_t r = 0;
  std::vector<uint32_t> block_subjects;
  while (r < pending.rows) {
    const uint32_t start = block.rows;
    const size_t take = std::min<size_t>(storage::kBlockRows - block.rows, pending.rows - r);
    for (size_t k = 0; k < take; ++k) {
      const size_t src = r + k;
      const uint32_t row = start + static_cast<uint32_t>(k);
      block.subjects.push_back(pending.subjects[src]);
      for (int f = 0; f < nfields; ++f) {
        ColumnBlock::Column& col = block.columns[f];
        switch (def.types[f]) {
          case StoredType::kNone:
            continue;
          case StoredType::kDouble:
            col.doubles.push_back(pending.doubles[f][src]);
            break;
          default:
            col.ints.push_back(pending.ints[f][src]);
            break;
        }
        if (pending.nulls[f][src]) col.SetNull(row, row + 1);
      }
    }
    block.rows = start + static_cast<uint32_t>(take);
    batch.Put(ColumnFamily::kRecords, storage::RecordsBlockKey(def.id, block_no),
              storage::EncodeColumnBlock(block, def.types));
    block_subjects.assign(pending.subjects.begin() + r, pending.subjects.begin() + r + take);
    std::sort(block_subjects.begin(), block_subjects.end());
    block_subjects.erase(std::unique(block_subjects.begin(), block_subjects.end()),
                         block_subjects.end());
    for (uint32_t ordinal : block_subjects) {
      batch.Put(ColumnFamily::kSubjects, storage::SubjectBlockKey(def.id, ordinal, block_no), "");
      uint64_t& word = present[ordinal / 64];
      const uint64_t bit = uint64_t{1} << (ordinal % 64);
      if ((word & bit) == 0) {
        word |= bit;
        ++new_subjects;
      }
    }
    r += take;
    stats.blocks = block_no + 1;
    if (r < pending.rows) {
      block.Reset(nfields);
      ++block_no;
    }
  }
  stats.rows += pending.rows;
  stats.subjects += static_cast<uint32_t>(new_subjects);
  if (control.replace) {
    // new_subjects counted the file's subjects; report those the dataset lacked.
    new_subjects = 0;
    for (size_t i = 0; i < present.size(); ++i) {
      const uint64_t before = i < present_before.size() ? present_before[i] : 0;
      new_subjects += __builtin_popcountll(present[i] & ~before);
    }
  }
  std::string loaded;
  storage::AppendFixed64BE(&loaded, static_cast<uint64_t>(absl::ToUnixMillis(clock_->Now())));
  storage::AppendFixed64BE(&loaded, pending.rows);
  batch.Put(ColumnFamily::kMeta, storage::MetaIngestDigestKey(def.id, file_sha256), loaded);
  batch.Put(ColumnFamily::kMeta, storage::MetaDatasetStatsKey(def.id),
            storage::EncodeDatasetStats(stats));
  subjects.AddTo(&batch);
  for (int f = 0; f < nfields; ++f) {
    if (dicts[f] == nullptr) continue;
    uint32_t code = dicts[f]->first_new_code();
    for (const std::string& value : dicts[f]->new_values()) {
      batch.Put(ColumnFamily::kMeta, storage::MetaCategoryKey(def.id, f, code++), value);
    }
  }
  response.set_rows_written(static_cast<int64_t>(pending.rows));
  response.set_new_subjects(new_subjects);
  if (!outcome_key.empty()) {
    v1::IngestResponse outcome = response;
    outcome.clear_rejected_rows();
    batch.Put(ColumnFamily::kMeta, outcome_key, outcome.SerializeAsString());
  }
  if (control.before_commit) FEDSHARE_RETURN_IF_ERROR(control.before_commit());
  if (control.replace && control.before_replace) {
    IngestReplace replace;
    replace.dataset = schema.name();
    replace.rows_removed = response.rows_removed();
    replace.rows_written = response.rows_written();
    replace.file_sha256 = file_sha256;
    FEDSHARE_RETURN_IF_ERROR(control.before_replace(replace));
  }
  FEDSHARE_RETURN_IF_ERROR(storage_->Write(batch));

  // Committed: make the staged state current.
  w.stats[ds] = stats;
  subjects.CommitTo(&w.subjects, &w.subject_count);
  for (int f = 0; f < nfields; ++f) {
    if (dicts[f] == nullptr) continue;
    for (const std::string& value : dicts[f]->new_values()) w.dicts[ds][f].Add(value);
  }
  {
    absl::MutexLock lock(&state_mu_);
    present_[ds] = std::move(present);
    if (!subjects.new_ids().empty()) ++consent_generation_;
  }
  return response;
}

// ---- Consent import

absl::StatusOr<v1::ConsentImportResponse> Engine::ImportConsent(
    absl::string_view csv, const absl::flat_hash_set<std::string>* known_orgs) {
  absl::MutexLock lock(&write_mu_);
  WriterState& w = *writer_;
  v1::ConsentImportResponse response;
  auto* errors = response.mutable_errors();

  CsvReader reader(csv);
  CsvRecord record;
  if (!reader.Next(&record)) return response;
  enum Column { kSubject, kPurpose, kEvent, kTime, kValidUntil, kScope, kNumColumns };
  static constexpr absl::string_view kNames[kNumColumns] = {"subject", "purpose",     "event",
                                                            "time",    "valid_until", "scope"};
  std::vector<int> column_of(kNumColumns, -1);
  bool header_bad = !record.error.empty();
  if (header_bad) AddError(errors, record.line, "", absl::StrCat("malformed CSV: ", record.error));
  for (size_t i = 0; i < record.fields.size() && !header_bad; ++i) {
    std::string name = absl::AsciiStrToLower(record.fields[i].value);
    if (name == "valid-until") name = "valid_until";
    int c = 0;
    while (c < kNumColumns && kNames[c] != name) ++c;
    if (c == kNumColumns || column_of[c] != -1) {
      AddError(errors, record.line, record.fields[i].value,
               c == kNumColumns
                   ? "unknown column: use subject, purpose, event, time, valid_until, scope"
                   : "unknown column: the column is named twice");
      header_bad = true;
      continue;
    }
    column_of[c] = static_cast<int>(i);
  }
  for (int c = 0; c <= kTime && !header_bad; ++c) {
    if (column_of[c] == -1) {
      AddError(errors, record.line, kNames[c],
               absl::StrCat("missing column: the header needs ", kNames[c]));
      header_bad = true;
    }
  }
  if (header_bad) return response;
  const size_t ncols = record.fields.size();

  SubjectStaging subjects(w.subjects, w.subject_count);
  storage::WriteBatch batch;
  absl::flat_hash_map<std::string, std::string> staged;  // key -> value in this import
  int64_t read = 0, rejected = 0, fresh = 0;
  while (reader.Next(&record)) {
    ++read;
    const int64_t line = record.line;
    if (!record.error.empty() || record.fields.size() != ncols) {
      AddError(errors, line, "",
               !record.error.empty() ? absl::StrCat("malformed CSV: ", record.error)
                                     : absl::StrCat("wrong number of fields: expected ", ncols,
                                                    ", got ", record.fields.size()));
      ++rejected;
      continue;
    }
    auto cell = [&](int c) -> absl::string_view {
      return column_of[c] < 0 ? absl::string_view() : record.fields[column_of[c]].value;
    };
    bool bad = false;
    auto fail = [&](int c, absl::string_view reason) {
      AddError(errors, line, kNames[c], reason);
      bad = true;
    };
    absl::string_view subject = cell(kSubject);
    if (subject.empty()) fail(kSubject, "missing subject: every row needs a subject id");
    std::string purpose(absl::StripAsciiWhitespace(cell(kPurpose)));
    if (!tree_.Contains(purpose)) {
      fail(kPurpose, absl::StrCat("unknown purpose ", Quote(purpose),
                                  ": use a purpose id from the node config"));
    }
    absl::StatusOr<policy::ConsentEventType> type =
        policy::ParseConsentEventType(absl::StripAsciiWhitespace(cell(kEvent)));
    if (!type.ok()) fail(kEvent, absl::StrCat("wrong type: ", type.status().message()));
    absl::StatusOr<absl::Time> time = ParseTimeOrDate(absl::StripAsciiWhitespace(cell(kTime)));
    if (!time.ok()) fail(kTime, absl::StrCat("wrong type: ", time.status().message()));
    absl::Time valid_until = absl::InfiniteFuture();
    absl::string_view until_text = absl::StripAsciiWhitespace(cell(kValidUntil));
    if (!until_text.empty()) {
      absl::StatusOr<absl::Time> until = ParseTimeOrDate(until_text);
      if (!until.ok()) {
        fail(kValidUntil, absl::StrCat("wrong type: ", until.status().message()));
      } else {
        valid_until = *until;
      }
    }
    if (time.ok() && valid_until <= *time) {
      fail(kValidUntil,
           absl::StrCat("valid_until ", Quote(until_text), " is not after time ",
                        Quote(absl::StripAsciiWhitespace(cell(kTime))),
                        ": a consent must end after it starts (are the columns swapped?)"));
    }
    absl::StatusOr<std::vector<std::string>> scope = policy::ParseConsentScope(cell(kScope));
    if (!scope.ok()) fail(kScope, absl::StrCat("wrong type: ", scope.status().message()));
    if (scope.ok() && known_orgs != nullptr) {
      for (const std::string& org : *scope) {
        if (known_orgs->contains(org)) continue;
        AddError(response.mutable_warnings(), line, kNames[kScope],
                 absl::StrCat("org ", Quote(org),
                              " is named by no agreement or peer of this node: imported as "
                              "written, so this consent counts only for questions from the "
                              "orgs it names (a typo?)"));
      }
    }
    if (bad) {
      ++rejected;
      continue;
    }
    std::vector<std::string> orgs = *std::move(scope);
    std::sort(orgs.begin(), orgs.end());
    storage::ConsentKey key{subjects.Ordinal(std::string(subject)), purpose, *time,
                            static_cast<uint8_t>(*type)};
    std::string encoded_key = storage::EncodeConsentKey(key);
    std::string value = EncodeConsentValue(valid_until, orgs);
    std::optional<std::string> existing;
    auto it = staged.find(encoded_key);
    if (it != staged.end()) {
      existing = it->second;
    } else {
      FEDSHARE_ASSIGN_OR_RETURN(existing, storage_->Get(ColumnFamily::kConsent, encoded_key));
    }
    if (existing.has_value()) {
      if (*existing != value) {
        AddError(errors, line, kNames[kValidUntil],
                 "conflicting event: this subject, purpose, time and event are already stored "
                 "with another valid_until or scope");
        ++rejected;
      }
      continue;
    }
    staged.emplace(encoded_key, value);
    batch.Put(ColumnFamily::kConsent, encoded_key, value);
    ++fresh;
  }
  response.set_events_read(read);
  response.set_events_rejected(rejected);
  if (rejected > 0 || fresh == 0) return response;
  subjects.AddTo(&batch);
  FEDSHARE_RETURN_IF_ERROR(storage_->Write(batch));
  subjects.CommitTo(&w.subjects, &w.subject_count);
  {
    absl::MutexLock state_lock(&state_mu_);
    ++consent_generation_;
  }
  response.set_events_new(fresh);
  return response;
}

// ---- Readers

absl::StatusOr<std::unique_ptr<DatasetReader>> Engine::OpenReader(absl::string_view dataset) const {
  const DatasetDef* def = FindDataset(dataset);
  if (def == nullptr) return UnknownDataset(dataset, datasets_);
  std::unique_ptr<DatasetReader> reader(new DatasetReader());
  reader->storage_ = storage_;
  reader->def_ = def;
  reader->snapshot_ = storage_->GetSnapshot();
  const storage::Snapshot* snap = reader->snapshot_.get();
  FEDSHARE_ASSIGN_OR_RETURN(
      std::optional<std::string> count,
      storage_->Get(ColumnFamily::kMeta, storage::MetaSubjectCountKey(), snap));
  reader->subject_count_ =
      count.has_value() && count->size() == 4 ? storage::DecodeFixed32BE(*count) : 0;
  FEDSHARE_ASSIGN_OR_RETURN(
      std::optional<std::string> stats,
      storage_->Get(ColumnFamily::kMeta, storage::MetaDatasetStatsKey(def->id), snap));
  if (stats.has_value()) {
    std::optional<storage::DatasetStats> decoded = storage::DecodeDatasetStats(*stats);
    if (decoded.has_value()) reader->stats_ = *decoded;
  }
  const int nfields = def->schema.fields_size();
  reader->dictionaries_.resize(nfields);
  reader->codes_.resize(nfields);
  for (int f = 0; f < nfields; ++f) {
    if (def->types[f] != StoredType::kCategory) continue;
    auto& values = reader->dictionaries_[f];
    auto& codes = reader->codes_[f];
    FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(
        ColumnFamily::kMeta, storage::MetaCategoryPrefix(def->id, f),
        [&](absl::string_view key, absl::string_view value) {
          uint32_t code = storage::DecodeMetaCategoryCode(key);
          if (code >= values.size()) values.resize(code + 1);
          values[code] = std::string(value);
          codes.emplace(std::string(value), code);
          return absl::OkStatus();
        },
        snap));
  }
  return reader;
}

// ---- Export

absl::Status Engine::Export(absl::string_view dataset, v1::DataFormat format,
                            const ExportSink& sink, size_t chunk_bytes) const {
  FEDSHARE_ASSIGN_OR_RETURN(std::unique_ptr<DatasetReader> reader, OpenReader(dataset));
  const DatasetDef& def = *reader->def_;
  const v1::DatasetSchema& schema = def.schema;
  const int nfields = schema.fields_size();
  FEDSHARE_ASSIGN_OR_RETURN(std::vector<std::string> ids, reader->SubjectIds());
  const bool json = format == v1::JSONL;
  const bool int_subject = schema.fields(def.subject_field).type() == v1::FieldSchema::INT64;

  std::vector<std::string> json_keys(nfields);
  for (int f = 0; f < nfields; ++f) {
    AppendJsonString(&json_keys[f], schema.fields(f).name());
    json_keys[f].push_back(':');
  }

  std::string out;
  out.reserve(chunk_bytes + 4096);
  if (!json) {
    for (int f = 0; f < nfields; ++f) {
      if (f > 0) out.push_back(',');
      AppendCsvField(&out, schema.fields(f).name());
    }
    out.push_back('\n');
  }
  int64_t rows = 0;
  absl::Status scanned = reader->ForEachBlock([&](const ColumnBlock& block) -> absl::Status {
    for (uint32_t r = 0; r < block.rows; ++r) {
      if (json) out.push_back('{');
      for (int f = 0; f < nfields; ++f) {
        if (f > 0) out.push_back(',');
        if (json) out.append(json_keys[f]);
        if (f == def.subject_field) {
          uint32_t ordinal = block.subjects[r];
          absl::string_view id = ordinal < ids.size() ? absl::string_view(ids[ordinal]) : "";
          if (!json) {
            AppendCsvField(&out, id);
          } else if (int_subject) {
            out.append(id.data(), id.size());
          } else {
            AppendJsonString(&out, id);
          }
          continue;
        }
        const ColumnBlock::Column& col = block.columns[f];
        if (col.IsNull(r)) {
          if (json) out.append("null");
          continue;
        }
        switch (def.types[f]) {
          case StoredType::kInt64:
            AppendInt(&out, col.ints[r]);
            break;
          case StoredType::kDouble:
            AppendDouble(&out, col.doubles[r]);
            break;
          case StoredType::kBool:
            out.append(col.ints[r] != 0 ? "true" : "false");
            break;
          case StoredType::kDate:
            if (json) out.push_back('"');
            out.append(FormatDateDays(static_cast<int32_t>(col.ints[r])));
            if (json) out.push_back('"');
            break;
          case StoredType::kCategory: {
            const auto& dict = reader->dictionary(f);
            size_t code = static_cast<size_t>(col.ints[r]);
            absl::string_view value = code < dict.size() ? absl::string_view(dict[code]) : "";
            if (json) {
              AppendJsonString(&out, value);
            } else {
              AppendCsvField(&out, value, /*quote_empty=*/true);
            }
            break;
          }
          case StoredType::kNone:
            break;
        }
      }
      out.append(json ? "}\n" : "\n");
      ++rows;
      if (out.size() >= chunk_bytes) {
        FEDSHARE_RETURN_IF_ERROR(sink(out, rows));
        out.clear();
      }
    }
    return absl::OkStatus();
  });
  FEDSHARE_RETURN_IF_ERROR(scanned);
  if (!out.empty()) FEDSHARE_RETURN_IF_ERROR(sink(out, rows));
  return absl::OkStatus();
}

// ---- Consent bitmaps

absl::StatusOr<policy::ConsentBitmap> Engine::BuildConsentBitmap(
    v1::ConsentBasis basis, const policy::ConsentQuestion& question,
    absl::Time* valid_until) const {
  std::unique_ptr<storage::Snapshot> snap = storage_->GetSnapshot();
  FEDSHARE_ASSIGN_OR_RETURN(
      std::optional<std::string> count_value,
      storage_->Get(ColumnFamily::kMeta, storage::MetaSubjectCountKey(), snap.get()));
  const uint32_t count = count_value.has_value() && count_value->size() == 4
                             ? storage::DecodeFixed32BE(*count_value)
                             : 0;
  *valid_until = absl::InfiniteFuture();
  if (basis == v1::NOT_PERSONAL) return policy::ConsentBitmap(count, true);

  policy::ConsentBitmapBuilder builder(basis, tree_, question, count);
  std::vector<policy::ConsentEvent> events;
  uint32_t current = 0;
  absl::Time next_event = absl::InfiniteFuture();
  auto flush = [&] {
    if (!events.empty() && current < count) builder.AddSubject(current, events);
    events.clear();
  };
  FEDSHARE_RETURN_IF_ERROR(storage_->ScanPrefix(
      ColumnFamily::kConsent, storage::ConsentPrefix(),
      [&](absl::string_view key, absl::string_view value) {
        std::optional<storage::ConsentKey> k = storage::DecodeConsentKey(key);
        if (!k.has_value()) return absl::DataLossError("malformed consent key");
        if (!tree_.Covers(k->purpose, question.purpose)) return absl::OkStatus();
        std::optional<policy::ConsentEvent> e = DecodeConsentEvent(*k, value);
        if (!e.has_value()) return absl::DataLossError("malformed consent event");
        if (k->ordinal != current) {
          flush();
          current = k->ordinal;
        }
        // An event dated after now changes the answer once its time comes.
        if (e->time > question.now) next_event = std::min(next_event, e->time);
        events.push_back(*std::move(e));
        return absl::OkStatus();
      },
      snap.get()));
  flush();
  *valid_until = std::min(builder.valid_until(), next_event);
  return std::move(builder).Finish();
}

absl::StatusOr<policy::ConsentBitmap> Engine::ConsentFor(
    absl::string_view dataset, const policy::ConsentQuestion& question) const {
  const DatasetDef* def = FindDataset(dataset);
  if (def == nullptr) return UnknownDataset(dataset, datasets_);
  if (!tree_.Contains(question.purpose)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown purpose ", Quote(question.purpose), ": use a configured purpose"));
  }
  v1::ConsentBasis basis = def->schema.consent_basis();
  if (basis == v1::CONSENT_BASIS_UNSPECIFIED) basis = v1::OPT_IN;
  const std::string cache_key =
      absl::StrCat(static_cast<int>(basis), "|", question.purpose, "|", question.asker_org);
  uint64_t generation;
  {
    absl::MutexLock lock(&state_mu_);
    generation = consent_generation_;
  }
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = consent_cache_.find(cache_key);
    if (it != consent_cache_.end() && it->second.generation == generation &&
        it->second.built_at <= question.now && question.now < it->second.valid_until) {
      return it->second.bitmap;
    }
  }
  absl::Time valid_until;
  FEDSHARE_ASSIGN_OR_RETURN(policy::ConsentBitmap bitmap,
                            BuildConsentBitmap(basis, question, &valid_until));
  absl::MutexLock lock(&cache_mu_);
  consent_cache_[cache_key] = CacheEntry{generation, question.now, valid_until, bitmap};
  return bitmap;
}

absl::StatusOr<v1::ListDatasetsResponse> Engine::ListDatasets(
    const std::vector<std::string>& purposes) const {
  std::vector<std::string> asked = purposes;
  if (asked.empty()) {
    for (const v1::Purpose& p : tree_.purposes()) asked.push_back(p.id());
  }
  for (const std::string& p : asked) {
    if (!tree_.Contains(p)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown purpose ", Quote(p), ": use a configured purpose"));
    }
  }
  const absl::Time now = clock_->Now();
  v1::ListDatasetsResponse response;
  for (size_t ds = 0; ds < datasets_.size(); ++ds) {
    const DatasetDef& def = *datasets_[ds];
    FEDSHARE_ASSIGN_OR_RETURN(
        std::optional<std::string> stats_value,
        storage_->Get(ColumnFamily::kMeta, storage::MetaDatasetStatsKey(def.id)));
    storage::DatasetStats stats;
    if (stats_value.has_value()) {
      std::optional<storage::DatasetStats> decoded = storage::DecodeDatasetStats(*stats_value);
      if (decoded.has_value()) stats = *decoded;
    }
    v1::DatasetInfo* info = response.add_datasets();
    info->set_name(def.schema.name());
    info->set_rows(static_cast<int64_t>(stats.rows));
    info->set_subjects(stats.subjects);
    info->set_blocks(stats.blocks);
    for (const std::string& p : asked) {
      FEDSHARE_ASSIGN_OR_RETURN(policy::ConsentBitmap bitmap,
                                ConsentFor(def.schema.name(), {p, org_id_, now}));
      int64_t counted = 0;
      {
        absl::MutexLock lock(&state_mu_);
        const std::vector<uint64_t>& present = present_[ds];
        for (size_t word = 0; word < present.size(); ++word) {
          uint64_t bits = present[word];
          while (bits != 0) {
            int b = __builtin_ctzll(bits);
            bits &= bits - 1;
            if (bitmap.Test(static_cast<uint32_t>(word * 64 + b))) ++counted;
          }
        }
      }
      v1::PurposeCoverage* coverage = info->add_coverage();
      coverage->set_purpose(p);
      coverage->set_subjects_counted(counted);
    }
  }
  return response;
}

}  // namespace fedshare::engine
