// Tests of the SIMT emulator's fibers: switching back and forth, per-fiber floating-point control state, restarts, and the switch cost.
#include "simt/Fiber.h"

#include <gtest/gtest.h>

#include <cfenv>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace {

using decayrt::detail::simt::Fiber;
using decayrt::detail::simt::FiberStack;

struct Counter {
  Fiber fiber;
  long rounds = 0;
  long count = 0;
};

void countAndSuspend(void *argument) {
  auto &counter = *static_cast<Counter *>(argument);
  for (long i = 0; i < counter.rounds; ++i) {
    ++counter.count;
    counter.fiber.suspend();
  }
  counter.fiber.finish();
}

TEST(SimtFiber, ResumesWhereItSuspendedAndMeasuresTheSwitch) {
  FiberStack stack;
  Counter counter;
  counter.rounds = 1000000;
  counter.fiber.start(stack, &countAndSuspend, &counter);
  auto begin = std::chrono::steady_clock::now();
  for (long i = 0; i < counter.rounds; ++i) {
    counter.fiber.resume();
    ASSERT_EQ(counter.count, i + 1);
  }
  auto elapsed = std::chrono::steady_clock::now() - begin;
  counter.fiber.resume(); // runs to finish()
  EXPECT_EQ(counter.count, counter.rounds);
  double nanoseconds = std::chrono::duration<double, std::nano>(elapsed).count();
  std::printf("[ measure  ] one fiber switch: %.1f ns (%ld resume/suspend round trips)\n",
              nanoseconds / (2.0 * counter.rounds), counter.rounds);
}

TEST(SimtFiber, RestartsOnTheSameStack) {
  FiberStack stack;
  Counter counter;
  counter.rounds = 3;
  for (int start = 0; start < 2; ++start) {
    counter.count = 0;
    counter.fiber.start(stack, &countAndSuspend, &counter);
    for (int i = 0; i < 4; ++i)
      counter.fiber.resume();
    EXPECT_EQ(counter.count, 3);
  }
}

struct RoundingProbe {
  Fiber fiber;
  int roundingInFiberAfterResume = -1;
  char scratch[4096] = {};
};

void roundUpward(void *argument) {
  auto &probe = *static_cast<RoundingProbe *>(argument);
  // A stack array of a few KiB, as the kernels keep.
  char local[8192];
  std::memset(local, 7, sizeof local);
  std::fesetround(FE_UPWARD);
  probe.fiber.suspend();
  probe.roundingInFiberAfterResume = std::fegetround();
  std::fesetround(FE_TONEAREST);
  std::memcpy(probe.scratch, local, sizeof probe.scratch);
  probe.fiber.finish();
}

TEST(SimtFiber, KeepsEachSidesRoundingMode) {
  FiberStack stack;
  RoundingProbe probe;
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  probe.fiber.start(stack, &roundUpward, &probe);
  probe.fiber.resume();
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
  probe.fiber.resume();
  EXPECT_EQ(probe.roundingInFiberAfterResume, FE_UPWARD);
  EXPECT_EQ(probe.scratch[4095], 7);
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
}

} // namespace
