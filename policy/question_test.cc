#include "policy/question.h"

#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace fedshare::policy {
namespace {

using ::google::protobuf::util::MessageDifferencer;

v1::AggregateQuery Q(const std::string& text) {
  v1::AggregateQuery q;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &q)) << text;
  return q;
}

TEST(CanonicalQuestionTest, OrderRepetitionQueryIdAndUnusedParametersDoNotCount) {
  const CanonicalQuestion a = CanonicalizeQuestion(Q(R"pb(
    query_id: "one"
    dataset: "d"
    purpose: "p"
    where {
      field: "region"
      op: IN
      values { string_value: "b" }
      values { string_value: "a" }
      values { string_value: "b" }
    }
    where {
      field: "age"
      op: GE
      values { int_value: 18 }
    }
    where {
      field: "age"
      op: GE
      values { int_value: 18 }
    }
    group_by: "program"
    aggregates { kind: COUNT lo: 3 }
    aggregates { kind: AVG field: "score" })pb"));
  const CanonicalQuestion b = CanonicalizeQuestion(Q(R"pb(
    query_id: "two"
    dataset: "d"
    purpose: "p"
    where {
      field: "age"
      op: GE
      values { int_value: 18 }
    }
    where {
      field: "region"
      op: IN
      values { string_value: "a" }
      values { string_value: "b" }
    }
    group_by: "program"
    aggregates { kind: COUNT }
    aggregates { kind: AVG field: "score" })pb"));
  EXPECT_TRUE(MessageDifferencer::Equals(a.query(), b.query())) << a.query().DebugString();
  EXPECT_EQ(a.query().query_id(), "");
  EXPECT_EQ(a.query().where_size(), 2);
  EXPECT_EQ(QuestionHash(a).size(), 32u);
  EXPECT_EQ(QuestionHash(a), QuestionHash(b));
}

TEST(CanonicalQuestionTest, InWithOneValueIsEqAndCanonicalizingTwiceChangesNothing) {
  const CanonicalQuestion in = CanonicalizeQuestion(Q(R"pb(
    dataset: "d"
    purpose: "p"
    where {
      field: "region"
      op: IN
      values { string_value: "a" }
      values { string_value: "a" }
    }
    aggregates { kind: HISTOGRAM field: "score" lo: -0.0 hi: 10 bins: 5 })pb"));
  ASSERT_EQ(in.query().where_size(), 1);
  EXPECT_EQ(in.query().where(0).op(), v1::Predicate::EQ);
  const CanonicalQuestion again = CanonicalizeQuestion(in.query());
  EXPECT_TRUE(MessageDifferencer::Equals(in.query(), again.query()));
  EXPECT_EQ(QuestionHash(in), QuestionHash(again));
}

TEST(CanonicalQuestionTest, DifferentQuestionsHashDifferently) {
  const std::string base = R"pb(dataset: "d"
                                purpose: "p"
                                where {
                                  field: "age"
                                  op: GE
                                  values { int_value: 18 }
                                }
                                group_by: "program"
                                aggregates { kind: COUNT })pb";
  const std::string h = QuestionHash(CanonicalizeQuestion(Q(base)));
  for (const char* other : {
           R"pb(dataset: "d"
                purpose: "q"
                where {
                  field: "age"
                  op: GE
                  values { int_value: 18 }
                }
                group_by: "program"
                aggregates { kind: COUNT })pb",
           R"pb(dataset: "d"
                purpose: "p"
                where {
                  field: "age"
                  op: GE
                  values { int_value: 19 }
                }
                group_by: "program"
                aggregates { kind: COUNT })pb",
           R"pb(dataset: "d"
                purpose: "p"
                where {
                  field: "age"
                  op: GT
                  values { int_value: 18 }
                }
                group_by: "program"
                aggregates { kind: COUNT })pb",
           R"pb(dataset: "d"
                purpose: "p"
                where {
                  field: "age"
                  op: GE
                  values { double_value: 18 }
                }
                group_by: "program"
                aggregates { kind: COUNT })pb",
           R"pb(dataset: "d"
                purpose: "p"
                where {
                  field: "age"
                  op: GE
                  values { int_value: 18 }
                }
                aggregates { kind: COUNT })pb",
           R"pb(dataset: "d"
                purpose: "p"
                where {
                  field: "age"
                  op: GE
                  values { int_value: 18 }
                }
                group_by: "program"
                aggregates { kind: COUNT_SUBJECTS })pb",
       }) {
    EXPECT_NE(QuestionHash(CanonicalizeQuestion(Q(other))), h) << other;
  }
}

TEST(CanonicalQuestionTest, ShapeKeepsNoPredicateValue) {
  const CanonicalQuestion q = CanonicalizeQuestion(Q(R"pb(
    dataset: "d"
    purpose: "p"
    where {
      field: "participant"
      op: EQ
      values { string_value: "P-0042" }
    }
    group_by: "program"
    aggregates { kind: COUNT })pb"));
  const v1::AggregateQuery shape = QuestionShape(q);
  ASSERT_EQ(shape.where_size(), 1);
  EXPECT_EQ(shape.where(0).field(), "participant");
  EXPECT_EQ(shape.where(0).op(), v1::Predicate::EQ);
  EXPECT_EQ(shape.where(0).values_size(), 0);
  EXPECT_EQ(shape.DebugString().find("P-0042"), std::string::npos);
  EXPECT_EQ(shape.group_by(0), "program");
}

}  // namespace
}  // namespace fedshare::policy
