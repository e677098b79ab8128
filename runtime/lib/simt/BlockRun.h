// One thread block of an emulated launch: its GPU threads as fibers, scheduled in a fixed order, meeting at barriers and warp collectives.
#ifndef DECAYRT_LIB_SIMT_BLOCKRUN_H
#define DECAYRT_LIB_SIMT_BLOCKRUN_H

#include "AsyncCopies.h"
#include "Emulator.h"
#include "Fiber.h"
#include "SharedRaces.h"
#include "WarpMath.h"

#include <array>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace decayrt::detail::simt {

class BlockRun;

/// Where an emulated thread is: able to run, waiting at a barrier or at a
/// warp collective, or exited.
enum class ThreadState : uint8_t { Runnable, AtBarrier, AtMma, AtShuffle, Exited };

/// One lane's shfl.sync operands and, once its warp has met, its result.
struct ShuffleLane {
  uint32_t mode = 0;
  uint32_t memberMask = 0;
  uint32_t value = 0;
  uint32_t laneOrOffset = 0;
  uint32_t clampAndMask = 0;
  uint32_t result = 0;
  bool valid = false;
};

/// One emulated GPU thread: what the kernel sees (`abi`, whose `emulator`
/// points back here) and the emulator's state of it.
struct EmulatedThread {
  decay_simt_thread abi{};
  BlockRun *block = nullptr;
  unsigned linear = 0; ///< tid.x + ntid.x * (tid.y + ntid.y * tid.z)
  ThreadState state = ThreadState::Runnable;
  Fiber fiber;
  MmaFragments mma;
  float *mmaResult = nullptr; ///< where this lane's d0..d3 go
  ShuffleLane shuffle;
  AsyncCopies copies;
};

/// A warp's lanes (the threads [firstThread, firstThread + lanes)) and how
/// many of them wait where.
struct WarpState {
  unsigned firstThread = 0;
  unsigned lanes = 0;
  ThreadState collective = ThreadState::Runnable; ///< what its waiting lanes wait at
  uint32_t shuffleMode = 0;
  unsigned atCollective = 0;
  unsigned atBarrier = 0;
  unsigned exited = 0;
};

/// Runs the blocks of one launch, one at a time, on the calling OS thread,
/// reusing its fibers, their stacks and the shared memory from block to block.
/// Threads run in order (thread 0 until it waits or exits, then thread 1, ...)
/// and round again while any can run. The primitives are called on the
/// thread's own fiber; each returns false once it has recorded an error, and
/// the caller (Primitives.cpp) then abandons the thread and with it the block.
class BlockRun {
public:
  BlockRun(const LaunchConfig &config, void **parameters, bool checkRaces);
  ~BlockRun();
  BlockRun(const BlockRun &) = delete;
  BlockRun &operator=(const BlockRun &) = delete;

  /// Runs the block at `blockIndex` until all its threads exit or it fails
  /// (then error() says why; its fibers are never resumed).
  void run(const std::array<unsigned, 3> &blockIndex);

  const Error &error() const { return error_; }
  /// Shared-memory races found in the last block run (with checkRaces).
  uint64_t raceCount() const { return races_.count(); }
  /// The last block's first race: "kernel K block (x,y,z): thread A wrote
  /// byte offset O and thread B read it between the same two barriers".
  std::string describeFirstRace() const;

  bool arriveAtBarrier(EmulatedThread &thread);
  bool arriveAtMma(EmulatedThread &thread, const MmaFragments &fragments, float *d);
  /// On success the result is in thread.shuffle.
  bool arriveAtShuffle(EmulatedThread &thread, const ShuffleLane &operands);
  bool checkSharedAccess(EmulatedThread &thread, const void *address, uint32_t bytes, uint32_t kind);
  bool issueAsyncCopy(EmulatedThread &thread, void *shared, const void *global, uint32_t bytes,
                      uint32_t sourceBytes);
  bool waitAsyncCopies(EmulatedThread &thread, uint32_t pending);

  /// Records a failure of the emulator itself (`what`: "out of memory", ...).
  void recordFailure(decayrt_status status, const char *what) noexcept;
  /// Leaves the thread's fiber for good after an error: the block is abandoned.
  [[noreturn]] void abandon(EmulatedThread &thread);

private:
  struct alignas(16) SharedChunk {
    unsigned char bytes[16];
  };

  static void runThread(void *thread);
  void startThreads(const std::array<unsigned, 3> &blockIndex);
  void schedule();
  bool exitThread(EmulatedThread &thread);
  void suspendUntilReleased(EmulatedThread &thread);
  void releaseBarrier();

  // Warp collectives (BlockCollectives.cpp).
  /// How a lane's arrival at a collective ends: its warp diverged (recorded),
  /// the warp's last lane computed the collective and released it, or this is
  /// that last lane (which must compute and release).
  enum class Arrival { Failed, Released, Last };
  Arrival joinCollective(EmulatedThread &thread, ThreadState collective);
  void releaseWarp(WarpState &warp);
  void computeMma(const WarpState &warp);
  bool computeShuffle(WarpState &warp);

  // Shared memory and cp.async (BlockMemory.cpp).
  unsigned char *sharedBase();
  bool checkSharedBounds(const EmulatedThread &thread, const void *address, uint32_t bytes,
                         const char *what);
  void recordCopyLanding(const EmulatedThread &thread, const AsyncCopy &copy);

  // Errors and their messages.
  void recordError(std::string message);
  void recordDivergence(const WarpState &warp);
  void recordDeadlock();
  std::string describeBlock() const;
  std::string describeThread(unsigned linear) const;
  std::string summarizeThreads() const;

  WarpState &warpOf(const EmulatedThread &thread) { return warps_[thread.linear / kWarpSize]; }

  const LaunchConfig &config_;
  void **parameters_;
  bool checkRaces_;
  unsigned threadCount_;
  std::unique_ptr<EmulatedThread[]> threads_;
  std::vector<std::unique_ptr<FiberStack>> stacks_;
  std::vector<WarpState> warps_;
  std::vector<SharedChunk> shared_;
  SharedRaces races_;
  std::array<unsigned, 3> blockIndex_ = {0, 0, 0};
  uint32_t epoch_ = 0; ///< barriers completed in this block
  unsigned liveThreads_ = 0;
  unsigned atBarrier_ = 0;
  Error error_;
};

/// The primitives table every emulated thread's `ops` points to (Primitives.cpp).
const decay_simt_ops &emulatorOps();

/// Runs `body` (returning false after recording an error) on a fiber, where no
/// exception may escape: turns exceptions into recorded failures (false).
template <typename Body> bool succeeds(BlockRun &block, Body body) {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    block.recordFailure(DECAYRT_ERROR_OUT_OF_MEMORY, "out of memory");
  } catch (...) {
    block.recordFailure(DECAYRT_ERROR_SIMT, "unexpected failure");
  }
  return false;
}

} // namespace decayrt::detail::simt

#endif // DECAYRT_LIB_SIMT_BLOCKRUN_H
