// Tests of the SIMT emulator (runtime/lib/simt): kernels written against the ABI as generated code would be, checked against hand-computed results.
#include "simt/Emulator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

namespace simt = decayrt::detail::simt;
using decayrt::detail::Error;

// ---- Helpers for test kernels -------------------------------------------------

template <typename T> T parameter(void **parameters, int index) {
  T value;
  std::memcpy(&value, parameters[index], sizeof value);
  return value;
}

uint32_t bitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float floatOf(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

unsigned linearThread(const decay_simt_thread *t) {
  return t->tid[0] + t->ntid[0] * (t->tid[1] + t->ntid[1] * t->tid[2]);
}

uint32_t *sharedWords(decay_simt_thread *t) { return static_cast<uint32_t *>(t->shared); }

/// A checked shared-memory store, as generated code does it.
void storeShared(decay_simt_thread *t, uint32_t *address, uint32_t value) {
  t->ops->shared_access(t, address, sizeof value, DECAY_SIMT_WRITE);
  *address = value;
}

uint32_t loadShared(decay_simt_thread *t, const uint32_t *address) {
  t->ops->shared_access(t, address, sizeof *address, DECAY_SIMT_READ);
  return *address;
}

/// Kernel parameters marshalled as for cuLaunchKernel: each slot points to an 8-byte value.
class Parameters {
public:
  template <typename T> Parameters &add(T value) {
    int64_t slot = 0;
    static_assert(sizeof(T) <= sizeof slot);
    std::memcpy(&slot, &value, sizeof value);
    values_.push_back(slot);
    return *this;
  }
  void **pointers() {
    pointers_.clear();
    for (int64_t &value : values_)
      pointers_.push_back(&value);
    return pointers_.data();
  }

private:
  std::vector<int64_t> values_;
  std::vector<void *> pointers_;
};

simt::LaunchConfig config(decay_simt_kernel kernel, const char *name, std::array<unsigned, 3> grid,
                          std::array<unsigned, 3> block, size_t sharedBytes = 0) {
  simt::LaunchConfig result;
  result.kernel = kernel;
  result.name = name;
  result.grid = grid;
  result.block = block;
  result.dynamicSharedBytes = sharedBytes;
  return result;
}

Error run(const simt::LaunchConfig &launch, Parameters &parameters, bool checkRaces = true,
          unsigned workers = 1) {
  simt::Options options;
  options.checkRaces = checkRaces;
  options.workers = workers;
  return simt::launch(launch, parameters.pointers(), options);
}

#define EXPECT_MESSAGE_HAS(error, text) EXPECT_NE((error).message.find(text), std::string::npos) << (error).message

// ---- (a) mma.sync m16n8k8 tf32 ---------------------------------------------------

/// Each lane packs its fragments of A (16x8 row-major), B (8x8, K x N row-major)
/// and C (16x8) by the PTX layout, and stores its part of D like C.
void mmaKernel(decay_simt_thread *t, void **p) {
  const float *a = parameter<const float *>(p, 0);
  const float *b = parameter<const float *>(p, 1);
  const float *c = parameter<const float *>(p, 2);
  float *d = parameter<float *>(p, 3);
  unsigned group = t->lane / 4, tig = t->lane % 4;
  float result[4];
  t->ops->mma_m16n8k8_tf32(t, bitsOf(a[group * 8 + tig]), bitsOf(a[(group + 8) * 8 + tig]),
                           bitsOf(a[group * 8 + tig + 4]), bitsOf(a[(group + 8) * 8 + tig + 4]),
                           bitsOf(b[tig * 8 + group]), bitsOf(b[(tig + 4) * 8 + group]),
                           c[group * 8 + 2 * tig], c[group * 8 + 2 * tig + 1],
                           c[(group + 8) * 8 + 2 * tig], c[(group + 8) * 8 + 2 * tig + 1], result);
  d[group * 8 + 2 * tig] = result[0];
  d[group * 8 + 2 * tig + 1] = result[1];
  d[(group + 8) * 8 + 2 * tig] = result[2];
  d[(group + 8) * 8 + 2 * tig + 1] = result[3];
}

struct MmaCase {
  std::vector<float> a = std::vector<float>(16 * 8), b = std::vector<float>(8 * 8),
                     c = std::vector<float>(16 * 8), d = std::vector<float>(16 * 8, -1.0f);
  Error run(unsigned threads = 32) {
    Parameters parameters;
    parameters.add(a.data()).add(b.data()).add(c.data()).add(d.data());
    return ::run(config(&mmaKernel, "mma", {1, 1, 1}, {threads, 1, 1}), parameters);
  }
};

TEST(SimtEmulator, MmaPlacesEveryElementByTheFragmentLayout) {
  MmaCase mma;
  // Distinct values exactly representable in tf32, so every product and sum is exact.
  for (int i = 0; i < 16; ++i)
    for (int k = 0; k < 8; ++k)
      mma.a[i * 8 + k] = float(i * 8 + k - 40) / 8;
  for (int k = 0; k < 8; ++k)
    for (int n = 0; n < 8; ++n)
      mma.b[k * 8 + n] = float((k * 3 + n * 5) % 11 - 5);
  for (int i = 0; i < 16; ++i)
    for (int n = 0; n < 8; ++n)
      mma.c[i * 8 + n] = float(i * 100 + n);
  Error error = mma.run();
  ASSERT_TRUE(error.ok()) << error.message;
  for (int i = 0; i < 16; ++i)
    for (int n = 0; n < 8; ++n) {
      double expected = mma.c[i * 8 + n];
      for (int k = 0; k < 8; ++k)
        expected += double(mma.a[i * 8 + k]) * mma.b[k * 8 + n];
      EXPECT_EQ(mma.d[i * 8 + n], float(expected)) << "D[" << i << "][" << n << "]";
    }
}

TEST(SimtEmulator, MmaReadsOperandsAsTf32) {
  MmaCase mma;
  mma.a[0] = floatOf(0x3f800000u | 0x8u); // 1 + 2^-20: a mantissa bit tf32 drops
  mma.b[0] = 3.0f;
  mma.a[9 * 8 + 5] = floatOf(0x3fc00000u | 0x1fffu); // 1.5 plus the 13 dropped bits
  mma.b[5 * 8 + 2] = 2.0f;
  Error error = mma.run();
  ASSERT_TRUE(error.ok()) << error.message;
  EXPECT_EQ(mma.d[0], 3.0f);            // not 3 + 3 * 2^-20, which fp32 could hold
  EXPECT_NE(3.0f + 3.0f * std::ldexp(1.0f, -20), 3.0f);
  EXPECT_EQ(mma.d[9 * 8 + 2], 3.0f);    // 1.5 * 2
  EXPECT_EQ(mma.d[1], 0.0f);
}

TEST(SimtEmulator, MmaNeedsAWholeWarp) {
  MmaCase mma;
  Error error = mma.run(16);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT);
  EXPECT_MESSAGE_HAS(error, "all 32 lanes");
}

