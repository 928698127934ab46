#include "client/data_commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "openssl/rand.h"

namespace fedshare::client {
namespace {

// Prints progress to stderr: in place on a terminal, every 10% otherwise.
class Progress {
 public:
  Progress(std::string what, int64_t total) : what_(std::move(what)), total_(total) {}
  void operator()(int64_t done, int64_t total) {
    if (total <= 0) total = total_;
    if (total < (4 << 20)) return;  // small files finish before it matters
    int percent = static_cast<int>(100 * done / total);
    if (isatty(STDERR_FILENO)) {
      std::cerr << absl::StrFormat("\r%s: %3d%% (%.1f of %.1f MiB)", what_, percent,
                                   done / 1048576.0, total / 1048576.0)
                << std::flush;
      if (done >= total) std::cerr << "\n";
    } else if (percent >= last_ + 10 || done >= total) {
      last_ = percent;
      std::cerr << what_ << ": " << percent << "%\n";
    }
  }

 private:
  std::string what_;
  int64_t total_;
  int last_ = -10;
};

v1::DataFormat FormatFor(const std::string& name, const std::string& file) {
  std::string f = absl::AsciiStrToLower(name);
  if (f == "jsonl" || f == "json") return v1::JSONL;
  if (f == "csv") return v1::CSV;
  if (absl::EndsWith(file, ".jsonl") || absl::EndsWith(file, ".ndjson")) return v1::JSONL;
  return v1::CSV;
}

// Streams an export into `out` (stdout when empty): `stream` gets a writer
// that appends a chunk and fails on a write error, and returns what it
// counted. A file is written as OUT.partial, readable by this user only
// (it holds people's records or consent, whatever the umask), synced, and
// renamed only when the whole export arrived; a failed one leaves nothing.
// Returns the exit code, and says on stderr how many `what` were written to
// the file.
int ExportTo(const std::string& out, const std::string& what,
             const std::function<absl::StatusOr<int64_t>(
                 const std::function<absl::Status(const std::string&)>& write)>& stream) {
  std::unique_ptr<AtomicFileWriter> file;
  if (!out.empty()) {
    absl::StatusOr<std::unique_ptr<AtomicFileWriter>> opened =
        AtomicFileWriter::Open(out, out + ".partial", 0600);
    if (!opened.ok()) return Fail(opened.status());
    file = std::move(opened).value();
  }
  absl::StatusOr<int64_t> count = stream([&](const std::string& data) -> absl::Status {
    if (file != nullptr) return file->Append(data);
    std::cout.write(data.data(), static_cast<std::streamsize>(data.size()));
    return std::cout ? absl::OkStatus() : absl::DataLossError("write failed");
  });
  if (count.ok() && file != nullptr) {
    if (absl::Status committed = file->Commit(); !committed.ok()) count = committed;
  }
  if (!count.ok()) return Fail(count.status(), Listener::kLocal);
  if (file != nullptr) std::cerr << "exported " << *count << " " << what << " to " << out << "\n";
  return 0;
}

void PrintRowErrors(const google::protobuf::RepeatedPtrField<v1::RowError>& errors,
                    int64_t rejected) {
  for (const v1::RowError& e : errors) {
    std::cerr << "  line " << e.line();
    if (!e.column().empty()) std::cerr << ", column " << e.column();
    std::cerr << ": " << e.reason() << "\n";
  }
  if (rejected > errors.size()) {
    std::cerr << "  ... and " << (rejected - errors.size()) << " more\n";
  }
}

// A file read in slices (the ingest upload), with ReadFile's errors.
class InputFile {
 public:
  static absl::StatusOr<std::unique_ptr<InputFile>> Open(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is a directory, not a file: name the file inside it"));
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no file at ", path));
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
    }
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<InputFile>(
        new InputFile(path, fd, ::fstat(fd, &st) == 0 ? static_cast<int64_t>(st.st_size) : 0));
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  int64_t size() const { return size_; }
  // The next slice of at most `max` bytes; empty at the end.
  absl::Status Read(size_t max, std::string* slice) {
    slice->resize(max);
    size_t got = 0;
    while (got < max) {
      const ssize_t n = ::read(fd_, slice->data() + got, max - got);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::DataLossError(absl::StrCat("error reading ", path_, ": ", std::strerror(errno)));
      }
      got += static_cast<size_t>(n);
    }
    slice->resize(got);
    return absl::OkStatus();
  }

