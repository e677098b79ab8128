// The checked plan of a call (CPU or CUDA): sizes, sequences, and every kernel argument bound to a caller tensor or a runtime buffer.
#ifndef DECAYRT_LIB_CALLPLAN_H
#define DECAYRT_LIB_CALLPLAN_H

#include "Error.h"
#include "Manifest.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

struct decayrt_package;

namespace decayrt::detail {

/// The problem sizes: B, T, H, K from q, V from v, N from cu_seqlens (else
/// B), S (a step call's state slots) from the state cache `state`.
struct Sizes {
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0, N = 0, S = 0;

  /// The size a dims letter of BTHKVNS names.
  int64_t of(char dim) const;
  /// The shape named by dims letters of BTHKVNS.
  std::vector<int64_t> shapeOf(const std::string &dims) const;
};

/// Where the buffer of a kernel argument comes from.
enum class Source {
  Caller,  ///< the caller's tensor
  Zeros,   ///< an absent optional input: runtime zeros
  Init,    ///< an absent scan state: runtime buffer at the scan's init
  Scratch, ///< an unused argument: shared runtime scratch
};

/// One kernel argument bound to its buffer.
struct Slot {
  const Argument *argument = nullptr;
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  Source source = Source::Caller;
  const decayrt_tensor *given = nullptr; ///< the caller's tensor, if passed
  double fill = 0.0;                     ///< Init: the value
  bool zeroOnEntry = false;              ///< Caller output that the runtime zeroes
  void *data = nullptr;                  ///< the buffer passed to the kernel
};

/// Everything a call needs, built and checked before anything is written.
struct Plan {
  Sizes sizes;
  std::vector<int64_t> offsets; ///< cu_seqlens as int64; empty without it
  const decayrt_tensor *cuSeqlens = nullptr; ///< the caller's cu_seqlens, if passed
  bool cuSeqlensInKernelMemory = true; ///< whether it lives where the kernels' tensors do
  bool sequenceTable = true;    ///< whether the kernel takes the sequence table (a step does not)
  std::vector<Slot> slots;      ///< one per non-sequence kernel argument, in order

  /// The sequence table: (batch row, first token, end token) per sequence,
  /// from cu_seqlens (batch row 0) or one row (n, 0, T) per batch row; empty
  /// when the kernel takes none.
  std::vector<int64_t> sequences() const;
};

/// Reads the values of a checked rank-1 i32 or i64 tensor whose values the
/// runtime needs on the host (cu_seqlens; a step call's slots and positions)
/// as int64; sets `inKernelMemory` to whether the tensor lives in the
/// kernels' address space (a cu_seqlens elsewhere is no kernel argument and
/// stays out of the aliasing check).
using IntegerReader = std::function<Error(const decayrt_tensor &tensor,
                                          std::vector<int64_t> &values, bool &inKernelMemory)>;

/// Reads such a tensor from host memory (the reader of the CPU and simt paths).
Error readHostIntegers(const decayrt_tensor &tensor, std::vector<int64_t> &values,
                       bool &inKernelMemory);

/// Fails unless `entry` is "forward", "backward" or "step".
Error checkEntry(const char *entry);

/// Checks every tensor of a call to `kernel` and builds its plan; reads
/// cu_seqlens and a step call's slots and positions with `readIntegers`
/// (each slot in [0, S) and used once, positions >= 0); writes nothing.
Error planCall(const decayrt_package &package, const Kernel &kernel, const decayrt_tensor *tensors,
               size_t count, const IntegerReader &readIntegers, Plan &plan);

/// A memory range of a call, for the aliasing check.
struct Extent {
  std::string name; ///< "output 'o'", "tensor 'q'", "the workspace"
  uintptr_t begin = 0, end = 0;
  bool written = false;
};

/// The ranges of the caller's tensors in `plan` (cu_seqlens only when it
/// lives in the kernels' memory).
std::vector<Extent> extentsOf(const Plan &plan);

/// Fails (DECAYRT_ERROR_ALIASING) if a written range overlaps another range.
Error checkAliasing(const std::vector<Extent> &extents);

} // namespace decayrt::detail

#endif // DECAYRT_LIB_CALLPLAN_H