// ---- (b) barriers and the race detector -------------------------------------------

/// Thread i writes shared[i], optionally waits at a barrier, and reads shared[(i + 1) % n].
void neighbourKernel(decay_simt_thread *t, void **p) {
  bool withBarrier = parameter<int64_t>(p, 0) != 0;
  uint32_t *out = parameter<uint32_t *>(p, 1);
  unsigned n = t->ntid[0], i = t->tid[0];
  storeShared(t, &sharedWords(t)[i], 10 * i + 1);
  if (withBarrier)
    t->ops->barrier(t);
  out[i] = loadShared(t, &sharedWords(t)[(i + 1) % n]);
}

struct NeighbourCase {
  static constexpr unsigned kThreads = 64;
  std::vector<uint32_t> out = std::vector<uint32_t>(kThreads, 0);
  Error run(bool withBarrier, bool checkRaces, unsigned blocks = 1, unsigned workers = 1) {
    Parameters parameters;
    parameters.add(int64_t(withBarrier)).add(out.data());
    return ::run(config(&neighbourKernel, "neighbours", {blocks, 1, 1}, {kThreads, 1, 1},
                        kThreads * 4),
                 parameters, checkRaces, workers);
  }
};

TEST(SimtEmulator, BarrierMakesNeighboursWritesVisible) {
  NeighbourCase neighbours;
  Error error = neighbours.run(true, true);
  ASSERT_TRUE(error.ok()) << error.message;
  for (unsigned i = 0; i < NeighbourCase::kThreads; ++i)
    EXPECT_EQ(neighbours.out[i], 10 * ((i + 1) % NeighbourCase::kThreads) + 1);
}

