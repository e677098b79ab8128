// decayc's CUDA device path: host tensors copied to device memory through decayrt, the GPU kernels run, the outputs copied back.
#ifndef DECAYC_CUDATRANSFER_H
#define DECAYC_CUDATRANSFER_H

#include "decayrt/decayrt.h"

#include "llvm/Support/Error.h"

#include <vector>

namespace decayc {

/// Runs `entry` of `package` on the CUDA device (decayrt_run_cuda on the
/// default stream, workspace allocated by decayrt): every tensor of
/// `tensors` (host memory) but cu_seqlens is copied to device memory (which
/// decayrt reads on the host), and those marked in `isOutput` are copied back
/// into their host memory when the kernels are done. Device memory is freed in
/// every case; the error is decayrt's message.
llvm::Error runOnCuda(decayrt_package *package, const char *entry,
                      const std::vector<decayrt_tensor> &tensors,
                      const std::vector<bool> &isOutput);

} // namespace decayc

#endif
