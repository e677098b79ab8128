// The CPU call path shared by decayrt_run and the decoder: check a call of one kernel, then run it.
#ifndef DECAYRT_LIB_RUN_H
#define DECAYRT_LIB_RUN_H

#include "Error.h"
#include "Package.h"

#include <cstddef>

namespace decayrt::detail {

/// Checks every tensor of a call to the CPU kernel `kernel` of `package`
/// (planCall), then runs it on the caller's buffers. Writes nothing when a
/// check fails. Throws std::bad_alloc when the runtime's buffers cannot be
/// allocated (before anything is written).
Error runCpuKernel(const decayrt_package &package, const LoadedKernel &kernel,
                   const decayrt_tensor *tensors, size_t count);

} // namespace decayrt::detail

#endif // DECAYRT_LIB_RUN_H