 private:
  InputFile(std::string path, int fd, int64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  std::string path_;
  int fd_;
  int64_t size_;
};

std::string NewIdempotencyKey() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return "";
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

// The first message of the upload: what the node needs to parse the file. The
// node validates the options; only their spelling on the command line is
// checked here.
absl::StatusOr<v1::IngestRequest> IngestHeader(const IngestArgs& a) {
  v1::IngestRequest header;
  header.set_dataset(a.dataset);
  header.set_format(FormatFor(a.format, a.file));
  header.set_skip_invalid(a.skip_invalid);
  header.set_idempotency_key(a.idempotency_key);
  const std::string d = absl::AsciiStrToLower(a.delimiter);
  if (d == "tab" || d == "\\t" || d == "\t") {
    header.set_delimiter("\t");
  } else if (d != "auto") {
    header.set_delimiter(a.delimiter);
  }
  for (const std::string& m : a.maps) {
    const size_t eq = m.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--map \"", m,
                       "\": write it as \"COLUMN=FIELD\", e.g. \"Participant ID=participant_id\""));
    }
    v1::ColumnMapping* mapping = header.add_column_map();
    mapping->set_column(m.substr(0, eq));
    mapping->set_field(m.substr(eq + 1));
  }
  header.set_date_format(a.date_format);
  header.set_allow_duplicate(a.allow_duplicate);
  header.set_replace(a.replace);
  return header;
}

}  // namespace

int RunDatasets(const Globals& g) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ListDatasetsResponse> r = (*client)->ListDatasets();
  if (!r.ok()) return Fail(r.status(), Listener::kLocal);
  for (const v1::DatasetInfo& d : r->datasets()) {
    std::cout << d.name() << ": " << d.rows() << " rows, " << d.subjects() << " subjects, "
              << d.blocks() << " blocks\n";
    for (const v1::PurposeCoverage& c : d.coverage()) {
      double pct = d.subjects() > 0 ? 100.0 * c.subjects_counted() / d.subjects() : 0.0;
      std::cout << absl::StrFormat("  %-28s %8d subjects counted (%.1f%%)\n", c.purpose(),
                                   c.subjects_counted(), pct);
    }
  }
  return 0;
}

// A fresh idempotency key: 128 random bits in hex.
int RunIngest(const Globals& g, IngestArgs a) {
  const std::string& dataset = a.dataset;
  const std::string& file = a.file;
  const bool skip_invalid = a.skip_invalid;
  std::string& idempotency_key = a.idempotency_key;
  // The file is read as it is sent, never whole.
  absl::StatusOr<std::unique_ptr<InputFile>> input = InputFile::Open(file);
  if (!input.ok()) return Fail(input.status());
  const int64_t size = (*input)->size();
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  // The node needs time in proportion to the file: --timeout plus one second
  // per MiB, so a big upload is not cut off (and abandoned) by a fixed limit.
  (*client)->set_timeout(absl::Seconds(g.timeout_seconds) + absl::Seconds(size >> 20));
  if (idempotency_key.empty()) idempotency_key = NewIdempotencyKey();
  absl::StatusOr<v1::IngestRequest> header = IngestHeader(a);
  if (!header.ok()) return Fail(header.status());
  Progress progress("ingest " + file, size);
  absl::StatusOr<v1::IngestResponse> r = (*client)->Ingest(
      *header,
      [&](size_t max, std::string* slice) { return (*input)->Read(max, slice); }, size,
      std::ref(progress));
  if (!r.ok()) {
    int code = Fail(r.status(), Listener::kLocal);
    const absl::StatusCode c = r.status().code();
    const bool outcome_unknown =
        c == absl::StatusCode::kUnavailable || c == absl::StatusCode::kDeadlineExceeded ||
        c == absl::StatusCode::kCancelled || c == absl::StatusCode::kUnknown;
    if (!outcome_unknown) return code;
    std::cerr << "fedshare: to retry without risk of writing twice, run the same command with "
                 "--idempotency-key "
              << idempotency_key << "\n";
    return code;
  }
  if (r->replayed()) {
    std::cout << "already ingested earlier with idempotency key " << idempotency_key
              << "; nothing written now. Earlier: ";
  }
  if (r->rows_written() == 0 && r->rows_rejected() == 0 && r->errors_size() > 0) {
    std::cerr << "fedshare: nothing written: the file cannot be used as it is:\n";
    PrintRowErrors(r->errors(), r->errors_size());
    return kExitUsage;
  }
  if (r->rows_rejected() > 0 && !skip_invalid) {
    std::cerr << "fedshare: nothing written: " << r->rows_rejected()
              << " row(s) are invalid (fix them, or pass --skip-invalid to write the rest):\n";
    PrintRowErrors(r->errors(), r->rows_rejected());
    return kExitUsage;
  }
  if (r->replaced()) {
    std::cout << "replaced the " << r->rows_removed() << " rows of " << dataset << " with "
              << r->rows_written() << " rows (" << r->new_subjects()
              << " new subjects); the replace is recorded in the audit log\n";
  } else {
    std::cout << "wrote " << r->rows_written() << " rows to " << dataset << " ("
              << r->new_subjects() << " new subjects)\n";
  }
  if (r->rows_rejected() > 0) {
    std::string out = a.rejects_file.empty() ? file + ".rejects" : a.rejects_file;
    // People's records, as the export: readable by this user only.
    absl::Status s = WriteFileAtomic(out, r->rejected_rows(), 0600);
    if (!s.ok()) return Fail(s);
    std::cerr << "skipped " << r->rows_rejected() << " invalid row(s), saved to " << out << ":\n";
    PrintRowErrors(r->errors(), r->rows_rejected());
  }
  return 0;
}

