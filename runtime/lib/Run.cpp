// decayrt_run: plans and checks a call, then runs the CPU kernel on memref descriptors of the caller's buffers.
#include "Run.h"

#include "CallPlan.h"
#include "Dtype.h"
#include "Error.h"
#include "HostBufferPool.h"
#include "Package.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

using namespace decayrt::detail;

namespace {

/// The runtime buffers of one call: zeros, scan initial states, scratch,
/// taken from the package's pool and given back when the call ends.
struct RuntimeBuffers {
  explicit RuntimeBuffers(HostBufferPool &pool) : pool(pool) {}
  ~RuntimeBuffers() {
    for (std::unique_ptr<HostBuffer> &buffer : owned)
      pool.give(std::move(buffer));
  }
  RuntimeBuffers(const RuntimeBuffers &) = delete;
  RuntimeBuffers &operator=(const RuntimeBuffers &) = delete;

  HostBufferPool &pool;
  std::vector<std::unique_ptr<HostBuffer>> owned;
  std::vector<int64_t> seqs;                     ///< N rows of (batch row, first token, end token)
  std::vector<std::vector<int64_t>> descriptors; ///< one memref descriptor per argument
  std::vector<void *> arguments;                 ///< what the kernel receives
};

/// Allocates the runtime's buffers and points every slot at its buffer; writes
/// nothing the caller owns. Throws std::bad_alloc when memory runs out.
void allocateBuffers(Plan &plan, RuntimeBuffers &buffers) {
  buffers.seqs = plan.sequences();
  bool needsScratch = false;
  int64_t scratchBytes = 0;
  for (const Slot &slot : plan.slots)
    if (slot.source == Source::Scratch) {
      needsScratch = true;
      scratchBytes = std::max(scratchBytes, slot.bytes);
    }
  void *scratch = nullptr;
  if (needsScratch) {
    buffers.owned.push_back(buffers.pool.take(static_cast<size_t>(scratchBytes)));
    scratch = buffers.owned.back()->data();
    std::memset(scratch, 0, static_cast<size_t>(scratchBytes));
  }
  for (Slot &slot : plan.slots) {
    switch (slot.source) {
    case Source::Caller:
      slot.data = slot.given->data;
      break;
    case Source::Scratch:
      slot.data = scratch;
      break;
    case Source::Zeros:
    case Source::Init:
      buffers.owned.push_back(buffers.pool.take(static_cast<size_t>(slot.bytes)));
      slot.data = buffers.owned.back()->data();
      fillBuffer(slot.data, slot.argument->dtype, slot.bytes / dtypeSize(slot.argument->dtype),
                 slot.fill);
      break;
    }
  }
}

/// A memref descriptor {allocated, aligned, offset, sizes[rank], strides[rank]}
/// as 64-bit words, with offset 0 and contiguous row-major strides.
std::vector<int64_t> makeDescriptor(void *data, const std::vector<int64_t> &shape) {
  static_assert(sizeof(void *) == sizeof(int64_t), "decayrt needs 64-bit pointers");
  auto address = static_cast<int64_t>(reinterpret_cast<intptr_t>(data));
  std::vector<int64_t> words = {address, address, 0};
  words.insert(words.end(), shape.begin(), shape.end());
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;)
    strides[i - 1] = strides[i] * shape[i];
  words.insert(words.end(), strides.begin(), strides.end());
  return words;
}

/// The descriptors of every kernel argument, in the kernel's order.
void buildDescriptors(const Kernel &kernel, const Plan &plan, RuntimeBuffers &buffers) {
  size_t next = 0;
  for (const Argument &argument : kernel.arguments) {
    if (argument.role == Role::Sequences) {
      buffers.descriptors.push_back(makeDescriptor(buffers.seqs.data(), {plan.sizes.N, 3}));
      continue;
    }
    const Slot &slot = plan.slots[next++];
    buffers.descriptors.push_back(makeDescriptor(slot.data, slot.shape));
  }
  for (std::vector<int64_t> &descriptor : buffers.descriptors)
    buffers.arguments.push_back(descriptor.data());
}

/// Zeroes the caller's outputs the kernel accumulates into (and unused ones).
void zeroOutputs(const Plan &plan) {
  for (const Slot &slot : plan.slots)
    if (slot.zeroOnEntry && slot.bytes > 0)
      std::memset(slot.given->data, 0, static_cast<size_t>(slot.bytes));
}

/// The kernel of `entry`, or an error saying why there is none.
Error findKernel(const decayrt_package &package, const char *entry, const LoadedKernel *&out) {
  if (Error error = checkEntry(entry); !error.ok())
    return error;
  out = package.findKernel(entry);
  if (!out)
    return fail(DECAYRT_ERROR_UNSUPPORTED, "package @" + package.manifest.spec.name +
                                               " has no cpu kernel for the " + entry + " entry");
  return Error::success();
}

/// Runs one call of decayrt_run.
Error run(const decayrt_package *package, const char *entry, const decayrt_tensor *tensors,
          size_t count) {
  if (!package)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_run: package is NULL");
  if (!tensors && count > 0)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_run: tensors is NULL");
  const LoadedKernel *kernel = nullptr;
  if (Error error = findKernel(*package, entry, kernel); !error.ok())
    return error;
  return runCpuKernel(*package, *kernel, tensors, count);
}

} // namespace

Error decayrt::detail::runCpuKernel(const decayrt_package &package, const LoadedKernel &kernel,
                                    const decayrt_tensor *tensors, size_t count) {
  // Plan (checks only), allocate everything, then zero the accumulating
  // outputs and call the kernel: the only steps that write.
  Plan plan;
  if (Error error = planCall(package, *kernel.kernel, tensors, count, readHostIntegers, plan);
      !error.ok())
    return error;
  RuntimeBuffers buffers(package.hostBuffers);
  allocateBuffers(plan, buffers);
  buildDescriptors(*kernel.kernel, plan, buffers);
  zeroOutputs(plan);
  kernel.function(buffers.arguments.data());
  return Error::success();
}

extern "C" decayrt_status decayrt_run(decayrt_package *package, const char *entry,
                                      const decayrt_tensor *tensors, size_t count) {
  return guarded("decayrt_run", [&] { return run(package, entry, tensors, count); });
}
