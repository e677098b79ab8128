// `decayc bench --entry step`: the decoding step's time and state bandwidth beside a triad loop.
#ifndef DECAYC_STEPBENCH_H
#define DECAYC_STEPBENCH_H

#include "CpuDevice.h"
#include "ProblemShape.h"

#include "llvm/Support/Error.h"

#include <cstdint>

namespace decayc {

/// How the step is timed.
struct StepBenchOptions {
  int64_t threads = 1, runs = 7, warmup = 2;
  bool json = false;
};

/// Times one decoding step of `shape.B` sequences (T = 1, slot b for row b,
/// `shape.T` ignored): warm-up, then the median over `runs` runs of the time
/// per step (each run repeats the step for at least 20 ms). Prints it with the
/// state bandwidth (the in-out states read and written once per step) and its
/// fraction of a STREAM triad measured in the same run on the same threads;
/// with `json`, one JSON object on the last line.
llvm::Error benchStep(const CpuDevice &device, const ProblemShape &shape,
                      const StepBenchOptions &options);

} // namespace decayc

#endif
