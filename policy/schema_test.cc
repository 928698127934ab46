#include "policy/schema.h"

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

v1::DatasetSchema Parse(const std::string& text) {
  v1::DatasetSchema s;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &s)) << text;
  return s;
}

constexpr char kOutcomes[] = R"pb(
  name: "program_outcomes"
  fields { name: "subject_id" type: CATEGORY role: SUBJECT }
  fields {
    name: "program"
    type: CATEGORY
    role: DIMENSION
    categories: [ "a", "b" ]
    public_values: true
  }
  fields { name: "cohort_year" type: INT64 role: DIMENSION }
  fields { name: "age" type: INT64 role: DIMENSION granularity: 5 }
  fields { name: "outcome_score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
  fields { name: "notes" type: CATEGORY role: PRIVATE }
)pb";

TEST(SchemaTest, ValidSchemaPasses) {
  const v1::DatasetSchema s = Parse(kOutcomes);
  EXPECT_OK(ValidateSchema(s));
  EXPECT_EQ(SubjectFieldIndex(s), 0);
  ASSERT_NE(FindField(s, "age"), nullptr);
  EXPECT_EQ(FindField(s, "age")->granularity(), 5);
  EXPECT_EQ(FindField(s, "nope"), nullptr);
}

void ExpectInvalid(const std::string& text, const std::string& needle) {
  EXPECT_THAT(ValidateSchema(Parse(text)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(needle)))
      << text;
}

TEST(SchemaTest, RefusesBadNames) {
  ExpectInvalid(R"pb(name: "Outcomes"
                     fields { name: "s" type: INT64 role: SUBJECT })pb",
                "dataset name 'Outcomes'");
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "9s" type: INT64 role: SUBJECT })pb",
                "dataset 'd' field '9s': invalid name");
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields { name: "s" type: INT64 role: DIMENSION })pb",
                "field 's': declared twice");
}

TEST(SchemaTest, RefusesMissingTypeOrRole) {
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" role: SUBJECT })pb",
                "field 's': no type");
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields { name: "x" type: INT64 })pb",
                "field 'x': no role");
}

TEST(SchemaTest, RequiresExactlyOneSubjectOfSuitableType) {
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "x" type: INT64 role: DIMENSION })pb",
                "has 0 SUBJECT fields");
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields { name: "t" type: INT64 role: SUBJECT })pb",
                "has 2 SUBJECT fields");
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: DOUBLE role: SUBJECT })pb",
                "SUBJECT field must be INT64 or CATEGORY, not DOUBLE");
}

TEST(SchemaTest, MeasureRules) {
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields { name: "m" type: CATEGORY role: MEASURE })pb",
                "field 'm': a MEASURE field must be INT64 or DOUBLE");
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields { name: "m" type: DOUBLE role: MEASURE lower: 5 upper: 1 })pb",
                "field 'm': bounds [5, 1]");
}

TEST(SchemaTest, CategoryRules) {
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields { name: "x" type: INT64 role: DIMENSION categories: "a" })pb",
                "field 'x': categories are only allowed on CATEGORY");
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields {
                       name: "c"
                       type: CATEGORY
                       role: DIMENSION
                       categories: [ "a", "a" ]
                     })pb",
                "category 'a' is listed twice");
}

TEST(SchemaTest, GranularityAndPublicValues) {
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields { name: "x" type: INT64 role: DIMENSION granularity: -1 })pb",
                "field 'x': granularity must be");
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields { name: "x" type: INT64 role: DIMENSION granularity: 2.5 })pb",
                "must be a whole number");
  EXPECT_OK(ValidateSchema(
      Parse(R"pb(name: "d"
                 fields { name: "s" type: INT64 role: SUBJECT }
                 fields { name: "x" type: DOUBLE role: DIMENSION granularity: 2.5 })pb")));
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields {
                       name: "m"
                       type: INT64
                       role: MEASURE
                       lower: 0
                       upper: 9
                       public_values: true
                     })pb",
                "field 'm': public_values is only allowed on DIMENSION");
}

