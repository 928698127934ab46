#include "node/engine/block_scan.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "node/common/status_macros.h"
#include "node/engine/cell_stats.h"
#include "node/engine/group_ids.h"
#include "node/engine/question_memory.h"
#include "node/engine/scan_pool.h"
#include "node/engine/selection.h"
#include "policy/query_rules.h"

namespace fedshare::engine::exec {
namespace {

// Fewest blocks a parallel scan gives one range: a range costs a bitmap per
// predicate over every subject and a merge.
constexpr size_t kMinRangeBlocks = 8;

// An owner of dropped records added to a set: its entry with its share of
// the table, roughly.
constexpr size_t kEntryBytes = 16;

// A cell's fixed state, roughly (what a new cell is charged).
size_t BlockCellBytes(int n_aggs) {
  return sizeof(BlockCell) + n_aggs * sizeof(AggregateAccumulator) + 64 * n_aggs;
}

// The distinct fields the dominance aggregates read: one measure slot each.
size_t MeasureSlots(const v1::AggregateQuery& query, const Plan& plan) {
  std::vector<int> fields;
  for (int a = 0; a < query.aggregates_size(); ++a) {
    if (!IsDominanceKind(query.aggregates(a).kind())) continue;
    if (std::find(fields.begin(), fields.end(), plan.measures[a].field) == fields.end()) {
      fields.push_back(plan.measures[a].field);
    }
  }
  return fields.size();
}

// What a counted record is charged: its subject, and with measure slots its
// folding slot and each slot's value.
size_t CountedRecordBytes(size_t slots) { return slots > 0 ? 8 + 8 * slots : 4; }

// The ranges a scan of `blocks` splits into on a pool of `threads` (1
// without one): one per thread, each of at least kMinRangeBlocks.
size_t RangesFor(size_t blocks, size_t threads) {
  if (threads <= 1 || blocks < 2 * kMinRangeBlocks) return 1;
  return std::min(blocks / kMinRangeBlocks, threads);
}

// The block path's state (block_scan.h):
//
//   BlockScan scan(reader, query, consent, plan, record_keys, memory, false, removal_cap,
//                  max_cells);
//   reader.ForEachBlock([&](const ColumnBlock& b) { return scan.Add(b); }, &plan.columns);
//   Execution execution = std::move(scan).Finish(/*pool=*/nullptr);
//
// Several BlockScans may each scan a range of blocks; merging them in block
// order (Merge, then ReplayMerged) gives the state one scan of every block
// would have, to the last bit: a scan that follows another (`follows`) logs
// its counted records per cell instead of summing them, and ReplayMerged adds
// them in their order; group ids and cells are numbered in order of first
// sight.
class BlockScan {
 public:
  BlockScan(const DatasetReader& reader, const v1::AggregateQuery& query,
            const policy::ConsentBitmap& consent, const Plan& plan,
            absl::Span<const uint32_t> record_keys, QuestionMemory* memory, bool follows,
            int64_t removal_cap, int max_cells)
      : reader_(reader),
        query_(query),
        consent_(consent),
        plan_(plan),
        record_keys_(record_keys),
        memory_(memory),
        follows_(follows),
        removal_cap_(removal_cap),
        max_cells_(max_cells),
        n_aggs_(query.aggregates_size()),
        group_ids_(reader, plan.group_fields),
        removed_(plan.predicates.size(), DistinctUpTo(removal_cap)),
        dropped_(plan.predicates.size()) {
    // One measure slot per distinct field the dominance aggregates read
    // (MeasureSlots).
    slot_of_.assign(n_aggs_, -1);
    for (int a = 0; a < n_aggs_; ++a) {
      if (!IsDominanceKind(query.aggregates(a).kind())) continue;
      const int field = plan.measures[a].field;
      for (size_t m = 0; m < slot_measures_.size() && slot_of_[a] < 0; ++m) {
        if (slot_measures_[m].field == field) slot_of_[a] = static_cast<int>(m);
      }
      if (slot_of_[a] < 0) {
        slot_of_[a] = static_cast<int>(slot_measures_.size());
        slot_measures_.push_back(plan.measures[a]);
      }
    }
    for (int a = 0; a < n_aggs_; ++a) {
      const v1::AggregateKind kind = query.aggregates(a).kind();
      histograms_ += kind == v1::HISTOGRAM;
      squares_ = squares_ || kind == v1::VARIANCE || kind == v1::STDDEV;
    }
    // Without GROUP BY the answer has its one cell even when nothing counts.
    if (plan.group_fields.empty()) CellFor(0);
  }

