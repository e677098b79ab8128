// A package's pool of host buffers, reused from call to call so that a call's runtime buffers are not page-faulted in anew each time.
#ifndef DECAYRT_LIB_HOSTBUFFERPOOL_H
#define DECAYRT_LIB_HOSTBUFFERPOOL_H

#include "HostBuffer.h"

#include <memory>
#include <mutex>
#include <vector>

namespace decayrt::detail {

/// Free host buffers of one package. A call takes the buffers it needs and
/// gives them back when it ends; large allocations would otherwise be mapped
/// fresh by malloc on every call and page-faulted in (on these VMs a page
/// fault costs microseconds: milliseconds per call at training shapes). The
/// pool keeps at most kKept buffers, so it holds about what the largest calls
/// used at once; it is freed with the package. Thread-safe.
class HostBufferPool {
public:
  static constexpr size_t kKept = 16;

  /// A buffer of at least `bytes` (its contents undefined): the smallest free
  /// one that fits, else a new one. Throws std::bad_alloc.
  std::unique_ptr<HostBuffer> take(size_t bytes);
  /// Returns `buffer` to the pool (or frees it when the pool is full).
  void give(std::unique_ptr<HostBuffer> buffer);

private:
  std::mutex lock;
  std::vector<std::unique_ptr<HostBuffer>> free;
};

} // namespace decayrt::detail

#endif // DECAYRT_LIB_HOSTBUFFERPOOL_H