TEST(SchemaTest, MeasureMustDeclareBounds) {
  ExpectInvalid(R"pb(name: "d"
                     fields { name: "s" type: INT64 role: SUBJECT }
                     fields { name: "m" type: DOUBLE role: MEASURE })pb",
                "a MEASURE declares finite lower < upper");
}

TEST(SchemaEvolutionTest, AddingFieldsAtTheEndIsAllowed) {
  const v1::DatasetSchema stored = Parse(kOutcomes);
  v1::DatasetSchema next = stored;
  auto* f = next.add_fields();
  f->set_name("region");
  f->set_type(v1::FieldSchema::CATEGORY);
  f->set_role(v1::FieldSchema::DIMENSION);
  EXPECT_OK(CheckSchemaEvolution(stored, next));
  EXPECT_OK(CheckSchemaEvolution(stored, stored));
}

TEST(SchemaEvolutionTest, RoleBoundsAndCategoriesMayChange) {
  const v1::DatasetSchema stored = Parse(kOutcomes);
  v1::DatasetSchema next = stored;
  next.mutable_fields(2)->set_role(v1::FieldSchema::PRIVATE);
  next.mutable_fields(4)->set_upper(200);
  next.mutable_fields(1)->add_categories("c");
  next.mutable_fields(1)->set_description("which program");
  EXPECT_OK(CheckSchemaEvolution(stored, next));
}

TEST(SchemaEvolutionTest, TypeChangeIsRefused) {
  const v1::DatasetSchema stored = Parse(kOutcomes);
  v1::DatasetSchema next = stored;
  next.mutable_fields(2)->set_type(v1::FieldSchema::DOUBLE);
  EXPECT_THAT(CheckSchemaEvolution(stored, next),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("field 'cohort_year'"),
                             HasSubstr("changed type from INT64 to DOUBLE"))));
}

TEST(SchemaEvolutionTest, RemovalIsRefused) {
  const v1::DatasetSchema stored = Parse(kOutcomes);
  v1::DatasetSchema next = stored;
  next.mutable_fields()->DeleteSubrange(5, 1);
  EXPECT_THAT(CheckSchemaEvolution(stored, next),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("field 'notes'"), HasSubstr("was removed"))));
  next = stored;
  next.mutable_fields(3)->set_name("age_years");
  EXPECT_THAT(CheckSchemaEvolution(stored, next), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                           HasSubstr("field 'age' was removed")));
}

TEST(SchemaEvolutionTest, ReorderingIsRefused) {
  const v1::DatasetSchema stored = Parse(kOutcomes);
  v1::DatasetSchema next = stored;
  next.mutable_fields()->SwapElements(2, 3);
  EXPECT_THAT(CheckSchemaEvolution(stored, next),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("field 'cohort_year'"), HasSubstr("moved"))));
}

TEST(SchemaEvolutionTest, SubjectFieldAndNameAreFixed) {
  const v1::DatasetSchema stored = Parse(kOutcomes);
  v1::DatasetSchema next = stored;
  next.mutable_fields(0)->set_role(v1::FieldSchema::DIMENSION);
  next.mutable_fields(1)->set_role(v1::FieldSchema::SUBJECT);
  EXPECT_THAT(CheckSchemaEvolution(stored, next),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("field 'subject_id'")));
  next = stored;
  next.set_name("other");
  EXPECT_THAT(CheckSchemaEvolution(stored, next),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("renamed")));
}

TEST(SchemaTest, Names) {
  EXPECT_EQ(TypeName(v1::FieldSchema::DATE), "DATE");
  EXPECT_EQ(RoleName(v1::FieldSchema::MEASURE), "MEASURE");
  EXPECT_EQ(TypeName(static_cast<v1::FieldSchema::Type>(42)), "TYPE_42");
}

}  // namespace
}  // namespace fedshare::policy
