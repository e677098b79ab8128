// Checks of one caller tensor (dtype, rank and shape, layout, data) and the shape helpers they share.
#ifndef DECAYRT_LIB_TENSORCHECK_H
#define DECAYRT_LIB_TENSORCHECK_H

#include "Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace decayrt::detail {

/// Formats a shape as "[2, 65, 4]".
std::string formatShape(const int64_t *shape, size_t rank);
std::string formatShape(const std::vector<int64_t> &shape);

/// Formats dims letters as "[B, T, H]".
std::string formatDims(const std::string &dims);

/// The number of elements of `shape`; false if a size is negative or the
/// product (or its size in bytes, at `elementSize` bytes each) overflows.
bool countElements(const std::vector<int64_t> &shape, int64_t elementSize, int64_t &elements);

/// The caller's shape of `tensor` (its `rank` sizes); `tensor.shape` must be
/// non-null when rank > 0 (checkRankAndShapePointer).
std::vector<int64_t> shapeOf(const decayrt_tensor &tensor);

/// Fails (INVALID_ARGUMENT) on a negative rank or a NULL shape with rank > 0.
Error checkRankAndShapePointer(const decayrt_tensor &tensor);

/// Checks everything about a caller's tensor that does not depend on other
/// tensors: its dtype is `dtype`, its shape is `expected` (`dims` names the
/// sizes in messages), its strides are contiguous row-major, its data is
/// aligned and non-null unless it has no elements.
Error checkTensor(const decayrt_tensor &tensor, decayrt_dtype dtype,
                  const std::vector<int64_t> &expected, const std::string &dims);

/// Checks layout and data of a tensor whose dtype and shape are already
/// checked: row-major contiguous strides, aligned and non-null data.
Error checkStorage(const decayrt_tensor &tensor);

} // namespace decayrt::detail

#endif // DECAYRT_LIB_TENSORCHECK_H
