#include "node/storage/encryption.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"
#include "rocksdb/env.h"
#include "rocksdb/env_encryption.h"

namespace fedshare::storage {
namespace {

constexpr char kCheckText[] = "fedshare store key check v1";
constexpr char kFileHeader[] = "fedshare-storage-encryption aes-256-ctr v1 check=";

// AES-256 on one 16-byte block, for RocksDB's CTR stream (which only ever
// encrypts counter blocks). Each thread keeps an initialised OpenSSL context
// per cipher, so a block costs one EVP_EncryptUpdate.
class Aes256BlockCipher : public rocksdb::BlockCipher {
 public:
  explicit Aes256BlockCipher(std::string key) : key_(std::move(key)), id_(NextId()) {}

  const char* Name() const override { return "fedshare-aes-256"; }
  size_t BlockSize() override { return 16; }

  rocksdb::Status Encrypt(char* data) override { return Apply(data, /*encrypt=*/true); }
  rocksdb::Status Decrypt(char* data) override { return Apply(data, /*encrypt=*/false); }

 private:
  static uint64_t NextId() {
    static std::atomic<uint64_t> next{1};
    return next++;
  }

  struct ThreadContext {
    ~ThreadContext() {
      if (ctx != nullptr) EVP_CIPHER_CTX_free(ctx);
    }
    EVP_CIPHER_CTX* ctx = nullptr;
    uint64_t owner = 0;
    bool encrypt = true;
  };

  rocksdb::Status Apply(char* data, bool encrypt) {
    thread_local ThreadContext t;
    if (t.ctx == nullptr) t.ctx = EVP_CIPHER_CTX_new();
    if (t.ctx == nullptr) return rocksdb::Status::IOError("out of memory for a cipher context");
    if (t.owner != id_ || t.encrypt != encrypt) {
      const auto* key = reinterpret_cast<const unsigned char*>(key_.data());
      int ok = EVP_CipherInit_ex(t.ctx, EVP_aes_256_ecb(), nullptr, key, nullptr, encrypt ? 1 : 0);
      if (ok != 1) return rocksdb::Status::IOError("AES-256 initialisation failed");
      EVP_CIPHER_CTX_set_padding(t.ctx, 0);
      t.owner = id_;
      t.encrypt = encrypt;
    }
    unsigned char out[32];
    int len = 0;
    if (EVP_CipherUpdate(t.ctx, out, &len, reinterpret_cast<const unsigned char*>(data), 16) != 1 ||
        len != 16) {
      return rocksdb::Status::IOError("AES-256 block failed");
    }
    std::memcpy(data, out, 16);
    return rocksdb::Status::OK();
  }

  const std::string key_;
  const uint64_t id_;
};

std::string CheckValue(const std::string& key) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(kCheckText), sizeof(kCheckText) - 1, mac, &len);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(mac), len));
}

}  // namespace

absl::StatusOr<std::string> ParseEncryptionKey(absl::string_view text) {
  if (text.size() == kEncryptionKeyBytes) return std::string(text);
  absl::string_view hex = absl::StripAsciiWhitespace(text);
  if (hex.size() != 2 * kEncryptionKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a storage key is 64 hex digits (e.g. from `openssl rand -hex 32`) or 32 "
                     "raw bytes; this one has ",
                     text.size(), " bytes"));
  }
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          "a storage key of 64 characters must be hex digits only (0-9, a-f)");
    }
  }
  return absl::HexStringToBytes(hex);
}

std::unique_ptr<rocksdb::Env> NewEncryptedEnv(rocksdb::Env* base, const std::string& key) {
  auto cipher = std::make_shared<Aes256BlockCipher>(key);
  return std::unique_ptr<rocksdb::Env>(
      rocksdb::NewEncryptedEnv(base, rocksdb::EncryptionProvider::NewCTRProvider(cipher)));
}

absl::Status CheckEncryptionKey(const std::string& dir, bool store_exists, const std::string& key,
                                bool read_only) {
  const std::string path = absl::StrCat(dir, "/", kEncryptionFileName);
  std::ifstream in(path);
  if (!in) {
    if (key.empty()) return absl::OkStatus();
    if (store_exists) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the store in ", dir,
          " is not encrypted, but a storage key was given; start without one (encrypting an "
          "existing store: back it up, and restore it with the key set)"));
    }
    if (read_only) return absl::OkStatus();
    std::ofstream out(path, std::ios::trunc);
    out << kFileHeader << CheckValue(key) << "\n";
    out.close();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
    return absl::OkStatus();
  }
  std::stringstream contents;
  contents << in.rdbuf();
  std::string line(absl::StripAsciiWhitespace(contents.str()));
  if (key.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the store in ", dir,
                     " is encrypted: give its key (storage.encryption_key_file, or the "
                     "FEDSHARE_STORAGE_KEY environment variable)"));
  }
  if (line != absl::StrCat(kFileHeader, CheckValue(key))) {
    return absl::FailedPreconditionError(
        absl::StrCat("the storage key given is not the key of the store in ", dir,
                     "; nothing was opened or changed"));
  }
  return absl::OkStatus();
}

}  // namespace fedshare::storage
