// Element types: their manifest names ("f32", ...), sizes in bytes, filling buffers, and f32 <-> bf16 copies.
#ifndef DECAYRT_LIB_DTYPE_H
#define DECAYRT_LIB_DTYPE_H

#include "decayrt/decayrt.h"

#include "decay/Support/Bfloat16.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace decayrt::detail {

/// The integer a caller stored in an enum field. A C caller may store any
/// int; reading it as the C++ enum would be undefined, so copy its bytes.
template <typename Enum> int rawEnumValue(const Enum &value) {
  static_assert(sizeof(Enum) == sizeof(int), "decayrt's enums are int-sized");
  int raw = 0;
  std::memcpy(&raw, &value, sizeof raw);
  return raw;
}

/// Whether `raw` is the value of one of the dtype enumerators.
inline bool isValidDtype(int raw) {
  for (decayrt_dtype dtype : {DECAYRT_F32, DECAYRT_F64, DECAYRT_BF16, DECAYRT_I32, DECAYRT_I64})
    if (raw == dtype)
      return true;
  return false;
}

/// The manifest's name of `dtype`: "f32", "f64", "bf16", "i32", "i64".
inline const char *dtypeName(decayrt_dtype dtype) {
  switch (dtype) {
  case DECAYRT_F32:
    return "f32";
  case DECAYRT_F64:
    return "f64";
  case DECAYRT_BF16:
    return "bf16";
  case DECAYRT_I32:
    return "i32";
  case DECAYRT_I64:
    return "i64";
  }
  return "invalid";
}

/// The size of one element of `dtype` in bytes.
inline int64_t dtypeSize(decayrt_dtype dtype) {
  switch (dtype) {
  case DECAYRT_BF16:
    return 2;
  case DECAYRT_F32:
  case DECAYRT_I32:
    return 4;
  case DECAYRT_F64:
  case DECAYRT_I64:
    return 8;
  }
  return 1;
}

/// Reads a manifest dtype name; false if `name` is none of them.
inline bool parseDtype(const std::string &name, decayrt_dtype &out) {
  for (decayrt_dtype dtype : {DECAYRT_F32, DECAYRT_F64, DECAYRT_BF16, DECAYRT_I32, DECAYRT_I64})
    if (name == dtypeName(dtype)) {
      out = dtype;
      return true;
    }
  return false;
}

/// Fills `count` elements of `dtype` at `data` with `value`.
inline void fillBuffer(void *data, decayrt_dtype dtype, int64_t count, double value) {
  auto fill = [&](auto typed) {
    auto *elements = static_cast<decltype(typed) *>(data);
    std::fill(elements, elements + count, typed);
  };
  switch (dtype) {
  case DECAYRT_F32:
    return fill(static_cast<float>(value));
  case DECAYRT_F64:
    return fill(value);
  case DECAYRT_BF16:
    return fill(decay::toBfloat16(static_cast<float>(value)));
  case DECAYRT_I32:
    return fill(static_cast<int32_t>(value));
  case DECAYRT_I64:
    return fill(static_cast<int64_t>(value));
  }
}

/// Copies `count` elements of `dtype` (f32 or bf16) at `from` into floats:
/// bf16 widens exactly.
inline void widenToF32(const void *from, decayrt_dtype dtype, int64_t count, float *to) {
  if (dtype == DECAYRT_F32) {
    std::memcpy(to, from, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  const auto *bits = static_cast<const uint16_t *>(from);
  std::transform(bits, bits + count, to, decay::fromBfloat16);
}

/// Stores `count` floats into elements of `dtype` (f32 or bf16) at `to`: bf16
/// rounds to nearest even, as the kernels store it.
inline void narrowFromF32(const float *from, int64_t count, decayrt_dtype dtype, void *to) {
  if (dtype == DECAYRT_F32) {
    std::memcpy(to, from, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  std::transform(from, from + count, static_cast<uint16_t *>(to), decay::toBfloat16);
}

} // namespace decayrt::detail

#endif // DECAYRT_LIB_DTYPE_H
