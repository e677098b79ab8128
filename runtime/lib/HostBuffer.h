// An aligned heap buffer that the runtime owns for the length of a call.
#ifndef DECAYRT_LIB_HOSTBUFFER_H
#define DECAYRT_LIB_HOSTBUFFER_H

#include <algorithm>
#include <cstddef>
#include <new>

namespace decayrt::detail {

/// A heap buffer aligned to `kAlignment` bytes (never empty, so its address
/// is never null). Throws std::bad_alloc when memory runs out.
class HostBuffer {
public:
  static constexpr size_t kAlignment = 256;

  explicit HostBuffer(size_t bytes)
      : capacity_(std::max<size_t>(bytes, kAlignment)),
        data_(::operator new(capacity_, std::align_val_t(kAlignment))) {}
  ~HostBuffer() { ::operator delete(data_, std::align_val_t(kAlignment)); }
  HostBuffer(const HostBuffer &) = delete;
  HostBuffer &operator=(const HostBuffer &) = delete;
  void *data() const { return data_; }
  /// The usable bytes (at least what was asked for).
  size_t capacity() const { return capacity_; }

private:
  size_t capacity_;
  void *data_;
};

} // namespace decayrt::detail

#endif // DECAYRT_LIB_HOSTBUFFER_H
