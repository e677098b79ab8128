// decayrt's host buffer pool: buffers are reused across calls, the best fit first, and the pool stays bounded.
#include "HostBufferPool.h"

#include <gtest/gtest.h>

#include <set>

using decayrt::detail::HostBuffer;
using decayrt::detail::HostBufferPool;

TEST(HostBufferPool, GivesBackTheSameBufferToTheNextCall) {
  HostBufferPool pool;
  std::unique_ptr<HostBuffer> first = pool.take(1 << 20);
  void *address = first->data();
  EXPECT_GE(first->capacity(), size_t(1) << 20);
  pool.give(std::move(first));
  std::unique_ptr<HostBuffer> second = pool.take(1 << 19); // smaller: still fits
  EXPECT_EQ(second->data(), address);
}

TEST(HostBufferPool, TakesTheSmallestBufferThatFits) {
  HostBufferPool pool;
  auto small = pool.take(1000), large = pool.take(100000);
  void *smallAddress = small->data(), *largeAddress = large->data();
  pool.give(std::move(large));
  pool.give(std::move(small));
  EXPECT_EQ(pool.take(500)->data(), smallAddress);
  EXPECT_EQ(pool.take(50000)->data(), largeAddress);
}

TEST(HostBufferPool, AllocatesWhenNothingFits) {
  HostBufferPool pool;
  auto small = pool.take(1000);
  void *smallAddress = small->data();
  pool.give(std::move(small));
  auto large = pool.take(1 << 20);
  EXPECT_NE(large->data(), smallAddress);
  EXPECT_GE(large->capacity(), size_t(1) << 20);
}

TEST(HostBufferPool, KeepsAtMostItsLimitPreferringLargeBuffers) {
  HostBufferPool pool;
  std::vector<std::unique_ptr<HostBuffer>> buffers;
  for (size_t i = 0; i < HostBufferPool::kKept + 4; ++i)
    buffers.push_back(pool.take(1024 * (i + 1)));
  std::set<void *> largest;
  for (size_t i = 4; i < buffers.size(); ++i)
    largest.insert(buffers[i]->data());
  for (auto &buffer : buffers)
    pool.give(std::move(buffer));
  // The kKept largest were kept: taking them all back needs no new buffer.
  std::set<void *> taken;
  for (size_t i = 0; i < HostBufferPool::kKept; ++i)
    taken.insert(pool.take(1)->data());
  EXPECT_EQ(taken, largest);
}
