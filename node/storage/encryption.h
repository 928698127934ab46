// Encryption at rest: every file RocksDB writes for the store (tables,
// write-ahead log, manifest) goes through an Env that encrypts with AES-256 in
// CTR mode (RocksDB's CTR provider over an OpenSSL block cipher, a random
// counter per file in the file's 4 KiB prefix). The key is 32 bytes; it never
// appears in the config or the logs. A small plain file, ENCRYPTION, beside
// the store says that the store is encrypted and holds a check value of the
// key (HMAC-SHA-256 of a fixed text), so a wrong key is refused before
// RocksDB opens (or writes) anything.
#ifndef FEDSHARE_NODE_STORAGE_ENCRYPTION_H_
#define FEDSHARE_NODE_STORAGE_ENCRYPTION_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rocksdb {
class Env;
}

namespace fedshare::storage {

inline constexpr size_t kEncryptionKeyBytes = 32;
inline constexpr char kEncryptionFileName[] = "ENCRYPTION";

// A key from its text: 64 hex digits (surrounding whitespace ignored) or 32
// raw bytes. INVALID_ARGUMENT says what is wrong, never the key.
absl::StatusOr<std::string> ParseEncryptionKey(absl::string_view text);

// An Env over `base` that encrypts every file with `key` (32 bytes). The
// returned Env must outlive every DB or BackupEngine using it; `base` must
// outlive it.
std::unique_ptr<rocksdb::Env> NewEncryptedEnv(rocksdb::Env* base, const std::string& key);

// Checks `key` (empty: none) against the ENCRYPTION file in `dir` before a
// store there is opened. `store_exists`: the folder already holds a store.
// A new store with a key gets its ENCRYPTION file unless `read_only`.
// FAILED_PRECONDITION when a key is given for a plain store, none for an
// encrypted one, or the wrong one; nothing is written then.
absl::Status CheckEncryptionKey(const std::string& dir, bool store_exists, const std::string& key,
                                bool read_only = false);

}  // namespace fedshare::storage

#endif  // FEDSHARE_NODE_STORAGE_ENCRYPTION_H_
