// decayrt_cuda_available and the synchronous device memory helpers (alloc, free, copies) for tools and tests.
#include "CudaContext.h"
#include "CudaDriver.h"

using namespace decayrt::detail;
using namespace decayrt::detail::cuda;

namespace {

/// Runs `body(driver)` with the driver loaded and a context current.
template <typename Body> Error withContext(Body body) {
  const Driver *driver = nullptr;
  ContextScope scope;
  if (Error error = enterContext(driver, scope); !error.ok())
    return error;
  return body(*driver);
}

/// A synchronous copy of `bytes` from `from` to `to` by `copy(driver)`,
/// behind the C API's guard; `to` and `from` name the memories in messages.
template <typename Copy>
decayrt_status copyBetween(const char *function, const void *destination, const char *to,
                           const void *source, const char *from, size_t bytes, Copy copy) {
  return guarded(function, [&] {
    for (auto [pointer, name] : {std::pair{destination, to}, std::pair{source, from}})
      if (!pointer && bytes > 0)
        return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                    std::string(function) + ": " + name + " is NULL");
    if (bytes == 0)
      return Error::success();
    return withContext(copy);
  });
}

} // namespace

extern "C" decayrt_status decayrt_cuda_available(void) {
  return guarded("decayrt_cuda_available", [] {
    const Driver *driver = nullptr;
    return loadDriver(driver);
  });
}

extern "C" decayrt_status decayrt_cuda_alloc(size_t bytes, void **device) {
  return guarded("decayrt_cuda_alloc", [&] {
    if (!device)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_cuda_alloc: device is NULL");
    *device = nullptr;
    return withContext([&](const Driver &driver) {
      CUdeviceptr address = 0;
      Error error = driver.check(driver.cuMemAlloc(&address, bytes ? bytes : 1), "cuMemAlloc");
      if (error.ok())
        *device = reinterpret_cast<void *>(static_cast<uintptr_t>(address));
      return error;
    });
  });
}

extern "C" decayrt_status decayrt_cuda_free(void *device) {
  return guarded("decayrt_cuda_free", [&] {
    if (!device)
      return Error::success();
    return withContext([&](const Driver &driver) {
      return driver.check(driver.cuMemFree(deviceAddress(device)), "cuMemFree");
    });
  });
}

extern "C" decayrt_status decayrt_cuda_copy_to_device(void *device, const void *host,
                                                      size_t bytes) {
  return copyBetween("decayrt_cuda_copy_to_device", device, "device", host, "host", bytes,
                     [&](const Driver &driver) {
                       return driver.check(driver.cuMemcpyHtoD(deviceAddress(device), host, bytes),
                                           "cuMemcpyHtoD");
                     });
}

extern "C" decayrt_status decayrt_cuda_copy_to_host(void *host, const void *device, size_t bytes) {
  return copyBetween("decayrt_cuda_copy_to_host", host, "host", device, "device", bytes,
                     [&](const Driver &driver) {
                       return driver.check(driver.cuMemcpyDtoH(host, deviceAddress(device), bytes),
                                           "cuMemcpyDtoH");
                     });
}
