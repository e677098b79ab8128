// simt::launch: validates a launch, runs its blocks on worker threads (each with its own BlockRun) and merges their errors and races.
#include "Emulator.h"

#include "BlockRun.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace decayrt::detail::simt {

namespace {

/// Far above any GPU's shared memory per block (227 KiB on sm_90): a larger
/// request is a miscomputed size, not a kernel to emulate.
constexpr size_t kMaxDynamicSharedBytes = size_t(16) << 20;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr std::array<uint64_t, 3> kMaxBlockDims = {1024, 1024, 64};
constexpr std::array<uint64_t, 3> kMaxGridDims = {(uint64_t(1) << 31) - 1, 65535, 65535};

Error invalid(const LaunchConfig &config, const std::string &why) {
  return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
              "SIMT launch of kernel " + config.name + ": " + why);
}

std::string dimsText(const std::array<unsigned, 3> &dims) {
  return std::to_string(dims[0]) + "x" + std::to_string(dims[1]) + "x" + std::to_string(dims[2]);
}

Error validate(const LaunchConfig &config) {
  if (!config.kernel)
    return invalid(config, "no kernel function");
  for (int axis = 0; axis < 3; ++axis) {
    if (config.grid[axis] == 0 || config.grid[axis] > kMaxGridDims[axis])
      return invalid(config, "grid " + dimsText(config.grid) + " is empty or too large");
    if (config.block[axis] == 0 || config.block[axis] > kMaxBlockDims[axis])
      return invalid(config, "block " + dimsText(config.block) + " is empty or too large");
  }
  uint64_t threads = uint64_t(config.block[0]) * config.block[1] * config.block[2];
  if (threads > kMaxThreadsPerBlock)
    return invalid(config, "block " + dimsText(config.block) + " has " + std::to_string(threads) +
                               " threads, more than " + std::to_string(kMaxThreadsPerBlock));
  if (config.dynamicSharedBytes > kMaxDynamicSharedBytes)
    return invalid(config, std::to_string(config.dynamicSharedBytes) +
                               " bytes of dynamic shared memory per block, more than " +
                               std::to_string(kMaxDynamicSharedBytes));
  return Error::success();
}

/// What the workers of one launch share: the next block to run, and what the
/// finished blocks found.
class LaunchProgress {
public:
  LaunchProgress(const LaunchConfig &config, const Options &options)
      : config_(config), options_(options),
        blockCount_(uint64_t(config.grid[0]) * config.grid[1] * config.grid[2]) {}

  uint64_t blockCount() const { return blockCount_; }

  /// Runs blocks until none is left or some block failed (on the calling thread).
  void work(void **parameters) {
    uint64_t current = 0;
    try {
      BlockRun block(config_, parameters, options_.checkRaces);
      while (!failed_.load(std::memory_order_relaxed)) {
        current = next_.fetch_add(1);
        if (current >= blockCount_)
          break;
        block.run(blockIndex(current));
        finishBlock(current, block);
      }
    } catch (const std::bad_alloc &) {
      recordError(current, fail(DECAYRT_ERROR_OUT_OF_MEMORY,
                                "SIMT emulation of kernel " + config_.name + ": out of memory"));
    } catch (...) {
      recordError(current, fail(DECAYRT_ERROR_SIMT, "SIMT emulation of kernel " + config_.name +
                                                        ": unexpected failure"));
    }
  }

  /// The first error (of the lowest block), else the races, else success.
  Error result() const {
    if (!error_.ok())
      return error_;
    if (raceCount_ == 0)
      return Error::success();
    return fail(DECAYRT_ERROR_SIMT_RACE, "data race in shared memory: " + firstRace_ + " (" +
                                             std::to_string(raceCount_) + " races in all)");
  }

private:
  std::array<unsigned, 3> blockIndex(uint64_t linear) const {
    const std::array<unsigned, 3> &grid = config_.grid;
    return {static_cast<unsigned>(linear % grid[0]),
            static_cast<unsigned>(linear / grid[0] % grid[1]),
            static_cast<unsigned>(linear / (uint64_t(grid[0]) * grid[1]))};
  }

  void finishBlock(uint64_t index, const BlockRun &block) {
    if (!block.error().ok()) {
      recordError(index, block.error());
      return;
    }
    if (block.raceCount() == 0)
      return;
    std::lock_guard<std::mutex> lock(mutex_);
    raceCount_ += block.raceCount();
    if (index < firstRaceBlock_) {
      firstRaceBlock_ = index;
      firstRace_ = block.describeFirstRace();
    }
  }

  /// Keeps the error of the lowest block: blocks are handed out in order, so
  /// every lower block has run to its end by the time all workers stop.
  void recordError(uint64_t index, const Error &error) {
    std::lock_guard<std::mutex> lock(mutex_);
    failed_.store(true, std::memory_order_relaxed);
    if (index < errorBlock_) {
      errorBlock_ = index;
      error_ = error;
    }
  }

  const LaunchConfig &config_;
  const Options &options_;
  const uint64_t blockCount_;
  std::atomic<uint64_t> next_{0};
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  uint64_t errorBlock_ = UINT64_MAX;
  Error error_;
  uint64_t raceCount_ = 0;
  uint64_t firstRaceBlock_ = UINT64_MAX;
  std::string firstRace_;
};

unsigned workerCount(const Options &options, uint64_t blockCount) {
  unsigned wanted = options.workers != 0 ? options.workers : std::thread::hardware_concurrency();
  return static_cast<unsigned>(std::clamp<uint64_t>(wanted, 1, blockCount));
}

} // namespace

Error launch(const LaunchConfig &config, void **parameters, const Options &options) {
  if (Error error = validate(config); !error.ok())
    return error;
  LaunchProgress progress(config, options);
  std::vector<std::thread> helpers;
  unsigned workers = workerCount(options, progress.blockCount());
  for (unsigned i = 1; i < workers; ++i) {
    try {
      helpers.emplace_back([&] { progress.work(parameters); });
    } catch (const std::system_error &) {
      break; // fewer workers do the same work
    }
  }
  progress.work(parameters);
  for (std::thread &helper : helpers)
    helper.join();
  return progress.result();
}

} // namespace decayrt::detail::simt
