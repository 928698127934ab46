// An ingest fed as its file arrives, so the node never holds the file whole
// (Engine::StartIngest; errors, canonical forms and guarantees as for
// Engine::Ingest in engine.h).
//
//   FEDSHARE_ASSIGN_OR_RETURN(std::unique_ptr<IngestSession> session,
//       engine->StartIngest("program_outcomes", v1::CSV, /*skip_invalid=*/false, control));
//   while (ReadSlice(&slice)) FEDSHARE_RETURN_IF_ERROR(session->Append(slice));
//   FEDSHARE_ASSIGN_OR_RETURN(v1::IngestResponse r, session->Finish());
//
// Complete records are parsed as they arrive, good rows are encoded into
// column blocks as the blocks fill, and the file is hashed as it goes; only a
// record still being received is carried between slices. What the ingest
// writes is staged (IngestWriter: in memory while small, then in table files,
// storage::BulkWrite) and becomes visible only at Finish, all at once and
// synced: a session that fails, or is destroyed without Finish, writes
// nothing.
//
// Memory: the session accounts what it holds (the record in progress, the
// staged write while it is in memory, counted twice because the commit
// copies it once, new subject ids and dictionary values, rejected rows)
// against IngestControl::memory_budget_bytes; past it, Append or Finish
// fails with RESOURCE_EXHAUSTED and nothing is written. Besides that, it
// holds three column blocks (one being filled, one waiting, one being
// staged), one slice waiting to be parsed and at most 1000 row errors.
//
// Thread safety: thread-compatible (one caller). The session holds the
// engine's write lock from StartIngest until it is destroyed, and must be
// destroyed on the thread that started it, before its Engine. Its parser
// thread works under that lock on the caller's behalf, one slice at a time,
// and ends when the session does; so does the thread that stages full blocks
// (IngestWriter), which has staged every block of a slice when the slice is
// parsed.
#ifndef FEDSHARE_NODE_ENGINE_INGEST_H_
#define FEDSHARE_NODE_ENGINE_INGEST_H_

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/admin.pb.h"
#include "node/engine/engine.h"

namespace fedshare::engine {

class IngestSession {
 public:
  ~IngestSession();
  IngestSession(const IngestSession&) = delete;
  IngestSession& operator=(const IngestSession&) = delete;

  // Takes the next bytes of the file (any split, even inside a UTF-8
  // character or a CRLF). RESOURCE_EXHAUSTED when the budget is exceeded;
  // after any error the session only returns that error. A slice of at
  // least kParseAheadBytes is parsed on the session's own thread while the
  // caller receives the next one (at most one slice waits): its error is
  // returned by a later Append or by Finish.
  absl::Status Append(absl::string_view bytes);
  static constexpr size_t kParseAheadBytes = size_t{64} << 10;

  // The file has ended: parses its last record, then checks the idempotency
  // key and the duplicate-file digest and writes, as Engine::Ingest does.
  // Call at most once.
  absl::StatusOr<v1::IngestResponse> Finish();

  // The most bytes the session has held at once (see Memory above).
  size_t peak_held_bytes() const;

 private:
  friend class Engine;
  struct Parser;  // the thread that parses large slices (ingest.cc)
  explicit IngestSession(std::unique_ptr<IngestRun> run);
  // Waits until every slice handed to the parser is parsed; its first error.
  absl::Status Drain();
  std::unique_ptr<IngestRun> run_;
  std::unique_ptr<Parser> parser_;  // started by the first large slice
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_INGEST_H_
