// The shared-memory race detector of one block: per 4-byte word, who read and wrote it since the last barrier.
#ifndef DECAYRT_LIB_SIMT_SHAREDRACES_H
#define DECAYRT_LIB_SIMT_SHAREDRACES_H

#include "decayrt/simt_abi.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace decayrt::detail::simt {

/// One conflicting pair of accesses: an earlier one by `earlierThread` and a
/// later one by `laterThread` (linear thread indices) to the word at `offset`.
struct SharedRace {
  size_t offset = 0;
  unsigned earlierThread = 0;
  decay_simt_access earlierAccess = DECAY_SIMT_READ;
  unsigned laterThread = 0;
  decay_simt_access laterAccess = DECAY_SIMT_READ;
};

/// Finds pairs of shared-memory accesses by different threads of a block to
/// the same 4-byte word within one barrier epoch (between the same two
/// barriers) where one writes: a write races with any access by another
/// thread, a read with another thread's write, an atomic with another thread's
/// plain access (atomics do not race with each other). Accesses are tracked
/// per word: threads writing different bytes of one word are reported too.
class SharedRaces {
public:
  /// Forgets every access: a new block with `sharedBytes` of shared memory.
  void reset(size_t sharedBytes);

  /// Records an access of `kind` by `thread` to [offset, offset + bytes)
  /// during barrier epoch `epoch` (the number of barriers completed), first
  /// counting its races with earlier accesses.
  void record(uint32_t epoch, unsigned thread, size_t offset, uint32_t bytes, decay_simt_access kind);

  /// Races found since reset(): one per word per conflicting access.
  uint64_t count() const { return count_; }
  /// The first race found (meaningful when count() > 0).
  const SharedRace &first() const { return first_; }

private:
  static constexpr uint16_t kNobody = 0xffff;

  /// Who accessed a word during `epoch` (stored plus one: 0 is no epoch yet).
  /// Two distinct readers (and atomic users) are kept: whichever thread comes
  /// next, at least one of them is another thread.
  struct Word {
    uint32_t epochPlusOne = 0;
    uint16_t writer = kNobody;
    uint16_t readers[2] = {kNobody, kNobody};
    uint16_t atomics[2] = {kNobody, kNobody};
  };

  void recordInWord(Word &word, size_t offset, unsigned thread, decay_simt_access kind);
  void countRace(size_t offset, unsigned other, decay_simt_access otherAccess, unsigned thread,
                 decay_simt_access kind);

  std::vector<Word> words_;
  uint64_t count_ = 0;
  SharedRace first_;
};

} // namespace decayrt::detail::simt

#endif // DECAYRT_LIB_SIMT_SHAREDRACES_H
