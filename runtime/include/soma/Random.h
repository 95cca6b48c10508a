// The hash behind dropout's masks (the IR's Op::Random) and image augmentation, shared by the
// code emitter, the reference evaluator and the runtime: a mix of the three inputs, then
// murmur3's finalizer; the top 24 bits make the float.
#pragma once
#include <cstdint>

namespace soma::rt {

struct RandomHash {
  static constexpr uint32_t kPosition = 0x9E3779B1u, kSeed = 0x85EBCA77u, kSalt = 0xC2B2AE3Du;
  static constexpr uint32_t kMix1 = 0x85EBCA6Bu, kMix2 = 0xC2B2AE35u;
};

inline float randomUniform(uint32_t position, uint32_t seed, uint32_t salt) {
  using H = RandomHash;
  uint32_t h = position * H::kPosition ^ seed * H::kSeed ^ salt * H::kSalt;
  h ^= h >> 16;
  h *= H::kMix1;
  h ^= h >> 13;
  h *= H::kMix2;
  h ^= h >> 16;
  return static_cast<float>(h >> 8) * 0x1.0p-24f;
}

} // namespace soma::rt
