// The dashboard page's files, embedded at build time by
// client/dashboard/embed.cmake from client/dashboard/ and the npm packages
// it installs (client/dashboard/package.json).
#ifndef FEDSHARE_CLIENT_DASHBOARD_ASSETS_H_
#define FEDSHARE_CLIENT_DASHBOARD_ASSETS_H_

#include <cstddef>

namespace fedshare::client {

struct EmbeddedFile {
  const char* path;  // as served, e.g. "/app.js"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

extern const EmbeddedFile kDashboardFiles[];
extern const size_t kDashboardFileCount;

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_DASHBOARD_ASSETS_H_
