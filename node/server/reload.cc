#include "node/server/reload.h"

#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/message_differencer.h"

namespace fedshare::server {

bool AppliedOnReload(const std::string& field_name) {
  return field_name == "peers" || field_name == "agreements";
}

std::vector<std::string> SettingsNeedingRestart(const v1::NodeConfig& running,
                                                const v1::NodeConfig& next) {
  const google::protobuf::Descriptor* d = v1::NodeConfig::descriptor();
  const google::protobuf::Reflection* r = v1::NodeConfig::GetReflection();
  std::vector<std::string> changed;
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = d->field(i);
    if (AppliedOnReload(field->name())) continue;
    // Compare the one field: copies with every other field cleared.
    v1::NodeConfig a = running;
    v1::NodeConfig b = next;
    for (int j = 0; j < d->field_count(); ++j) {
      if (j == i) continue;
      r->ClearField(&a, d->field(j));
      r->ClearField(&b, d->field(j));
    }
    if (!google::protobuf::util::MessageDifferencer::Equals(a, b)) {
      changed.push_back(field->name());
    }
  }
  return changed;
}

}  // namespace fedshare::server
