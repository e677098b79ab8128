// decayrt_run: binds the caller's tensors to a kernel's arguments, checks them all, then calls the kernel.
#include "Dtype.h"
#include "Error.h"
#include "Package.h"
#include "TensorCheck.h"

#include "decay/Support/Bfloat16.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <new>

using namespace decayrt::detail;

namespace {

/// The problem sizes: B, T, H, K from q, V from v, N from cu_seqlens (else B).
struct Sizes {
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0, N = 0;

  /// The shape named by dims letters of BTHKVN.
  std::vector<int64_t> shapeOf(const std::string &dims) const {
    std::vector<int64_t> shape;
    for (char dim : dims)
      shape.push_back(dim == 'B'   ? B
                      : dim == 'T' ? T
                      : dim == 'H' ? H
                      : dim == 'K' ? K
                      : dim == 'V' ? V
                                   : N);
    return shape;
  }
};

/// The caller's tensors by name.
using TensorMap = std::map<std::string, const decayrt_tensor *>;

/// Where the buffer of a kernel argument comes from.
enum class Source {
  Caller,  ///< the caller's tensor
  Zeros,   ///< an absent optional input: runtime zeros
  Init,    ///< an absent scan state: runtime buffer at the scan's init
  Scratch, ///< an unused argument: shared runtime scratch
};

/// One kernel argument bound to its buffer.
struct Slot {
  const Argument *argument = nullptr;
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  Source source = Source::Caller;
  const decayrt_tensor *given = nullptr; ///< the caller's tensor, if passed
  double fill = 0.0;                     ///< Init: the value
  bool zeroOnEntry = false;              ///< Caller output that the runtime zeroes
  void *data = nullptr;                  ///< the buffer passed to the kernel
};

/// Everything a call needs, built and checked before anything is written.
struct Plan {
  Sizes sizes;
  std::vector<int64_t> offsets; ///< cu_seqlens as int64; empty without it
  std::vector<Slot> slots;      ///< one per non-sequence kernel argument, in order
};

/// The entries a package may have.
bool isKnownEntry(const std::string &entry) { return entry == "forward" || entry == "backward"; }

/// The names `kernel` accepts from the caller, for messages: its tensors and cu_seqlens.
std::string acceptedNames(const Kernel &kernel) {
  std::string names;
  for (const Argument &argument : kernel.arguments)
    if (argument.role != Role::Sequences)
      names += argument.name + ", ";
  return names + "cu_seqlens";
}

/// Whether the caller may pass a tensor called `name` to `kernel`.
bool isAcceptedName(const Kernel &kernel, const std::string &name) {
  if (name == "cu_seqlens")
    return true;
  for (const Argument &argument : kernel.arguments)
    if (argument.role != Role::Sequences && argument.name == name)
      return true;
  return false;
}

/// Indexes the caller's tensors by name: every name set, known and unique.
Error indexTensors(const Kernel &kernel, const Spec &spec, const decayrt_tensor *tensors,
                   size_t count, TensorMap &out) {
  for (size_t i = 0; i < count; ++i) {
    const decayrt_tensor &tensor = tensors[i];
    if (!tensor.name)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  "tensor #" + std::to_string(i) + " has a NULL name");
    if (!isAcceptedName(kernel, tensor.name))
      return fail(DECAYRT_ERROR_UNKNOWN_TENSOR, std::string("unknown tensor '") + tensor.name +
                                                    "': the " + kernel.entry + " of @" + spec.name +
                                                    " takes " + acceptedNames(kernel));
    if (!out.emplace(tensor.name, &tensor).second)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  std::string("tensor '") + tensor.name + "' is passed twice");
  }
  return Error::success();
}

