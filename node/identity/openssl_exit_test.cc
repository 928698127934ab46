// A fedshare process must not run OpenSSL's own exit-time cleanup: gRPC's
// threads outlive main, and one that ends after that cleanup loses its
// thread-local OpenSSL state (LeakSanitizer's report in CI) or uses freed
// state. openssl_util.cc initialises OpenSSL without it, before main.
//
// The check runs in a fresh process (a death test re-executes this binary):
// an exit handler registered before anything touches OpenSSL runs after any
// handler OpenSSL registers later, so by then OpenSSL's cleanup has run if
// it was going to. The handler lets a worker thread that used OpenSSL end,
// as a gRPC thread does at exit, then uses OpenSSL once more.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/tls_files.h"

namespace fedshare::identity {
namespace {

std::string* g_dir = nullptr;
std::thread* g_worker = nullptr;
absl::Notification* g_release = nullptr;

// Runs at exit, after every handler registered later.
void LastAtExit() {
  g_release->Notify();
  g_worker->join();  // the worker's thread-local OpenSSL state goes with it
  const std::string ca = *g_dir + "/" + kCaCertFile;
  absl::Status still = CheckTlsFiles("", "", ca, "");
  std::filesystem::remove_all(*g_dir);
  if (!still.ok()) {
    std::fprintf(stderr, "OpenSSL was cleaned up before the process's threads ended: %s\n",
                 std::string(still.message()).c_str());
    std::_Exit(2);
  }
}

// The death test's child: nothing before this has used OpenSSL.
[[noreturn]] void UseOpenSslFromTwoThreadsThenExit(const std::string& dir) {
  g_dir = new std::string(dir);
  g_release = new absl::Notification;
  std::atexit(LastAtExit);
  if (!CreateCa("exit.test", dir, 1).ok()) std::_Exit(3);
  absl::Notification used;
  g_worker = new std::thread([&used] {
    // A bad certificate leaves this thread an OpenSSL error queue, as a
    // failed handshake leaves a gRPC thread one.
    if (CheckTlsPem("", "", "not a certificate").ok()) std::_Exit(5);
    used.Notify();
    g_release->WaitForNotification();
  });
  used.WaitForNotification();
  std::exit(0);
}

TEST(OpenSslExitTest, OpenSslOutlivesThreadsStillRunningAtExit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string dir =
      std::filesystem::path(::testing::TempDir()) / ("openssl_exit_" + std::to_string(::getpid()));
  EXPECT_EXIT(UseOpenSslFromTwoThreadsThenExit(dir), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace fedshare::identity
