// The oracle of a fuzz target, made explicit:
//
//   FEDSHARE_FUZZ_ASSERT(decoded.ok(), "an encoded block must decode");
//
// When the condition is false, prints "fuzz oracle failed: MSG (CONDITION) at
// FILE:LINE" to stderr and calls std::abort(), so libFuzzer keeps the input as
// a crash. MSG (anything that converts to std::string_view) is evaluated only
// on failure. Header-only, so targets that do not link fuzz_env can use it.
#ifndef FEDSHARE_TESTS_FUZZ_FUZZ_ASSERT_H_
#define FEDSHARE_TESTS_FUZZ_FUZZ_ASSERT_H_

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace fedshare::fuzz {

[[noreturn]] inline void OracleFailed(std::string_view msg, const char* condition, const char* file,
                                      int line) {
  std::fprintf(stderr, "fuzz oracle failed: %.*s (%s) at %s:%d\n", static_cast<int>(msg.size()),
               msg.data(), condition, file, line);
  std::abort();
}

}  // namespace fedshare::fuzz

#define FEDSHARE_FUZZ_ASSERT(condition, msg)                                 \
  do {                                                                       \
    if (!(condition)) {                                                      \
      ::fedshare::fuzz::OracleFailed((msg), #condition, __FILE__, __LINE__); \
    }                                                                        \
  } while (false)

#endif  // FEDSHARE_TESTS_FUZZ_FUZZ_ASSERT_H_