// "csv" or "dpv"; empty: DPV for a .jsonl/.json/.ndjson file, else CSV.
absl::StatusOr<v1::ConsentFormat> ConsentFormatFor(const std::string& name,
                                                   const std::string& file) {
  std::string f = absl::AsciiStrToLower(name);
  if (f == "dpv") return v1::CONSENT_FORMAT_DPV;
  if (f == "csv") return v1::CONSENT_FORMAT_CSV;
  if (!f.empty()) {
    return absl::InvalidArgumentError("--format '" + name + "' is unknown: use csv or dpv");
  }
  if (absl::EndsWith(file, ".jsonl") || absl::EndsWith(file, ".json") ||
      absl::EndsWith(file, ".ndjson")) {
    return v1::CONSENT_FORMAT_DPV;
  }
  return v1::CONSENT_FORMAT_CSV;
}

int RunConsentImport(const Globals& g, const std::string& file, const std::string& format) {
  absl::StatusOr<v1::ConsentFormat> f = ConsentFormatFor(format, file);
  if (!f.ok()) return Fail(f.status());
  absl::StatusOr<std::string> data = ReadFile(file);
  if (!data.ok()) return Fail(data.status());
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  Progress progress("consent " + file, static_cast<int64_t>(data->size()));
  absl::StatusOr<v1::ConsentImportResponse> r =
      (*client)->ImportConsent(*data, std::ref(progress), *f);
  if (!r.ok()) return Fail(r.status(), Listener::kLocal);
  if (r->events_rejected() > 0 || r->errors_size() > 0) {
    std::cerr << "fedshare: nothing imported: the file has errors (fix them and import again):\n";
    PrintRowErrors(r->errors(), std::max<int64_t>(r->events_rejected(), r->errors_size()));
    return kExitUsage;
  }
  std::cout << "read " << r->events_read() << " consent events, " << r->events_new() << " new\n";
  if (r->warnings_size() > 0) {
    std::cerr << "fedshare: warning: imported as written, but check these rows:\n";
    PrintRowErrors(r->warnings(), r->warnings_size());
  }
  return 0;
}

int RunConsentExport(const Globals& g, const std::string& format, const std::string& out) {
  absl::StatusOr<v1::ConsentFormat> f = ConsentFormatFor(format, out);
  if (!f.ok()) return Fail(f.status());
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  return ExportTo(out, "consent events", [&](const auto& write) -> absl::StatusOr<int64_t> {
    int64_t events = 0;
    FEDSHARE_RETURN_IF_ERROR((*client)->ExportConsent(*f, [&](const v1::ConsentExportChunk& chunk) {
      events = chunk.events_so_far();
      return write(chunk.data());
    }));
    return events;
  });
}

