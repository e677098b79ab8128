// Issuing and performing one thread's cp.async copies (the copy itself and the zero-filled tail).
#include "AsyncCopies.h"

#include <cstring>

namespace decayrt::detail::simt {

void AsyncCopies::issue(AsyncCopy copy) {
  copy.group = committedGroups_;
  copies_.push_back(copy);
}

void AsyncCopies::clear() {
  copies_.clear();
  committedGroups_ = 0;
}

void AsyncCopies::perform(const AsyncCopy &copy) {
  if (copy.sourceBytes > 0)
    std::memcpy(copy.shared, copy.global, copy.sourceBytes);
  std::memset(copy.shared + copy.sourceBytes, 0, copy.bytes - copy.sourceBytes);
}

} // namespace decayrt::detail::simt
