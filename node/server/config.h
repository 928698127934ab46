// Loading and validating the node's configuration (DESIGN §12).
//
//   ASSIGN_OR_RETURN(v1::NodeConfig config, LoadNodeConfig("node.textproto"));
//
// Text format is the default; a file whose first non-blank character is '{'
// is read as JSON. Unknown fields and bad values are refused with the file,
// the line and the reason.
#ifndef FEDSHARE_NODE_SERVER_CONFIG_H_
#define FEDSHARE_NODE_SERVER_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/config.pb.h"

namespace fedshare::server {

inline constexpr absl::string_view kDefaultPeerAddress = "0.0.0.0:7443";
inline constexpr absl::string_view kDefaultLocalAddress = "127.0.0.1:7444";

// Reads, parses and validates `path`. Relative file names inside the config
// (data_dir, TLS files, agreements_file) are resolved against the config
// file's folder. INVALID_ARGUMENT "PATH:LINE:COL: reason" on a parse error,
// "PATH:LINE: field: reason" on a bad value; NOT_FOUND for a missing file.
absl::StatusOr<v1::NodeConfig> LoadNodeConfig(const std::string& path);

// Parses and validates config text; `name` is used in messages and
// `base_dir` to resolve relative paths ("" leaves them as they are).
absl::StatusOr<v1::NodeConfig> ParseNodeConfig(absl::string_view text, absl::string_view name,
                                               absl::string_view base_dir);

// Validates an already-parsed config, with defaults filled in. Messages name
// the offending field (no line: there is no text).
absl::Status ValidateNodeConfig(const v1::NodeConfig& config);

// The store's encryption key (32 bytes): from $FEDSHARE_STORAGE_KEY when set,
// else from storage.encryption_key_file; empty when neither is given. The
// error names the file or variable, never the key.
absl::StatusOr<std::string> LoadStorageKey(const v1::NodeConfig& config);

// Bounds of a peers_file, checked before it is parsed (size) and before any
// peer is used (count, config and file together).
inline constexpr size_t kMaxPeersFileBytes = size_t{16} << 20;
inline constexpr int kMaxPeers = 20000;

// The roster: the config's `peers`, then those of its peers_file (PeerSet),
// with the file's groups added to their members' `groups`, validated as one
// list (each peer as ValidateNodeConfig checks one; no org twice; every group
// member a peer). INVALID_ARGUMENT "FILE:LINE: peers: reason" for a bad file,
// or one over kMaxPeersFileBytes or kMaxPeers; NOT_FOUND if it is missing.
absl::StatusOr<std::vector<v1::PeerConfig>> LoadPeers(const v1::NodeConfig& config);

// Reads an AgreementSet policy file (text format or JSON), same error forms.
absl::StatusOr<v1::AgreementSet> LoadAgreementsFile(const std::string& path);

}  // namespace fedshare::server

#endif  // FEDSHARE_NODE_SERVER_CONFIG_H_
