#include "node/server/reload.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedshare::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(ReloadTest, PeersAndInlineAgreementsApplyWithoutRestart) {
  v1::NodeConfig running;
  running.set_org_id("foundation");
  running.add_peers()->set_org_id("partner-a");
  v1::NodeConfig next = running;
  next.add_peers()->set_org_id("partner-b");
  next.add_agreements()->set_id("eval");
  EXPECT_THAT(SettingsNeedingRestart(running, next), IsEmpty());
}

TEST(ReloadTest, EveryOtherChangedSettingNeedsARestart) {
  v1::NodeConfig running;
  running.set_org_id("foundation");
  running.set_data_dir("/var/lib/a");
  running.mutable_tls()->set_cert_file("a.pem");
  v1::NodeConfig next = running;
  next.set_data_dir("/var/lib/b");
  next.mutable_tls()->set_reload_interval_seconds(5);
  next.set_metrics_address("127.0.0.1:9464");
  EXPECT_THAT(SettingsNeedingRestart(running, next),
              ElementsAre("data_dir", "tls", "metrics_address"));
}

}  // namespace
}  // namespace fedshare::server
