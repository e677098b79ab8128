// Shared memory of an emulated block: bounds checks and race recording for every access, and cp.async issue, wait and landing.
#include "BlockRun.h"

namespace decayrt::detail::simt {

namespace {

const char *accessName(decay_simt_access access) {
  switch (access) {
  case DECAY_SIMT_READ:
    return "read";
  case DECAY_SIMT_WRITE:
    return "write";
  case DECAY_SIMT_ATOMIC:
    break;
  }
  return "atomic";
}

/// The byte offset of `address` from `base`, negative below it.
int64_t offsetFrom(const unsigned char *base, const void *address) {
  return static_cast<int64_t>(reinterpret_cast<uintptr_t>(address) -
                              reinterpret_cast<uintptr_t>(base));
}

} // namespace

unsigned char *BlockRun::sharedBase() {
  return shared_.empty() ? nullptr : shared_.front().bytes;
}

bool BlockRun::checkSharedBounds(const EmulatedThread &thread, const void *address,
                                 uint32_t bytes, const char *what) {
  int64_t offset = offsetFrom(sharedBase(), address);
  auto size = static_cast<int64_t>(config_.dynamicSharedBytes);
  if (offset >= 0 && offset <= size && bytes <= size - offset)
    return true;
  recordError(std::string("shared-memory ") + what + " of " + std::to_string(bytes) +
              " bytes at byte offset " + std::to_string(offset) + " by " +
              describeThread(thread.linear) + " in " + describeBlock() +
              " is outside the block's " + std::to_string(size) +
              " bytes of dynamic shared memory");
  return false;
}

bool BlockRun::checkSharedAccess(EmulatedThread &thread, const void *address, uint32_t bytes,
                                 uint32_t kind) {
  if (kind > DECAY_SIMT_ATOMIC) {
    recordError("shared-memory access of unknown kind " + std::to_string(kind) + " by " +
                describeThread(thread.linear) + " in " + describeBlock());
    return false;
  }
  auto access = static_cast<decay_simt_access>(kind);
  if (!checkSharedBounds(thread, address, bytes, accessName(access)))
    return false;
  if (checkRaces_)
    races_.record(epoch_, thread.linear, static_cast<size_t>(offsetFrom(sharedBase(), address)),
                  bytes, access);
  return true;
}

bool BlockRun::issueAsyncCopy(EmulatedThread &thread, void *shared, const void *global,
                              uint32_t bytes, uint32_t sourceBytes) {
  if ((bytes != 4 && bytes != 8 && bytes != 16) || sourceBytes > bytes) {
    recordError("cp.async of " + std::to_string(bytes) + " bytes (" + std::to_string(sourceBytes) +
                " from global memory) by " + describeThread(thread.linear) + " in " +
                describeBlock() + ": PTX copies 4, 8 or 16 bytes, at most all from the source");
    return false;
  }
  if (!checkSharedBounds(thread, shared, bytes, "cp.async destination"))
    return false;
  int64_t offset = offsetFrom(sharedBase(), shared);
  if (offset % bytes != 0) {
    recordError("cp.async of " + std::to_string(bytes) + " bytes to byte offset " +
                std::to_string(offset) + " of shared memory by " + describeThread(thread.linear) +
                " in " + describeBlock() + " is not aligned to its size");
    return false;
  }
  AsyncCopy copy;
  copy.shared = static_cast<unsigned char *>(shared);
  copy.global = static_cast<const unsigned char *>(global);
  copy.bytes = bytes;
  copy.sourceBytes = sourceBytes;
  recordCopyLanding(thread, copy);
  thread.copies.issue(copy);
  return true;
}

bool BlockRun::waitAsyncCopies(EmulatedThread &thread, uint32_t pending) {
  thread.copies.completeAllBut(pending,
                               [&](const AsyncCopy &copy) { recordCopyLanding(thread, copy); });
  return true;
}

void BlockRun::recordCopyLanding(const EmulatedThread &thread, const AsyncCopy &copy) {
  if (checkRaces_)
    races_.record(epoch_, thread.linear, static_cast<size_t>(offsetFrom(sharedBase(), copy.shared)),
                  copy.bytes, DECAY_SIMT_WRITE);
}

} // namespace decayrt::detail::simt