TEST(SimtEmulator, MissingBarrierIsARace) {
  NeighbourCase neighbours;
  Error error = neighbours.run(false, true);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT_RACE);
  EXPECT_MESSAGE_HAS(error, "data race in shared memory: kernel neighbours block (0,0,0): thread 0 "
                            "read byte offset 4 and thread 1 wrote it between the same two barriers");
  // Each thread writes the word its predecessor read; thread 63 reads thread 0's.
  EXPECT_MESSAGE_HAS(error, "(64 races in all)");
}

TEST(SimtEmulator, RacesAreCountedOverAllBlocksAndTheLowestBlockDescribed) {
  NeighbourCase neighbours; // every block writes the same out[]: global memory is not checked
  Error error = neighbours.run(false, true, /*blocks=*/5, /*workers=*/2);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT_RACE);
  EXPECT_MESSAGE_HAS(error, "kernel neighbours block (0,0,0): thread 0 read byte offset 4");
  EXPECT_MESSAGE_HAS(error, "(320 races in all)");
}

TEST(SimtEmulator, MissingBarrierWithoutRaceChecksReadsStaleSharedMemory) {
  NeighbourCase neighbours;
  Error error = neighbours.run(false, false);
  ASSERT_TRUE(error.ok()) << error.message;
  EXPECT_EQ(neighbours.out[0], 0xffffffffu); // thread 0 ran first: shared[1] still unwritten
  EXPECT_EQ(neighbours.out[63], 1u);         // thread 63 ran last: shared[0] written
}

/// Threads 32..63 exit at once; threads 0..31 pass two barriers without them.
void earlyExitKernel(decay_simt_thread *t, void **p) {
  uint32_t *out = parameter<uint32_t *>(p, 0);
  unsigned i = t->tid[0];
  if (i >= 32)
    return;
  storeShared(t, &sharedWords(t)[i], i * i);
  t->ops->barrier(t);
  uint32_t neighbour = loadShared(t, &sharedWords(t)[31 - i]);
  t->ops->barrier(t);
  storeShared(t, &sharedWords(t)[i], neighbour + 1);
  t->ops->barrier(t);
  out[i] = loadShared(t, &sharedWords(t)[(i + 1) % 32]);
}

TEST(SimtEmulator, BarrierWaitsOnlyForThreadsThatHaveNotExited) {
  std::vector<uint32_t> out(32);
  Parameters parameters;
  parameters.add(out.data());
  Error error = run(config(&earlyExitKernel, "early", {1, 1, 1}, {64, 1, 1}, 128), parameters);
  ASSERT_TRUE(error.ok()) << error.message;
  for (unsigned i = 0; i < 32; ++i) {
    unsigned j = (i + 1) % 32;
    EXPECT_EQ(out[i], (31 - j) * (31 - j) + 1);
  }
}

/// Even threads add atomically to word 0; with p[0] set, thread 1 also reads it plainly.
void atomicKernel(decay_simt_thread *t, void **p) {
  bool plainReader = parameter<int64_t>(p, 0) != 0;
  uint32_t *word = &sharedWords(t)[0];
  if (t->tid[0] % 2 == 0) {
    t->ops->shared_access(t, word, 4, DECAY_SIMT_ATOMIC);
    __atomic_fetch_add(word, 1, __ATOMIC_RELAXED);
  } else if (t->tid[0] == 1 && plainReader) {
    loadShared(t, word);
  }
}

TEST(SimtEmulator, AtomicsRaceOnlyWithPlainAccesses) {
  Parameters atomicsOnly;
  atomicsOnly.add(int64_t(0));
  Error error = run(config(&atomicKernel, "atomics", {1, 1, 1}, {8, 1, 1}, 16), atomicsOnly);
  EXPECT_TRUE(error.ok()) << error.message;
  Parameters withReader;
  withReader.add(int64_t(1));
  error = run(config(&atomicKernel, "atomics", {1, 1, 1}, {8, 1, 1}, 16), withReader);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT_RACE);
  EXPECT_MESSAGE_HAS(error, "thread 0 atomically updated byte offset 0 and thread 1 read it");
  // Thread 1's read races with thread 0; threads 2, 4, 6 then race with thread 1's read.
  EXPECT_MESSAGE_HAS(error, "(4 races in all)");
}

// ---- (c) shfl.sync -----------------------------------------------------------------

