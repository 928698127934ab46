# The SQL-subset parser and result formatting (DESIGN §8), included from
# client/CMakeLists.txt. Both are pure: protobuf messages in, text out.
add_library(fedshare_sql sql.cc format.cc)
add_library(fedshare::sql ALIAS fedshare_sql)
# One library, two names: callers say which part they use.
add_library(fedshare::format ALIAS fedshare_sql)
target_include_directories(fedshare_sql PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fedshare_sql
  PUBLIC fedshare::proto_messages fedshare::common absl::status absl::statusor absl::strings
  PRIVATE fmt::fmt)

fedshare_test(sql_test SOURCES sql_test.cc LIBS fedshare::sql fedshare::testing)
fedshare_test(format_test SOURCES format_test.cc LIBS fedshare::format fedshare::testing)
