// The loaded package behind the opaque decayrt_package handle: its shared object, manifest and kernels.
#ifndef DECAYRT_LIB_PACKAGE_H
#define DECAYRT_LIB_PACKAGE_H

#include "CudaModules.h"
#include "HostBufferPool.h"
#include "Manifest.h"
#include "decayrt/simt_abi.h"

#include <string>
#include <vector>

namespace decayrt::detail {

/// A kernel entry point: void symbol(void **arguments).
using KernelFunction = void (*)(void **arguments);

/// A simt module of the manifest with the host entry point of each launch.
struct SimtImage {
  const Kernel *kernel = nullptr;
  std::vector<decay_simt_kernel> functions; ///< one per launch, in order
};

/// A CPU kernel of the manifest with its resolved entry point.
struct LoadedKernel {
  const Kernel *kernel = nullptr;
  KernelFunction function = nullptr;
};

} // namespace decayrt::detail

/// Immutable once loaded but for the CUDA module cache and the host buffer
/// pool, which guard themselves, so any number of threads may run it at once.
struct decayrt_package {
  void *library = nullptr;  ///< the dlopen handle
  std::string manifestText; ///< a copy of decay_package_manifest
  decayrt::detail::Manifest manifest;
  std::vector<decayrt::detail::LoadedKernel> cpuKernels;
  std::vector<decayrt::detail::cuda::ModuleImage> gpuModules; ///< CUDA modules (sm_XY)
  std::vector<decayrt::detail::SimtImage> simtModules;       ///< target simt
  /// The GPU modules loaded so far, per context (filled by decayrt_run_cuda).
  mutable decayrt::detail::cuda::ModuleCache cudaModules;
  /// The CPU calls' runtime buffers, reused across calls (guards itself).
  mutable decayrt::detail::HostBufferPool hostBuffers;

  /// The CPU kernel of `entry`, or null when the package has none.
  const decayrt::detail::LoadedKernel *findKernel(const std::string &entry) const {
    for (const decayrt::detail::LoadedKernel &loaded : cpuKernels)
      if (loaded.kernel->entry == entry)
        return &loaded;
    return nullptr;
  }

  /// A GPU module of `entry` (they all take the same arguments), or null.
  const decayrt::detail::Kernel *findGpuKernel(const std::string &entry) const {
    for (const decayrt::detail::cuda::ModuleImage &image : gpuModules)
      if (image.kernel->entry == entry)
        return image.kernel;
    return nullptr;
  }
};

#endif // DECAYRT_LIB_PACKAGE_H
