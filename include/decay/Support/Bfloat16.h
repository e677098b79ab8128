// bfloat16 as the kernels store it (uint16_t bits): rounding from float (nearest even, NaN kept) and widening back.
#ifndef DECAY_SUPPORT_BFLOAT16_H
#define DECAY_SUPPORT_BFLOAT16_H

#include <cstdint>
#include <cstring>

namespace decay {

/// The bfloat16 nearest to `value` (ties to even); a NaN stays a quiet NaN.
inline uint16_t toBfloat16(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

/// The float holding bfloat16 `bits` exactly.
inline float fromBfloat16(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value = 0;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

/// `value` rounded to bfloat16 (through float), as a double.
inline double roundToBfloat16(double value) {
  return fromBfloat16(toBfloat16(static_cast<float>(value)));
}

} // namespace decay

#endif // DECAY_SUPPORT_BFLOAT16_H