  absl::Status Add(const ColumnBlock& block) {
    execution_.rows_scanned += block.rows;
    Select(block);
    FEDSHARE_RETURN_IF_ERROR(
        group_ids_.Assign(block, counted_.data(), counted_.size(), gids_.data()));
    const size_t cells_before = cells_.size();
    AddRecords(block);
    // This range's cells are some of the answer's: past the bound already.
    if (max_cells_ > 0 && cells_.size() > static_cast<size_t>(max_cells_)) {
      return TooManyCells(max_cells_);
    }
    for (int a = 0; a < n_aggs_; ++a) {
      if (query_.aggregates(a).kind() == v1::HISTOGRAM) AddToHistogram(block, a);
    }
    size_t dropped_bytes = 0;
    if (!drop_.empty()) {
      FEDSHARE_RETURN_IF_ERROR(group_ids_.Assign(block, drop_.data(), drop_.size(), gids_.data()));
      dropped_bytes = AddDropped(block);
    }
    // What this block added to the state kept until Finish.
    const size_t slots = slot_measures_.size();
    const int64_t bytes =
        static_cast<int64_t>(counted_.size() * CountedRecordBytes(slots) + dropped_bytes +
                             (cells_.size() - cells_before) * CellBytes());
    return memory_ == nullptr ? absl::OkStatus() : memory_->Charge(bytes);
  }

  // Appends `later`, which scanned the blocks that follow this one's,
  // except the records its cells logged: ReplayMerged adds those. `later`
  // must outlive ReplayMerged.
  void Merge(BlockScan& later) {
    execution_.rows_scanned += later.execution_.rows_scanned;
    execution_.rows_counted += later.execution_.rows_counted;
    // later's group ids in order, so new ones are numbered as one scan would.
    std::vector<uint32_t> gid_of(later.group_ids_.size());
    for (uint32_t g = 0; g < gid_of.size(); ++g) {
      gid_of[g] = group_ids_.IdOf(later.group_ids_.Key(g));
    }
    for (size_t lc = 0; lc < later.cells_.size(); ++lc) {
      BlockCell& from = later.cells_[lc];
      const uint32_t c = CellFor(gid_of[later.gid_of_cell_[lc]]);
      if (c >= replays_.size()) replays_.resize(c + 1);
      replays_[c].push_back(&from);
      BlockCell& to = cells_[c];
      to.record_key_sum += from.record_key_sum;
      for (int a = 0; a < n_aggs_; ++a) {
        AggregateAccumulator& x = to.aggregates[a];
        AggregateAccumulator& y = from.aggregates[a];
        x.count += y.count;
        for (size_t b = 0; b < x.bins.size(); ++b) {
          x.bins[b] += y.bins[b];
          x.bin_subjects[b].insert(x.bin_subjects[b].end(), y.bin_subjects[b].begin(),
                                   y.bin_subjects[b].end());
          if (keyed()) x.bin_key_sums[b] += y.bin_key_sums[b];
        }
      }
    }
    for (size_t i = 0; i < removed_.size(); ++i) {
      removed_[i].AddAll(later.removed_[i]);
      std::vector<std::optional<DroppedUpTo>>& by_group = dropped_[i];
      std::vector<std::optional<DroppedUpTo>>& from_group = later.dropped_[i];
      for (uint32_t g = 0; g < from_group.size(); ++g) {
        if (!from_group[g].has_value()) continue;
        const uint32_t gid = gid_of[g];
        if (gid >= by_group.size()) by_group.resize(gid + 1);
        if (!by_group[gid].has_value()) {
          by_group[gid] = std::move(from_group[g]);
          continue;
        }
        DroppedUpTo& to = *by_group[gid];
        const DroppedUpTo& from = *from_group[g];
        to.subjects.AddAll(from.subjects);
        for (int a = 0; a < n_aggs_; ++a) {
          for (size_t b = 0; b < from.bin_subjects[a].size(); ++b) {
            to.bin_subjects[a][b].AddAll(from.bin_subjects[a][b]);
          }
        }
      }
    }
  }

