// Identifier syntax shared by org ids and purpose ids.
#ifndef FEDSHARE_POLICY_IDS_H_
#define FEDSHARE_POLICY_IDS_H_

#include "absl/strings/string_view.h"

namespace fedshare::policy {

// True for [a-z0-9-]{1,63}: an org id (DESIGN §2) or a purpose id.
bool IsValidOrgId(absl::string_view id);

// True for [a-z][a-z0-9_]{0,62}: a dataset or field name.
bool IsValidName(absl::string_view name);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_IDS_H_
