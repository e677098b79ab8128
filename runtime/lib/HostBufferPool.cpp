// A package's pool of host buffers, reused from call to call (see HostBufferPool.h).
#include "HostBufferPool.h"

using namespace decayrt::detail;

std::unique_ptr<HostBuffer> HostBufferPool::take(size_t bytes) {
  {
    std::lock_guard<std::mutex> guard(lock);
    size_t best = free.size();
    for (size_t i = 0; i < free.size(); ++i)
      if (free[i]->capacity() >= bytes &&
          (best == free.size() || free[i]->capacity() < free[best]->capacity()))
        best = i;
    if (best < free.size()) {
      std::unique_ptr<HostBuffer> buffer = std::move(free[best]);
      free[best] = std::move(free.back());
      free.pop_back();
      return buffer;
    }
  }
  return std::make_unique<HostBuffer>(bytes);
}

void HostBufferPool::give(std::unique_ptr<HostBuffer> buffer) {
  if (!buffer)
    return;
  std::lock_guard<std::mutex> guard(lock);
  if (free.size() < kKept) {
    free.push_back(std::move(buffer));
    return;
  }
  // Full: keep the larger buffers, which are the ones worth reusing.
  auto smallest = free.begin();
  for (auto it = free.begin(); it != free.end(); ++it)
    if ((*it)->capacity() < (*smallest)->capacity())
      smallest = it;
  if ((*smallest)->capacity() < buffer->capacity())
    *smallest = std::move(buffer);
}
