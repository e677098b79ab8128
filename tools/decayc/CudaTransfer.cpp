// decayc's CUDA device path: copies host tensors to device memory, runs decayrt_run_cuda, copies the outputs back.
#include "CudaTransfer.h"

#include <cstring>
#include <memory>

namespace {

llvm::Error decayrtError() {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), decayrt_last_error());
}

/// The bytes of a host tensor (every dtype decayc passes: f32, bf16, i64).
size_t bytesOf(const decayrt_tensor &tensor) {
  size_t elements = 1;
  for (int32_t i = 0; i < tensor.rank; ++i)
    elements *= static_cast<size_t>(tensor.shape[i]);
  size_t size = tensor.dtype == DECAYRT_BF16 ? 2 : tensor.dtype == DECAYRT_F32 ? 4 : 8;
  return elements * size;
}

/// Device memory released by decayrt_cuda_free.
struct DeviceFree {
  void operator()(void *memory) const { decayrt_cuda_free(memory); }
};
using DeviceMemory = std::unique_ptr<void, DeviceFree>;

} // namespace

llvm::Error decayc::runOnCuda(decayrt_package *package, const char *entry,
                              const std::vector<decayrt_tensor> &tensors,
                              const std::vector<Transfer> &transfers) {
  std::vector<DeviceMemory> memory;
  std::vector<decayrt_tensor> onDevice = tensors;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (std::strcmp(tensors[i].name, "cu_seqlens") == 0)
      continue;
    size_t bytes = bytesOf(tensors[i]);
    void *device = nullptr;
    if (decayrt_cuda_alloc(bytes, &device) != DECAYRT_OK)
      return decayrtError();
    memory.emplace_back(device);
    if (transfers[i] != Transfer::Out && decayrt_cuda_copy_to_device(device, tensors[i].data, bytes) != DECAYRT_OK)
      return decayrtError();
    onDevice[i].data = device;
  }
  if (decayrt_run_cuda(package, entry, onDevice.data(), onDevice.size(), nullptr, nullptr, 0) !=
      DECAYRT_OK)
    return decayrtError();
  // Copies on the default stream wait for the kernels.
  for (size_t i = 0; i < tensors.size(); ++i)
    if (transfers[i] != Transfer::In &&
        decayrt_cuda_copy_to_host(tensors[i].data, onDevice[i].data, bytesOf(tensors[i])) !=
            DECAYRT_OK)
      return decayrtError();
  return llvm::Error::success();
}
