// Cell key perturbation (DESIGN §8), the method national statistics offices
// use for census tables (ABS TableBuilder; ONS Census 2021): lighter than DP,
// for exact-style agreements. Counts are perturbed by a small amount that is a
// fixed function of *who* is in the cell, so the same set of people always gets
// the same noise: repeating, differencing or averaging questions gains nothing.
//
//   record key  = first 8 bytes of HMAC-SHA256(node secret, tag || subject id),
//                 big-endian, mod table size      (one per subject)
//   cell key    = sum of the record keys of the cell's distinct subjects
//                 mod table size
//   released    = count + PTable::Perturbation(count, cell key)
//
// A p-table (perturbation table) is published with the agreement, so askers
// know the noise distribution, never a cell's key. Its text format
// ("fedshare-ptable 1"):
//
//   fedshare-ptable 1
//   table_size 256
//   # count: perturbation=keys ...
//   0: 0=256
//   1: -1=192 3=64
//   ...
//   5: -2=16 -1=48 0=128 1=48 2=16
//
// Blank lines and lines starting with '#' are ignored. Row `i:` applies to a
// cell whose count is i; the last row applies to every larger count too. Rows
// are numbered 0, 1, 2, ... without gaps. In a row, `v=n` gives perturbation v
// to the next n cell keys, in the order written, starting from key 0; each row
// covers exactly table_size keys, and i + v >= 0. The probability of v for
// count i is n / table_size. table_size is in [2, 2^20].
#ifndef FEDSHARE_POLICY_CELL_KEY_H_
#define FEDSHARE_POLICY_CELL_KEY_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fedshare::policy {

class PTable {
 public:
  // INVALID_ARGUMENT naming the line and what is wrong.
  static absl::StatusOr<PTable> Parse(absl::string_view text);

  uint32_t table_size() const { return table_size_; }
  // Rows 0..max_count(); larger counts use the last row.
  int64_t max_count() const { return static_cast<int64_t>(rows_.size()) - 1; }

  // The perturbation for a cell of `count` (>= 0) with `cell_key`
  // (< table_size; larger keys are reduced mod table_size).
  int64_t Perturbation(int64_t count, uint32_t cell_key) const;
  // count + Perturbation(count, cell_key); never negative.
  int64_t Perturb(int64_t count, uint32_t cell_key) const;

  // Mean and variance of the perturbation for `count`, from the table.
  double Mean(int64_t count) const;
  double Variance(int64_t count) const;
  // The largest |perturbation| anywhere in the table.
  int64_t MaxAbsPerturbation() const;

 private:
  struct Entry {
    int64_t perturbation;
    uint32_t keys_end;  // this entry covers keys [previous end, keys_end)
  };
  const std::vector<Entry>& Row(int64_t count) const;

  uint32_t table_size_ = 0;
  std::vector<std::vector<Entry>> rows_;
};

// The text of the default p-table (policy/cell_key_ptable_default.cc).
absl::string_view DefaultPTableText();
// The default p-table, parsed once.
const PTable& DefaultPTable();

// A subject's record key. INVALID_ARGUMENT if node_secret is shorter than 32
// bytes or table_size < 2.
absl::StatusOr<uint32_t> RecordKey(absl::string_view node_secret, absl::string_view subject_id,
                                   uint32_t table_size);

// The key of a cell from the record keys of its distinct subjects (each
// subject once, in any order).
uint32_t CellKey(absl::Span<const uint32_t> record_keys, uint32_t table_size);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_CELL_KEY_H_
