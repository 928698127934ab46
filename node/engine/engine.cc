#include "node/engine/engine.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <optional>
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
#include "node/engine/consent_dpv.h"
#include "node/engine/csv.h"
#include "node/engine/engine_internal.h"
#include "node/engine/json.h"
#include "node/engine/scan_pool.h"
#include "openssl/rand.h"
#include "policy/schema.h"

namespace fedshare::engine {

using storage::ColumnFamily;
using storage::StoredType;

std::string EncodeConsentValue(absl::Time valid_until, const std::vector<std::string>& scope) {
  std::string v;
  storage::AppendOrderedTime(&v, valid_until);
  v.append(absl::StrJoin(scope, ";"));
  return v;
}

std::optional<policy::ConsentEvent> DecodeConsentEvent(const storage::ConsentKey& key,
                                                       absl::string_view value) {
  if (value.size() < 8 || key.event_type < 1 ||
      key.event_type > static_cast<uint8_t>(policy::kLastConsentEventType)) {
    return std::nullopt;
  }
  policy::ConsentEvent e;
  e.purpose = key.purpose;
  e.type = static_cast<policy::ConsentEventType>(key.event_type);
  e.time = key.time;
  e.valid_until = storage::DecodeOrderedTime(value);
  absl::string_view scope = value.substr(8);
  if (!scope.empty()) e.scope = absl::StrSplit(scope, ';');
  return e;
}

namespace {

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

absl::Status DatasetReader::ForEachBlock(const std::function<absl::Status(const ColumnBlock&)>& fn,
                                         const std::vector<bool>* columns) const {
  BlockRange range;
  range.columns = columns;
  return ForEachBlock(fn, range);
}

absl::Status DatasetReader::ForEachBlock(const std::function<absl::Status(const ColumnBlock&)>& fn,
                                         const BlockRange& range) const {
  ColumnBlock block;
  storage::ZoneMap zone_map;
  const std::string prefix = storage::RecordsDatasetPrefix(def_->id);
  std::unique_ptr<storage::Iterator> it =
      storage_->NewIterator(ColumnFamily::kRecords, prefix, snapshot_.get());
  for (it->Seek(storage::RecordsBlockKey(def_->id, range.first)); it->Valid(); it->Next()) {
    if (range.end != UINT32_MAX && storage::DecodeRecordsBlockNumber(it->key()) >= range.end) {
      break;
    }
    if (cancelled_ && cancelled_()) {
      return absl::CancelledError(
          "the caller gave up (cancelled or past its deadline); the scan "
          "stopped and nothing was released");
    }
    absl::Status s = absl::OkStatus();
    if (range.skip) {
      s = storage::DecodeZoneMap(it->value(), def_->types, &zone_map);
      if (s.ok() && range.skip(zone_map)) continue;
    }
    if (s.ok()) {
      blocks_decoded_.fetch_add(1, std::memory_order_relaxed);
      s = storage::DecodeColumnBlock(it->value(), def_->types, &block, range.columns,
                                     range.in_place);
    }
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
  if (options.scan_threads > 0)
    engine->scan_pool_ = std::make_unique<ScanPool>(options.scan_threads);
  engine->query_memory_budget_bytes_ = options.query_memory_budget_bytes;
  engine->max_answer_cells_ = options.max_answer_cells;
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

absl::Status Engine::WriterState::LoadSubjects(const storage::Storage& storage) {
  if (subjects_loaded) return absl::OkStatus();
  subjects.Reserve(subject_count);
  FEDSHARE_RETURN_IF_ERROR(storage.ScanPrefix(
      ColumnFamily::kSubjects, storage::SubjectOrdinalByIdPrefix(),
      [&](absl::string_view key, absl::string_view value) {
        if (value.size() != 4) return absl::DataLossError("malformed subject ordinal");
        subjects.Insert(key.substr(1), storage::DecodeFixed32BE(value));
        return absl::OkStatus();
      }));
  subjects_loaded = true;
  return absl::OkStatus();
}

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
  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> secret,
                            storage_->Get(ColumnFamily::kMeta, storage::MetaNodeSecretKey()));
  if (secret.has_value()) {
    if (secret->size() != kNodeSecretBytes) return absl::DataLossError("malformed node secret");
    node_secret_ = *std::move(secret);
  } else {
    node_secret_.resize(kNodeSecretBytes);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(node_secret_.data()), kNodeSecretBytes) != 1) {
      return absl::InternalError("OpenSSL could not make the node secret (RAND_bytes failed)");
    }
    batch.Put(ColumnFamily::kMeta, storage::MetaNodeSecretKey(), node_secret_);
  }
  if (batch.Count() > 0 && !check_only_) FEDSHARE_RETURN_IF_ERROR(storage_->Write(batch));

  FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> count_value,
                            storage_->Get(ColumnFamily::kMeta, storage::MetaSubjectCountKey()));
  writer->subject_count = count_value.has_value() && count_value->size() == 4
                              ? storage::DecodeFixed32BE(*count_value)
                              : 0;
  // The id -> ordinal map is read by the first write that needs it
  // (WriterState::LoadSubjects), so opening a store reads no per-subject or
  // per-block keys.
  std::vector<std::vector<uint64_t>> present;
  for (const std::unique_ptr<DatasetDef>& def : datasets_) {
    const size_t words = (uint64_t{writer->subject_count} + 63) / 64;
    std::vector<uint64_t> bits;
    FEDSHARE_ASSIGN_OR_RETURN(
        std::optional<std::string> bitmap,
        storage_->Get(ColumnFamily::kMeta, storage::MetaDatasetSubjectsKey(def->id)));
    if (bitmap.has_value()) {
      if (!storage::DecodeSubjectBitmap(*bitmap, words, &bits)) {
        return absl::DataLossError(absl::StrCat("dataset '", def->schema.name(),
                                                "': stored subject bitmap names unknown ordinals"));
      }
      present.push_back(std::move(bits));
      continue;
    }
    // A store written before the bitmap (format 1 stores may still hold the
    // per-subject-per-block keys): derive it from them.
    bits.assign(words, 0);
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

absl::StatusOr<v1::ConsentImportResponse> Engine::ImportConsent(
    absl::string_view data, const absl::flat_hash_set<std::string>* known_orgs,
    v1::ConsentFormat format, size_t max_subject_id_bytes) {
  absl::MutexLock lock(&write_mu_);
  WriterState& w = *writer_;
  FEDSHARE_RETURN_IF_ERROR(w.LoadSubjects(*storage_));
  v1::ConsentImportResponse response;
  auto* errors = response.mutable_errors();
  const bool dpv = format == v1::CONSENT_FORMAT_DPV;
  const auto& kNames = dpv ? kConsentDpvKeys : kConsentCsvColumns;

  // The rows, whatever the format.
  std::function<bool(ConsentRowText*)> next;
  std::optional<DpvConsentReader> dpv_reader;
  CsvReader csv(data);
  std::vector<int> column_of(kNumConsentColumns, -1);
  size_t ncols = 0;
  if (dpv) {
    dpv_reader.emplace(data, response.mutable_warnings());
    next = [&](ConsentRowText* row) { return dpv_reader->Next(row); };
  } else {
    CsvRecord record;
    if (!csv.Next(&record)) return response;
    bool header_bad = !record.error.empty();
    if (header_bad) {
      AddError(errors, record.line, "", absl::StrCat("malformed CSV: ", record.error));
    }
    for (size_t i = 0; i < record.fields.size() && !header_bad; ++i) {
      std::string name = absl::AsciiStrToLower(record.fields[i].value);
      if (name == "valid-until") name = "valid_until";
      int c = 0;
      while (c < kNumConsentColumns && kConsentCsvColumns[c] != name) ++c;
      if (c == kNumConsentColumns || column_of[c] != -1) {
        AddError(errors, record.line, record.fields[i].value,
                 c == kNumConsentColumns
                     ? "unknown column: use subject, purpose, event, time, valid_until, scope"
                     : "unknown column: the column is named twice");
        header_bad = true;
        continue;
      }
      column_of[c] = static_cast<int>(i);
    }
    for (int c = 0; c <= kTime && !header_bad; ++c) {
      if (column_of[c] == -1) {
        AddError(errors, record.line, kConsentCsvColumns[c],
                 absl::StrCat("missing column: the header needs ", kConsentCsvColumns[c]));
        header_bad = true;
      }
    }
    if (header_bad) return response;
    ncols = record.fields.size();
    next = [&](ConsentRowText* row) {
      CsvRecord r;
      if (!csv.Next(&r)) return false;
      *row = ConsentRowText();
      row->line = r.line;
      if (!r.error.empty()) {
        row->error = absl::StrCat("malformed CSV: ", r.error);
      } else if (r.fields.size() != ncols) {
        row->error =
            absl::StrCat("wrong number of fields: expected ", ncols, ", got ", r.fields.size());
      } else {
        for (int c = 0; c < kNumConsentColumns; ++c) {
          if (column_of[c] >= 0) row->cells[c] = std::string(r.fields[column_of[c]].value);
        }
      }
      return true;
    };
  }

  SubjectStaging subjects(&w.subjects, &w.subject_count);
  storage::WriteBatch batch;
  absl::flat_hash_map<std::string, std::string> staged;  // key -> value in this import
  int64_t read = 0, rejected = 0, fresh = 0;
  ConsentRowText row;
  while (next(&row)) {
    ++read;
    const int64_t line = row.line;
    if (!row.error.empty()) {
      AddError(errors, line, row.error_column >= 0 ? kNames[row.error_column] : "", row.error);
      ++rejected;
      continue;
    }
    auto cell = [&](int c) -> absl::string_view { return row.cells[c]; };
    bool bad = false;
    auto fail = [&](int c, absl::string_view reason) {
      AddError(errors, line, kNames[c], reason);
      bad = true;
    };
    absl::string_view subject = cell(kSubject);
    if (subject.empty()) fail(kSubject, "missing subject: every row needs a subject id");
    if (subject.size() > max_subject_id_bytes) {
      fail(kSubject, SubjectIdTooLong(subject.size(), max_subject_id_bytes));
    }
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
           absl::StrCat(kNames[kValidUntil], " ", Quote(until_text), " is not after ",
                        kNames[kTime], " ", Quote(absl::StripAsciiWhitespace(cell(kTime))),
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
    storage::ConsentKey key{subjects.Ordinal(subject), purpose, *time,
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
  const absl::Status written = storage_->Write(batch);
  data_generation_.fetch_add(1, std::memory_order_acq_rel);
  FEDSHARE_RETURN_IF_ERROR(written);
  subjects.Commit();
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
  reader->scan_pool_ = scan_pool_.get();
  reader->query_memory_budget_bytes_ = query_memory_budget_bytes_;
  reader->max_answer_cells_ = max_answer_cells_;
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
