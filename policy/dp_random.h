// Randomness for the differential-privacy mechanisms (DESIGN §8), injected so
// that policy/ does no I/O and tests are deterministic.
//
//   OpenSslRandom fresh;                       // production, non-repeating
//   FEDSHARE_ASSIGN_OR_RETURN(auto seed, DeriveNoiseSeed(node_secret, question_hash, version));
//   FEDSHARE_ASSIGN_OR_RETURN(auto stream, AesCtrStream::Create(seed));  // repeatable
//
// Every sampler draws only uniform bits from a RandomSource; no floating-point
// distribution is ever sampled.
#ifndef FEDSHARE_POLICY_DP_RANDOM_H_
#define FEDSHARE_POLICY_DP_RANDOM_H_

#include <array>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fedshare::policy {

// A source of uniformly random bytes. Not thread-safe: one per question.
class RandomSource {
 public:
  virtual ~RandomSource() = default;

  // Fills `out` with uniform random bytes. INTERNAL if the source failed; a
  // caller must then release nothing.
  virtual absl::Status Fill(absl::Span<uint8_t> out) = 0;

  // A uniform 64-bit value.
  absl::StatusOr<uint64_t> NextUint64();
  // A uniform value in [0, bound), exactly (rejection sampling, no modulo
  // bias). REQUIRES: bound > 0.
  absl::StatusOr<uint64_t> UniformBelow(uint64_t bound);
  // A fair coin.
  absl::StatusOr<bool> NextBit();
};

// Fresh randomness from OpenSSL's CSPRNG (RAND_bytes).
class OpenSslRandom final : public RandomSource {
 public:
  absl::Status Fill(absl::Span<uint8_t> out) override;
};

using NoiseSeed = std::array<uint8_t, 32>;

// The seed of a question's noise: HMAC-SHA256 keyed with the node secret over
// a domain tag, the canonical question hash and the data version, each
// length-prefixed. The same question on the same data gets the same seed, so
// it gets the same noise and repeating it cannot average the noise away; a
// different question, a different version or another node's secret gives an
// unrelated seed. INVALID_ARGUMENT if node_secret is shorter than 32 bytes.
absl::StatusOr<NoiseSeed> DeriveNoiseSeed(absl::string_view node_secret,
                                          absl::string_view question_hash, uint64_t data_version);

// A deterministic CSPRNG: the AES-256-CTR keystream under `seed` (zero IV),
// i.e. the encryption of the counter blocks 0, 1, 2, ... The same seed always
// yields the same bytes. Tests use it with a seed of their choosing.
class AesCtrStream final : public RandomSource {
 public:
  static absl::StatusOr<std::unique_ptr<AesCtrStream>> Create(const NoiseSeed& seed);
  // A stream for tests: the seed is SHA-256 of the test's label and number.
  static std::unique_ptr<AesCtrStream> ForTest(absl::string_view label, uint64_t n = 0);
  ~AesCtrStream() override;

  absl::Status Fill(absl::Span<uint8_t> out) override;

 private:
  struct Cipher;
  explicit AesCtrStream(std::unique_ptr<Cipher> cipher);
  absl::Status Refill();

  std::unique_ptr<Cipher> cipher_;
  std::array<uint8_t, 4096> buffer_{};
  size_t used_ = 4096;  // bytes of buffer_ already handed out
};

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_DP_RANDOM_H_