int RunConsentReport(const Globals& g, const std::string& at_text) {
  std::optional<absl::Time> at;
  if (!at_text.empty()) {
    absl::StatusOr<absl::Time> t = ParseTimeOrDate(at_text);
    if (!t.ok())
      return Fail(absl::InvalidArgumentError("--at: " + std::string(t.status().message())));
    at = *t;
  }
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ConsentReportResponse> r = (*client)->ConsentReport(at);
  if (!r.ok()) return Fail(r.status(), Listener::kLocal);
  absl::Time when =
      absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(r->at()));
  std::cout << "consent at " << fedshare::FormatTime(when)
            << ", people per purpose (the latest event for "
            << "exactly that purpose; counts only, never ids):\n";
  std::cout << absl::StrFormat("%-28s %10s %10s %10s %10s %10s %10s\n", "purpose", "consenting",
                               "withdrawn", "refused", "expired", "revoked", "invalidated");
  for (const v1::PurposeConsentCount& c : r->purposes()) {
    std::cout << absl::StrFormat("%-28s %10d %10d %10d %10d %10d %10d\n", c.purpose(),
                                 c.consenting(), c.withdrawn(), c.refused(), c.expired(),
                                 c.revoked(), c.invalidated());
  }
  std::cout << r->subjects_with_consent_events() << " people have consent events\n";
  return 0;
}

int RunBackup(const Globals& g) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::BackupResponse> r = (*client)->Backup();
  if (!r.ok()) return Fail(r.status(), Listener::kLocal);
  for (const v1::BackupSummary& b : r->backups()) {
    if (b.backup_id() != r->backup_id()) continue;
    absl::Time when = absl::FromUnixSeconds(b.time().seconds());
    std::cout << "backup " << b.backup_id() << " made at " << fedshare::FormatTime(when) << " in "
              << r->backup_dir() << ": " << b.files() << " files, " << b.size_bytes()
              << " bytes (the audit log included)\n";
  }
  std::cout << r->backups_size() << " backup(s) in " << r->backup_dir()
            << "; restore one with the node stopped: fedshare-node --config CONFIG --restore-from "
            << r->backup_dir() << " [--backup-id N]\n";
  return 0;
}

int RunErase(const Globals& g, const std::string& subject, bool yes) {
  if (!yes) {
    if (!::isatty(STDIN_FILENO)) {
      std::cerr << "fedshare: erasing a subject cannot be undone; pass --yes to confirm\n";
      return kExitUsage;
    }
    std::cerr << "Erase this subject's records and consent from every dataset? This cannot be "
                 "undone (backups made before keep them). Type yes: ";
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "yes") {
      std::cerr << "fedshare: nothing erased\n";
      return kExitUsage;
    }
  }
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::EraseSubjectResponse> r = (*client)->EraseSubject(subject);
  if (!r.ok()) return Fail(r.status(), Listener::kLocal);
  std::cout << "erased " << r->records_erased() << " records and " << r->consent_events_erased()
            << " consent events (audit entry " << r->audit_index() << ")\n";
  for (const v1::ErasedDataset& d : r->datasets()) {
    std::cout << "  " << d.dataset() << ": " << d.records() << " records\n";
  }
  if (!r->physically_removed()) {
    std::cerr << "fedshare: warning: the erasure is committed, but its bytes are still in the "
                 "store's files until the next compaction: "
              << r->physical_removal_error() << "\n";
  }
  std::cout << "backups made before this erasure still hold the subject (docs/operators.md)\n";
  return 0;
}

int RunRetention(const Globals& g) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::RunRetentionResponse> r = (*client)->RunRetention();
  if (!r.ok()) return Fail(r.status(), Listener::kLocal);
  if (r->datasets().empty()) std::cout << "no dataset sets retention_days\n";
  for (const v1::RetentionPurge& p : r->datasets()) {
    std::cout << p.dataset() << ": purged " << p.records_purged() << " records loaded before "
              << fedshare::FormatTime(absl::FromUnixSeconds(p.cutoff().seconds()))
              << " (retention_days " << p.retention_days() << "), kept " << p.records_kept();
    if (p.records_without_load_day() > 0) {
      std::cout << ", of which " << p.records_without_load_day()
                << " have no load day and are never purged";
    }
    if (p.records_purged() > 0) std::cout << "; audit entry " << p.audit_index();
    std::cout << "\n";
  }
  return 0;
}

int RunExport(const Globals& g, const std::string& dataset, const std::string& format,
              const std::string& out) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  return ExportTo(out, "rows", [&](const auto& write) -> absl::StatusOr<int64_t> {
    int64_t rows = 0;
    FEDSHARE_RETURN_IF_ERROR(
        (*client)->Export(dataset, FormatFor(format, out), [&](const v1::ExportChunk& chunk) {
          rows = chunk.rows_so_far();
          return write(chunk.data());
        }));
    return rows;
  });
}

}  // namespace fedshare::client