/// Sums lane values (linear + 1) over the warp by a butterfly of shfl.sync.bfly.
void butterflyKernel(decay_simt_thread *t, void **p) {
  uint32_t *out = parameter<uint32_t *>(p, 0);
  uint32_t value = linearThread(t) + 1;
  for (uint32_t offset = 16; offset > 0; offset /= 2) {
    uint8_t valid = 0;
    value += t->ops->shuffle(t, DECAY_SIMT_SHUFFLE_BFLY, 0xffffffffu, value, offset, 0x1f, &valid);
    if (!valid)
      value = 0xdead;
  }
  out[linearThread(t)] = value;
}

TEST(SimtEmulator, ButterflyShuffleSumsEachWarp) {
  std::vector<uint32_t> out(64);
  Parameters parameters;
  parameters.add(out.data());
  Error error = run(config(&butterflyKernel, "butterfly", {1, 1, 1}, {64, 1, 1}), parameters);
  ASSERT_TRUE(error.ok()) << error.message;
  for (unsigned i = 0; i < 32; ++i) {
    EXPECT_EQ(out[i], 528u);       // 1 + 2 + ... + 32
    EXPECT_EQ(out[32 + i], 1552u); // 33 + 34 + ... + 64
  }
}

/// One shfl.sync of value 100 + lane with mode p[0], b p[1], c p[2], mask p[3];
/// stores the value read and the predicate per lane.
void shuffleKernel(decay_simt_thread *t, void **p) {
  uint32_t mode = uint32_t(parameter<int64_t>(p, 0));
  uint32_t b = uint32_t(parameter<int64_t>(p, 1));
  uint32_t c = uint32_t(parameter<int64_t>(p, 2));
  uint32_t mask = uint32_t(parameter<int64_t>(p, 3));
  uint32_t *values = parameter<uint32_t *>(p, 4);
  uint8_t *valid = parameter<uint8_t *>(p, 5);
  values[t->lane] = t->ops->shuffle(t, mode, mask, 100 + t->lane, b, c, &valid[t->lane]);
}

struct ShuffleCase {
  std::vector<uint32_t> values = std::vector<uint32_t>(32, 0);
  std::vector<uint8_t> valid = std::vector<uint8_t>(32, 7);
  Error run(uint32_t mode, uint32_t b, uint32_t c, uint32_t mask = 0xffffffffu) {
    Parameters parameters;
    parameters.add(int64_t(mode)).add(int64_t(b)).add(int64_t(c)).add(int64_t(mask));
    parameters.add(values.data()).add(valid.data());
    return ::run(config(&shuffleKernel, "shuffle", {1, 1, 1}, {32, 1, 1}), parameters);
  }
  /// Lane `lane` read lane `source`'s value with predicate `inRange`.
  void expectLane(unsigned lane, unsigned source, bool inRange) const {
    EXPECT_EQ(values[lane], 100 + source) << "lane " << lane;
    EXPECT_EQ(valid[lane], inRange ? 1 : 0) << "lane " << lane;
  }
};

// Clamp operands as CUDA's __shfl_*_sync build them: up uses c = (32 - width) << 8,
// the others ((32 - width) << 8) | 0x1f.
TEST(SimtEmulator, ShuffleUpStopsAtTheSegmentStart) {
  ShuffleCase whole;
  ASSERT_TRUE(whole.run(DECAY_SIMT_SHUFFLE_UP, 3, 0).ok());
  for (unsigned lane = 0; lane < 32; ++lane)
    whole.expectLane(lane, lane >= 3 ? lane - 3 : lane, lane >= 3);
  ShuffleCase width8;
  ASSERT_TRUE(width8.run(DECAY_SIMT_SHUFFLE_UP, 1, 24 << 8).ok());
  for (unsigned lane = 0; lane < 32; ++lane)
    width8.expectLane(lane, lane % 8 != 0 ? lane - 1 : lane, lane % 8 != 0);
}

TEST(SimtEmulator, ShuffleDownStopsAtTheSegmentEnd) {
  ShuffleCase whole;
  ASSERT_TRUE(whole.run(DECAY_SIMT_SHUFFLE_DOWN, 2, 0x1f).ok());
  for (unsigned lane = 0; lane < 32; ++lane)
    whole.expectLane(lane, lane < 30 ? lane + 2 : lane, lane < 30);
  ShuffleCase width8;
  ASSERT_TRUE(width8.run(DECAY_SIMT_SHUFFLE_DOWN, 1, (24 << 8) | 0x1f).ok());
  for (unsigned lane = 0; lane < 32; ++lane)
    width8.expectLane(lane, lane % 8 != 7 ? lane + 1 : lane, lane % 8 != 7);
  ShuffleCase clamped; // no segments, but lanes beyond 20 are out of range
  ASSERT_TRUE(clamped.run(DECAY_SIMT_SHUFFLE_DOWN, 4, 20).ok());
  for (unsigned lane = 0; lane < 32; ++lane)
    clamped.expectLane(lane, lane + 4 <= 20 ? lane + 4 : lane, lane + 4 <= 20);
}

