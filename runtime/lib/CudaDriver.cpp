// Loads the CUDA driver with dlopen once per process, resolves its entry points, runs cuInit, and formats driver errors.
#include "CudaDriver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace decayrt::detail::cuda {
namespace {

/// The library loaded when DECAYRT_CUDA_DRIVER is not set.
constexpr const char *kDefaultDriver = "libcuda.so.1";

/// The outcome of loading the driver, decided once.
struct LoadedDriver {
  Driver driver{};
  Error error;
};

/// Resolves the first of `names` that `library` exports into `entry`; false
/// when it exports none of them.
template <typename Function>
bool resolve(void *library, Function &entry, std::initializer_list<const char *> names) {
  for (const char *name : names)
    if (void *address = dlsym(library, name)) {
      entry = reinterpret_cast<Function>(address);
      return true;
    }
  entry = nullptr;
  return false;
}

/// Resolves every entry point; the message names the first missing one.
Error resolveAll(void *library, const std::string &path, Driver &d) {
  const char *missing = nullptr;
  auto need = [&](auto &entry, std::initializer_list<const char *> names) {
    if (!resolve(library, entry, names) && !missing)
      missing = *names.begin();
  };
  need(d.cuGetErrorName, {"cuGetErrorName"});
  need(d.cuGetErrorString, {"cuGetErrorString"});
  need(d.cuInit, {"cuInit"});
  need(d.cuDeviceGet, {"cuDeviceGet"});
  need(d.cuDeviceGetCount, {"cuDeviceGetCount"});
  need(d.cuDeviceGetAttribute, {"cuDeviceGetAttribute"});
  need(d.cuDevicePrimaryCtxRetain, {"cuDevicePrimaryCtxRetain"});
  need(d.cuCtxGetCurrent, {"cuCtxGetCurrent"});
  need(d.cuCtxGetDevice, {"cuCtxGetDevice"});
  need(d.cuCtxPushCurrent, {"cuCtxPushCurrent_v2"});
  need(d.cuCtxPopCurrent, {"cuCtxPopCurrent_v2"});
  need(d.cuModuleLoadDataEx, {"cuModuleLoadDataEx"});
  need(d.cuModuleUnload, {"cuModuleUnload"});
  need(d.cuModuleGetFunction, {"cuModuleGetFunction"});
  need(d.cuFuncSetAttribute, {"cuFuncSetAttribute"});
  need(d.cuLaunchKernel, {"cuLaunchKernel"});
  need(d.cuMemAlloc, {"cuMemAlloc_v2"});
  need(d.cuMemFree, {"cuMemFree_v2"});
  need(d.cuMemsetD8Async, {"cuMemsetD8Async"});
  need(d.cuMemcpyHtoD, {"cuMemcpyHtoD_v2"});
  need(d.cuMemcpyDtoH, {"cuMemcpyDtoH_v2"});
  need(d.cuMemcpyHtoDAsync, {"cuMemcpyHtoDAsync_v2"});
  need(d.cuMemcpyDtoHAsync, {"cuMemcpyDtoHAsync_v2"});
  need(d.cuStreamSynchronize, {"cuStreamSynchronize"});
  need(d.cuPointerGetAttribute, {"cuPointerGetAttribute"});
  resolve(library, d.cuCtxGetId, {"cuCtxGetId"});
  resolve(library, d.cuMemAllocAsync, {"cuMemAllocAsync"});
  resolve(library, d.cuMemFreeAsync, {"cuMemFreeAsync"});
  if (missing)
    return fail(DECAYRT_ERROR_NO_CUDA_DRIVER,
                "no CUDA driver: '" + path + "' does not export " + missing);
  return Error::success();
}

/// Loads and initializes the driver (once; see loadDriver).
LoadedDriver load() {
  LoadedDriver loaded;
  const char *override = std::getenv("DECAYRT_CUDA_DRIVER");
  std::string path = override && *override ? override : kDefaultDriver;
  dlerror();
  void *library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    const char *reason = dlerror();
    loaded.error = fail(DECAYRT_ERROR_NO_CUDA_DRIVER,
                        std::string("no CUDA driver: ") + (reason ? reason : "cannot load " + path));
    return loaded;
  }
  // The library stays loaded for the life of the process: modules, contexts
  // and the callers' device memory live in it.
  if ((loaded.error = resolveAll(library, path, loaded.driver)); !loaded.error.ok())
    return loaded;
  const Driver &driver = loaded.driver;
  if (CUresult result = driver.cuInit(0); result != CUDA_SUCCESS) {
    loaded.error = fail(DECAYRT_ERROR_NO_DEVICE,
                        "no CUDA device: cuInit failed: " + driver.describe(result));
    return loaded;
  }
  int devices = 0;
  if (CUresult result = driver.cuDeviceGetCount(&devices); result != CUDA_SUCCESS)
    loaded.error = fail(DECAYRT_ERROR_NO_DEVICE,
                        "no CUDA device: cuDeviceGetCount failed: " + driver.describe(result));
  else if (devices < 1)
    loaded.error = fail(DECAYRT_ERROR_NO_DEVICE, "no CUDA device: the driver reports none");
  return loaded;
}

} // namespace

std::string Driver::describe(CUresult result) const {
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName(result, &name) != CUDA_SUCCESS || !name)
    name = "unknown CUDA error";
  if (cuGetErrorString(result, &text) != CUDA_SUCCESS || !text)
    text = "no description";
  return std::string(name) + " (" + text + ", code " + std::to_string(result) + ")";
}

Error Driver::check(CUresult result, const std::string &call) const {
  if (result == CUDA_SUCCESS)
    return Error::success();
  return fail(DECAYRT_ERROR_CUDA, call + " failed: " + describe(result));
}

Error loadDriver(const Driver *&out) {
  static const LoadedDriver loaded = load(); // initialized once, thread-safely
  out = loaded.error.ok() ? &loaded.driver : nullptr;
  return loaded.error;
}

Error primaryContext(const Driver &driver, CUcontext &out) {
  static std::mutex mutex;
  static CUcontext retained = nullptr; // kept (never released) once retained
  std::lock_guard<std::mutex> lock(mutex);
  if (!retained) {
    CUdevice device = 0;
    if (Error error = driver.check(driver.cuDeviceGet(&device, 0), "cuDeviceGet"); !error.ok())
      return error;
    if (Error error = driver.check(driver.cuDevicePrimaryCtxRetain(&retained, device),
                                   "cuDevicePrimaryCtxRetain");
        !error.ok()) {
      retained = nullptr;
      return error;
    }
  }
  out = retained;
  return Error::success();
}

} // namespace decayrt::detail::cuda
