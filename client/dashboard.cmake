# `fedshare dashboard` (client/dashboard.h): its HTTP server, and the page's
# files embedded into the binary. The chart library comes from npm
# (client/dashboard/package-lock.json), installed into the build folder at
# build time; no CDN is used at run time. Included from client/CMakeLists.txt
# after the fedshare executable.
find_program(FEDSHARE_NPM npm)
if(NOT FEDSHARE_NPM)
  message(FATAL_ERROR "npm is needed to build the dashboard page: run deploy/install-deps.sh")
endif()
set(FEDSHARE_DASHBOARD_SRC ${CMAKE_CURRENT_SOURCE_DIR}/dashboard)
# Also where the browser test finds playwright-core.
set(FEDSHARE_DASHBOARD_NPM_DIR ${CMAKE_CURRENT_BINARY_DIR}/dashboard CACHE INTERNAL "")
set(dash_npm ${FEDSHARE_DASHBOARD_NPM_DIR})
add_custom_command(
  OUTPUT ${dash_npm}/npm-ci.stamp
  COMMAND ${CMAKE_COMMAND} -E make_directory ${dash_npm}
  COMMAND ${CMAKE_COMMAND} -E copy ${FEDSHARE_DASHBOARD_SRC}/package.json
          ${FEDSHARE_DASHBOARD_SRC}/package-lock.json ${dash_npm}
  COMMAND sh ${FEDSHARE_DASHBOARD_SRC}/npm_ci.sh ${FEDSHARE_NPM}
  COMMAND ${CMAKE_COMMAND} -E touch ${dash_npm}/npm-ci.stamp
  WORKING_DIRECTORY ${dash_npm}
  DEPENDS ${FEDSHARE_DASHBOARD_SRC}/package.json ${FEDSHARE_DASHBOARD_SRC}/package-lock.json
          ${FEDSHARE_DASHBOARD_SRC}/npm_ci.sh
  COMMENT "npm ci: the dashboard's packages"
  VERBATIM)
add_custom_command(
  OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/dashboard_assets.cc
  COMMAND ${CMAKE_COMMAND} -DSRC_DIR=${FEDSHARE_DASHBOARD_SRC}
          -DMODULES_DIR=${dash_npm}/node_modules
          -DOUT=${CMAKE_CURRENT_BINARY_DIR}/dashboard_assets.cc
          -P ${FEDSHARE_DASHBOARD_SRC}/embed.cmake
  DEPENDS ${dash_npm}/npm-ci.stamp ${FEDSHARE_DASHBOARD_SRC}/embed.cmake
          ${FEDSHARE_DASHBOARD_SRC}/index.html ${FEDSHARE_DASHBOARD_SRC}/app.css
          ${FEDSHARE_DASHBOARD_SRC}/app.js ${FEDSHARE_DASHBOARD_SRC}/favicon.svg
  COMMENT "Embedding the dashboard page"
  VERBATIM)
add_custom_target(dashboard_npm DEPENDS ${dash_npm}/npm-ci.stamp)
add_library(fedshare_http_server http_server.cc)
add_library(fedshare::http_server ALIAS fedshare_http_server)
target_include_directories(fedshare_http_server PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fedshare_http_server PUBLIC absl::status absl::statusor absl::strings
  absl::synchronization absl::time)
fedshare_test(http_server_test SOURCES http_server_test.cc LIBS fedshare::http_server)

target_sources(fedshare PRIVATE dashboard.cc ${CMAKE_CURRENT_BINARY_DIR}/dashboard_assets.cc)
target_link_libraries(fedshare PRIVATE fedshare::http_server)

# The request handling without a browser (tests/dashboard_test.sh drives the
# page itself).
fedshare_test(dashboard_test
  SOURCES dashboard_test.cc dashboard.cc cli_common.cc ${CMAKE_CURRENT_BINARY_DIR}/dashboard_assets.cc
  LIBS fedshare::client fedshare::sql fedshare::format fedshare::identity fedshare::policy
       fedshare::http_server OpenSSL::Crypto)
target_include_directories(dashboard_test PRIVATE ${CLI11_INCLUDE_DIR})
