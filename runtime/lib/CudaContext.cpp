// Finds the CUDA context of a call (current, else device 0's primary one pushed for the call) and its device's compute capability.
#include "CudaContext.h"

namespace decayrt::detail::cuda {

ContextScope::~ContextScope() {
  if (pushed) {
    CUcontext popped = nullptr;
    driver->cuCtxPopCurrent(&popped); // restores the thread's state; nothing to report
  }
}

Error ContextScope::enter(const Driver &d) {
  driver = &d;
  if (Error error = d.check(d.cuCtxGetCurrent(&current), "cuCtxGetCurrent"); !error.ok())
    return error;
  if (!current) {
    if (Error error = primaryContext(d, current); !error.ok())
      return error;
    if (Error error = d.check(d.cuCtxPushCurrent(current), "cuCtxPushCurrent"); !error.ok())
      return error;
    pushed = true;
  }
  id = reinterpret_cast<unsigned long long>(current);
  if (d.cuCtxGetId)
    return d.check(d.cuCtxGetId(current, &id), "cuCtxGetId");
  return Error::success();
}

Error ContextScope::capability(int &out) const {
  CUdevice device = 0;
  int major = 0, minor = 0;
  if (Error error = driver->check(driver->cuCtxGetDevice(&device), "cuCtxGetDevice"); !error.ok())
    return error;
  if (Error error = driver->check(
          driver->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
          "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)");
      !error.ok())
    return error;
  if (Error error = driver->check(
          driver->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
          "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)");
      !error.ok())
    return error;
  out = 10 * major + minor;
  return Error::success();
}

Error enterContext(const Driver *&driver, ContextScope &scope) {
  if (Error error = loadDriver(driver); !error.ok())
    return error;
  return scope.enter(*driver);
}

} // namespace decayrt::detail::cuda
