// Whole-file reads and crash-safe writes, whole or in pieces.
#ifndef FEDSHARE_NODE_COMMON_FILES_H_
#define FEDSHARE_NODE_COMMON_FILES_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fedshare {

// Reads a whole file. NOT_FOUND if missing, INVALID_ARGUMENT if `path` is a
// directory; other errors name the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `contents` to `path` through a temporary file, fsync and rename, so a
// reader sees the old or the new file whole. `mode` is the new file's mode.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents, int mode = 0644);

// A file written in pieces and put in place whole: Append writes to `temp`,
// Commit syncs it and renames it to `path`, and a writer destroyed without a
// Commit removes `temp`. `temp` is made new with `mode` (the umask applies),
// whatever was there before. Errors are FAILED_PRECONDITION naming the file.
//
//   ASSIGN_OR_RETURN(auto out, AtomicFileWriter::Open(path, path + ".partial", 0600));
//   RETURN_IF_ERROR(out->Append(chunk));  // ... as often as needed
//   RETURN_IF_ERROR(out->Commit());
class AtomicFileWriter {
 public:
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Open(std::string path, std::string temp,
                                                                int mode);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Append(absl::string_view data);
  absl::Status Commit();

 private:
  AtomicFileWriter(std::string path, std::string temp, int fd)
      : path_(std::move(path)), temp_(std::move(temp)), fd_(fd) {}
  std::string path_;
  std::string temp_;
  int fd_;  // -1 once committed or failed
};

}  // namespace fedshare

#endif  // FEDSHARE_NODE_COMMON_FILES_H_
