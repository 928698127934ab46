#include "policy/schema.h"

#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"
#include "policy/ids.h"

namespace fedshare::policy {
namespace {

absl::Status FieldError(const v1::DatasetSchema& schema, const v1::FieldSchema& field,
                        absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("dataset '", schema.name(), "' field '", field.name(), "': ", what));
}

absl::Status ValidateField(const v1::DatasetSchema& schema, const v1::FieldSchema& f) {
  if (!IsValidName(f.name())) {
    return FieldError(schema, f, "invalid name: use [a-z][a-z0-9_]{0,62}");
  }
  if (f.type() == v1::FieldSchema::TYPE_UNSPECIFIED || !v1::FieldSchema::Type_IsValid(f.type())) {
    return FieldError(schema, f, "no type: set INT64, DOUBLE, BOOL, CATEGORY or DATE");
  }
  if (f.role() == v1::FieldSchema::ROLE_UNSPECIFIED || !v1::FieldSchema::Role_IsValid(f.role())) {
    return FieldError(schema, f, "no role: set SUBJECT, DIMENSION, MEASURE or PRIVATE");
  }
  if (f.role() == v1::FieldSchema::SUBJECT && f.type() != v1::FieldSchema::INT64 &&
      f.type() != v1::FieldSchema::CATEGORY) {
    return FieldError(
        schema, f,
        absl::StrCat("a SUBJECT field must be INT64 or CATEGORY, not ", TypeName(f.type())));
  }
  if (f.role() == v1::FieldSchema::MEASURE) {
    if (f.type() != v1::FieldSchema::INT64 && f.type() != v1::FieldSchema::DOUBLE) {
      return FieldError(
          schema, f,
          absl::StrCat("a MEASURE field must be INT64 or DOUBLE, not ", TypeName(f.type())));
    }
    // Bounds limit what one person can add to a sum; a measure without them
    // would let a single outlier dominate every answer.
    if (!std::isfinite(f.lower()) || !std::isfinite(f.upper()) || f.lower() >= f.upper()) {
      return FieldError(schema, f,
                        absl::StrCat("bounds [", f.lower(), ", ", f.upper(),
                                     "] are invalid: a MEASURE declares finite lower < upper"));
    }
  }
  if (f.categories_size() > 0) {
    if (f.type() != v1::FieldSchema::CATEGORY) {
      return FieldError(schema, f, "categories are only allowed on CATEGORY fields");
    }
    absl::flat_hash_set<absl::string_view> seen;
    for (const std::string& c : f.categories()) {
      if (c.empty()) return FieldError(schema, f, "empty category: remove it");
      if (!seen.insert(c).second) {
        return FieldError(schema, f, absl::StrCat("category '", c, "' is listed twice"));
      }
    }
  }
  if (!(f.granularity() >= 0) || !std::isfinite(f.granularity())) {
    return FieldError(schema, f, "granularity must be a finite number >= 0");
  }
  if ((f.type() == v1::FieldSchema::INT64 || f.type() == v1::FieldSchema::DATE) &&
      f.granularity() != std::floor(f.granularity())) {
    return FieldError(schema, f,
                      absl::StrCat("granularity ", f.granularity(), " must be a whole number for ",
                                   TypeName(f.type())));
  }
  if (f.public_values() && f.role() != v1::FieldSchema::DIMENSION) {
    return FieldError(schema, f, "public_values is only allowed on DIMENSION fields");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSchema(const v1::DatasetSchema& schema) {
  if (!IsValidName(schema.name())) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset name '", schema.name(), "' is invalid: use [a-z][a-z0-9_]{0,62}"));
  }
  if (!v1::ConsentBasis_IsValid(schema.consent_basis())) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset '", schema.name(), "': unknown consent basis ",
                     schema.consent_basis(), ": use OPT_IN, OPT_OUT or NOT_PERSONAL"));
  }
  if (schema.retention_days() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset '", schema.name(), "': retention_days must be >= 0 (0 keeps records)"));
  }
  absl::flat_hash_set<absl::string_view> names;
  int subjects = 0;
  for (const v1::FieldSchema& f : schema.fields()) {
    FEDSHARE_RETURN_IF_ERROR(ValidateField(schema, f));
    if (!names.insert(f.name()).second) {
      return FieldError(schema, f, "declared twice: field names must be unique");
    }
    if (f.role() == v1::FieldSchema::SUBJECT) ++subjects;
  }
  if (subjects != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset '", schema.name(), "' has ", subjects,
                     " SUBJECT fields: declare exactly one (the subject id)"));
  }
  return absl::OkStatus();
}

absl::Status CheckSchemaEvolution(const v1::DatasetSchema& stored, const v1::DatasetSchema& next) {
  if (stored.name() != next.name()) {
    return absl::FailedPreconditionError(absl::StrCat("dataset '", stored.name(),
                                                      "' cannot be renamed to '", next.name(),
                                                      "': declare a new dataset instead"));
  }
  for (int i = 0; i < stored.fields_size(); ++i) {
    const v1::FieldSchema& old_field = stored.fields(i);
    const v1::FieldSchema* moved = FindField(next, old_field.name());
    if (moved == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("dataset '", stored.name(), "' field '", old_field.name(),
                       "' was removed: fields holding data cannot be removed or renamed"));
    }
    if (i >= next.fields_size() || next.fields(i).name() != old_field.name()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "dataset '", stored.name(), "' field '", old_field.name(), "' moved from position ",
          i + 1, ": keep existing fields in order and add new ones at the end"));
    }
    const v1::FieldSchema& new_field = next.fields(i);
    if (new_field.type() != old_field.type()) {
      return absl::FailedPreconditionError(
          absl::StrCat("dataset '", stored.name(), "' field '", old_field.name(),
                       "' changed type from ", TypeName(old_field.type()), " to ",
                       TypeName(new_field.type()), ": a field's type cannot change"));
    }
    // Stored records index subjects by this field, so it cannot change role.
    if ((old_field.role() == v1::FieldSchema::SUBJECT) !=
        (new_field.role() == v1::FieldSchema::SUBJECT)) {
      return absl::FailedPreconditionError(
          absl::StrCat("dataset '", stored.name(), "' field '", old_field.name(),
                       "' changed role from ", RoleName(old_field.role()), " to ",
                       RoleName(new_field.role()), ": the SUBJECT field cannot change"));
    }
  }
  return absl::OkStatus();
}

const v1::FieldSchema* FindField(const v1::DatasetSchema& schema, absl::string_view name) {
  for (const v1::FieldSchema& f : schema.fields()) {
    if (f.name() == name) return &f;
  }
  return nullptr;
}

int SubjectFieldIndex(const v1::DatasetSchema& schema) {
  for (int i = 0; i < schema.fields_size(); ++i) {
    if (schema.fields(i).role() == v1::FieldSchema::SUBJECT) return i;
  }
  return -1;
}

std::string TypeName(v1::FieldSchema::Type type) {
  const std::string& name = v1::FieldSchema::Type_Name(type);
  return name.empty() ? absl::StrCat("TYPE_", static_cast<int>(type)) : name;
}

std::string RoleName(v1::FieldSchema::Role role) {
  const std::string& name = v1::FieldSchema::Role_Name(role);
  return name.empty() ? absl::StrCat("ROLE_", static_cast<int>(role)) : name;
}

}  // namespace fedshare::policy
