#include "node/engine/ingest_parse.h"

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/time_util.h"
#include "node/engine/csv.h"

namespace fedshare::engine {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DetectCsvDelimiterTest, PicksTheSeparatorOfTheHeaderOutsideQuotes) {
  EXPECT_EQ(DetectCsvDelimiter("a,b,c\n1;2;3;4;5\n"), ',');
  EXPECT_EQ(DetectCsvDelimiter("\xEF\xBB\xBF\r\nParticipant ID;\"a,b,c\";x\n"), ';');
  EXPECT_EQ(DetectCsvDelimiter("a\tb\tc\n"), '\t');
  EXPECT_EQ(DetectCsvDelimiter("single\n"), ',');
  EXPECT_EQ(DetectCsvDelimiter(""), ',');
}

TEST(CsvReaderTest, ReadsAnotherDelimiter) {
  CsvReader reader("a;\"b;c\";d,e\n", ';');
  CsvRecord record;
  ASSERT_TRUE(reader.Next(&record));
  std::vector<std::string> fields;
  for (const CsvField& f : record.fields) fields.push_back(f.value);
  EXPECT_THAT(fields, ElementsAre("a", "b;c", "d,e"));
}

TEST(ParseDelimiterTest, AcceptsOnlyKnownSeparators) {
  EXPECT_EQ(*ParseDelimiter(""), '\0');
  EXPECT_EQ(*ParseDelimiter(";"), ';');
  EXPECT_EQ(*ParseDelimiter("\t"), '\t');
  EXPECT_THAT(ParseDelimiter(";;").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ParseDelimiter("x").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(DateFormatTest, ParsesDayFirstAndMonthFirstAndRefusesBadFormats) {
  EXPECT_EQ(*ParseDateWithFormat("31/12/2024", "%d/%m/%Y"), *ParseDateDays("2024-12-31"));
  EXPECT_EQ(*ParseDateWithFormat("1/2/2024", "%d/%m/%Y"), *ParseDateDays("2024-02-01"));
  EXPECT_EQ(*ParseDateWithFormat("12/31/2024", "%m/%d/%Y"), *ParseDateDays("2024-12-31"));
  EXPECT_EQ(*ParseDateWithFormat("2024-12-31", ""), *ParseDateDays("2024-12-31"));
  EXPECT_FALSE(ParseDateWithFormat("31/12/2024", "%m/%d/%Y").ok());
  EXPECT_FALSE(ParseDateWithFormat("31/12/2024x", "%d/%m/%Y").ok());
  EXPECT_FALSE(ParseDateWithFormat("31/12/24", "%d/%m/%Y").ok());
  EXPECT_OK(ValidateDateFormat("%d.%m.%Y"));
  EXPECT_THAT(ValidateDateFormat("%d/%m"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ValidateDateFormat("%d/%m/%Y %H"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ValidateDateFormat("%"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(ParseBoolTextTest, AcceptsYesNoInAnyCase) {
  int64_t v = -1;
  for (const char* yes : {"yes", "YES", "Y", "y", "True", "1"}) {
    EXPECT_TRUE(ParseBoolText(yes, &v)) << yes;
    EXPECT_EQ(v, 1);
  }
  for (const char* no : {"no", "No", "N", "n", "FALSE", "0"}) {
    EXPECT_TRUE(ParseBoolText(no, &v)) << no;
    EXPECT_EQ(v, 0);
  }
  EXPECT_FALSE(ParseBoolText("maybe", &v));
  EXPECT_FALSE(ParseBoolText("", &v));
}

TEST(ListValuesTest, IsBounded) {
  std::vector<std::string> many;
  for (int i = 0; i < 25; ++i) many.push_back("v" + std::to_string(i));
  std::string listed = ListValues(many);
  EXPECT_THAT(listed, HasSubstr("v0, v1"));
  EXPECT_THAT(listed, HasSubstr("v19 and 5 more"));
}

TEST(ColumnResolverTest, MatchesIgnoringCaseAndSpacesAndAppliesMappings) {
  v1::DatasetSchema schema;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        name: "d"
        fields { name: "participant_id" type: CATEGORY role: SUBJECT }
        fields { name: "cohort_year" type: INT64 role: DIMENSION }
        fields { name: "ok" type: BOOL role: DIMENSION }
      )pb",
      &schema));
  auto r = ColumnResolver::Create(schema, {{"Participant", "participant_id"}});
  ASSERT_OK(r.status());
  EXPECT_EQ(r->Resolve("Cohort Year"), 1);
  EXPECT_EQ(r->Resolve(" COHORT_YEAR "), 1);
  EXPECT_EQ(r->Resolve("participant"), 0);
  EXPECT_EQ(r->Resolve("Participant ID"), 0);
  EXPECT_EQ(r->Resolve("other"), -1);
  EXPECT_THAT(r->UnusedMappings({"participant", "ok"}), ::testing::IsEmpty());
  EXPECT_THAT(r->UnusedMappings({"ok"}), ElementsAre("Participant"));

  EXPECT_THAT(ColumnResolver::Create(schema, {{"X", "nope"}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has no field 'nope'")));
  EXPECT_THAT(ColumnResolver::Create(schema, {{"A", "ok"}, {"a", "cohort_year"}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

}  // namespace
}  // namespace fedshare::engine
