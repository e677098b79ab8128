// Shared-memory race detection: the per-word shadow state and the conflict rules between reads, writes and atomics.
#include "SharedRaces.h"

namespace decayrt::detail::simt {

namespace {

constexpr size_t kWordBytes = 4;

/// A thread in `pair` other than `thread`, or `none`.
uint16_t otherThan(const uint16_t (&pair)[2], unsigned thread, uint16_t none) {
  for (uint16_t member : pair)
    if (member != none && member != thread)
      return member;
  return none;
}

/// Adds `thread` to `pair` unless it is there or the pair is full.
void remember(uint16_t (&pair)[2], unsigned thread, uint16_t none) {
  for (uint16_t &member : pair) {
    if (member == thread)
      return;
    if (member == none) {
      member = static_cast<uint16_t>(thread);
      return;
    }
  }
}

} // namespace

void SharedRaces::reset(size_t sharedBytes) {
  words_.assign((sharedBytes + kWordBytes - 1) / kWordBytes, Word{});
  count_ = 0;
  first_ = SharedRace{};
}

void SharedRaces::record(uint32_t epoch, unsigned thread, size_t offset, uint32_t bytes,
                         decay_simt_access kind) {
  if (bytes == 0)
    return;
  size_t firstWord = offset / kWordBytes;
  size_t lastWord = (offset + bytes - 1) / kWordBytes;
  for (size_t index = firstWord; index <= lastWord && index < words_.size(); ++index) {
    Word &word = words_[index];
    if (word.epochPlusOne != epoch + 1)
      word = Word{epoch + 1};
    recordInWord(word, index * kWordBytes, thread, kind);
  }
}

void SharedRaces::recordInWord(Word &word, size_t offset, unsigned thread, decay_simt_access kind) {
  bool plain = kind != DECAY_SIMT_ATOMIC;
  if (word.writer != kNobody && word.writer != thread)
    countRace(offset, word.writer, DECAY_SIMT_WRITE, thread, kind);
  else if (uint16_t reader = otherThan(word.readers, thread, kNobody);
           kind != DECAY_SIMT_READ && reader != kNobody)
    countRace(offset, reader, DECAY_SIMT_READ, thread, kind);
  else if (uint16_t atomic = otherThan(word.atomics, thread, kNobody); plain && atomic != kNobody)
    countRace(offset, atomic, DECAY_SIMT_ATOMIC, thread, kind);

  if (kind == DECAY_SIMT_WRITE)
    word.writer = static_cast<uint16_t>(thread);
  else if (kind == DECAY_SIMT_READ)
    remember(word.readers, thread, kNobody);
  else
    remember(word.atomics, thread, kNobody);
}

void SharedRaces::countRace(size_t offset, unsigned other, decay_simt_access otherAccess,
                            unsigned thread, decay_simt_access kind) {
  if (count_++ == 0)
    first_ = SharedRace{offset, other, otherAccess, thread, kind};
}

} // namespace decayrt::detail::simt
