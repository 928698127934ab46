// FederatedAggregateStream's progress events: every partner once, in order,
// split by size, each event counting its own partners.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "node/service/federation_service.h"

namespace fedshare::service {
namespace {

std::vector<v1::PartnerCoverage> Partners(int n, size_t reason_bytes) {
  std::vector<v1::PartnerCoverage> partners(n);
  for (int i = 0; i < n; ++i) {
    partners[i].set_org_id(absl::StrCat("org-", i));
    partners[i].set_state(v1::PartnerCoverage::REFUSED);
    partners[i].set_reason(std::string(reason_bytes, 'r'));
  }
  return partners;
}

// The partners of `events` in order, checking each event's counts.
std::vector<std::string> Unpack(const std::vector<v1::FederatedAggregateEvent>& events,
                                int finished_before, int asked) {
  std::vector<std::string> orgs;
  int finished = finished_before;
  for (const v1::FederatedAggregateEvent& e : events) {
    EXPECT_TRUE(e.has_progress());
    EXPECT_GT(e.progress().partners_size(), 0);
    for (const v1::PartnerCoverage& c : e.progress().partners()) orgs.push_back(c.org_id());
    finished += e.progress().partners_size();
    EXPECT_EQ(e.progress().finished(), finished);
    EXPECT_EQ(e.progress().asked(), asked);
  }
  return orgs;
}

TEST(ProgressEventsTest, SmallBatchesGoInOneEvent) {
  const std::vector<v1::FederatedAggregateEvent> events =
      ProgressEvents(Partners(40, 10), /*finished=*/50, /*asked=*/100, size_t{1} << 20);
  ASSERT_EQ(events.size(), 1u);
  const std::vector<std::string> orgs = Unpack(events, 10, 100);
  ASSERT_EQ(orgs.size(), 40u);
  EXPECT_EQ(orgs.front(), "org-0");
  EXPECT_EQ(orgs.back(), "org-39");
}

TEST(ProgressEventsTest, LargeBatchesAreSplitBySizeKeepingEveryPartnerInOrder) {
  // About 1 KB a partner, 2,000 partners, parts of 64 KiB: about 32 events.
  constexpr size_t kPart = 64 << 10;
  const std::vector<v1::FederatedAggregateEvent> events =
      ProgressEvents(Partners(2000, 1000), 2000, 5000, kPart);
  EXPECT_GT(events.size(), 20u);
  for (const v1::FederatedAggregateEvent& e : events) {
    EXPECT_LE(e.progress().ByteSizeLong(), kPart + 64) << "an event past its part";
  }
  const std::vector<std::string> orgs = Unpack(events, 0, 5000);
  ASSERT_EQ(orgs.size(), 2000u);
  for (int i = 0; i < 2000; ++i) EXPECT_EQ(orgs[i], absl::StrCat("org-", i));
}

TEST(ProgressEventsTest, OnePartnerLargerThanAPartGoesAlone) {
  std::vector<v1::PartnerCoverage> partners = Partners(3, 10);
  partners[1].set_reason(std::string(4096, 'x'));
  const std::vector<v1::FederatedAggregateEvent> events =
      ProgressEvents(std::move(partners), 3, 3, 1024);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(Unpack(events, 0, 3), (std::vector<std::string>{"org-0", "org-1", "org-2"}));
}

TEST(ProgressEventsTest, NoPartnersNoEvent) { EXPECT_TRUE(ProgressEvents({}, 7, 9, 1024).empty()); }

}  // namespace
}  // namespace fedshare::service
