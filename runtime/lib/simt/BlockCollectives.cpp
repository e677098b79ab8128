// Warp collectives of an emulated block: lanes meet at mma.sync or shfl.sync, the last to arrive computes for all and releases them.
#include "BlockRun.h"

namespace decayrt::detail::simt {

namespace {

/// The member mask of a warp whose lanes all take part.
uint32_t wholeWarpMask(unsigned lanes) {
  return lanes >= kWarpSize ? 0xffffffffu : (uint32_t(1) << lanes) - 1;
}

std::string hex(uint32_t value) {
  static const char kDigits[] = "0123456789abcdef";
  std::string text = "0x";
  for (int shift = 28; shift >= 0; shift -= 4)
    text += kDigits[(value >> shift) & 15];
  return text;
}

} // namespace

BlockRun::Arrival BlockRun::joinCollective(EmulatedThread &thread, ThreadState collective) {
  WarpState &warp = warpOf(thread);
  thread.state = collective;
  bool otherCollective = warp.atCollective > 0 && warp.collective != collective;
  bool otherShuffle = warp.atCollective > 0 && collective == ThreadState::AtShuffle &&
                      warp.shuffleMode != thread.shuffle.mode;
  ++warp.atCollective;
  if (otherCollective || otherShuffle || warp.atBarrier > 0 || warp.exited > 0) {
    recordDivergence(warp);
    return Arrival::Failed;
  }
  warp.collective = collective;
  warp.shuffleMode = thread.shuffle.mode;
  if (warp.atCollective == warp.lanes)
    return Arrival::Last;
  suspendUntilReleased(thread);
  return Arrival::Released;
}

void BlockRun::releaseWarp(WarpState &warp) {
  warp.atCollective = 0;
  warp.collective = ThreadState::Runnable;
  for (unsigned lane = 0; lane < warp.lanes; ++lane)
    threads_[warp.firstThread + lane].state = ThreadState::Runnable;
}

bool BlockRun::arriveAtMma(EmulatedThread &thread, const MmaFragments &fragments, float *d) {
  WarpState &warp = warpOf(thread);
  if (warp.lanes != kWarpSize) {
    recordError("mma.sync needs all 32 lanes of a warp, but warp " +
                std::to_string(thread.abi.warp) + " of " + describeBlock() + " has " +
                std::to_string(warp.lanes) + " (the block has " + std::to_string(threadCount_) +
                " threads)");
    return false;
  }
  thread.mma = fragments;
  thread.mmaResult = d;
  Arrival arrival = joinCollective(thread, ThreadState::AtMma);
  if (arrival != Arrival::Last)
    return arrival == Arrival::Released;
  computeMma(warp);
  releaseWarp(warp);
  return true;
}

void BlockRun::computeMma(const WarpState &warp) {
  MmaFragments lanes[kWarpSize];
  for (unsigned lane = 0; lane < kWarpSize; ++lane)
    lanes[lane] = threads_[warp.firstThread + lane].mma;
  float d[kWarpSize][4];
  multiplyAccumulateM16N8K8(lanes, d);
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    float *result = threads_[warp.firstThread + lane].mmaResult;
    for (unsigned i = 0; i < 4; ++i)
      result[i] = d[lane][i];
  }
}

bool BlockRun::arriveAtShuffle(EmulatedThread &thread, const ShuffleLane &operands) {
  WarpState &warp = warpOf(thread);
  if (operands.mode > DECAY_SIMT_SHUFFLE_IDX) {
    recordError("shfl.sync with unknown mode " + std::to_string(operands.mode) + " by " +
                describeThread(thread.linear) + " in " + describeBlock());
    return false;
  }
  if (operands.memberMask != wholeWarpMask(warp.lanes)) {
    recordError("shfl.sync with unsupported member mask " + hex(operands.memberMask) + " by " +
                describeThread(thread.linear) + " in " + describeBlock() +
                " (the emulator supports only every lane of the warp: " +
                hex(wholeWarpMask(warp.lanes)) + ")");
    return false;
  }
  thread.shuffle = operands;
  Arrival arrival = joinCollective(thread, ThreadState::AtShuffle);
  if (arrival != Arrival::Last)
    return arrival == Arrival::Released;
  if (!computeShuffle(warp))
    return false;
  releaseWarp(warp);
  return true;
}

bool BlockRun::computeShuffle(WarpState &warp) {
  EmulatedThread *lanes = &threads_[warp.firstThread];
  for (unsigned lane = 0; lane < warp.lanes; ++lane) {
    ShuffleLane &shuffle = lanes[lane].shuffle;
    ShuffleSource source =
        shuffleSourceLane(shuffle.mode, lane, shuffle.laneOrOffset, shuffle.clampAndMask);
    if (source.lane >= warp.lanes) {
      recordError("shfl.sync in " + describeBlock() + ": lane " + std::to_string(lane) +
                  " of warp " + std::to_string(warp.firstThread / kWarpSize) + " reads lane " +
                  std::to_string(source.lane) + ", which does not exist (the block has " +
                  std::to_string(threadCount_) + " threads)");
      return false;
    }
    shuffle.result = lanes[source.lane].shuffle.value;
    shuffle.valid = source.inRange;
  }
  return true;
}

} // namespace decayrt::detail::simt