TEST(SimtEmulator, ShuffleIdxReadsOneLanePerSegment) {
  ShuffleCase whole;
  ASSERT_TRUE(whole.run(DECAY_SIMT_SHUFFLE_IDX, 5, 0x1f).ok());
  for (unsigned lane = 0; lane < 32; ++lane)
    whole.expectLane(lane, 5, true);
  ShuffleCase width8;
  ASSERT_TRUE(width8.run(DECAY_SIMT_SHUFFLE_IDX, 3, (24 << 8) | 0x1f).ok());
  for (unsigned lane = 0; lane < 32; ++lane)
    width8.expectLane(lane, lane / 8 * 8 + 3, true);
  ShuffleCase clamped; // lane 12 is beyond the clamp 9: every lane reads itself
  ASSERT_TRUE(clamped.run(DECAY_SIMT_SHUFFLE_IDX, 12, 9).ok());
  for (unsigned lane = 0; lane < 32; ++lane)
    clamped.expectLane(lane, lane, false);
}

TEST(SimtEmulator, ShuffleWithAPartialMemberMaskIsUnsupported) {
  ShuffleCase partial;
  Error error = partial.run(DECAY_SIMT_SHUFFLE_BFLY, 1, 0x1f, 0x0000ffffu);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT);
  EXPECT_MESSAGE_HAS(error, "unsupported member mask 0x0000ffff");
}

// ---- (d) cp.async ------------------------------------------------------------------

/// Each thread copies 16 bytes (4 words) of p[0] into its shared slot, reads the
/// slot's first word before and after waiting for the copy.
void copyVisibilityKernel(decay_simt_thread *t, void **p) {
  const uint32_t *source = parameter<const uint32_t *>(p, 0);
  uint32_t *before = parameter<uint32_t *>(p, 1);
  uint32_t *after = parameter<uint32_t *>(p, 2);
  unsigned i = t->tid[0];
  uint32_t *slot = &sharedWords(t)[4 * i];
  t->ops->cp_async(t, slot, &source[4 * i], 16, 16);
  t->ops->cp_async_commit(t);
  before[i] = loadShared(t, slot);
  t->ops->cp_async_wait(t, 0);
  for (unsigned w = 0; w < 4; ++w)
    after[4 * i + w] = loadShared(t, &slot[w]);
}

TEST(SimtEmulator, AsyncCopyLandsAtTheWait) {
  std::vector<uint32_t> source(128), before(32, 0), after(128, 0);
  for (unsigned i = 0; i < 128; ++i)
    source[i] = 1000 + i;
  Parameters parameters;
  parameters.add(source.data()).add(before.data()).add(after.data());
  Error error = run(config(&copyVisibilityKernel, "copies", {1, 1, 1}, {32, 1, 1}, 512), parameters);
  ASSERT_TRUE(error.ok()) << error.message;
  for (unsigned i = 0; i < 32; ++i)
    EXPECT_EQ(before[i], 0xffffffffu) << "thread " << i; // still the block's initial garbage
  EXPECT_EQ(after, source);
}

/// Copies 16 bytes of which only the first p[1] come from p[0]; p[2] receives the slot.
void zeroFillKernel(decay_simt_thread *t, void **p) {
  const unsigned char *source = parameter<const unsigned char *>(p, 0);
  uint32_t sourceBytes = uint32_t(parameter<int64_t>(p, 1));
  unsigned char *out = parameter<unsigned char *>(p, 2);
  t->ops->cp_async(t, t->shared, source, 16, sourceBytes);
  t->ops->cp_async_commit(t);
  t->ops->cp_async_wait(t, 0);
  t->ops->shared_access(t, t->shared, 16, DECAY_SIMT_READ);
  std::memcpy(out, t->shared, 16);
}

TEST(SimtEmulator, AsyncCopyZeroFillsPastTheSourceBytes) {
  unsigned char source[16], out[16];
  for (int i = 0; i < 16; ++i)
    source[i] = static_cast<unsigned char>(0xa0 + i);
  Parameters parameters;
  parameters.add(&source[0]).add(int64_t(6)).add(&out[0]);
  Error error = run(config(&zeroFillKernel, "zerofill", {1, 1, 1}, {1, 1, 1}, 16), parameters);
  ASSERT_TRUE(error.ok()) << error.message;
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(out[i], i < 6 ? 0xa0 + i : 0) << "byte " << i;
}

