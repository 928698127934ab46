// GoogleTest matchers for absl::Status, missing from Debian 12's Abseil.
//
//   EXPECT_OK(DoThing());
//   EXPECT_THAT(DoThing(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("x")));
//   ASSERT_OK_AND_ASSIGN(auto v, Compute());
#ifndef FEDSHARE_NODE_COMMON_STATUS_MATCHERS_H_
#define FEDSHARE_NODE_COMMON_STATUS_MATCHERS_H_

#include <ostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_macros.h"

namespace fedshare::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& status = ::fedshare::testing::GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

}  // namespace fedshare::testing

#define EXPECT_OK(expr) \
  EXPECT_TRUE(::fedshare::testing::GetStatus(expr).ok()) << ::fedshare::testing::GetStatus(expr)
#define ASSERT_OK(expr)                                           \
  do {                                                            \
    const auto& fedshare_s_ = (expr);                             \
    ASSERT_TRUE(::fedshare::testing::GetStatus(fedshare_s_).ok()) \
        << ::fedshare::testing::GetStatus(fedshare_s_);           \
  } while (0)

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(FEDSHARE_STATUS_CONCAT_(fedshare_sor_, __LINE__), lhs, rexpr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  ASSERT_TRUE(statusor.ok()) << statusor.status();       \
  lhs = std::move(statusor).value()

#endif  // FEDSHARE_NODE_COMMON_STATUS_MATCHERS_H_
