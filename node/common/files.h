// Whole-file reads and crash-safe writes.
#ifndef FEDSHARE_NODE_COMMON_FILES_H_
#define FEDSHARE_NODE_COMMON_FILES_H_

#include <string>

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

}  // namespace fedshare

#endif  // FEDSHARE_NODE_COMMON_FILES_H_
