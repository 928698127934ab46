# Combination of partners' answers (DESIGN §10), included from
# node/federation/CMakeLists.txt. Messages only: no gRPC header, no I/O.
add_library(fedshare_combine combine.cc)
add_library(fedshare::combine ALIAS fedshare_combine)
target_include_directories(fedshare_combine PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fedshare_combine
  PUBLIC fedshare::proto_messages fedshare::policy absl::span absl::strings)

fedshare_test(combine_test SOURCES combine_test.cc LIBS fedshare::combine fedshare::testing)
