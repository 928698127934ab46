// A fresh folder for one test, under ::testing::TempDir(), removed with all it
// holds when the ScopedTempDir is destroyed. Test-only (fedshare::testing).
//
//   class StoreTest : public ::testing::Test {
//    protected:
//     ScopedTempDir dir_{"store_test"};  // before anything holding files in it
//     std::unique_ptr<storage::Storage> storage_;
//   };
//   ... storage::Storage::Create(dir_.path(), ...);
//   ... WriteFileAtomic(dir_.Sub("bundle.pem"), pem);
//
// Members are destroyed in reverse order of declaration, so a store declared
// after its folder is closed before the folder is removed. The integration
// tests' tests/test_env.h has its own TempDir with more (Write) on top.
#ifndef FEDSHARE_NODE_COMMON_TEST_TEMP_DIR_H_
#define FEDSHARE_NODE_COMMON_TEST_TEMP_DIR_H_

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace fedshare::testing {

class ScopedTempDir {
 public:
  // Makes ::testing::TempDir() + "<prefix>_XXXXXX". If that fails, the current
  // test fails (non-fatally, with the errno text) and path() is the template,
  // which the destructor leaves alone since this object did not make it.
  explicit ScopedTempDir(absl::string_view prefix)
      : path_(absl::StrCat(::testing::TempDir(), prefix, "_XXXXXX")) {
    std::string made = path_;
    if (mkdtemp(made.data()) == nullptr) {
      const int error = errno;
      ADD_FAILURE() << "mkdtemp(" << path_ << "): " << std::strerror(error);
      return;
    }
    path_ = std::move(made);
    made_ = true;
  }

  // Removes the folder and everything under it; errors are ignored, since a
  // test is over by now and a leftover folder must not fail it.
  ~ScopedTempDir() {
    if (!made_) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name; `name` may itself hold slashes ("ca/ca.pem").
  std::string Sub(absl::string_view name) const { return absl::StrCat(path_, "/", name); }

 private:
  std::string path_;
  bool made_ = false;
};

}  // namespace fedshare::testing

#endif  // FEDSHARE_NODE_COMMON_TEST_TEMP_DIR_H_
