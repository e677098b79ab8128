// The decay_simt_ops table: the C entry points kernels call, each forwarding to its thread's block and abandoning the thread on error.
#include "BlockRun.h"

namespace decayrt::detail::simt {

namespace {

EmulatedThread &emulatedThread(decay_simt_thread *thread) {
  return *static_cast<EmulatedThread *>(thread->emulator);
}

/// Runs one primitive for `abi`'s thread; on error leaves its fiber for good
/// (a primitive never returns to a kernel that misbehaved).
template <typename Body> void runPrimitive(decay_simt_thread *abi, Body body) {
  EmulatedThread &thread = emulatedThread(abi);
  if (!succeeds(*thread.block, [&] { return body(*thread.block, thread); }))
    thread.block->abandon(thread);
}

void barrier(decay_simt_thread *abi) {
  runPrimitive(abi, [](BlockRun &block, EmulatedThread &thread) {
    return block.arriveAtBarrier(thread);
  });
}

void mmaM16n8k8Tf32(decay_simt_thread *abi, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                    uint32_t b0, uint32_t b1, float c0, float c1, float c2, float c3, float *d) {
  MmaFragments fragments;
  fragments.a[0] = a0, fragments.a[1] = a1, fragments.a[2] = a2, fragments.a[3] = a3;
  fragments.b[0] = b0, fragments.b[1] = b1;
  fragments.c[0] = c0, fragments.c[1] = c1, fragments.c[2] = c2, fragments.c[3] = c3;
  runPrimitive(abi, [&](BlockRun &block, EmulatedThread &thread) {
    return block.arriveAtMma(thread, fragments, d);
  });
}

uint32_t shuffle(decay_simt_thread *abi, uint32_t mode, uint32_t memberMask, uint32_t value,
                 uint32_t laneOrOffset, uint32_t clampAndMask, uint8_t *valid) {
  ShuffleLane operands;
  operands.mode = mode;
  operands.memberMask = memberMask;
  operands.value = value;
  operands.laneOrOffset = laneOrOffset;
  operands.clampAndMask = clampAndMask;
  runPrimitive(abi, [&](BlockRun &block, EmulatedThread &thread) {
    return block.arriveAtShuffle(thread, operands);
  });
  const ShuffleLane &result = emulatedThread(abi).shuffle;
  if (valid)
    *valid = result.valid ? 1 : 0;
  return result.result;
}

void cpAsync(decay_simt_thread *abi, void *shared, const void *global, uint32_t bytes,
             uint32_t sourceBytes) {
  runPrimitive(abi, [&](BlockRun &block, EmulatedThread &thread) {
    return block.issueAsyncCopy(thread, shared, global, bytes, sourceBytes);
  });
}

void cpAsyncCommit(decay_simt_thread *abi) { emulatedThread(abi).copies.commit(); }

void cpAsyncWait(decay_simt_thread *abi, uint32_t pending) {
  runPrimitive(abi, [&](BlockRun &block, EmulatedThread &thread) {
    return block.waitAsyncCopies(thread, pending);
  });
}

void sharedAccess(decay_simt_thread *abi, const void *address, uint32_t bytes, uint32_t kind) {
  runPrimitive(abi, [&](BlockRun &block, EmulatedThread &thread) {
    return block.checkSharedAccess(thread, address, bytes, kind);
  });
}

// In DECAY_SIMT_OP_* order.
const decay_simt_ops kOps = {&barrier, &mmaM16n8k8Tf32, &shuffle,     &cpAsync,
                             &cpAsyncCommit, &cpAsyncWait, &sharedAccess};

} // namespace

const decay_simt_ops &emulatorOps() { return kOps; }

} // namespace decayrt::detail::simt