/// Two commit groups (word 0 from p[0][0], then word 4 from p[0][4]): after
/// wait_group 1 only the first has landed, after wait_group 0 both.
void twoGroupsKernel(decay_simt_thread *t, void **p) {
  const uint32_t *source = parameter<const uint32_t *>(p, 0);
  uint32_t *seen = parameter<uint32_t *>(p, 1);
  uint32_t *words = sharedWords(t);
  t->ops->cp_async(t, &words[0], &source[0], 4, 4);
  t->ops->cp_async_commit(t);
  t->ops->cp_async(t, &words[4], &source[4], 16, 16);
  t->ops->cp_async_commit(t);
  t->ops->cp_async_wait(t, 1);
  seen[0] = loadShared(t, &words[0]);
  seen[1] = loadShared(t, &words[4]);
  t->ops->cp_async_wait(t, 0);
  seen[2] = loadShared(t, &words[0]);
  seen[3] = loadShared(t, &words[4]);
}

TEST(SimtEmulator, AsyncCopyWaitGroupLeavesTheNewestGroupsPending) {
  std::vector<uint32_t> source = {11, 0, 0, 0, 55, 66, 77, 88}, seen(4, 0);
  Parameters parameters;
  parameters.add(source.data()).add(seen.data());
  Error error = run(config(&twoGroupsKernel, "groups", {1, 1, 1}, {1, 1, 1}, 64), parameters);
  ASSERT_TRUE(error.ok()) << error.message;
  EXPECT_EQ(seen, (std::vector<uint32_t>{11, 0xffffffffu, 11, 55}));
}

/// Thread 0 copies without waiting and exits; thread 1 reads after a barrier
/// (which thread 0's exit completes) and sees the copy, without a race.
void copyAtExitKernel(decay_simt_thread *t, void **p) {
  const uint32_t *source = parameter<const uint32_t *>(p, 0);
  uint32_t *seen = parameter<uint32_t *>(p, 1);
  if (t->tid[0] == 0) {
    t->ops->cp_async(t, t->shared, source, 4, 4);
    return;
  }
  t->ops->barrier(t);
  *seen = loadShared(t, sharedWords(t));
}

TEST(SimtEmulator, AsyncCopiesCompleteAtThreadExit) {
  uint32_t source = 4242, seen = 0;
  Parameters parameters;
  parameters.add(&source).add(&seen);
  Error error = run(config(&copyAtExitKernel, "exitcopy", {1, 1, 1}, {2, 1, 1}, 16), parameters);
  ASSERT_TRUE(error.ok()) << error.message;
  EXPECT_EQ(seen, 4242u);
}

/// Thread 0 copies into word 0 and waits; thread 1 reads word 0 with no barrier between.
void copyRaceKernel(decay_simt_thread *t, void **p) {
  const uint32_t *source = parameter<const uint32_t *>(p, 0);
  if (t->tid[0] == 0) {
    t->ops->cp_async(t, t->shared, source, 4, 4);
    t->ops->cp_async_commit(t);
    t->ops->cp_async_wait(t, 0);
  } else {
    loadShared(t, sharedWords(t));
  }
}

TEST(SimtEmulator, AsyncCopyIsAWriteForTheRaceDetector) {
  uint32_t source = 1;
  Parameters parameters;
  parameters.add(&source);
  Error error = run(config(&copyRaceKernel, "copyrace", {1, 1, 1}, {2, 1, 1}, 16), parameters);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT_RACE);
  EXPECT_MESSAGE_HAS(error, "thread 0 wrote byte offset 0 and thread 1 read it");
}

/// Thread 0 copies 16 bytes to the byte offset p[0].
void copyOutOfBoundsKernel(decay_simt_thread *t, void **p) {
  int64_t offset = parameter<int64_t>(p, 0);
  static const uint32_t source[4] = {1, 2, 3, 4};
  t->ops->cp_async(t, static_cast<unsigned char *>(t->shared) + offset, source, 16, 16);
}

