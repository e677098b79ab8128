// Checks a call's tensors against a kernel's arguments (names, sizes, cu_seqlens, shapes, dtypes, layout, aliasing) and binds them.
#include "CallPlan.h"

#include "Dtype.h"
#include "ManifestReader.h"
#include "Package.h"
#include "TensorCheck.h"

#include <map>

namespace decayrt::detail {
namespace {

/// The caller's tensors by name.
using TensorMap = std::map<std::string, const decayrt_tensor *>;

/// The names `kernel` accepts from the caller, for messages: its tensors and
/// cu_seqlens (not a step kernel's).
std::string acceptedNames(const Kernel &kernel) {
  std::string names;
  for (const Argument &argument : kernel.arguments)
    if (argument.role != Role::Sequences)
      names += (names.empty() ? "" : ", ") + argument.name;
  return kernel.isStep() ? names : names + ", cu_seqlens";
}

/// Whether the caller may pass a tensor called `name` to `kernel`.
bool isAcceptedName(const Kernel &kernel, const std::string &name) {
  if (name == "cu_seqlens")
    return !kernel.isStep();
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

/// Sets S, a step call's number of state slots, from the state cache `state`
/// [S, H, K, V] (its full shape is checked with the other tensors).
Error resolveStateSlots(const Kernel &kernel, const TensorMap &tensors, Sizes &sizes) {
  if (!kernel.isStep())
    return Error::success();
  auto found = tensors.find("state");
  if (found == tensors.end())
    return fail(DECAYRT_ERROR_MISSING_TENSOR,
                "missing tensor 'state': expected shape [S, H, K, V] = [S, " +
                    std::to_string(sizes.H) + ", " + std::to_string(sizes.K) + ", " +
                    std::to_string(sizes.V) + "]");
  const decayrt_tensor &state = *found->second;
  if (Error error = checkRankAndShapePointer(state); !error.ok())
    return error;
  if (state.rank != 4 || state.shape[0] < 0)
    return fail(DECAYRT_ERROR_SHAPE,
                "tensor 'state': expected shape [S, H, K, V], got " + formatShape(shapeOf(state)));
  sizes.S = state.shape[0];
  return Error::success();
}

/// Checks the values of a step call's slots and positions (already checked
/// as i64 [B] tensors; read with `readIntegers`): every slot in [0, S) and
/// used by one row only, every position >= 0 and far enough from overflow to
/// advance by T.
Error checkStepValues(const Plan &plan, const TensorMap &tensors,
                      const IntegerReader &readIntegers) {
  const Sizes &sizes = plan.sizes;
  std::vector<int64_t> slots, positions;
  for (auto [name, values] : {std::pair{"slots", &slots}, std::pair{"positions", &positions}}) {
    bool inKernelMemory = true;
    if (Error error = readIntegers(*tensors.at(name), *values, inKernelMemory); !error.ok())
      return error;
    // The step kernel reads them itself: on a GPU, host memory would fault there.
    if (!inKernelMemory)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  std::string("tensor '") + name +
                      "' is in host memory, but the GPU step module reads it on the device: "
                      "pass device (or managed) memory");
  }
  std::map<int64_t, int64_t> rowOfSlot;
  for (int64_t b = 0; b < sizes.B; ++b) {
    std::string at = "[" + std::to_string(b) + "] = ";
    if (slots[b] < 0 || slots[b] >= sizes.S)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  "tensor 'slots': slots" + at + std::to_string(slots[b]) +
                      " is not a slot of state " +
                      formatShape({sizes.S, sizes.H, sizes.K, sizes.V}));
    auto [previous, fresh] = rowOfSlot.emplace(slots[b], b);
    if (!fresh)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  "tensor 'slots': slot " + std::to_string(slots[b]) + " is used by rows " +
                      std::to_string(previous->second) + " and " + std::to_string(b));
    if (positions[b] < 0 || positions[b] > INT64_MAX - sizes.T)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  "tensor 'positions': positions" + at + std::to_string(positions[b]) +
                      (positions[b] < 0
                           ? " is negative"
                           : " overflows when advanced by T = " + std::to_string(sizes.T)));
  }
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

/// Reads (with `readIntegers`) and checks the optional cu_seqlens; sets N and the offsets.
Error resolveSequences(const TensorMap &tensors, const IntegerReader &readIntegers, Plan &plan) {
  auto found = tensors.find("cu_seqlens");
  if (found == tensors.end())
    return Error::success();
  const decayrt_tensor &tensor = *found->second;
  if (Error error = checkCuSeqlensTensor(tensor); !error.ok())
    return error;
  if (plan.sizes.B != 1)
    return fail(DECAYRT_ERROR_SHAPE, "tensor 'cu_seqlens': varlen packing needs B = 1, got B = " +
                                         std::to_string(plan.sizes.B));
  std::vector<int64_t> offsets;
  if (Error error = readIntegers(tensor, offsets, plan.cuSeqlensInKernelMemory); !error.ok())
    return error;
  if (Error error = checkOffsets(offsets, plan.sizes.T); !error.ok())
    return error;
  plan.cuSeqlens = &tensor;
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
  // A gradient the kernel accumulates into starts from zero, unless the
  // manifest says the kernel stores every element of it (overwritten).
  slot.source = argument.unused ? Source::Scratch : Source::Caller;
  slot.zeroOnEntry = output && (argument.unused || (isAccumulatingOutput(spec, argument.name) &&
                                                    !argument.overwritten));
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

} // namespace

