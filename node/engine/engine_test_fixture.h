// The engine tests' fixture: a "people" dataset over a real RocksDB store in
// a temp folder, with the canonical CSV and consent files the tests share.
// Test-only.
#ifndef FEDSHARE_NODE_ENGINE_ENGINE_TEST_FIXTURE_H_
#define FEDSHARE_NODE_ENGINE_ENGINE_TEST_FIXTURE_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_macros.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/engine/engine.h"
#include "node/engine/ingest.h"
#include "node/engine/query_executor.h"
#include "node/storage/fault_injector.h"
#include "policy/query_rules.h"

namespace fedshare::engine::engine_test {

using ::fedshare::testing::ScopedTempDir;
using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kSchema[] = R"pb(
  name: "people"
  fields { name: "pid" type: CATEGORY role: SUBJECT }
  fields { name: "name" type: CATEGORY role: PRIVATE }
  fields { name: "program" type: CATEGORY role: DIMENSION categories: "alpha" categories: "beta" }
  fields { name: "age" type: INT64 role: DIMENSION }
  fields { name: "score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
  fields { name: "visits" type: INT64 role: MEASURE lower: 0 upper: 200 }
  fields { name: "active" type: BOOL role: DIMENSION }
  fields { name: "joined" type: DATE role: DIMENSION }
)pb";

constexpr char kHeader[] = "pid,name,program,age,score,visits,active,joined\n";

inline v1::DatasetSchema Schema(const char* text = kSchema) {
  v1::DatasetSchema schema;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &schema));
  return schema;
}

inline std::vector<v1::Purpose> Purposes() {
  v1::Purpose research, evaluation;
  research.set_id("research");
  evaluation.set_id("program-evaluation");
  evaluation.set_parent("research");
  return {research, evaluation};
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(Open()); }
  void TearDown() override {
    engine_.reset();
    storage_.reset();
  }

  absl::Status Open(std::vector<v1::DatasetSchema> datasets = {Schema()},
                    storage::FaultInjector* faults = nullptr) {
    engine_.reset();
    storage_.reset();
    storage::StorageOptions storage_options;
    storage_options.fault_injector = faults;
    auto storage = storage::Storage::Create(dir_.path(), storage_options);
    if (!storage.ok()) return storage.status();
    storage_ = *std::move(storage);
    EngineOptions options;
    options.org_id = "partner-a";
    options.purposes = Purposes();
    options.datasets = std::move(datasets);
    options.clock = &clock_;
    auto engine = Engine::Create(storage_.get(), options);
    if (!engine.ok()) return engine.status();
    engine_ = *std::move(engine);
    return absl::OkStatus();
  }

  std::string Export(v1::DataFormat format, absl::string_view dataset = "people") {
    std::string out;
    absl::Status s = engine_->Export(dataset, format, [&](absl::string_view chunk, int64_t) {
      out.append(chunk.data(), chunk.size());
      return absl::OkStatus();
    });
    EXPECT_OK(s);
    return out;
  }

  v1::IngestResponse Ingest(absl::string_view data, v1::DataFormat format = v1::CSV,
                            bool skip_invalid = false) {
    absl::StatusOr<v1::IngestResponse> r = engine_->Ingest("people", format, skip_invalid, data);
    EXPECT_OK(r);
    return r.ok() ? *r : v1::IngestResponse();
  }

  uint64_t Rows() {
    auto reader = engine_->OpenReader("people");
    EXPECT_OK(reader);
    return reader.ok() ? (*reader)->rows() : 0;
  }

  ScopedTempDir dir_{"engine_test"};
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};  // 2026-01-01
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<Engine> engine_;
};

constexpr char kCanonicalCsv[] =
    "pid,name,program,age,score,visits,active,joined\n"
    "p1,Ana,alpha,34,71.5,12,true,2024-03-01\n"
    "p2,\"Smith, Jo\",beta,-3,0.1,0,false,1969-12-31\n"
    "p3,\"She said \"\"hi\"\"\",,,,,,\n"
    "p4,\"two\nlines\r\nhere\",alpha,0,100,200,true,2000-02-29\n"
    "p5,Zoë 名前 🙂,beta,9223372036854775807,3.141592653589793,7,false,2025-12-31\n"
    "p6,\"\",alpha,1,1e-07,1,true,\n"
    "p1,Ana,beta,35,99.99999999999999,,false,2024-03-02\n";

constexpr char kConsent[] =
    "subject,purpose,event,time,valid_until,scope\n"
    "p1,program-evaluation,GIVEN,2025-01-01,,\n"
    "p2,research,GIVEN,2025-01-01T10:00:00Z,2026-06-01,partner-a;foundation\n"
    "p3,program-evaluation,GIVEN,2025-01-01,,\n"
    "p3,program-evaluation,WITHDRAWN,2025-06-01,,\n"
    "p4,research,REFUSED,2025-01-01,,\n"
    "p5,program-evaluation,GIVEN,2025-01-01,2025-12-01,\n"
    "p6,program-evaluation,GIVEN,2025-01-01,,other-org\n"
    "only-consent,research,GIVEN,2025-01-01,,\n";

}  // namespace fedshare::engine::engine_test

#endif  // FEDSHARE_NODE_ENGINE_ENGINE_TEST_FIXTURE_H_
