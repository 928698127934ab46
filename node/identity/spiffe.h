// SPIFFE identities of fedshare principals (DESIGN §5).
//
// Every certificate carries exactly one URI SAN naming its holder:
//
//   spiffe://<trust-domain>/org/<org_id>/node
//   spiffe://<trust-domain>/org/<org_id>/operator/<name>
//   spiffe://<trust-domain>/org/<org_id>/analyst/<name>
//
//   ASSIGN_OR_RETURN(Identity id, ParseSpiffeId("spiffe://fed.example/org/acme/node"));
//   id.role == Role::kNode && id.org_id == "acme"
//
// Pure functions; no I/O. Thread-safe.
#ifndef FEDSHARE_NODE_IDENTITY_SPIFFE_H_
#define FEDSHARE_NODE_IDENTITY_SPIFFE_H_

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fedshare::identity {

enum class Role {
  kNode,      // another org's node (peer listener) or this org's node
  kOperator,  // a person who administers a node
  kAnalyst,   // a person who asks questions
};

// "node", "operator", "analyst".
absl::string_view RoleName(Role role);
// The inverse of RoleName. INVALID_ARGUMENT for anything else.
absl::StatusOr<Role> ParseRole(absl::string_view name);

struct Identity {
  std::string spiffe_id;  // the whole URI, as found in the certificate
  std::string trust_domain;
  std::string org_id;
  Role role = Role::kNode;
  std::string name;  // empty for nodes

  // "analyst alice of org acme (spiffe://...)": for error messages and logs.
  std::string Describe() const;
};

bool operator==(const Identity& a, const Identity& b);
inline bool operator!=(const Identity& a, const Identity& b) { return !(a == b); }
std::ostream& operator<<(std::ostream& os, const Identity& id);

// Lowercase letters, digits, '.', '-', '_', 1 to 255 characters (the SPIFFE
// trust domain grammar).
bool IsValidTrustDomain(absl::string_view trust_domain);
// [a-z0-9-]{1,63}
bool IsValidOrgId(absl::string_view org_id);
// [a-z0-9-_.]{1,63}, and not "." or "..".
bool IsValidPrincipalName(absl::string_view name);

// Parses one of the three forms above. INVALID_ARGUMENT, saying which part is
// wrong, for anything else: another scheme, upper case, a port, user info, a
// query or fragment, percent-encoding, an empty or extra path segment.
absl::StatusOr<Identity> ParseSpiffeId(absl::string_view uri);

// The SPIFFE ID for the given parts. INVALID_ARGUMENT if a part is malformed,
// if `name` is given for a node, or missing for an operator or analyst.
absl::StatusOr<std::string> MakeSpiffeId(absl::string_view trust_domain, absl::string_view org_id,
                                         Role role, absl::string_view name);

}  // namespace fedshare::identity

#endif  // FEDSHARE_NODE_IDENTITY_SPIFFE_H_