/// The required 4-d size source `name` (q or v) with its rank checked.
Error findSizeSource(const TensorMap &tensors, const char *name, const char *dims,
                     const decayrt_tensor *&out) {
  auto found = tensors.find(name);
  if (found == tensors.end())
    return fail(DECAYRT_ERROR_MISSING_TENSOR,
                std::string("missing tensor '") + name + "': expected shape " + dims);
  out = found->second;
  if (Error error = checkRankAndShapePointer(*out); !error.ok())
    return error;
  if (out->rank != 4)
    return fail(DECAYRT_ERROR_SHAPE, std::string("tensor '") + name + "': expected 4 dims " + dims +
                                         ", got " + formatShape(shapeOf(*out)));
  for (int32_t i = 0; i < 4; ++i)
    if (out->shape[i] < 0)
      return fail(DECAYRT_ERROR_SHAPE, std::string("tensor '") + name + "': negative size in " +
                                           formatShape(shapeOf(*out)));
  return Error::success();
}

/// Resolves B, T, H, K from q and V from v (N = B until cu_seqlens says
/// otherwise) and checks them against the spec.
Error resolveSizes(const Spec &spec, const TensorMap &tensors, Sizes &sizes) {
  const decayrt_tensor *q = nullptr, *v = nullptr;
  if (Error error = findSizeSource(tensors, "q", "[B, T, H, K]", q); !error.ok())
    return error;
  if (Error error = findSizeSource(tensors, "v", "[B, T, H, V]", v); !error.ok())
    return error;
  sizes = Sizes{q->shape[0], q->shape[1], q->shape[2], q->shape[3], v->shape[3], q->shape[0]};
  if (sizes.H < 1 || sizes.K < 1 || sizes.V < 1)
    return fail(DECAYRT_ERROR_SHAPE, "tensors 'q' and 'v': H, K and V must be at least 1, got q " +
                                         formatShape(shapeOf(*q)) + " and v " +
                                         formatShape(shapeOf(*v)));
  if (spec.keyDim && *spec.keyDim != sizes.K)
    return fail(DECAYRT_ERROR_SHAPE,
                "tensor 'q': the spec fixes key_dim = " + std::to_string(*spec.keyDim) +
                    ", got K = " + std::to_string(sizes.K));
  if (spec.valueDim && *spec.valueDim != sizes.V)
    return fail(DECAYRT_ERROR_SHAPE,
                "tensor 'v': the spec fixes value_dim = " + std::to_string(*spec.valueDim) +
                    ", got V = " + std::to_string(sizes.V));
  if (spec.rope && sizes.K % 2)
    return fail(DECAYRT_ERROR_SHAPE,
                "tensor 'q': RoPE needs an even K, got K = " + std::to_string(sizes.K));
  return Error::success();
}

/// Checks cu_seqlens' dtype, shape and storage (not its values).
Error checkCuSeqlensTensor(const decayrt_tensor &tensor) {
  int raw = rawEnumValue(tensor.dtype);
  if (raw != DECAYRT_I32 && raw != DECAYRT_I64)
    return fail(DECAYRT_ERROR_DTYPE,
                "tensor 'cu_seqlens': expected dtype i32 or i64, got " +
                    (isValidDtype(raw) ? std::string(dtypeName(static_cast<decayrt_dtype>(raw)))
                                       : "invalid dtype " + std::to_string(raw)));
  if (Error error = checkRankAndShapePointer(tensor); !error.ok())
    return error;
  if (tensor.rank != 1)
    return fail(DECAYRT_ERROR_SHAPE,
                "tensor 'cu_seqlens': expected shape [N+1], got " + formatShape(shapeOf(tensor)));
  return checkStorage(tensor);
}

/// Reads cu_seqlens as int64 offsets.
std::vector<int64_t> readOffsets(const decayrt_tensor &tensor) {
  std::vector<int64_t> offsets(static_cast<size_t>(tensor.shape[0]));
  for (size_t i = 0; i < offsets.size(); ++i)
    offsets[i] = tensor.dtype == DECAYRT_I32 ? static_cast<const int32_t *>(tensor.data)[i]
                                             : static_cast<const int64_t *>(tensor.data)[i];
  return offsets;
}