TEST(SimtEmulator, AsyncCopyDestinationIsBoundsChecked) {
  Parameters parameters;
  parameters.add(int64_t(64));
  Error error = run(config(&copyOutOfBoundsKernel, "copyoob", {1, 1, 1}, {1, 1, 1}, 64), parameters);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT);
  EXPECT_MESSAGE_HAS(error, "cp.async destination of 16 bytes at byte offset 64");
}

// ---- (e) divergence and deadlock ------------------------------------------------------

/// Threads 0-63 wait at a barrier; threads 64-126 do an mma; thread 127 goes to
/// the barrier while the rest of its warp waits at the mma.
void divergentKernel(decay_simt_thread *t, void **) {
  unsigned i = linearThread(t);
  if (i < 64 || i == 127) {
    t->ops->barrier(t);
    return;
  }
  float d[4];
  t->ops->mma_m16n8k8_tf32(t, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, d);
}

TEST(SimtEmulator, WarpAtABarrierAndAnMmaAtOnceIsReported) {
  Parameters parameters;
  Error error = run(config(&divergentKernel, "divergent", {1, 1, 1}, {128, 1, 1}), parameters);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT);
  EXPECT_MESSAGE_HAS(error, "warp 3 diverged in kernel divergent block (0,0,0)");
  // Warp 2 met at its mma, was released, and thread 95 (its last lane) went on and exited.
  EXPECT_MESSAGE_HAS(error, "threads 0-63,127 at a barrier, threads 96-126 at mma.sync, "
                            "thread 95 exited, threads 64-94 running");
}

/// Lanes 0-15 of the only warp shuffle; lane 16 exits meanwhile (the rest never get there).
void exitDuringShuffleKernel(decay_simt_thread *t, void **) {
  if (t->lane == 16)
    return;
  uint8_t valid;
  t->ops->shuffle(t, DECAY_SIMT_SHUFFLE_BFLY, 0xffffffffu, t->lane, 1, 0x1f, &valid);
}

TEST(SimtEmulator, LaneExitingWhileItsWarpShufflesIsReported) {
  Parameters parameters;
  Error error = run(config(&exitDuringShuffleKernel, "exiting", {1, 1, 1}, {32, 1, 1}), parameters);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT);
  EXPECT_MESSAGE_HAS(error, "warp 0 diverged in kernel exiting block (0,0,0)");
  EXPECT_MESSAGE_HAS(error, "threads 0-15 at shfl.sync, thread 16 exited, threads 17-31 running");
}

// ---- (f) shared memory bounds ---------------------------------------------------------

/// In block 1, thread 3 accesses 4 bytes at byte offset p[0] of 256.
void outOfBoundsKernel(decay_simt_thread *t, void **p) {
  int64_t offset = parameter<int64_t>(p, 0);
  if (t->ctaid[0] == 1 && t->tid[0] == 3)
    t->ops->shared_access(t, static_cast<unsigned char *>(t->shared) + offset, 4, DECAY_SIMT_WRITE);
}

TEST(SimtEmulator, SharedAccessOutOfBoundsIsReported) {
  for (int64_t offset : {int64_t(256), int64_t(254), int64_t(-4)}) {
    Parameters parameters;
    parameters.add(offset);
    Error error = run(config(&outOfBoundsKernel, "oob", {2, 1, 1}, {8, 1, 1}, 256), parameters);
    EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT);
    EXPECT_MESSAGE_HAS(error, "shared-memory write of 4 bytes at byte offset " +
                                  std::to_string(offset) +
                                  " by thread 3 in kernel oob block (1,0,0) is outside the "
                                  "block's 256 bytes");
  }
  Parameters inside;
  inside.add(int64_t(252));
  EXPECT_TRUE(run(config(&outOfBoundsKernel, "oob", {2, 1, 1}, {8, 1, 1}, 256), inside).ok());
}

// ---- (g) grids on several workers -------------------------------------------------------

/// Each thread stores its block's index and its own in the slot of its global thread index.
void gridKernel(decay_simt_thread *t, void **p) {
  uint32_t *out = parameter<uint32_t *>(p, 0);
  unsigned block = t->ctaid[0] + t->nctaid[0] * (t->ctaid[1] + t->nctaid[1] * t->ctaid[2]);
  unsigned threads = t->ntid[0] * t->ntid[1] * t->ntid[2];
  out[block * threads + linearThread(t)] =
      t->ctaid[0] + 100 * t->ctaid[1] + 10000 * t->ctaid[2] + 1000000 * linearThread(t);
}

