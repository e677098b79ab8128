// Checks of one caller tensor: dtype, rank and shape, row-major contiguity, alignment, non-null data.
#include "TensorCheck.h"

#include "Dtype.h"

#include <cstdint>
#include <limits>

namespace decayrt::detail {
namespace {
/// The largest tensor, in bytes, the runtime accepts (sizes fit in ptrdiff_t).
constexpr int64_t kMaxBytes = std::numeric_limits<int64_t>::max();
} // namespace

std::string formatShape(const int64_t *shape, size_t rank) {
  std::string text = "[";
  for (size_t i = 0; i < rank; ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::string formatShape(const std::vector<int64_t> &shape) {
  return formatShape(shape.data(), shape.size());
}

std::string formatDims(const std::string &dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    text += (i ? ", " : "") + std::string(1, dims[i]);
  return text + "]";
}

bool countElements(const std::vector<int64_t> &shape, int64_t elementSize, int64_t &elements) {
  int64_t count = 1;
  bool empty = false;
  for (int64_t size : shape) {
    if (size < 0)
      return false;
    empty |= size == 0;
    // A zero size makes the product 0 whatever the other sizes; keep checking
    // for overflow only among the nonzero ones.
    if (size == 0)
      continue;
    if (count > kMaxBytes / size)
      return false;
    count *= size;
  }
  if (count > kMaxBytes / elementSize)
    return false;
  elements = empty ? 0 : count;
  return true;
}

std::vector<int64_t> shapeOf(const decayrt_tensor &tensor) {
  if (tensor.rank <= 0)
    return {};
  return std::vector<int64_t>(tensor.shape, tensor.shape + tensor.rank);
}

Error checkRankAndShapePointer(const decayrt_tensor &tensor) {
  std::string name = tensor.name;
  if (tensor.rank < 0)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                "tensor '" + name + "': negative rank " + std::to_string(tensor.rank));
  if (tensor.rank > 0 && !tensor.shape)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                "tensor '" + name + "': shape is NULL with rank " + std::to_string(tensor.rank));
  return Error::success();
}

namespace {

/// Fails unless the tensor's dtype is `dtype`.
Error checkDtype(const decayrt_tensor &tensor, decayrt_dtype dtype) {
  int raw = rawEnumValue(tensor.dtype);
  if (raw == dtype)
    return Error::success();
  std::string got = isValidDtype(raw) ? dtypeName(static_cast<decayrt_dtype>(raw))
                                      : "invalid dtype " + std::to_string(raw);
  return fail(DECAYRT_ERROR_DTYPE, std::string("tensor '") + tensor.name + "': expected dtype " +
                                       dtypeName(dtype) + ", got " + got);
}

/// Fails unless the tensor's shape is `expected`.
Error checkShape(const decayrt_tensor &tensor, const std::vector<int64_t> &expected,
                 const std::string &dims) {
  if (Error error = checkRankAndShapePointer(tensor); !error.ok())
    return error;
  if (shapeOf(tensor) == expected)
    return Error::success();
  return fail(DECAYRT_ERROR_SHAPE, std::string("tensor '") + tensor.name + "': expected shape " +
                                       formatShape(expected) + " (" + formatDims(dims) + "), got " +
                                       formatShape(shapeOf(tensor)));
}

/// The strides of a contiguous row-major tensor of `shape`.
std::vector<int64_t> rowMajorStrides(const std::vector<int64_t> &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;)
    strides[i - 1] = strides[i] * shape[i];
  return strides;
}

/// Fails unless the tensor's strides (if given) are those of a contiguous
/// row-major tensor; the strides of size-1 dims and of empty tensors do not matter.
Error checkStrides(const decayrt_tensor &tensor, int64_t elements) {
  if (!tensor.strides || elements == 0)
    return Error::success();
  std::vector<int64_t> shape = shapeOf(tensor);
  std::vector<int64_t> expected = rowMajorStrides(shape);
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1 && tensor.strides[i] != expected[i])
      return fail(DECAYRT_ERROR_LAYOUT, std::string("tensor '") + tensor.name +
                                            "': expected contiguous row-major strides " +
                                            formatShape(expected) + ", got " +
                                            formatShape(tensor.strides, shape.size()));
  return Error::success();
}

} // namespace

Error checkStorage(const decayrt_tensor &tensor) {
  int64_t elements = 0;
  if (!countElements(shapeOf(tensor), dtypeSize(tensor.dtype), elements))
    return fail(DECAYRT_ERROR_SHAPE, std::string("tensor '") + tensor.name + "': shape " +
                                         formatShape(shapeOf(tensor)) +
                                         " has a negative size or is too large");
  if (Error error = checkStrides(tensor, elements); !error.ok())
    return error;
  if (!tensor.data && elements > 0)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, std::string("tensor '") + tensor.name +
                                                    "': data is NULL but the tensor has " +
                                                    std::to_string(elements) + " elements");
  if (reinterpret_cast<uintptr_t>(tensor.data) % static_cast<uintptr_t>(dtypeSize(tensor.dtype)))
    return fail(DECAYRT_ERROR_LAYOUT, std::string("tensor '") + tensor.name +
                                          "': data is not aligned to " +
                                          std::to_string(dtypeSize(tensor.dtype)) + " bytes");
  return Error::success();
}

Error checkTensor(const decayrt_tensor &tensor, decayrt_dtype dtype,
                  const std::vector<int64_t> &expected, const std::string &dims) {
  if (Error error = checkDtype(tensor, dtype); !error.ok())
    return error;
  if (Error error = checkShape(tensor, expected, dims); !error.ok())
    return error;
  return checkStorage(tensor);
}

} // namespace decayrt::detail
