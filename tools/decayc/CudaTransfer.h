// decayc's CUDA device path: host tensors copied to device memory through decayrt, the GPU kernels run, the outputs copied back.
#ifndef DECAYC_CUDATRANSFER_H
#define DECAYC_CUDATRANSFER_H

#include "decayrt/decayrt.h"

#include "llvm/Support/Error.h"

#include <vector>

namespace decayc {

/// How a tensor moves between host and device around a run: an input is
/// copied to the device, an output back to the host, an in-out tensor (a
/// step's state slots) both ways.
enum class Transfer { In, Out, InOut };

/// Runs `entry` of `package` on the CUDA device (decayrt_run_cuda on the
/// default stream, workspace allocated by decayrt): every tensor of
/// `tensors` (host memory) but cu_seqlens (which decayrt reads on the host)
/// gets device memory, filled and read back as `transfers` says (one per
/// tensor) when the kernels are done. Device memory is freed in every case;
/// the error is decayrt's message.
llvm::Error runOnCuda(decayrt_package *package, const char *entry,
                      const std::vector<decayrt_tensor> &tensors,
                      const std::vector<Transfer> &transfers);

} // namespace decayc

#endif