int64_t Sizes::of(char dim) const {
  switch (dim) {
  case 'B':
    return B;
  case 'T':
    return T;
  case 'H':
    return H;
  case 'K':
    return K;
  case 'V':
    return V;
  case 'S':
    return S;
  default:
    return N;
  }
}

std::vector<int64_t> Sizes::shapeOf(const std::string &dims) const {
  std::vector<int64_t> shape;
  for (char dim : dims)
    shape.push_back(of(dim));
  return shape;
}

std::vector<int64_t> Plan::sequences() const {
  std::vector<int64_t> seqs;
  if (!sequenceTable)
    return seqs;
  seqs.reserve(static_cast<size_t>(sizes.N) * 3);
  for (int64_t n = 0; n < sizes.N; ++n) {
    if (offsets.empty())
      seqs.insert(seqs.end(), {n, 0, sizes.T});
    else
      seqs.insert(seqs.end(), {0, offsets[n], offsets[n + 1]});
  }
  return seqs;
}

Error readHostIntegers(const decayrt_tensor &tensor, std::vector<int64_t> &values,
                       bool &inKernelMemory) {
  values.resize(static_cast<size_t>(tensor.shape[0]));
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = tensor.dtype == DECAYRT_I32 ? static_cast<const int32_t *>(tensor.data)[i]
                                            : static_cast<const int64_t *>(tensor.data)[i];
  inKernelMemory = true;
  return Error::success();
}

Error checkEntry(const char *entry) {
  if (entry && isOneOf(entry, {"forward", "backward", "step"}))
    return Error::success();
  return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
              std::string("unknown entry '") + (entry ? entry : "(null)") +
                  "': expected \"forward\", \"backward\" or \"step\"");
}

Error planCall(const decayrt_package &package, const Kernel &kernel, const decayrt_tensor *tensors,
               size_t count, const IntegerReader &readIntegers, Plan &plan) {
  const Spec &spec = package.manifest.spec;
  TensorMap byName;
  if (Error error = indexTensors(kernel, spec, tensors, count, byName); !error.ok())
    return error;
  if (Error error = resolveSizes(spec, byName, plan.sizes); !error.ok())
    return error;
  if (Error error = resolveStateSlots(kernel, byName, plan.sizes); !error.ok())
    return error;
  if (Error error = resolveSequences(byName, readIntegers, plan); !error.ok())
    return error;
  plan.sequenceTable = !kernel.isStep();
  if (Error error = bindArguments(spec, kernel, byName, plan); !error.ok())
    return error;
  if (kernel.isStep())
    if (Error error = checkStepValues(plan, byName, readIntegers); !error.ok())
      return error;
  return checkAliasing(extentsOf(plan));
}

std::vector<Extent> extentsOf(const Plan &plan) {
  std::vector<Extent> extents;
  for (const Slot &slot : plan.slots)
    if (slot.given && slot.bytes > 0) {
      auto begin = reinterpret_cast<uintptr_t>(slot.given->data);
      Role role = slot.argument->role;
      bool written = role == Role::Output || role == Role::Inout;
      const char *kind = role == Role::Output  ? "output '"
                         : role == Role::Inout ? "inout tensor '"
                                               : "tensor '";
      extents.push_back({kind + slot.argument->name + "'", begin,
                         begin + static_cast<uintptr_t>(slot.bytes), written});
    }
  if (plan.cuSeqlens && plan.cuSeqlensInKernelMemory && !plan.offsets.empty()) {
    auto begin = reinterpret_cast<uintptr_t>(plan.cuSeqlens->data);
    uintptr_t bytes =
        plan.offsets.size() * static_cast<uintptr_t>(dtypeSize(plan.cuSeqlens->dtype));
    extents.push_back({"tensor 'cu_seqlens'", begin, begin + bytes, false});
  }
  return extents;
}

Error checkAliasing(const std::vector<Extent> &extents) {
  for (size_t i = 0; i < extents.size(); ++i)
    for (size_t j = 0; j < extents.size(); ++j) {
      const Extent &output = extents[i], &other = extents[j];
      if (i == j || !output.written || (other.written && j < i))
        continue; // each pair of written ranges is reported once
      if (output.begin < other.end && other.begin < output.end)
        return fail(DECAYRT_ERROR_ALIASING, output.name + " overlaps " + other.name + " in memory");
    }
  return Error::success();
}

} // namespace decayrt::detail