TEST(SimtEmulator, EveryBlockOfAGridRunsOnSeveralWorkers) {
  std::vector<uint32_t> out(30 * 8, 0);
  Parameters parameters;
  parameters.add(out.data());
  Error error =
      run(config(&gridKernel, "grid", {5, 3, 2}, {4, 2, 1}), parameters, true, /*workers=*/3);
  ASSERT_TRUE(error.ok()) << error.message;
  for (unsigned z = 0; z < 2; ++z)
    for (unsigned y = 0; y < 3; ++y)
      for (unsigned x = 0; x < 5; ++x)
        for (unsigned thread = 0; thread < 8; ++thread)
          EXPECT_EQ(out[((z * 3 + y) * 5 + x) * 8 + thread],
                    x + 100 * y + 10000 * z + 1000000 * thread);
}

/// Blocks 7 and 20 write shared memory out of bounds.
void twoFailingBlocksKernel(decay_simt_thread *t, void **) {
  if (t->ctaid[0] == 7 || t->ctaid[0] == 20)
    t->ops->shared_access(t, t->shared, 8, DECAY_SIMT_WRITE);
}

TEST(SimtEmulator, FirstErrorIsTheLowestFailingBlocks) {
  Parameters parameters;
  Error error = run(config(&twoFailingBlocksKernel, "failing", {30, 1, 1}, {4, 1, 1}, 4),
                    parameters, true, /*workers=*/4);
  EXPECT_EQ(error.status, DECAYRT_ERROR_SIMT);
  EXPECT_MESSAGE_HAS(error, "block (7,0,0)");
}

// ---- (h) invalid launches --------------------------------------------------------------

void emptyKernel(decay_simt_thread *, void **) {}

TEST(SimtEmulator, InvalidLaunchesAreRejected) {
  Parameters parameters;
  std::vector<simt::LaunchConfig> invalid = {
      config(nullptr, "null", {1, 1, 1}, {32, 1, 1}),
      config(&emptyKernel, "emptygrid", {1, 0, 1}, {32, 1, 1}),
      config(&emptyKernel, "emptyblock", {1, 1, 1}, {0, 1, 1}),
      config(&emptyKernel, "wide", {1, 1, 1}, {33, 32, 1}),
      config(&emptyKernel, "deep", {1, 1, 1}, {1, 1, 65}),
      config(&emptyKernel, "hoard", {1, 1, 1}, {32, 1, 1}, size_t(1) << 40)};
  for (const simt::LaunchConfig &launch : invalid) {
    Error error = run(launch, parameters);
    EXPECT_EQ(error.status, DECAYRT_ERROR_INVALID_ARGUMENT) << launch.name;
    EXPECT_MESSAGE_HAS(error, "kernel " + launch.name);
  }
  EXPECT_TRUE(run(config(&emptyKernel, "fine", {1, 1, 1}, {32, 32, 1}), parameters).ok());
}

// ---- A kernel of the real kernels' shape -------------------------------------------------

/// 4 warps; each repeats an mma (A = 1, B = 1/8, C = its last D) p[0] times,
/// with a barrier every 64 mmas; lane 0 of each warp stores its d0.
void chainedMmaKernel(decay_simt_thread *t, void **p) {
  int64_t steps = parameter<int64_t>(p, 0);
  float *out = parameter<float *>(p, 1);
  uint32_t one = bitsOf(1.0f), eighth = bitsOf(0.125f);
  float d[4] = {0, 0, 0, 0};
  for (int64_t step = 0; step < steps; ++step) {
    t->ops->mma_m16n8k8_tf32(t, one, one, one, one, eighth, eighth, d[0], d[1], d[2], d[3], d);
    if (step % 64 == 63)
      t->ops->barrier(t);
  }
  if (t->lane == 0)
    out[t->warp] = d[0];
}

TEST(SimtEmulator, ThousandsOfMmasPerWarp) {
  const int64_t steps = 4096;
  std::vector<float> out(4, 0);
  Parameters parameters;
  parameters.add(steps).add(out.data());
  auto begin = std::chrono::steady_clock::now();
  Error error = run(config(&chainedMmaKernel, "chained", {1, 1, 1}, {128, 1, 1}, 1024), parameters);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  ASSERT_TRUE(error.ok()) << error.message;
  for (float value : out)
    EXPECT_EQ(value, float(steps)); // each mma adds 8 * 1 * 1/8
  std::printf("[ measure  ] one block of 128 threads, %lld mma.sync per warp: %.3f s\n",
              static_cast<long long>(steps), seconds);
}

} // namespace
