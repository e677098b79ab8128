// decayc's recurrent mode (`run --entry step`): the forward's tensors run token by token through a package's step kernel.
#ifndef DECAYC_RECURRENTMODE_H
#define DECAYC_RECURRENTMODE_H

#include "CpuDevice.h"

#include "decay/Runner/Signature.h"

#include "llvm/Support/Error.h"

#include <map>
#include <string>
#include <vector>

struct decayrt_package;

namespace decayc {

/// Runs the forward's `inputs` through the package's step kernel (MATH.md
/// section 4's recurrent form) into the forward's `outputs` (o, ht, and the
/// normalizer's and scans' final states): the initial states (absent ones
/// zero, scans at their init) are copied into the final ones, which serve as
/// the step's state slots (as bf16 copies where the package stores the state
/// in bf16), slot n for sequence n; every sequence then advances
/// through its tokens from position 0 (one call per sequence with cu_seqlens,
/// one call for all batch rows without), on the CPU, the CUDA device (the
/// states copied to it and back) or under SIMT emulation as `kind` says.
llvm::Error runRecurrentMode(decayrt_package *package, DeviceKind kind,
                             const decay::SpecSummary &spec,
                             const std::map<std::string, DeviceTensor> &inputs,
                             const std::vector<int64_t> *cuSeqlens,
                             std::map<std::string, DeviceTensor> &outputs);

/// Whether tensor `name` of the spec is per token (dims B, T, ...).
bool isPerToken(const decay::SpecSummary &spec, const std::string &name);

} // namespace decayc

#endif
