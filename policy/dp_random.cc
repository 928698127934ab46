#include "policy/dp_random.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"

namespace fedshare::policy {
namespace {

constexpr absl::string_view kNoiseSeedTag = "fedshare/dp-noise-seed/v1";

void AppendU64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

void AppendField(std::string& out, absl::string_view field) {
  AppendU64(out, field.size());
  out.append(field.data(), field.size());
}

}  // namespace

absl::StatusOr<uint64_t> RandomSource::NextUint64() {
  uint8_t bytes[8];
  FEDSHARE_RETURN_IF_ERROR(Fill(absl::MakeSpan(bytes)));
  uint64_t v = 0;
  for (uint8_t b : bytes) v = (v << 8) | b;
  return v;
}

absl::StatusOr<uint64_t> RandomSource::UniformBelow(uint64_t bound) {
  if (bound == 0) return absl::InvalidArgumentError("UniformBelow: bound must be positive");
  if (bound == 1) return 0;
  // Draw as many bits as bound - 1 needs and reject values >= bound: each try
  // succeeds with probability > 1/2.
  const int bits = 64 - __builtin_clzll(bound - 1);
  const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  for (;;) {
    FEDSHARE_ASSIGN_OR_RETURN(uint64_t v, NextUint64());
    v &= mask;
    if (v < bound) return v;
  }
}

absl::StatusOr<bool> RandomSource::NextBit() {
  uint8_t byte;
  FEDSHARE_RETURN_IF_ERROR(Fill(absl::MakeSpan(&byte, 1)));
  return (byte & 1) != 0;
}

absl::Status OpenSslRandom::Fill(absl::Span<uint8_t> out) {
  if (out.empty()) return absl::OkStatus();
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return absl::InternalError("RAND_bytes failed; no noise drawn");
  }
  return absl::OkStatus();
}

absl::StatusOr<NoiseSeed> DeriveNoiseSeed(absl::string_view node_secret,
                                          absl::string_view question_hash, uint64_t data_version) {
  if (node_secret.size() < 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("node secret must be at least 32 bytes, got ", node_secret.size()));
  }
  std::string message;
  AppendField(message, kNoiseSeedTag);
  AppendField(message, question_hash);
  AppendU64(message, data_version);
  NoiseSeed seed;
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), node_secret.data(), static_cast<int>(node_secret.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), seed.data(),
           &len) == nullptr ||
      len != seed.size()) {
    return absl::InternalError("HMAC-SHA256 failed while deriving the noise seed");
  }
  return seed;
}

struct AesCtrStream::Cipher {
  EVP_CIPHER_CTX* ctx = nullptr;
  ~Cipher() { EVP_CIPHER_CTX_free(ctx); }
};

AesCtrStream::AesCtrStream(std::unique_ptr<Cipher> cipher) : cipher_(std::move(cipher)) {}
AesCtrStream::~AesCtrStream() = default;

absl::StatusOr<std::unique_ptr<AesCtrStream>> AesCtrStream::Create(const NoiseSeed& seed) {
  auto cipher = std::make_unique<Cipher>();
  cipher->ctx = EVP_CIPHER_CTX_new();
  const uint8_t iv[16] = {};
  if (cipher->ctx == nullptr ||
      EVP_EncryptInit_ex(cipher->ctx, EVP_aes_256_ctr(), nullptr, seed.data(), iv) != 1) {
    return absl::InternalError("cannot initialise AES-256-CTR");
  }
  return std::unique_ptr<AesCtrStream>(new AesCtrStream(std::move(cipher)));
}

std::unique_ptr<AesCtrStream> AesCtrStream::ForTest(absl::string_view label, uint64_t n) {
  std::string message(label);
  AppendU64(message, n);
  NoiseSeed seed;
  SHA256(reinterpret_cast<const unsigned char*>(message.data()), message.size(), seed.data());
  auto stream = Create(seed);
  return stream.ok() ? std::move(stream).value() : nullptr;
}

absl::Status AesCtrStream::Refill() {
  // Encrypting zeros yields the raw keystream.
  static const uint8_t kZeros[4096] = {};
  int out_len = 0;
  if (EVP_EncryptUpdate(cipher_->ctx, buffer_.data(), &out_len, kZeros,
                        static_cast<int>(buffer_.size())) != 1 ||
      out_len != static_cast<int>(buffer_.size())) {
    return absl::InternalError("AES-256-CTR keystream failed");
  }
  used_ = 0;
  return absl::OkStatus();
}

absl::Status AesCtrStream::Fill(absl::Span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    if (used_ == buffer_.size()) FEDSHARE_RETURN_IF_ERROR(Refill());
    const size_t n = std::min(out.size() - done, buffer_.size() - used_);
    std::memcpy(out.data() + done, buffer_.data() + used_, n);
    used_ += n;
    done += n;
  }
  return absl::OkStatus();
}

}  // namespace fedshare::policy
