// The package's GPU modules: choosing one for a call (entry, K, V, device) and the per-context cache of loaded CUmodules.
#ifndef DECAYRT_LIB_CUDAMODULES_H
#define DECAYRT_LIB_CUDAMODULES_H

#include "CudaContext.h"
#include "Manifest.h"

#include <map>
#include <mutex>
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

/// The modules of `entry` compiled for K, V; fails with
/// DECAYRT_ERROR_UNSUPPORTED (listing the package's head dims) when there are none.
Error modulesFor(const std::vector<ModuleImage> &images, const std::string &specName,
                 const std::string &entry, int64_t K, int64_t V,
                 std::vector<const ModuleImage *> &out);

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