/// Checks that `offsets` go from 0 to T without decreasing.
Error checkOffsets(const std::vector<int64_t> &offsets, int64_t T) {
  if (offsets.size() < 2 || offsets.front() != 0 || offsets.back() != T) {
    std::string got = offsets.empty() ? "no offsets"
                                      : std::to_string(offsets.size()) + " offsets from " +
                                            std::to_string(offsets.front()) + " to " +
                                            std::to_string(offsets.back());
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                "tensor 'cu_seqlens': expected N+1 >= 2 offsets from 0 to T = " +
                    std::to_string(T) + ", got " + got);
  }
  for (size_t i = 1; i < offsets.size(); ++i)
    if (offsets[i] < offsets[i - 1])
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  "tensor 'cu_seqlens': offsets must not decrease (entry " + std::to_string(i) +
                      ": " + std::to_string(offsets[i]) + " < " + std::to_string(offsets[i - 1]) +
                      ")");
  return Error::success();
}

/// Reads and checks the optional cu_seqlens; sets N and the offsets.
Error resolveSequences(const TensorMap &tensors, Plan &plan) {
  auto found = tensors.find("cu_seqlens");
  if (found == tensors.end())
    return Error::success();
  const decayrt_tensor &tensor = *found->second;
  if (Error error = checkCuSeqlensTensor(tensor); !error.ok())
    return error;
  if (plan.sizes.B != 1)
    return fail(DECAYRT_ERROR_SHAPE, "tensor 'cu_seqlens': varlen packing needs B = 1, got B = " +
                                         std::to_string(plan.sizes.B));
  std::vector<int64_t> offsets = readOffsets(tensor);
  if (Error error = checkOffsets(offsets, plan.sizes.T); !error.ok())
    return error;
  plan.sizes.N = static_cast<int64_t>(offsets.size()) - 1;
  plan.offsets = std::move(offsets);
  return Error::success();
}

/// The init value of the scan whose initial state is `name` (scan_<scan>_h0), if any.
const Scan *scanOfInitialState(const Spec &spec, const std::string &name) {
  for (const Scan &scan : spec.scans)
    if (name == "scan_" + scan.name + "_h0")
      return &scan;
  return nullptr;
}

/// Whether the output `name` accumulates (d<name> of a spec input or param),
/// so the kernel needs it zeroed.
bool isAccumulatingOutput(const Spec &spec, const std::string &name) {
  for (const auto *list : {&spec.inputs, &spec.params})
    for (const DeclaredTensor &tensor : *list)
      if (name == "d" + tensor.name)
        return true;
  return false;
}

/// Decides where an argument the caller did not pass comes from.
Error bindAbsent(const Spec &spec, Slot &slot) {
  const Argument &argument = *slot.argument;
  if (argument.unused) {
    slot.source = Source::Scratch;
    return Error::success();
  }
  if (argument.role == Role::Input && argument.optional) {
    const Scan *scan = scanOfInitialState(spec, argument.name);
    slot.source = scan ? Source::Init : Source::Zeros;
    slot.fill = scan ? scan->init : 0.0;
    return Error::success();
  }
  return fail(DECAYRT_ERROR_MISSING_TENSOR,
              std::string("missing ") + (argument.role == Role::Output ? "output" : "tensor") +
                  " '" + argument.name + "': expected shape " + formatShape(slot.shape) + " (" +
                  formatDims(argument.dims) + ")");
}

/// Binds one kernel argument to the caller's tensor or a runtime buffer, checking it.
Error bindArgument(const Spec &spec, const Argument &argument, const TensorMap &tensors,
                   const Sizes &sizes, Slot &slot) {
  slot.argument = &argument;
  slot.shape = sizes.shapeOf(argument.dims);
  int64_t elements = 0;
  if (!countElements(slot.shape, dtypeSize(argument.dtype), elements))
    return fail(DECAYRT_ERROR_SHAPE, "tensor '" + argument.name + "': shape " +
                                         formatShape(slot.shape) + " is too large");
  slot.bytes = elements * dtypeSize(argument.dtype);
  auto found = tensors.find(argument.name);
  if (found == tensors.end())
    return bindAbsent(spec, slot);
  slot.given = found->second;
  if (Error error = checkTensor(*slot.given, argument.dtype, slot.shape, argument.dims);
      !error.ok())
    return error;
  bool output = argument.role == Role::Output;
  // An unused k is ignored; an unused dk is zero (k does not affect the loss).
  slot.source = argument.unused ? Source::Scratch : Source::Caller;
  slot.zeroOnEntry = output && (argument.unused || isAccumulatingOutput(spec, argument.name));
  return Error::success();
}

