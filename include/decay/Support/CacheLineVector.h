// std::vector whose storage starts on a 64-byte boundary, as framework tensors do, for the tools' and tests' buffers.
#ifndef DECAY_SUPPORT_CACHELINEVECTOR_H
#define DECAY_SUPPORT_CACHELINEVECTOR_H

#include <cstddef>
#include <new>
#include <vector>

namespace decay {

/// Bytes of a cache line and of an AVX-512 register: PyTorch's CPU allocator
/// aligns tensors to it, and the CPU kernels' aligned stores need it (they
/// fall back to plain stores on other buffers).
constexpr std::size_t kCacheLineBytes = 64;

/// Allocates on kCacheLineBytes boundaries.
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U> &) {}
  T *allocate(std::size_t count) {
    return static_cast<T *>(::operator new(count * sizeof(T), std::align_val_t(kCacheLineBytes)));
  }
  void deallocate(T *pointer, std::size_t) { ::operator delete(pointer, std::align_val_t(kCacheLineBytes)); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U> &) const {
    return true;
  }
  template <typename U>
  bool operator!=(const CacheLineAllocator<U> &) const {
    return false;
  }
};

/// A vector whose data() is aligned to a cache line.
template <typename T>
using CacheLineVector = std::vector<T, CacheLineAllocator<T>>;

} // namespace decay

#endif
