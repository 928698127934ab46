// Dataset schemas (DESIGN §6): validation and evolution.
#ifndef FEDSHARE_POLICY_SCHEMA_H_
#define FEDSHARE_POLICY_SCHEMA_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/types.pb.h"

namespace fedshare::policy {

// INVALID_ARGUMENT, naming dataset and field, unless: the name is
// [a-z][a-z0-9_]{0,62}; field names are such and unique; every field has a
// type and a role; exactly one SUBJECT field (INT64 or CATEGORY); MEASURE
// fields are INT64 or DOUBLE with finite lower < upper; categories only on
// CATEGORY fields, non-empty and unique; granularity >= 0 (a whole number for
// INT64 and DATE); public_values only on DIMENSION; consent basis known;
// retention_days >= 0.
absl::Status ValidateSchema(const v1::DatasetSchema& schema);

// Whether `next` may replace `stored` (a schema already holding data):
// fields may be added at the end; an existing field keeps its position, name
// and type (role, bounds, categories and description may change, except that
// the SUBJECT field stays the SUBJECT field); the dataset keeps its name.
// FAILED_PRECONDITION names the field and what changed.
absl::Status CheckSchemaEvolution(const v1::DatasetSchema& stored, const v1::DatasetSchema& next);

// The field named `name`, or nullptr.
const v1::FieldSchema* FindField(const v1::DatasetSchema& schema, absl::string_view name);

// Index of the SUBJECT field. REQUIRES: ValidateSchema(schema).ok().
int SubjectFieldIndex(const v1::DatasetSchema& schema);

// "INT64", "DIMENSION" etc. for messages.
std::string TypeName(v1::FieldSchema::Type type);
std::string RoleName(v1::FieldSchema::Role role);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_SCHEMA_H_
