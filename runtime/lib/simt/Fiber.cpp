// Fiber stacks and switches: a hand-written x86-64 stack switch (ucontext elsewhere), annotated for AddressSanitizer.
#include "Fiber.h"

#include <cstdint>
#include <cstring>
#include <new>

#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DECAY_SIMT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(DECAY_SIMT_ASAN)
#define DECAY_SIMT_ASAN 1
#endif

#ifdef DECAY_SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#ifdef DECAY_SIMT_X86_64_SWITCH
// decay_simt_switch_stack(save, load): saves the callee-saved registers and
// the SSE and x87 control words on the current stack, stores the stack
// pointer in *save, loads `load` as the stack pointer and restores the same
// from there. The frame it restores, from the stack pointer up:
//   [mxcsr:4][x87 control word:4] r15 r14 r13 r12 rbx rbp [return address]
// decay_simt_fiber_trampoline is the first "return address" of a new fiber:
// it calls r12 with r13 as its argument (Fiber::runEntry, the Fiber).
asm(R"(
  .text
  .p2align 4
  .globl decay_simt_switch_stack
  .hidden decay_simt_switch_stack
  .type decay_simt_switch_stack,@function
decay_simt_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size decay_simt_switch_stack, .-decay_simt_switch_stack

  .p2align 4
  .globl decay_simt_fiber_trampoline
  .hidden decay_simt_fiber_trampoline
  .type decay_simt_fiber_trampoline,@function
decay_simt_fiber_trampoline:
  movq %r13, %rdi
  callq *%r12
  ud2
  .size decay_simt_fiber_trampoline, .-decay_simt_fiber_trampoline
)");

extern "C" void decay_simt_switch_stack(void **save, void *load);
extern "C" void decay_simt_fiber_trampoline();
#endif

namespace decayrt::detail::simt {

namespace {

size_t pageBytes() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

/// Moves execution from `from` (saved there) to `to`.
void switchStacks(SwitchPoint &from, SwitchPoint &to) {
#ifdef DECAY_SIMT_X86_64_SWITCH
  decay_simt_switch_stack(&from.stackPointer, to.stackPointer);
#else
  swapcontext(&from.context, &to.context);
#endif
}

// AddressSanitizer must know which stack is current (its reports and its
// handling of noreturn calls depend on it): each switch is bracketed by
// start (before: the stack being entered) and finish (after: on the new stack).
void startSwitch(void **fakeStackSave, const void *bottom, size_t size) {
#ifdef DECAY_SIMT_ASAN
  __sanitizer_start_switch_fiber(fakeStackSave, bottom, size);
#else
  (void)fakeStackSave, (void)bottom, (void)size;
#endif
}

void finishSwitch(void *fakeStack, const void **oldBottom, size_t *oldSize) {
#ifdef DECAY_SIMT_ASAN
  __sanitizer_finish_switch_fiber(fakeStack, oldBottom, oldSize);
#else
  (void)fakeStack, (void)oldBottom, (void)oldSize;
#endif
}

/// A stack reused for a new fiber may keep the poisoned redzones of frames
/// that were abandoned on it; the new fiber starts from a clean stack.
void forgetStackContents(FiberStack &stack) {
#ifdef DECAY_SIMT_ASAN
  __asan_unpoison_memory_region(stack.bottom(), stack.size());
#else
  (void)stack;
#endif
}

#ifndef DECAY_SIMT_X86_64_SWITCH
/// makecontext passes int arguments only: the Fiber's address arrives in two halves.
void runUcontextEntry(unsigned high, unsigned low) {
  uintptr_t address = (static_cast<uintptr_t>(high) << 16 << 16) | low;
  Fiber::runEntry(reinterpret_cast<void *>(address));
}
#endif

} // namespace

FiberStack::FiberStack() {
  size_t guard = pageBytes();
  void *mapping = mmap(nullptr, guard + kFiberStackBytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping == MAP_FAILED)
    throw std::bad_alloc();
  if (mprotect(mapping, guard, PROT_NONE) != 0) {
    munmap(mapping, guard + kFiberStackBytes);
    throw std::bad_alloc();
  }
  mapping_ = mapping;
  usable_ = static_cast<char *>(mapping) + guard;
}

FiberStack::~FiberStack() { munmap(mapping_, pageBytes() + kFiberStackBytes); }

void Fiber::start(FiberStack &stack, Entry entry, void *argument) {
  stack_ = &stack;
  entry_ = entry;
  argument_ = argument;
  ownFakeStack_ = nullptr;
  forgetStackContents(stack);
#ifdef DECAY_SIMT_X86_64_SWITCH
  uintptr_t top = reinterpret_cast<uintptr_t>(stack.bottom()) + stack.size();
  top &= ~uintptr_t(15);
  // The frame decay_simt_switch_stack restores (see above), ending in the
  // trampoline as return address at top - 8: after its `ret` the stack
  // pointer is `top`, 16-byte aligned, as a call expects.
  auto *slots = reinterpret_cast<uint64_t *>(top) - 8;
  uint32_t controlWords[2] = {0, 0};
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(controlWords[0]), "=m"(controlWords[1]));
  std::memcpy(&slots[0], controlWords, sizeof controlWords);
  slots[1] = 0;                                                     // r15
  slots[2] = 0;                                                     // r14
  slots[3] = reinterpret_cast<uint64_t>(this);                      // r13: the argument
  slots[4] = reinterpret_cast<uint64_t>(&Fiber::runEntry);          // r12: the function
  slots[5] = 0;                                                     // rbx
  slots[6] = 0;                                                     // rbp: ends frame-pointer walks
  slots[7] = reinterpret_cast<uint64_t>(&decay_simt_fiber_trampoline); // return address
  own_.stackPointer = slots;
#else
  getcontext(&own_.context);
  own_.context.uc_stack.ss_sp = stack.bottom();
  own_.context.uc_stack.ss_size = stack.size();
  own_.context.uc_link = nullptr;
  uintptr_t address = reinterpret_cast<uintptr_t>(this);
  makecontext(&own_.context, reinterpret_cast<void (*)()>(&runUcontextEntry), 2,
              static_cast<unsigned>(address >> 16 >> 16), static_cast<unsigned>(address));
#endif
}

void Fiber::runEntry(void *fiber) {
  auto *self = static_cast<Fiber *>(fiber);
  finishSwitch(nullptr, &self->resumerStackBottom_, &self->resumerStackSize_);
  self->entry_(self->argument_);
  // Entries end with finish(); falling off the trampoline would crash.
  self->finish();
}

void Fiber::resume() {
  startSwitch(&resumerFakeStack_, stack_->bottom(), stack_->size());
  switchStacks(resumer_, own_);
  finishSwitch(resumerFakeStack_, nullptr, nullptr);
}

void Fiber::switchOut(bool forGood) {
  // A null save slot tells AddressSanitizer this fiber's fake stack dies.
  startSwitch(forGood ? nullptr : &ownFakeStack_, resumerStackBottom_, resumerStackSize_);
  switchStacks(own_, resumer_);
  finishSwitch(ownFakeStack_, &resumerStackBottom_, &resumerStackSize_);
}

void Fiber::suspend() { switchOut(false); }

void Fiber::finish() {
  switchOut(true);
  __builtin_unreachable();
}

} // namespace decayrt::detail::simt
