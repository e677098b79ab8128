// The SIMT emulator's interface to the rest of decayrt: run every block of one launch of a kernel compiled for emulation.
#ifndef DECAYRT_LIB_SIMT_EMULATOR_H
#define DECAYRT_LIB_SIMT_EMULATOR_H

#include "decayrt/simt_abi.h"

#include "../Error.h"

#include <array>
#include <cstddef>
#include <string>

namespace decayrt::detail::simt {

/// One launch: the kernel, its grid and block, its dynamic shared memory.
struct LaunchConfig {
  decay_simt_kernel kernel = nullptr;
  std::string name;                       ///< the kernel's name, for messages
  std::array<unsigned, 3> grid = {1, 1, 1};
  std::array<unsigned, 3> block = {1, 1, 1};
  size_t dynamicSharedBytes = 0;
};

/// How a launch is emulated.
struct Options {
  /// Report shared-memory data races (DECAYRT_ERROR_SIMT_RACE) after the launch.
  bool checkRaces = true;
  /// OS threads that run blocks (each runs its blocks one at a time, the
  /// block's GPU threads as fibers); 0 means std::thread::hardware_concurrency.
  unsigned workers = 0;
};

/// Runs every block of the launch. Blocks are independent and run in any
/// order on `options.workers` threads; within a block, the GPU threads run
/// as fibers that meet at barriers and warp-collective operations.
/// Fails with DECAYRT_ERROR_SIMT when a block deadlocks (threads waiting at
/// different barriers or collectives), diverges within a warp at a collective,
/// accesses shared memory out of bounds or uses a primitive unsupportedly
/// (the message names the kernel, the block and the threads); with
/// DECAYRT_ERROR_SIMT_RACE when, with checkRaces, two threads of a block
/// accessed the same shared-memory word between the same two barriers and one
/// of them wrote it (the message describes the first such race and counts
/// them). Global memory is written by the kernel even when the launch fails.
Error launch(const LaunchConfig &config, void **parameters, const Options &options);

} // namespace decayrt::detail::simt

#endif // DECAYRT_LIB_SIMT_EMULATOR_H