/// Binds every non-sequence argument of `kernel`.
Error bindArguments(const Spec &spec, const Kernel &kernel, const TensorMap &tensors, Plan &plan) {
  for (const Argument &argument : kernel.arguments) {
    if (argument.role == Role::Sequences)
      continue;
    Slot slot;
    if (Error error = bindArgument(spec, argument, tensors, plan.sizes, slot); !error.ok())
      return error;
    plan.slots.push_back(std::move(slot));
  }
  return Error::success();
}

/// The bytes [begin, end) a caller tensor occupies, and whether it is written.
struct Extent {
  std::string name;
  uintptr_t begin = 0, end = 0;
  bool written = false;
};

/// Fails if a tensor the call writes overlaps any other tensor of the call.
Error checkAliasing(const Plan &plan, const TensorMap &tensors) {
  std::vector<Extent> extents;
  for (const Slot &slot : plan.slots)
    if (slot.given && slot.bytes > 0) {
      auto begin = reinterpret_cast<uintptr_t>(slot.given->data);
      extents.push_back({slot.argument->name, begin, begin + static_cast<uintptr_t>(slot.bytes),
                         slot.argument->role == Role::Output});
    }
  auto cuSeqlens = tensors.find("cu_seqlens");
  if (cuSeqlens != tensors.end() && !plan.offsets.empty()) {
    auto begin = reinterpret_cast<uintptr_t>(cuSeqlens->second->data);
    uintptr_t bytes =
        plan.offsets.size() * static_cast<uintptr_t>(dtypeSize(cuSeqlens->second->dtype));
    extents.push_back({"cu_seqlens", begin, begin + bytes, false});
  }
  for (size_t i = 0; i < extents.size(); ++i)
    for (size_t j = 0; j < extents.size(); ++j) {
      const Extent &output = extents[i], &other = extents[j];
      if (i == j || !output.written || (other.written && j < i))
        continue; // each pair of outputs is reported once
      if (output.begin < other.end && other.begin < output.end)
        return fail(DECAYRT_ERROR_ALIASING, "output '" + output.name + "' overlaps " +
                                                (other.written ? "output '" : "tensor '") +
                                                other.name + "' in memory");
    }
  return Error::success();
}

/// Checks every tensor and builds the plan of the call; writes nothing.
Error planCall(const decayrt_package &package, const Kernel &kernel, const decayrt_tensor *tensors,
               size_t count, Plan &plan) {
  const Spec &spec = package.manifest.spec;
  TensorMap byName;
  if (Error error = indexTensors(kernel, spec, tensors, count, byName); !error.ok())
    return error;
  if (Error error = resolveSizes(spec, byName, plan.sizes); !error.ok())
    return error;
  if (Error error = resolveSequences(byName, plan); !error.ok())
    return error;
  if (Error error = bindArguments(spec, kernel, byName, plan); !error.ok())
    return error;
  return checkAliasing(plan, byName);
}

/// A 64-byte aligned heap buffer (never empty, so its address is never null).
class Buffer {
public:
  explicit Buffer(size_t bytes)
      : data_(::operator new(std::max<size_t>(bytes, kAlignment), std::align_val_t(kAlignment))) {}
  ~Buffer() { ::operator delete(data_, std::align_val_t(kAlignment)); }
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  void *data() const { return data_; }

private:
  static constexpr size_t kAlignment = 64;
  void *data_;
};