  // A block of `rows` rows that zone maps show cannot contribute.
  void Skip(uint32_t rows) { execution_.rows_scanned += rows; }

  // Adds the records of the cells merged into each cell, in block order;
  // cells are independent, so they are split across `pool` (null: here).
  void ReplayMerged(ScanPool* pool) {
    replays_.resize(cells_.size());
    ForEachCell(pool, [this](size_t c) {
      for (BlockCell* from : replays_[c]) {
        WithSlots(slot_measures_.size(), [&](auto slots_of) {
          if (squares_) {
            cells_[c].Replay<true>(*from, slots_of);
          } else {
            cells_[c].Replay<false>(*from, slots_of);
          }
        });
        SpareBuffers::Get().Give(from->tail);
      }
    });
    replays_.clear();
  }

  // The answer; cells are finished across `pool` (null: here).
  Execution Finish(ScanPool* pool) && {
    for (const DistinctUpTo& owners : removed_) {
      execution_.removed_by_predicate.push_back(owners.count());
    }
    for (const std::vector<std::optional<DroppedUpTo>>& by_group : dropped_) {
      execution_.removed_in_cells.push_back(DroppedFigures(by_group));
    }
    execution_.cells.resize(cells_.size());
    ForEachCell(pool, [this](size_t i) {
      execution_.cells[i] = FinishBlockCell(query_, cells_[i], slot_of_);
      execution_.cells[i].scan_index = static_cast<uint32_t>(i);
    });
    std::sort(execution_.cells.begin(), execution_.cells.end(), KeyLess);
    return std::move(execution_);
  }

 private:
  uint64_t KeyOf(uint32_t subject) const {
    return subject < record_keys_.size() ? record_keys_[subject] : 0;
  }
  bool keyed() const { return !record_keys_.empty(); }
  // fn(c) for every cell c, split into a few tasks on `pool` (null: here).
  void ForEachCell(ScanPool* pool, const std::function<void(size_t)>& fn) {
    const size_t n = cells_.size();
    if (pool == nullptr || n < 2) {
      for (size_t c = 0; c < n; ++c) fn(c);
      return;
    }
    const size_t tasks = std::min<size_t>(n, 8 * static_cast<size_t>(pool->threads()));
    pool->Run(tasks, [&](size_t t) {
      for (size_t c = n * t / tasks; c < n * (t + 1) / tasks; ++c) fn(c);
    });
  }

  size_t CellBytes() const { return BlockCellBytes(n_aggs_); }

  // The cell of group `gid`, made on first sight.
  uint32_t CellFor(uint32_t gid) {
    if (gid >= cell_of_group_.size()) cell_of_group_.resize(gid + 1, -1);
    if (cell_of_group_[gid] >= 0) return static_cast<uint32_t>(cell_of_group_[gid]);
    cell_of_group_[gid] = static_cast<int32_t>(cells_.size());
    gid_of_cell_.push_back(gid);
    BlockCell& cell = cells_.emplace_back();
    const GroupKey key = group_ids_.Key(gid);
    for (size_t g = 0; g < plan_.group_fields.size(); ++g) {
      cell.key.push_back(KeyValue(reader_, plan_.group_fields[g], key, g));
    }
    cell.aggregates.resize(n_aggs_);
    cell.sums.resize(slot_measures_.size());
    SpareBuffers& spares = SpareBuffers::Get();
    cell.tail = spares.Take<uint64_t>();
    if (!follows_) {
      cell.run_subjects = spares.Take<uint32_t>();
      if (!slot_measures_.empty()) cell.run_contrib = spares.Take<double>();
    }
    for (int a = 0; a < n_aggs_; ++a) {
      const v1::Aggregate& agg = query_.aggregates(a);
      if (agg.kind() != v1::HISTOGRAM) continue;
      cell.aggregates[a].bins.assign(agg.bins(), 0.0);
      cell.aggregates[a].bin_subjects.resize(agg.bins());
      if (keyed()) cell.aggregates[a].bin_key_sums.assign(agg.bins(), 0);
    }
    return static_cast<uint32_t>(cell_of_group_[gid]);
  }

