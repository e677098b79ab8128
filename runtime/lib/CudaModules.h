// The package's GPU modules: choosing one for a call (entry, K, V, device) and the per-context cache of loaded CUmodules.
#ifndef DECAYRT_LIB_CUDAMODULES_H
#define DECAYRT_LIB_CUDAMODULES_H

#include "CudaContext.h"
#include "Manifest.h"

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace decayrt::detail::cuda {

/// A GPU module of the manifest with the PTX and cubin the package exports.
struct ModuleImage {
  const Kernel *kernel = nullptr;
  const char *ptx = nullptr;            ///< NUL-terminated
  const unsigned char *cubin = nullptr; ///< kernel->gpu->cubinSize bytes
};

/// A module loaded into one context, with its functions (one per launch).
struct LoadedModule {
  const ModuleImage *image = nullptr;
  CUcontext context = nullptr;
  CUmodule module = nullptr;
  std::vector<CUfunction> functions;
  bool fromCubin = false; ///< loaded from the cubin (else JIT-compiled from the PTX)
};

/// "(64, 64), (128, 128)".
std::string listHeadDims(const std::set<std::pair<int64_t, int64_t>> &headDims);

/// The modules of `entry` compiled for K, V among `images` (anything with a
/// `kernel` pointing at its manifest item: CUDA or simt modules); fails with
/// DECAYRT_ERROR_UNSUPPORTED (listing the package's head dims) when there are none.
template <typename Image>
Error modulesFor(const std::vector<Image> &images, const std::string &specName,
                 const std::string &entry, int64_t K, int64_t V,
                 std::vector<const Image *> &out) {
  std::set<std::pair<int64_t, int64_t>> headDims;
  for (const Image &image : images) {
    if (image.kernel->entry != entry)
      continue;
    headDims.insert({image.kernel->gpu->keyDim, image.kernel->gpu->valueDim});
    if (image.kernel->gpu->keyDim == K && image.kernel->gpu->valueDim == V)
      out.push_back(&image);
  }
  if (headDims.empty())
    return fail(DECAYRT_ERROR_UNSUPPORTED,
                "package @" + specName + " has no GPU kernel for the " + entry + " entry");
  if (out.empty())
    return fail(DECAYRT_ERROR_UNSUPPORTED,
                "package @" + specName + " has no GPU " + entry + " kernel for K = " +
                    std::to_string(K) + ", V = " + std::to_string(V) +
                    ": its modules are compiled for (K, V) = " + listHeadDims(headDims));
  return Error::success();
}

/// Loaded modules per (context, entry, K, V). Thread-safe: a mutex guards the
/// map, held while a module loads; loaded modules never move or change.
class ModuleCache {
public:
  ModuleCache() = default;
  ~ModuleCache() { unloadAll(); }
  ModuleCache(const ModuleCache &) = delete;
  ModuleCache &operator=(const ModuleCache &) = delete;

  /// The module for `entry`, K, V in the scope's context: the cached one, or
  /// the one chosen by capability (exact cubin, else the highest PTX below
  /// that JIT-compiles), loaded now. DECAYRT_ERROR_UNSUPPORTED when none
  /// fits; DECAYRT_ERROR_CUDA or DECAYRT_ERROR_PACKAGE when loading fails
  /// otherwise.
  Error find(const Driver &driver, const ContextScope &scope,
             const std::vector<ModuleImage> &images, const std::string &specName,
             const std::string &entry, int64_t K, int64_t V, const LoadedModule *&out);

  /// Unloads every module, each in its context (best effort: errors of
  /// contexts destroyed meanwhile are ignored).
  void unloadAll();

private:
  using Key = std::tuple<unsigned long long, std::string, int64_t, int64_t>;
  std::mutex mutex;
  const Driver *driver = nullptr; ///< set by the first load
  std::map<Key, LoadedModule> modules;
};

} // namespace decayrt::detail::cuda

#endif // DECAYRT_LIB_CUDAMODULES_H
