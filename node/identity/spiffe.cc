#include "node/identity/spiffe.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fedshare::identity {
namespace {

constexpr absl::string_view kScheme = "spiffe://";

bool AllOf(absl::string_view s, absl::string_view extra) {
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              extra.find(c) != absl::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

absl::Status Bad(absl::string_view uri, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("'", uri, "' is not a fedshare SPIFFE ID (", why,
                   "); expected spiffe://<trust-domain>/org/<org_id>/node, .../operator/<name> or "
                   ".../analyst/<name>"));
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kNode:
      return "node";
    case Role::kOperator:
      return "operator";
    case Role::kAnalyst:
      return "analyst";
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  if (name == "node") return Role::kNode;
  if (name == "operator") return Role::kOperator;
  if (name == "analyst") return Role::kAnalyst;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "'; expected node, operator or analyst"));
}

std::string Identity::Describe() const {
  if (role == Role::kNode) return absl::StrCat("node of org ", org_id, " (", spiffe_id, ")");
  return absl::StrCat(RoleName(role), " ", name, " of org ", org_id, " (", spiffe_id, ")");
}

bool operator==(const Identity& a, const Identity& b) {
  return a.spiffe_id == b.spiffe_id && a.trust_domain == b.trust_domain && a.org_id == b.org_id &&
         a.role == b.role && a.name == b.name;
}

std::ostream& operator<<(std::ostream& os, const Identity& id) { return os << id.Describe(); }

bool IsValidTrustDomain(absl::string_view trust_domain) {
  return !trust_domain.empty() && trust_domain.size() <= 255 && AllOf(trust_domain, ".-_");
}

bool IsValidOrgId(absl::string_view org_id) {
  return !org_id.empty() && org_id.size() <= 63 && AllOf(org_id, "-");
}

bool IsValidPrincipalName(absl::string_view name) {
  return !name.empty() && name.size() <= 63 && name != "." && name != ".." && AllOf(name, "-_.");
}

absl::StatusOr<Identity> ParseSpiffeId(absl::string_view uri) {
  if (!absl::StartsWith(uri, kScheme)) return Bad(uri, "scheme must be spiffe://");
  absl::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) return Bad(uri, "no path");
  absl::string_view trust_domain = rest.substr(0, slash);
  if (!IsValidTrustDomain(trust_domain)) {
    return Bad(uri, absl::StrCat("trust domain '", trust_domain,
                                 "' must be 1-255 of [a-z0-9.-_], without port or user info"));
  }
  absl::string_view path = rest.substr(slash + 1);
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  if (parts.size() < 3 || parts[0] != "org") return Bad(uri, "path must start with /org/<org_id>/");
  if (!IsValidOrgId(parts[1])) {
    return Bad(uri, absl::StrCat("org_id '", parts[1], "' must be 1-63 of [a-z0-9-]"));
  }
  Identity id;
  id.spiffe_id = std::string(uri);
  id.trust_domain = std::string(trust_domain);
  id.org_id = std::string(parts[1]);
  absl::StatusOr<Role> role = ParseRole(parts[2]);
  if (!role.ok()) return Bad(uri, absl::StrCat("unknown role '", parts[2], "'"));
  id.role = *role;
  if (id.role == Role::kNode) {
    if (parts.size() != 3) return Bad(uri, "a node ID ends after /node");
    return id;
  }
  if (parts.size() != 4) {
    return Bad(uri, absl::StrCat("an ", RoleName(id.role), " ID is .../", RoleName(id.role),
                                 "/<name> with nothing after the name"));
  }
  if (!IsValidPrincipalName(parts[3])) {
    return Bad(uri, absl::StrCat("name '", parts[3], "' must be 1-63 of [a-z0-9-_.]"));
  }
  id.name = std::string(parts[3]);
  return id;
}

absl::StatusOr<std::string> MakeSpiffeId(absl::string_view trust_domain, absl::string_view org_id,
                                         Role role, absl::string_view name) {
  if (!IsValidTrustDomain(trust_domain)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trust domain '", trust_domain, "' must be 1-255 of lowercase letters, digits, '.-_'"));
  }
  if (!IsValidOrgId(org_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("org '", org_id, "' must be 1-63 of lowercase letters, digits and '-'"));
  }
  if (role == Role::kNode) {
    if (!name.empty()) {
      return absl::InvalidArgumentError("a node certificate takes no name; omit --name");
    }
    return absl::StrCat(kScheme, trust_domain, "/org/", org_id, "/node");
  }
  if (!IsValidPrincipalName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("an ", RoleName(role),
                     " certificate needs a name of 1-63 of [a-z0-9-_.] (got '", name, "')"));
  }
  return absl::StrCat(kScheme, trust_domain, "/org/", org_id, "/", RoleName(role), "/", name);
}

}  // namespace fedshare::identity
