// Chooses the GPU module of a call by head dims and compute capability, loads it (cubin or PTX JIT) and caches it per context.
#include "CudaModules.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace decayrt::detail::cuda {
namespace {

/// Shared memory per block (static + dynamic) above this needs the function's opt-in.
constexpr int64_t kDefaultSharedLimit = 48 * 1024;
/// The size of the JIT's error log kept for messages.
constexpr size_t kJitLogBytes = 4096;

/// "sm_86" of a capability 86.
std::string targetName(int capability) { return "sm_" + std::to_string(capability); }

/// "8.6" of a capability 86.
std::string capabilityText(int capability) {
  return std::to_string(capability / 10) + "." + std::to_string(capability % 10);
}

/// Whether a load failed because the image does not fit this device or
/// driver (so another image may), rather than for another reason.
bool isIncompatibleImage(CUresult result) {
  return result == CUDA_ERROR_INVALID_IMAGE || result == CUDA_ERROR_NO_BINARY_FOR_GPU ||
         result == CUDA_ERROR_INVALID_PTX || result == CUDA_ERROR_JIT_COMPILER_NOT_FOUND ||
         result == CUDA_ERROR_UNSUPPORTED_PTX_VERSION ||
         result == CUDA_ERROR_JIT_COMPILATION_DISABLED;
}

/// The first line of a JIT log, or "".
std::string firstLine(const char *log) {
  std::string text(log, strnlen(log, kJitLogBytes));
  return text.substr(0, text.find('\n'));
}

/// One attempt to load an image (a cubin, or PTX that the driver JIT-compiles).
struct Attempt {
  CUresult result = CUDA_SUCCESS;
  std::string what; ///< "sm_80 cubin" or "sm_80 PTX"
  std::string log;  ///< the JIT's first error line
};

/// cuModuleLoadDataEx on one image, keeping the JIT's error log.
Attempt loadImage(const Driver &driver, const ModuleImage &image, bool cubin, CUmodule &out) {
  char log[kJitLogBytes] = {};
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {log, reinterpret_cast<void *>(static_cast<uintptr_t>(sizeof log - 1))};
  const void *data = cubin ? static_cast<const void *>(image.cubin) : image.ptx;
  Attempt attempt;
  attempt.what = targetName(image.kernel->gpu->capability) + (cubin ? " cubin" : " PTX");
  attempt.result = driver.cuModuleLoadDataEx(&out, data, 2, options, values);
  attempt.log = firstLine(log);
  return attempt;
}

/// Resolves the module's functions and opts them in to their dynamic shared
/// memory where a block needs more than 48 KiB; unloads the module on failure.
Error prepareFunctions(const Driver &driver, LoadedModule &loaded) {
  const GpuModule &gpu = *loaded.image->kernel->gpu;
  Error error;
  for (const Launch &launch : gpu.launches) {
    CUfunction function = nullptr;
    CUresult result = driver.cuModuleGetFunction(&function, loaded.module, launch.function.c_str());
    if (result != CUDA_SUCCESS) {
      error = fail(DECAYRT_ERROR_PACKAGE, "the " + targetName(gpu.capability) + " module of the " +
                                              loaded.image->kernel->entry +
                                              " entry has no function '" + launch.function +
                                              "': cuModuleGetFunction failed: " +
                                              driver.describe(result));
      break;
    }
    if (launch.staticSharedBytes + launch.dynamicSharedBytes > kDefaultSharedLimit)
      error = driver.check(driver.cuFuncSetAttribute(function,
                                                     CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                     static_cast<int>(launch.dynamicSharedBytes)),
                           "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
    if (!error.ok())
      break;
    loaded.functions.push_back(function);
  }
  if (!error.ok())
    driver.cuModuleUnload(loaded.module);
  return error;
}

/// Loads the best module of `candidates` for a device of `capability`: the
/// exact target's cubin, else PTX from the highest target down.
Error selectAndLoad(const Driver &driver, const std::vector<const ModuleImage *> &candidates,
                    int capability, const std::string &what, LoadedModule &out) {
  std::vector<const ModuleImage *> usable;
  std::string targets;
  for (const ModuleImage *image : candidates) {
    targets += (targets.empty() ? "" : ", ") + image->kernel->target;
    if (image->kernel->gpu->capability <= capability)
      usable.push_back(image);
  }
  if (usable.empty())
    return fail(DECAYRT_ERROR_UNSUPPORTED, what + " target " + targets +
                                               ", none of which runs on a device of compute "
                                               "capability " + capabilityText(capability));
  std::sort(usable.begin(), usable.end(), [](const ModuleImage *a, const ModuleImage *b) {
    return a->kernel->gpu->capability > b->kernel->gpu->capability;
  });
  std::string failures;
  for (const ModuleImage *image : usable) {
    for (bool cubin : {true, false}) {
      if (cubin && image->kernel->gpu->capability != capability)
        continue;
      CUmodule module = nullptr;
      Attempt attempt = loadImage(driver, *image, cubin, module);
      if (attempt.result == CUDA_SUCCESS) {
        out.image = image;
        out.module = module;
        out.fromCubin = cubin;
        return Error::success();
      }
      std::string reason = attempt.what + ": cuModuleLoadDataEx failed: " +
                           driver.describe(attempt.result) +
                           (attempt.log.empty() ? "" : ": " + attempt.log);
      if (!isIncompatibleImage(attempt.result))
        return fail(DECAYRT_ERROR_CUDA, reason);
      failures += "; " + reason;
    }
  }
  return fail(DECAYRT_ERROR_UNSUPPORTED, what + " target " + targets + ", and none loads on " +
                                             "this device of compute capability " +
                                             capabilityText(capability) + failures);
}

} // namespace

std::string listHeadDims(const std::set<std::pair<int64_t, int64_t>> &headDims) {
  std::string list;
  for (const auto &[keyDim, valueDim] : headDims)
    list += (list.empty() ? "" : ", ") + std::string("(") + std::to_string(keyDim) + ", " +
            std::to_string(valueDim) + ")";
  return list;
}

Error ModuleCache::find(const Driver &d, const ContextScope &scope,
                        const std::vector<ModuleImage> &images, const std::string &specName,
                        const std::string &entry, int64_t K, int64_t V, const LoadedModule *&out) {
  std::vector<const ModuleImage *> candidates;
  if (Error error = modulesFor(images, specName, entry, K, V, candidates); !error.ok())
    return error;
  std::lock_guard<std::mutex> lock(mutex);
  Key key{scope.key(), entry, K, V};
  if (auto found = modules.find(key); found != modules.end()) {
    out = &found->second;
    return Error::success();
  }
  int capability = 0;
  if (Error error = scope.capability(capability); !error.ok())
    return error;
  LoadedModule loaded;
  loaded.context = scope.context();
  std::string what = "the " + entry + " modules of @" + specName + " for K = " +
                     std::to_string(K) + ", V = " + std::to_string(V);
  if (Error error = selectAndLoad(d, candidates, capability, what, loaded); !error.ok())
    return error;
  if (Error error = prepareFunctions(d, loaded); !error.ok())
    return error;
  driver = &d;
  out = &modules.emplace(key, std::move(loaded)).first->second;
  return Error::success();
}

void ModuleCache::unloadAll() {
  std::lock_guard<std::mutex> lock(mutex);
  for (auto &[key, loaded] : modules) {
    // cuModuleUnload acts on the current context: make the module's current.
    if (driver->cuCtxPushCurrent(loaded.context) != CUDA_SUCCESS)
      continue;
    driver->cuModuleUnload(loaded.module);
    CUcontext popped = nullptr;
    driver->cuCtxPopCurrent(&popped);
  }
  modules.clear();
}

} // namespace decayrt::detail::cuda