  // Fills counted_ (consent and every predicate pass) and drop_ with
  // drop_predicate_ (exactly one predicate fails).
  void Select(const ColumnBlock& block) {
    if (plan_.predicates.size() == 1) {
      // The common WHERE: consent and the predicate in one pass.
      counted_.resize(block.rows);
      drop_.resize(block.rows);
      size_t n_counted = 0, n_drop = 0;
      SplitByPredicate(plan_.predicates[0], block, consent_, counted_.data(), &n_counted,
                       drop_.data(), &n_drop);
      counted_.resize(n_counted);
      drop_.resize(n_drop);
      drop_predicate_.assign(n_drop, 0);
      gids_.resize(std::max(counted_.size(), drop_.size()));
      return;
    }
    const uint32_t* subjects = block.subjects.data();
    selected_.resize(block.rows);
    size_t n = 0;
    for (uint32_t r = 0; r < block.rows; ++r) {
      selected_[n] = r;
      n += consent_.Test(subjects[r]);
    }
    selected_.resize(n);
    drop_.clear();
    drop_predicate_.clear();
    if (plan_.predicates.empty()) {
      counted_ = selected_;
    } else {
      fails_.assign(n, 0);
      failed_.assign(n, 0);
      for (size_t i = 0; i < plan_.predicates.size(); ++i) {
        MarkPredicate(plan_.predicates[i], static_cast<uint8_t>(i), block, selected_.data(), n,
                      fails_.data(), failed_.data());
      }
      counted_.resize(n);
      drop_.resize(n);
      drop_predicate_.resize(n);
      size_t n_counted = 0, n_drop = 0;
      for (size_t k = 0; k < n; ++k) {
        counted_[n_counted] = selected_[k];
        n_counted += fails_[k] == 0;
        drop_[n_drop] = selected_[k];
        drop_predicate_[n_drop] = failed_[k];
        n_drop += fails_[k] == 1;
      }
      counted_.resize(n_counted);
      drop_.resize(n_drop);
      drop_predicate_.resize(n_drop);
    }
    gids_.resize(std::max(counted_.size(), drop_.size()));
  }

  // Each counted record's cell (cell_ids_), and the record folded into it
  // with its measure per slot (logged instead when this scan follows another).
  void AddRecords(const ColumnBlock& block) {
    const size_t n = counted_.size();
    const size_t slots = slot_measures_.size();
    cell_ids_.resize(n);
    for (size_t k = 0; k < n; ++k) {
      const uint32_t g = gids_[k];
      cell_ids_[k] = g < cell_of_group_.size() && cell_of_group_[g] >= 0
                         ? static_cast<uint32_t>(cell_of_group_[g])
                         : CellFor(g);
    }
    values_.resize(n * slots);
    for (size_t m = 0; m < slots; ++m) {
      const Measure& me = slot_measures_[m];
      const ColumnBlock::Column& col = block.columns[me.field];
      double* out = values_.data() + m;
      // One loop per column width (storage::WithInts, WithDoubles): an
      // in-place column is decoded here, for the counted records only.
      auto gather = [&](const auto& values) {
        for (size_t k = 0; k < n; ++k) {
          const uint32_t r = counted_[k];
          double v = static_cast<double>(values[r]);
          if (me.clamp) v = std::clamp(v, me.lower, me.upper);
          out[k * slots] = col.IsNull(r) ? std::numeric_limits<double>::quiet_NaN() : v;
        }
      };
      if (me.is_double) {
        storage::WithDoubles(col, gather);
      } else {
        storage::WithInts(col, gather);
      }
    }
    WithSlots(slots, [&](auto slots_of) {
      if (squares_) {
        FoldRecords<true>(block, slots_of);
      } else {
        FoldRecords<false>(block, slots_of);
      }
    });
    execution_.rows_counted += static_cast<int64_t>(n);
  }

