// Running one emulated block: starting its threads on fibers, the scheduling loop, barriers, thread exit, and the error messages.
#include "BlockRun.h"

#include <algorithm>
#include <cstring>

namespace decayrt::detail::simt {

namespace {

/// Byte pattern of shared memory at a block's start: 0xffffffff is a NaN, so a
/// read of a word nobody wrote shows up in the results, as on hardware where
/// shared memory starts with whatever the previous block left.
constexpr unsigned char kUnwrittenSharedByte = 0xff;

std::string triple(const std::array<unsigned, 3> &values) {
  return "(" + std::to_string(values[0]) + "," + std::to_string(values[1]) + "," +
         std::to_string(values[2]) + ")";
}

const char *describeState(ThreadState state) {
  switch (state) {
  case ThreadState::AtBarrier:
    return "at a barrier";
  case ThreadState::AtMma:
    return "at mma.sync";
  case ThreadState::AtShuffle:
    return "at shfl.sync";
  case ThreadState::Exited:
    return "exited";
  case ThreadState::Runnable:
    break;
  }
  return "running";
}

/// "thread 5" or "threads 0-63,96-127": the threads whose flag is set.
std::string describeThreadSet(const std::vector<bool> &members) {
  std::string ranges;
  unsigned count = 0;
  for (size_t first = 0; first < members.size();) {
    if (!members[first]) {
      ++first;
      continue;
    }
    size_t last = first;
    while (last + 1 < members.size() && members[last + 1])
      ++last;
    ranges += (ranges.empty() ? "" : ",") + std::to_string(first);
    if (last > first)
      ranges += "-" + std::to_string(last);
    count += static_cast<unsigned>(last - first + 1);
    first = last + 1;
  }
  return (count == 1 ? "thread " : "threads ") + ranges;
}

const char *pastTense(decay_simt_access access) {
  switch (access) {
  case DECAY_SIMT_READ:
    return "read";
  case DECAY_SIMT_WRITE:
    return "wrote";
  case DECAY_SIMT_ATOMIC:
    break;
  }
  return "atomically updated";
}

} // namespace

BlockRun::BlockRun(const LaunchConfig &config, void **parameters, bool checkRaces)
    : config_(config), parameters_(parameters), checkRaces_(checkRaces),
      threadCount_(config.block[0] * config.block[1] * config.block[2]),
      threads_(new EmulatedThread[threadCount_]),
      warps_((threadCount_ + kWarpSize - 1) / kWarpSize),
      shared_((config.dynamicSharedBytes + sizeof(SharedChunk) - 1) / sizeof(SharedChunk)) {
  stacks_.reserve(threadCount_);
  for (unsigned i = 0; i < threadCount_; ++i)
    stacks_.push_back(std::make_unique<FiberStack>());
}

BlockRun::~BlockRun() = default;

void BlockRun::run(const std::array<unsigned, 3> &blockIndex) {
  blockIndex_ = blockIndex;
  error_ = Error::success();
  epoch_ = 0;
  liveThreads_ = threadCount_;
  atBarrier_ = 0;
  if (!shared_.empty())
    std::memset(shared_.data(), kUnwrittenSharedByte, config_.dynamicSharedBytes);
  if (checkRaces_)
    races_.reset(config_.dynamicSharedBytes);
  startThreads(blockIndex);
  schedule();
}

void BlockRun::startThreads(const std::array<unsigned, 3> &blockIndex) {
  const std::array<unsigned, 3> &dims = config_.block;
  for (unsigned w = 0; w < warps_.size(); ++w) {
    warps_[w] = WarpState{};
    warps_[w].firstThread = w * kWarpSize;
    warps_[w].lanes = std::min(kWarpSize, threadCount_ - w * kWarpSize);
  }
  for (unsigned i = 0; i < threadCount_; ++i) {
    EmulatedThread &thread = threads_[i];
    decay_simt_thread &abi = thread.abi;
    abi.tid[0] = i % dims[0];
    abi.tid[1] = i / dims[0] % dims[1];
    abi.tid[2] = i / (dims[0] * dims[1]);
    for (int axis = 0; axis < 3; ++axis) {
      abi.ntid[axis] = dims[axis];
      abi.ctaid[axis] = blockIndex[axis];
      abi.nctaid[axis] = config_.grid[axis];
    }
    abi.lane = i % kWarpSize;
    abi.warp = i / kWarpSize;
    abi.shared = sharedBase();
    abi.ops = &emulatorOps();
    abi.emulator = &thread;
    thread.block = this;
    thread.linear = i;
    thread.state = ThreadState::Runnable;
    thread.mmaResult = nullptr;
    thread.copies.clear();
    thread.fiber.start(*stacks_[i], &BlockRun::runThread, &thread);
  }
}

void BlockRun::runThread(void *argument) {
  auto &thread = *static_cast<EmulatedThread *>(argument);
  BlockRun &block = *thread.block;
  block.config_.kernel(&thread.abi, block.parameters_);
  if (!succeeds(block, [&] { return block.exitThread(thread); }))
    block.abandon(thread);
  thread.fiber.finish();
}

void BlockRun::schedule() {
  while (liveThreads_ > 0) {
    bool ranAny = false;
    for (unsigned i = 0; i < threadCount_; ++i) {
      if (threads_[i].state != ThreadState::Runnable)
        continue;
      threads_[i].fiber.resume();
      ranAny = true;
      if (!error_.ok())
        return;
    }
    if (!ranAny) {
      recordDeadlock();
      return;
    }
  }
}

void BlockRun::abandon(EmulatedThread &thread) { thread.fiber.finish(); }

void BlockRun::suspendUntilReleased(EmulatedThread &thread) { thread.fiber.suspend(); }

bool BlockRun::arriveAtBarrier(EmulatedThread &thread) {
  WarpState &warp = warpOf(thread);
  thread.state = ThreadState::AtBarrier;
  ++warp.atBarrier;
  ++atBarrier_;
  if (warp.atCollective > 0) {
    recordDivergence(warp);
    return false;
  }
  if (atBarrier_ == liveThreads_)
    releaseBarrier();
  else
    suspendUntilReleased(thread);
  return true;
}

void BlockRun::releaseBarrier() {
  ++epoch_;
  atBarrier_ = 0;
  for (WarpState &warp : warps_)
    warp.atBarrier = 0;
  for (unsigned i = 0; i < threadCount_; ++i)
    if (threads_[i].state == ThreadState::AtBarrier)
      threads_[i].state = ThreadState::Runnable;
}

bool BlockRun::exitThread(EmulatedThread &thread) {
  thread.copies.completeAll([&](const AsyncCopy &copy) { recordCopyLanding(thread, copy); });
  WarpState &warp = warpOf(thread);
  thread.state = ThreadState::Exited;
  ++warp.exited;
  --liveThreads_;
  if (warp.atCollective > 0) {
    recordDivergence(warp);
    return false;
  }
  if (atBarrier_ > 0 && atBarrier_ == liveThreads_)
    releaseBarrier();
  return true;
}

void BlockRun::recordError(std::string message) {
  if (error_.ok())
    error_ = fail(DECAYRT_ERROR_SIMT, std::move(message));
}

void BlockRun::recordFailure(decayrt_status status, const char *what) noexcept {
  if (!error_.ok())
    return;
  error_.status = status;
  try {
    error_.message = std::string("SIMT emulation: ") + what + " in " + describeBlock();
  } catch (...) {
    // The status alone must do.
  }
}

void BlockRun::recordDivergence(const WarpState &warp) {
  recordError("warp " + std::to_string(warp.firstThread / kWarpSize) + " diverged in " +
              describeBlock() +
              " (its lanes must all meet at the same collective, none at a barrier or exited): " +
              summarizeThreads());
}

void BlockRun::recordDeadlock() {
  recordError("deadlock in " + describeBlock() + ": no thread can run: " + summarizeThreads());
}

std::string BlockRun::describeBlock() const {
  return "kernel " + config_.name + " block " + triple(blockIndex_);
}

std::string BlockRun::describeThread(unsigned linear) const {
  std::string text = "thread " + std::to_string(linear);
  if (config_.block[1] > 1 || config_.block[2] > 1) {
    const uint32_t *tid = threads_[linear].abi.tid;
    text += " " + triple({tid[0], tid[1], tid[2]});
  }
  return text;
}

std::string BlockRun::summarizeThreads() const {
  static const ThreadState kOrder[] = {ThreadState::AtBarrier, ThreadState::AtMma,
                                       ThreadState::AtShuffle, ThreadState::Exited,
                                       ThreadState::Runnable};
  std::string summary;
  for (ThreadState state : kOrder) {
    std::vector<bool> members(threadCount_);
    bool any = false;
    for (unsigned i = 0; i < threadCount_; ++i)
      any |= members[i] = threads_[i].state == state;
    if (any)
      summary += (summary.empty() ? "" : ", ") + describeThreadSet(members) + " " +
                 describeState(state);
  }
  return summary;
}

std::string BlockRun::describeFirstRace() const {
  const SharedRace &race = races_.first();
  return describeBlock() + ": " + describeThread(race.earlierThread) + " " +
         pastTense(race.earlierAccess) + " byte offset " + std::to_string(race.offset) + " and " +
         describeThread(race.laterThread) + " " + pastTense(race.laterAccess) +
         " it between the same two barriers";
}

} // namespace decayrt::detail::simt
