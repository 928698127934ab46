#include "node/common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace fedshare {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  // An ifstream opens a directory and reads it as empty: say what it is.
  if (struct stat st; ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is a directory, not a file: name the file inside it"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no file at ", path));
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return out.str();
}

absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents, int mode) {
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> out =
      AtomicFileWriter::Open(path, absl::StrCat(path, ".tmp.", getpid()), mode);
  if (!out.ok()) return out.status();
  if (absl::Status s = (*out)->Append(contents); !s.ok()) return s;
  return (*out)->Commit();
}

absl::StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Open(std::string path,
                                                                         std::string temp,
                                                                         int mode) {
  // A file left at `temp` (a crashed run) would keep its own mode through
  // O_TRUNC; O_EXCL also refuses a link planted there.
  ::unlink(temp.c_str());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", temp, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<AtomicFileWriter>(
      new AtomicFileWriter(std::move(path), std::move(temp), fd));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(temp_.c_str());
}

absl::Status AtomicFileWriter::Append(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(temp_, " is closed"));
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd_);
      fd_ = -1;
      ::unlink(temp_.c_str());
      return absl::FailedPreconditionError(
          absl::StrCat("cannot write ", temp_, ": ", std::strerror(e)));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(temp_, " is closed"));
  const bool synced = ::fsync(fd_) == 0;
  const bool closed = ::close(fd_) == 0;
  fd_ = -1;
  if (!synced || !closed) {
    ::unlink(temp_.c_str());
    return absl::FailedPreconditionError(absl::StrCat("cannot sync ", temp_));
  }
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    ::unlink(temp_.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("cannot rename ", temp_, " to ", path_, ": ", std::strerror(e)));
  }
  return absl::OkStatus();
}

}  // namespace fedshare