  // Each counted record, its measures in values_, folded into its cell
  // (logged when this scan follows another).
  template <bool kSquares, typename Slots>
  void FoldRecords(const ColumnBlock& block, Slots slots_of) {
    const size_t slots = slots_of();
    const uint32_t* subjects = block.subjects.data();
    const double* values = values_.data();
    const size_t n = counted_.size();
    for (size_t k = 0; k < n; ++k) {
      BlockCell& cell = cells_[cell_ids_[k]];
      const uint32_t s = subjects[counted_[k]];
      if (follows_) {
        cell.Log(s, values + k * slots, slots);
      } else {
        cell.Add<kSquares>(s, values + k * slots, slots);
      }
      if (keyed()) cell.record_key_sum += KeyOf(s);
    }
  }

  // HISTOGRAM aggregate a over the counted records.
  void AddToHistogram(const ColumnBlock& block, int a) {
    const v1::Aggregate& agg = query_.aggregates(a);
    const Measure& m = plan_.measures[a];
    const ColumnBlock::Column& col = block.columns[m.field];
    for (size_t k = 0; k < counted_.size(); ++k) {
      const uint32_t r = counted_[k];
      if (col.IsNull(r)) continue;
      double v = m.is_double ? col.DoubleAt(r) : static_cast<double>(col.IntAt(r));
      if (m.clamp) v = std::clamp(v, m.lower, m.upper);
      AggregateAccumulator& x = cells_[cell_ids_[k]].aggregates[a];
      x.count += 1;
      const int bin = policy::HistogramBin(agg, v);
      x.bins[bin] += 1;
      AppendSubject(x.bin_subjects[bin], block.subjects[r]);
      if (keyed()) x.bin_key_sums[bin] += KeyOf(block.subjects[r]);
    }
  }

  // Records exactly one predicate drops: their owners per predicate, and
  // per predicate and group (and HISTOGRAM bin) for the per-cell rule, each
  // counted up to removal_cap_. Returns the bytes the sets grew by.
  size_t AddDropped(const ColumnBlock& block) {
    size_t grown = 0;
    for (size_t k = 0; k < drop_.size(); ++k) {
      const uint32_t r = drop_[k];
      const uint32_t s = block.subjects[r];
      const uint8_t i = drop_predicate_[k];
      grown += kEntryBytes * removed_[i].Add(s);
      std::vector<std::optional<DroppedUpTo>>& by_group = dropped_[i];
      if (gids_[k] >= by_group.size()) by_group.resize(gids_[k] + 1);
      std::optional<DroppedUpTo>& d = by_group[gids_[k]];
      if (!d.has_value()) {
        d.emplace(removal_cap_);
        d->bin_subjects.resize(n_aggs_);
        for (int a = 0; a < n_aggs_; ++a) {
          const v1::Aggregate& agg = query_.aggregates(a);
          if (agg.kind() == v1::HISTOGRAM) {
            d->bin_subjects[a].assign(agg.bins(), DistinctUpTo(removal_cap_));
          }
        }
        grown += sizeof(DroppedUpTo);
      }
      grown += kEntryBytes * d->subjects.Add(s);
      for (int a = 0; a < n_aggs_ && histograms_ > 0; ++a) {
        const v1::Aggregate& agg = query_.aggregates(a);
        if (agg.kind() != v1::HISTOGRAM) continue;
        const Measure& m = plan_.measures[a];
        const ColumnBlock::Column& col = block.columns[m.field];
        if (col.IsNull(r)) continue;
        double v = m.is_double ? col.DoubleAt(r) : static_cast<double>(col.IntAt(r));
        if (m.clamp) v = std::clamp(v, m.lower, m.upper);
        grown += kEntryBytes * d->bin_subjects[a][policy::HistogramBin(agg, v)].Add(s);
      }
    }
    return grown;
  }

