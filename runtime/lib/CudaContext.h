// The CUDA context a call runs in: the calling thread's current one, else device 0's primary context for the call's duration.
#ifndef DECAYRT_LIB_CUDACONTEXT_H
#define DECAYRT_LIB_CUDACONTEXT_H

#include "CudaDriver.h"

namespace decayrt::detail::cuda {

/// Makes a context current for a scope: the thread's current context is kept
/// as is; without one, device 0's primary context is pushed by enter() and
/// popped when the scope ends.
class ContextScope {
public:
  ContextScope() = default;
  ~ContextScope();
  ContextScope(const ContextScope &) = delete;
  ContextScope &operator=(const ContextScope &) = delete;

  /// Finds (or pushes) the context; fails with the driver's error.
  Error enter(const Driver &driver);

  CUcontext context() const { return current; }
  /// What identifies the context in caches: cuCtxGetId's unique id where the
  /// driver has it (a destroyed context's address may be reused), else its address.
  unsigned long long key() const { return id; }

  /// The compute capability of the context's device, as 10 * major + minor.
  Error capability(int &out) const;

private:
  const Driver *driver = nullptr;
  CUcontext current = nullptr;
  unsigned long long id = 0;
  bool pushed = false;
};

/// Loads the driver (loadDriver) and enters `scope` for a call.
Error enterContext(const Driver *&driver, ContextScope &scope);

} // namespace decayrt::detail::cuda

#endif // DECAYRT_LIB_CUDACONTEXT_H
