// Fibers for the SIMT emulator: each emulated GPU thread runs on its own stack, switched to and from the worker thread that schedules it.
#ifndef DECAYRT_LIB_SIMT_FIBER_H
#define DECAYRT_LIB_SIMT_FIBER_H

#include <cstddef>

// On x86-64 a fiber switch is a few instructions of our own (Fiber.cpp); elsewhere,
// or when DECAY_SIMT_FORCE_UCONTEXT is defined, it is POSIX swapcontext, which
// also saves the signal mask (a system call per switch).
#if defined(__x86_64__) && !defined(DECAY_SIMT_FORCE_UCONTEXT)
#define DECAY_SIMT_X86_64_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace decayrt::detail::simt {

/// Bytes of each fiber's stack. The kernels keep arrays of a few KiB on the
/// stack (fragments, staged rows); 256 KiB leaves ample room. The pages are
/// mapped on first touch, so the unused part costs address space only.
inline constexpr size_t kFiberStackBytes = 256 * 1024;

/// A fiber's stack: mapped memory with an inaccessible guard page below it,
/// so that an overflow faults instead of overwriting a neighbour.
class FiberStack {
public:
  /// Maps the stack; throws std::bad_alloc when the mapping fails.
  FiberStack();
  ~FiberStack();
  FiberStack(const FiberStack &) = delete;
  FiberStack &operator=(const FiberStack &) = delete;

  /// The lowest usable address (just above the guard page).
  void *bottom() const { return usable_; }
  size_t size() const { return kFiberStackBytes; }

private:
  void *mapping_ = nullptr;
  void *usable_ = nullptr;
};

/// Where a switch left one side of a fiber: its saved stack pointer (x86-64)
/// or its saved ucontext.
struct SwitchPoint {
#ifdef DECAY_SIMT_X86_64_SWITCH
  void *stackPointer = nullptr;
#else
  ucontext_t context;
#endif
};

/// A function running on its own stack. The OS thread that calls resume()
/// runs it until it calls suspend() or finish() from inside; resume() then
/// returns. A fiber must not move in memory once started (its stack refers to
/// it) and is resumed by one OS thread at a time.
class Fiber {
public:
  using Entry = void (*)(void *argument);

  Fiber() = default;
  Fiber(const Fiber &) = delete;
  Fiber &operator=(const Fiber &) = delete;

  /// Prepares the fiber to run entry(argument) from the top of `stack` at the
  /// next resume(). `entry` must not return: it ends with finish(). Whatever
  /// ran on `stack` before is forgotten.
  void start(FiberStack &stack, Entry entry, void *argument);

  /// Runs the fiber until it suspends or finishes (called from outside it).
  void resume();

  /// Returns from the resume() that runs this fiber; returns itself when the
  /// fiber is resumed again (called from inside it).
  void suspend();

  /// Returns from the resume() that runs this fiber for the last time: the
  /// fiber is not resumed again until the next start() (called from inside it).
  [[noreturn]] void finish();

  /// The first frame on a started fiber's stack (for the switch code only):
  /// runs the entry of `fiber`, a Fiber.
  static void runEntry(void *fiber);

private:
  void switchOut(bool forGood);

  SwitchPoint own_;
  SwitchPoint resumer_;
  FiberStack *stack_ = nullptr;
  Entry entry_ = nullptr;
  void *argument_ = nullptr;
  // AddressSanitizer's view of the two stacks (unused without it): the
  // resumer's stack bounds, learned when the fiber is entered, and each
  // side's fake stack (for stack-use-after-return) while the other runs.
  const void *resumerStackBottom_ = nullptr;
  size_t resumerStackSize_ = 0;
  void *resumerFakeStack_ = nullptr;
  void *ownFakeStack_ = nullptr;
};

} // namespace decayrt::detail::simt

#endif // DECAYRT_LIB_SIMT_FIBER_H