  // One predicate's per-cell figures, for cells non-empty in the answer.
  std::vector<int64_t> DroppedFigures(const std::vector<std::optional<DroppedUpTo>>& by_group) {
    std::vector<int64_t> figures;
    for (uint32_t gid = 0; gid < by_group.size(); ++gid) {
      if (!by_group[gid].has_value()) continue;
      if (gid >= cell_of_group_.size() || cell_of_group_[gid] < 0) continue;
      const BlockCell& cell = cells_[cell_of_group_[gid]];
      if (cell.records == 0) continue;
      const DroppedUpTo& d = *by_group[gid];
      if (int64_t n = d.subjects.count(); n > 0) figures.push_back(n);
      for (int a = 0; a < n_aggs_; ++a) {
        for (size_t b = 0; b < d.bin_subjects[a].size(); ++b) {
          if (cell.aggregates[a].bins[b] <= 0) continue;
          if (int64_t n = d.bin_subjects[a][b].count(); n > 0) figures.push_back(n);
        }
      }
    }
    return figures;
  }

  const DatasetReader& reader_;
  const v1::AggregateQuery& query_;
  const policy::ConsentBitmap& consent_;
  const Plan& plan_;
  const absl::Span<const uint32_t> record_keys_;
  QuestionMemory* const memory_;  // may be null
  const bool follows_;            // scans blocks after another scan's
  const int64_t removal_cap_;     // the removal figures are counted up to it
  const int max_cells_;           // TooManyCells past it; 0: no bound
  const int n_aggs_;
  int histograms_ = 0;                // HISTOGRAM aggregates
  bool squares_ = false;              // a VARIANCE or STDDEV: sums of squares kept
  std::vector<Measure> slot_measures_;  // per measure slot
  std::vector<int> slot_of_;            // per aggregate: its measure slot, or -1
  GroupIds group_ids_;
  std::vector<BlockCell> cells_;
  std::vector<int32_t> cell_of_group_;     // group id -> cell, -1 before first sight
  std::vector<uint32_t> gid_of_cell_;      // cell -> group id
  // Per cell: the cells of later scans whose logged records it takes.
  std::vector<std::vector<BlockCell*>> replays_;
  // Per predicate: who it drops, and per group id the owners of the records
  // it drops there, each counted up to removal_cap_.
  std::vector<DistinctUpTo> removed_;
  std::vector<std::vector<std::optional<DroppedUpTo>>> dropped_;
  Execution execution_;
  // Per block, reused.
  std::vector<uint32_t> selected_, counted_, drop_, gids_, cell_ids_;
  std::vector<uint8_t> fails_, failed_, drop_predicate_;
  std::vector<double> values_;  // counted record * slots + slot
};

}  // namespace

absl::StatusOr<Execution> ExecuteByBlock(const DatasetReader& reader,
                                         const v1::AggregateQuery& query,
                                         const policy::ConsentBitmap& consent, const Plan& plan,
                                         absl::Span<const uint32_t> record_keys,
                                         const ScanOptions& options) {
  QuestionMemory memory(options.memory_budget_bytes);
  const int64_t removal_cap = std::max<int64_t>(1, options.removal_cap);
  const size_t blocks = reader.blocks();
  // This question's threads: all the pool's alone, fewer while others scan.
  const ScanPool::Share share(options.pool);
  ScanPool* const pool = share.pool();
  // One range per thread: every range but the first logs its records for a
  // replay, so more ranges than threads would only log more.
  const size_t ranges =
      pool == nullptr ? 1 : RangesFor(blocks, static_cast<size_t>(share.threads()));
  FEDSHARE_RETURN_IF_ERROR(memory.Charge(static_cast<int64_t>(consent.size()) * 4));

  std::vector<std::unique_ptr<BlockScan>> scans(ranges);
  std::vector<absl::Status> statuses(ranges);
  // Set when a range fails: the others stop at their next block (a budget
  // failure is seen in `memory` as well, and reported over this).
  std::atomic<bool> failed{false};
  auto scan_range = [&](size_t i) {
    scans[i] = std::make_unique<BlockScan>(reader, query, consent, plan, record_keys,
                                           memory.budgeted() ? &memory : nullptr, i > 0,
                                           removal_cap, options.max_cells);
    BlockScan& scan = *scans[i];
    DatasetReader::BlockRange range;
    range.columns = &plan.columns;
    range.in_place = true;  // every read below goes through IntAt/DoubleAt or WithInts/WithDoubles
    if (ranges > 1) {
      range.first = static_cast<uint32_t>(blocks * i / ranges);
      range.end = i + 1 == ranges ? UINT32_MAX : static_cast<uint32_t>(blocks * (i + 1) / ranges);
    }
    if (plan.predicates.size() >= 2) {
      range.skip = [&plan, &scan](const storage::ZoneMap& z) {
        if (!BlockCannotContribute(plan, z)) return false;
        scan.Skip(z.rows);
        return true;
      };
    }
    statuses[i] = reader.ForEachBlock(
        [&scan, &memory, &failed, &options](const ColumnBlock& block) {
          // Another range over its budget, or past max_cells, ends this one too.
          FEDSHARE_RETURN_IF_ERROR(memory.status());
          if (failed.load(std::memory_order_relaxed)) return TooManyCells(options.max_cells);
          absl::Status added = scan.Add(block);
          if (!added.ok()) failed.store(true, std::memory_order_relaxed);
          return added;
        },
        range);
  };
  if (ranges == 1) {
    scan_range(0);
  } else {
    pool->Run(ranges, scan_range);
  }
  // The first failure in block order; a budget failure over one caused by it.
  for (const absl::Status& s : statuses) {
    if (!s.ok() && !absl::IsResourceExhausted(s)) return s;
  }
  FEDSHARE_RETURN_IF_ERROR(memory.status());
  for (const absl::Status& s : statuses) FEDSHARE_RETURN_IF_ERROR(s);  // TooManyCells
  for (size_t i = 1; i < ranges; ++i) scans[0]->Merge(*scans[i]);
  scans[0]->ReplayMerged(pool);
  scans.resize(1);
  return std::move(*scans[0]).Finish(pool);
}

int64_t ByBlockMemoryBound(const DatasetReader& reader, const v1::AggregateQuery& query,
                           uint32_t subject_ordinals, const Plan& plan,
                           const ScanOptions& options) {
  // In doubles: the terms can pass int64 for a large dataset and many groups.
  const double records = static_cast<double>(reader.rows());
  const double groups = static_cast<double>(GroupsBound(reader, plan));
  const double ranges = static_cast<double>(RangesFor(
      reader.blocks(), options.pool == nullptr ? 1 : static_cast<size_t>(options.pool->threads())));
  const double cap = static_cast<double>(std::max<int64_t>(1, options.removal_cap));
  const double predicates = static_cast<double>(plan.predicates.size());
  double bins = 0;  // over the HISTOGRAM aggregates
  double histograms = 0;
  for (const v1::Aggregate& agg : query.aggregates()) {
    if (agg.kind() != v1::HISTOGRAM) continue;
    histograms += 1;
    bins += agg.bins();
  }
  // Each range's cells, up to max_cells each (a range stops past it before
  // charging); each made by a counted record.
  double cells = groups;
  if (options.max_cells > 0) cells = std::min(cells, static_cast<double>(options.max_cells));
  cells = std::min(records, ranges * cells);
  // A record is counted, dropped by exactly one filter, or neither. A
  // dropped one adds its owner to its filter's set and to its (filter,
  // group)'s set and bins, each holding at most `cap`, and may make that
  // (filter, group)'s sets.
  const double dropped_groups = std::min(records, ranges * predicates * groups);
  const double dropped = kEntryBytes * std::min(records, ranges * predicates * cap) +
                         dropped_groups * sizeof(DroppedUpTo) +
                         kEntryBytes * std::min(records, dropped_groups * cap) +
                         kEntryBytes * std::min(records * histograms, dropped_groups * cap * bins);
  const double bound = 4.0 * subject_ordinals +
                       records * CountedRecordBytes(MeasureSlots(query, plan)) +
                       cells * BlockCellBytes(query.aggregates_size()) + dropped;
  return bound >= 9e18 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(bound);
}

}  // namespace fedshare::engine::exec
