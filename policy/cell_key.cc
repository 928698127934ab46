#include "policy/cell_key.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fedshare::policy {
namespace {

constexpr absl::string_view kRecordKeyTag = "fedshare/cell-key/v1";
constexpr uint32_t kMaxTableSize = uint32_t{1} << 20;

absl::Status LineError(int line, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("p-table line ", line, ": ", why));
}

}  // namespace

absl::StatusOr<PTable> PTable::Parse(absl::string_view text) {
  PTable table;
  int line_no = 0;
  bool have_magic = false;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_no;
    const absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#') continue;
    if (!have_magic) {
      if (line != "fedshare-ptable 1") return LineError(line_no, "expected 'fedshare-ptable 1'");
      have_magic = true;
      continue;
    }
    if (table.table_size_ == 0) {
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      uint32_t size = 0;
      if (parts.size() != 2 || parts[0] != "table_size" || !absl::SimpleAtoi(parts[1], &size) ||
          size < 2 || size > kMaxTableSize) {
        return LineError(line_no, "expected 'table_size N' with N in [2, 2^20]");
      }
      table.table_size_ = size;
      continue;
    }
    const size_t colon = line.find(':');
    int64_t count = -1;
    if (colon == absl::string_view::npos || !absl::SimpleAtoi(line.substr(0, colon), &count) ||
        count != static_cast<int64_t>(table.rows_.size())) {
      return LineError(line_no, absl::StrCat("expected row '", table.rows_.size(), ": v=n ...'"));
    }
    std::vector<Entry> row;
    uint64_t covered = 0;
    for (absl::string_view cell : absl::StrSplit(line.substr(colon + 1), ' ', absl::SkipEmpty())) {
      const size_t eq = cell.find('=');
      int64_t v = 0;
      uint32_t n = 0;
      if (eq == absl::string_view::npos || !absl::SimpleAtoi(cell.substr(0, eq), &v) ||
          !absl::SimpleAtoi(cell.substr(eq + 1), &n) || n == 0) {
        return LineError(line_no, absl::StrCat("bad entry '", cell, "', expected v=n with n > 0"));
      }
      if (count + v < 0) {
        return LineError(line_no,
                         absl::StrCat("perturbation ", v, " makes count ", count, " negative"));
      }
      covered += n;
      if (covered > table.table_size_) break;
      row.push_back({v, static_cast<uint32_t>(covered)});
    }
    if (covered != table.table_size_) {
      return LineError(line_no, absl::StrCat("row covers ", covered, " keys, not the table size ",
                                             table.table_size_));
    }
    table.rows_.push_back(std::move(row));
  }
  if (!have_magic) return LineError(line_no, "empty p-table");
  if (table.rows_.empty()) return LineError(line_no, "a p-table needs table_size and row 0");
  return table;
}

const std::vector<PTable::Entry>& PTable::Row(int64_t count) const {
  return rows_[static_cast<size_t>(std::min(std::max<int64_t>(count, 0), max_count()))];
}

int64_t PTable::Perturbation(int64_t count, uint32_t cell_key) const {
  const uint32_t key = cell_key % table_size_;
  for (const Entry& e : Row(count)) {
    if (key < e.keys_end) return e.perturbation;
  }
  return 0;  // unreachable: each row covers every key
}

int64_t PTable::Perturb(int64_t count, uint32_t cell_key) const {
  return std::max<int64_t>(0, count + Perturbation(count, cell_key));
}

double PTable::Mean(int64_t count) const {
  double mean = 0;
  uint32_t start = 0;
  for (const Entry& e : Row(count)) {
    mean += static_cast<double>(e.perturbation) * (e.keys_end - start);
    start = e.keys_end;
  }
  return mean / table_size_;
}

double PTable::Variance(int64_t count) const {
  const double mean = Mean(count);
  double var = 0;
  uint32_t start = 0;
  for (const Entry& e : Row(count)) {
    const double d = static_cast<double>(e.perturbation) - mean;
    var += d * d * (e.keys_end - start);
    start = e.keys_end;
  }
  return var / table_size_;
}

int64_t PTable::MaxAbsPerturbation() const {
  int64_t most = 0;
  for (const auto& row : rows_) {
    for (const Entry& e : row) most = std::max(most, std::abs(e.perturbation));
  }
  return most;
}

const PTable& DefaultPTable() {
  static const PTable* table = [] {
    auto parsed = PTable::Parse(DefaultPTableText());
    if (!parsed.ok()) std::abort();  // a build-time constant; cell_key_test parses it
    return new PTable(std::move(parsed).value());
  }();
  return *table;
}

absl::StatusOr<uint32_t> RecordKey(absl::string_view node_secret, absl::string_view subject_id,
                                   uint32_t table_size) {
  if (node_secret.size() < 32) {
    return absl::InvalidArgumentError("node secret must be at least 32 bytes");
  }
  if (table_size < 2) return absl::InvalidArgumentError("table size must be at least 2");
  std::string message(kRecordKeyTag);
  message.push_back('\0');
  message.append(subject_id.data(), subject_id.size());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), node_secret.data(), static_cast<int>(node_secret.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
           &len) == nullptr ||
      len < 8) {
    return absl::InternalError("HMAC-SHA256 failed while deriving a record key");
  }
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | mac[i];
  // Bias of the reduction: below table_size / 2^64 <= 2^-44.
  return static_cast<uint32_t>(v % table_size);
}

uint32_t CellKey(absl::Span<const uint32_t> record_keys, uint32_t table_size) {
  uint64_t sum = 0;
  for (uint32_t k : record_keys) sum = (sum + k % table_size) % table_size;
  return static_cast<uint32_t>(sum);
}

}  // namespace fedshare::policy
