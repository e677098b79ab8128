// One emulated thread's cp.async copies: issued into an open group, committed as groups, completed oldest group first.
#ifndef DECAYRT_LIB_SIMT_ASYNCCOPIES_H
#define DECAYRT_LIB_SIMT_ASYNCCOPIES_H

#include <cstdint>
#include <deque>

namespace decayrt::detail::simt {

/// One cp.async: `bytes` land at `shared`, the first `sourceBytes` from `global`, the rest zeros.
struct AsyncCopy {
  unsigned char *shared = nullptr;
  const unsigned char *global = nullptr;
  uint32_t bytes = 0;
  uint32_t sourceBytes = 0;
  uint64_t group = 0; ///< the commit group it belongs to, numbered from 0 in commit order
};

/// A thread's copies not yet completed, in issue order. Completing one
/// performs it; nothing lands in shared memory before.
class AsyncCopies {
public:
  /// Adds a copy to the open (not yet committed) group.
  void issue(AsyncCopy copy);
  /// cp.async.commit_group: closes the open group (an empty group counts too).
  void commit() { ++committedGroups_; }
  /// cp.async.wait_group `pending`: completes, oldest first, the copies of
  /// all committed groups but the `pending` most recent; calls done(copy) after each.
  template <typename Done> void completeAllBut(uint32_t pending, Done done);
  /// Completes every copy, committed or not (at the thread's exit).
  template <typename Done> void completeAll(Done done);
  /// Drops every copy unperformed (the thread's block was abandoned).
  void clear();

private:
  template <typename Done> void completeBefore(uint64_t group, Done done);
  static void perform(const AsyncCopy &copy);

  std::deque<AsyncCopy> copies_;
  uint64_t committedGroups_ = 0;
};

template <typename Done> void AsyncCopies::completeBefore(uint64_t group, Done done) {
  while (!copies_.empty() && copies_.front().group < group) {
    AsyncCopy copy = copies_.front();
    copies_.pop_front();
    perform(copy);
    done(copy);
  }
}

template <typename Done> void AsyncCopies::completeAllBut(uint32_t pending, Done done) {
  if (committedGroups_ > pending)
    completeBefore(committedGroups_ - pending, done);
}

template <typename Done> void AsyncCopies::completeAll(Done done) {
  completeBefore(UINT64_MAX, done);
}

} // namespace decayrt::detail::simt

#endif // DECAYRT_LIB_SIMT_ASYNCCOPIES_H