/// Fills `count` elements of `dtype` at `data` with `value`.
void fillBuffer(void *data, decayrt_dtype dtype, int64_t count, double value) {
  auto fill = [&](auto typed) {
    auto *elements = static_cast<decltype(typed) *>(data);
    std::fill(elements, elements + count, typed);
  };
  switch (dtype) {
  case DECAYRT_F32:
    return fill(static_cast<float>(value));
  case DECAYRT_F64:
    return fill(value);
  case DECAYRT_BF16:
    return fill(decay::toBfloat16(static_cast<float>(value)));
  case DECAYRT_I32:
    return fill(static_cast<int32_t>(value));
  case DECAYRT_I64:
    return fill(static_cast<int64_t>(value));
  }
}

/// The runtime buffers of one call: zeros, scan initial states, scratch.
struct RuntimeBuffers {
  std::vector<std::unique_ptr<Buffer>> owned;
  std::vector<int64_t> seqs;                     ///< N rows of (batch row, first token, end token)
  std::vector<std::vector<int64_t>> descriptors; ///< one memref descriptor per argument
  std::vector<void *> arguments;                 ///< what the kernel receives
};

/// The sequence table: from cu_seqlens (batch row 0) or one row per batch row.
std::vector<int64_t> buildSequences(const Plan &plan) {
  std::vector<int64_t> seqs;
  seqs.reserve(static_cast<size_t>(plan.sizes.N) * 3);
  for (int64_t n = 0; n < plan.sizes.N; ++n) {
    if (plan.offsets.empty())
      seqs.insert(seqs.end(), {n, 0, plan.sizes.T});
    else
      seqs.insert(seqs.end(), {0, plan.offsets[n], plan.offsets[n + 1]});
  }
  return seqs;
}

/// Allocates the runtime's buffers and points every slot at its buffer; writes
/// nothing the caller owns. Throws std::bad_alloc when memory runs out.
void allocateBuffers(Plan &plan, RuntimeBuffers &buffers) {
  buffers.seqs = buildSequences(plan);
  bool needsScratch = false;
  int64_t scratchBytes = 0;
  for (const Slot &slot : plan.slots)
    if (slot.source == Source::Scratch) {
      needsScratch = true;
      scratchBytes = std::max(scratchBytes, slot.bytes);
    }
  void *scratch = nullptr;
  if (needsScratch) {
    buffers.owned.push_back(std::make_unique<Buffer>(static_cast<size_t>(scratchBytes)));
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
      buffers.owned.push_back(std::make_unique<Buffer>(static_cast<size_t>(slot.bytes)));
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
  if (!entry || !isKnownEntry(entry))
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, std::string("unknown entry '") +
                                                    (entry ? entry : "(null)") +
                                                    "': expected \"forward\" or \"backward\"");
  out = package.findKernel(entry);
  if (!out)
    return fail(DECAYRT_ERROR_UNSUPPORTED, "package @" + package.manifest.spec.name +
                                               " has no cpu kernel for the " + entry + " entry");
  return Error::success();
}

/// Runs one call: plan (checks only), allocate everything, then zero the
/// accumulating outputs and call the kernel (the only steps that write).
Error run(const decayrt_package *package, const char *entry, const decayrt_tensor *tensors,
          size_t count) {
  if (!package)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_run: package is NULL");
  if (!tensors && count > 0)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_run: tensors is NULL");
  const LoadedKernel *kernel = nullptr;
  if (Error error = findKernel(*package, entry, kernel); !error.ok())
    return error;
  Plan plan;
  if (Error error = planCall(*package, *kernel->kernel, tensors, count, plan); !error.ok())
    return error;
  RuntimeBuffers buffers;
  allocateBuffers(plan, buffers);
  buildDescriptors(*kernel->kernel, plan, buffers);
  zeroOutputs(plan);
  kernel->function(buffers.arguments.data());
  return Error::success();
}

} // namespace

extern "C" decayrt_status decayrt_run(decayrt_package *package, const char *entry,
                                      const decayrt_tensor *tensors, size_t count) {
  try {
    return report(run(package, entry, tensors, count));
  } catch (const std::bad_alloc &) {
    return report(fail(DECAYRT_ERROR_OUT_OF_MEMORY, "decayrt_run: out of memory"));
  } catch (...) {
    return report(fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_run: unexpected failure"));
  }
}
