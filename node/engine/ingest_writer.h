// The write side of one ingest (the block appender): IngestRun (ingest.cc)
// parses and checks rows, IngestWriter turns the good ones into column
// blocks and stages everything the ingest writes in one storage::BulkWrite:
// the blocks as they fill, each new subject's keys, and at the end the
// dataset's meta keys. Storage::Commit makes it all visible at once, or
// nothing of it (a refused, failed or crashed ingest changes nothing).
//
// Memory: the bulk write holds at most storage::kBulkSpillBytes before it
// moves to table files, so what the writer holds does not grow with the
// file; what grows is the new subject ids (they enter the writer's subject
// index at once and leave it if the ingest does not commit) and new
// dictionary values.
//
// Blocks: the calling thread fills a block; a full one is handed to the
// writer's own thread, which looks its subjects up, encodes it and stages it
// while the caller fills the next (one waits at most). Its error is
// returned by a later Stage, by Sync or by Finish.
//
// Thread safety: used under the engine's write_mu_, by one thread at a time.
#ifndef FEDSHARE_NODE_ENGINE_INGEST_WRITER_H_
#define FEDSHARE_NODE_ENGINE_INGEST_WRITER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fedshare/v1/admin.pb.h"
#include "node/engine/engine.h"
#include "node/engine/ingest_cells.h"
#include "node/storage/storage.h"

namespace fedshare::engine {

class DictionaryStaging;
class SubjectStaging;

class IngestWriter {
 public:
  // With `replace`, the dataset's rows are swapped for the staged ones.
  IngestWriter(Engine* engine, const DatasetDef& def, size_t ds, bool replace);
  ~IngestWriter();
  IngestWriter(const IngestWriter&) = delete;
  IngestWriter& operator=(const IngestWriter&) = delete;

  // Reads what the write builds on (the subject index, the tail block).
  absl::Status Start();
  // Stages a good row: cells[f] parsed and checked for every field.
  absl::Status Stage(const std::vector<Cell>& cells);
  // Waits until every full block handed over is staged, so that what the
  // writer holds and has staged is as if Stage had staged them itself; the
  // block thread's error, if any.
  absl::Status Sync() { return WaitForBlocks(); }
  // Nothing will be written: drops what was staged; Stage does nothing more.
  void Stop();
  bool writing() const { return writing_; }
  // What the writer holds now (see Memory above).
  size_t held_bytes() const;
  size_t staged_bytes() const;  // the part that moves to files

  // Stages the last block and the meta keys of an ingest of `rows` rows from
  // a file with digest `file_sha256`, and sets the response's counts; with an
  // `outcome_key`, the response (without rejected rows) is stored under it.
  absl::Status Finish(uint64_t rows, const std::string& file_sha256,
                      const std::string& outcome_key, v1::IngestResponse* response);
  // Writes what Finish staged, then makes it the engine's state.
  absl::Status Commit();

 private:
  // A block being filled or staged, with the subject ids of its rows
  // whose ordinals are not looked up yet.
  struct BlockWork {
    ColumnBlock block;
    bool dirty = false;                // has rows not staged yet
    std::string ids;                   // the ids, one after another
    std::vector<uint32_t> ends;        // where each id ends in `ids`
    std::vector<uint32_t> hashes;      // SubjectIndex::Hash of each
    void Clear(int nfields);
  };
  struct BlockThread;  // stages full blocks (ingest_writer.cc)

  absl::Status StageReplace();
  // Hands the full block being filled to the block thread.
  absl::Status HandOver();
  // Until the block thread has staged every block handed over; its error.
  absl::Status WaitForBlocks();
  // The block side: stages `work` (a full block, by the block thread; the
  // last one, by Finish) and moves on to the next block number if full.
  absl::Status FlushBlock(BlockWork& work);
  // Gives `work`'s rows their subjects' ordinals, all at once
  // (SubjectStaging::Ordinals), and stages the new subjects' keys: one
  // lookup at a time waited for a cache miss or two.
  absl::Status ResolveSubjects(BlockWork& work);
  // Makes what the block side holds readable by held_bytes().
  void Publish();
  // Stages a new subject's ordinal-by-id key while the new ids increase.
  absl::Status StageIdInOrder(absl::string_view id, uint32_t ordinal);

  Engine* engine_;
  const DatasetDef& def_;
  const size_t ds_;
  const int nfields_;
  const bool replace_;

  bool writing_ = true;
  std::unique_ptr<storage::BulkWrite> bulk_;
  int records_table_ = 0;
  int ordinals_table_ = 0;  // subject id by ordinal, as new ordinals come
  int ids_table_ = 0;       // ordinal by subject id, sorted at the end
  int legacy_table_ = 0;    // replace: deletes of subject-block keys
  int meta_table_ = 0;
  std::map<std::string, std::optional<std::string>> meta_;  // nullopt: delete
  size_t meta_bytes_ = 0;
  std::string key_;  // reused key buffer

  std::unique_ptr<SubjectStaging> subjects_;
  // Reused by ResolveSubjects.
  std::vector<absl::string_view> pending_views_;
  std::vector<uint32_t> pending_ordinals_;
  std::unique_ptr<bool[]> pending_added_;  // storage::kBlockRows
  // New subjects' ordinal-by-id keys go into ids_table_ as the subjects
  // come while their ids increase (so the commit need not write them all
  // after the last row, on the critical path); once one does not, the
  // table is cleared and Finish writes them all, sorted.
  bool ids_in_order_ = true;
  std::string last_new_id_;
  std::vector<std::unique_ptr<DictionaryStaging>> dicts_;
  storage::DatasetStats stats_;
  std::vector<uint64_t> present_;
  std::vector<uint64_t> present_before_;  // with replace: the dataset's before
  std::vector<uint32_t> old_blocks_;      // with replace: the blocks to delete
  int64_t rows_removed_ = 0;
  int64_t new_subjects_ = 0;
  BlockWork filling_;  // the caller's side
  uint32_t block_no_ = 0;
  uint32_t next_unwritten_ = 0;  // one past the highest block number staged
  // block_no_ is not stored yet: writing it adds a block and its load day.
  bool block_is_new_ = true;
  int64_t load_day_ = 0;  // UTC day of this ingest (meta 0x17)
  // Published by the block side (Publish).
  std::atomic<size_t> staged_bytes_{0};
  std::atomic<size_t> block_side_bytes_{0};
  std::unique_ptr<BlockThread> blocks_;  // last: stops before the rest goes
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_INGEST_WRITER_H_
