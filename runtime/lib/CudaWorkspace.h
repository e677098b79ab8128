// The device memory a CUDA call needs: size models evaluated for a call, and the workspace's layout.
#ifndef DECAYRT_LIB_CUDAWORKSPACE_H
#define DECAYRT_LIB_CUDAWORKSPACE_H

#include "CallPlan.h"
#include "CudaDriver.h"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace decayrt::detail::cuda {

/// Where every region of the workspace lies, in bytes from its start; each
/// region starts at a multiple of kWorkspaceAlignment.
struct WorkspaceLayout {
  uint64_t moduleBytes = 0;        ///< the module's scratch, at offset 0
  uint64_t sequencesOffset = 0;    ///< the sequence table (N x 3 int64; none for a step)
  std::vector<uint64_t> slotOffsets; ///< per plan slot: its runtime buffer (unused for Caller slots)
  uint64_t total = 0;
};

/// The alignment of the workspace and of each of its regions.
constexpr uint64_t kWorkspaceAlignment = 256;

/// The grid of `launch` for the call's sizes; fails (DECAYRT_ERROR_SHAPE)
/// when a dimension exceeds CUDA's limit.
Error gridOf(const Launch &launch, const Sizes &sizes, std::array<unsigned, 3> &out);

/// The values of a launch's parameters in its order (8 bytes each): the
/// workspace's address, a size, or the address of an argument by name.
std::vector<uint64_t> parameterValues(const Launch &launch, const Sizes &sizes,
                                      const std::map<std::string, CUdeviceptr> &addresses,
                                      CUdeviceptr workspace);

/// The number of chunks of `chunkSize` tokens over every sequence of the plan.
int64_t chunkCount(const Plan &plan, int64_t chunkSize);

/// Evaluates `model` for the call: token * B*T*H + chunk * H*chunks +
/// sequence * N*H + fixed bytes; fails (DECAYRT_ERROR_SHAPE) on overflow.
Error evaluateSize(const SizeModel &model, const Sizes &sizes, int64_t chunks, uint64_t &bytes);

/// Lays out the workspace of a call of `module`: its scratch, the sequence
/// table (if the kernel takes one), the buffers of absent optional inputs and
/// one scratch buffer for unused arguments. A step call without unused
/// arguments needs none: its total is 0.
Error layoutWorkspace(const Plan &plan, const GpuModule &module, int64_t chunkSize,
                      WorkspaceLayout &out);

/// A call's workspace in device memory: the caller's, or one decayrt
/// allocates on the stream (cuMemAllocAsync; cuMemAlloc where the driver or
/// device lacks stream-ordered allocation) and frees after the call's work.
class DeviceWorkspace {
public:
  DeviceWorkspace(const Driver &driver, CUstream stream) : driver(driver), stream(stream) {}
  ~DeviceWorkspace() { release(); } // on an error path; errors are not reported
  DeviceWorkspace(const DeviceWorkspace &) = delete;
  DeviceWorkspace &operator=(const DeviceWorkspace &) = delete;

  /// Uses the caller's memory.
  void borrow(CUdeviceptr address) { base = address; }
  /// Allocates `bytes` (none for 0 bytes: the address stays 0).
  Error allocate(uint64_t bytes);
  /// Frees an allocation after the work enqueued so far (stream-ordered, or
  /// by synchronizing the stream first); nothing for borrowed memory.
  Error release();

  CUdeviceptr address() const { return base; }

private:
  const Driver &driver;
  CUstream stream;
  CUdeviceptr base = 0;
  enum class Owner { None, StreamOrdered, Synchronous } owner = Owner::None;
};

} // namespace decayrt::detail::cuda

#endif // DECAYRT_LIB_CUDAWORKSPACE_H
