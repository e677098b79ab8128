// Minimal NumPy .npy reader/writer (little-endian float32/float64/int32/int64, C order), standard library only.
#ifndef DECAY_SUPPORT_NPY_H
#define DECAY_SUPPORT_NPY_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace decay::npy {

enum class DType { F32, F64, I32, I64 };

/// "float32", "float64", "int32" or "int64".
const char *dtypeName(DType);
/// Size of one element in bytes (4 or 8).
size_t dtypeSize(DType);
/// The little-endian .npy descr string: "<f4", "<f8", "<i4" or "<i8".
const char *dtypeDescr(DType);

/// An n-dimensional array as stored in a .npy file.
struct Array {
  DType dtype = DType::F64;
  std::vector<int64_t> shape;        // empty shape = 0-d array with one element
  std::vector<unsigned char> bytes;  // raw little-endian C-order data

  /// Product of the dimensions (1 for a 0-d array, 0 if any dimension is 0).
  int64_t numElements() const;
  /// All elements converted to double (int64 values beyond 2^53 lose precision).
  std::vector<double> toF64() const;
  /// All elements as int64 for I32/I64 arrays. Float arrays return an empty
  /// vector (no implicit float -> int conversion); check `dtype` first.
  std::vector<int64_t> toI64() const;

  static Array fromF64(const std::vector<double> &, std::vector<int64_t> shape);
  static Array fromF32(const std::vector<float> &, std::vector<int64_t> shape);
  static Array fromI64(const std::vector<int64_t> &, std::vector<int64_t> shape);
  static Array fromI32(const std::vector<int32_t> &, std::vector<int64_t> shape);
};

/// Parses a complete .npy file held in memory (format versions 1.0, 2.0, 3.0).
/// On failure returns false, leaves `out` empty and sets `error` to one line
/// describing the problem. Safe on arbitrary (hostile) input.
bool parseNpy(const unsigned char *data, size_t size, Array &out, std::string &error);
/// Reads and parses a .npy file; `error` names the file and the reason.
bool readNpy(const std::string &path, Array &out, std::string &error);

/// Encodes `a` as a .npy file: version 1.0 header (2.0 only if the header
/// would not fit), padded with spaces so the data starts at a multiple of 64
/// bytes, ending in '\n'. The bytes are written as-is; see writeNpy for checks.
std::string serializeNpy(const Array &a);
/// Checks that `a.bytes` matches its shape, then writes serializeNpy(a) to `path`.
bool writeNpy(const std::string &path, const Array &a, std::string &error);

} // namespace decay::npy

#endif // DECAY_SUPPORT_NPY_H
