// The decoding API (decayrt_decoder_*): a cache of state slots, prompts through the forward or step kernel, batched steps.
#include "Decoder.h"

#include "Dtype.h"
#include "Run.h"
#include "TensorCheck.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <set>

using namespace decayrt::detail;

namespace {

/// The forward's initial and final state of the step's cache `name`:
/// state -> h0, ht; <what>_state -> <what>_h0, <what>_ht.
void forwardNamesOf(const std::string &name, std::string &initial, std::string &final) {
  std::string prefix = name.substr(0, name.size() - std::string("state").size());
  initial = prefix + "h0";
  final = prefix + "ht";
}

/// The argument `name` of `kernel`, or null.
const Argument *argumentNamed(const Kernel &kernel, const std::string &name) {
  for (const Argument &argument : kernel.arguments)
    if (argument.name == name)
      return &argument;
  return nullptr;
}

/// Whether `argument` is an f32 state of `role` with dims `dims`.
bool isState(const Argument *argument, Role role, const std::string &dims) {
  return argument && argument->role == role && argument->dims == dims &&
         argument->dtype == DECAYRT_F32;
}

/// Sets the init value of a cache: its scan's init for scan_<name>_state, else 0.
Error setInit(const Spec &spec, CacheComponent &component) {
  for (const Scan &scan : spec.scans)
    if (component.name == "scan_" + scan.name + "_state") {
      component.init = static_cast<float>(scan.init);
      return Error::success();
    }
  if (component.name.rfind("scan_", 0) == 0)
    return fail(DECAYRT_ERROR_UNSUPPORTED, "package @" + spec.name + ": the step's state cache '" +
                                               component.name + "' names no scan of the spec");
  return Error::success();
}

/// Describes one step cache from its inout argument (kept in its dtype, f32
/// or bf16) and checks that the forward takes its f32 initial state and
/// returns its f32 final state.
Error describeComponent(const decayrt_decoder &decoder, const Argument &argument,
                        CacheComponent &component) {
  const Spec &spec = decoder.package->manifest.spec;
  component.name = argument.name;
  component.dims = argument.dims;
  component.dtype = argument.dtype;
  if (argument.dtype != DECAYRT_F32 && argument.dtype != DECAYRT_BF16)
    return fail(DECAYRT_ERROR_UNSUPPORTED, "package @" + spec.name + ": the step's state cache '" +
                                               argument.name + "' is " + dtypeName(argument.dtype) +
                                               "; the decoder keeps f32 or bf16 caches");
  forwardNamesOf(argument.name, component.initialName, component.finalName);
  component.slotElements = 1;
  for (char dim : argument.dims.substr(1)) {
    if (std::string("HKV").find(dim) == std::string::npos)
      return fail(DECAYRT_ERROR_UNSUPPORTED,
                  "package @" + spec.name + ": the step's state cache '" + argument.name +
                      "' has dims " + formatDims(argument.dims) +
                      "; the decoder keeps states of dims S then H, K, V");
    int64_t size = dim == 'H' ? decoder.H : dim == 'K' ? decoder.K : decoder.V;
    component.slotShape.push_back(size);
  }
  int64_t total = 0;
  std::vector<int64_t> cacheShape = {decoder.slots};
  cacheShape.insert(cacheShape.end(), component.slotShape.begin(), component.slotShape.end());
  if (!countElements(component.slotShape, 4, component.slotElements) ||
      !countElements(cacheShape, 4, total))
    return fail(DECAYRT_ERROR_SHAPE, "decayrt_decoder_create: the state cache '" + argument.name +
                                         "' " + formatShape(cacheShape) + " is too large");
  if (Error error = setInit(spec, component); !error.ok())
    return error;
  const Kernel &forward = *decoder.forward->kernel;
  std::string dims = "N" + argument.dims.substr(1);
  if (!isState(argumentNamed(forward, component.initialName), Role::Input, dims) ||
      !isState(argumentNamed(forward, component.finalName), Role::Output, dims))
    return fail(DECAYRT_ERROR_UNSUPPORTED,
                "package @" + spec.name + ": the forward lacks the f32 states '" +
                    component.initialName + "' and '" + component.finalName + "' " +
                    formatDims(dims) + " of the step's state cache '" + argument.name + "' (" +
                    dtypeName(argument.dtype) + ")");
  return Error::success();
}

/// Describes every state cache of the step kernel (its inout arguments) and
/// checks that the spec's normalizer and scans each have one.
Error describeComponents(decayrt_decoder &decoder) {
  for (const Argument &argument : decoder.step->kernel->arguments) {
    if (argument.role != Role::Inout)
      continue;
    CacheComponent component;
    if (Error error = describeComponent(decoder, argument, component); !error.ok())
      return error;
    decoder.components.push_back(std::move(component));
  }
  const Spec &spec = decoder.package->manifest.spec;
  std::vector<std::string> needed;
  if (spec.normalizer)
    needed.push_back("norm_state");
  for (const Scan &scan : spec.scans)
    needed.push_back("scan_" + scan.name + "_state");
  for (const std::string &name : needed)
    if (!argumentNamed(*decoder.step->kernel, name))
      return fail(DECAYRT_ERROR_UNSUPPORTED, "package @" + spec.name +
                                                 ": the step kernel lacks the state cache '" +
                                                 name + "'");
  return Error::success();
}

/// `name:dims` of each tensor, comma-separated.
template <typename List, typename Dims> std::string listOf(const List &list, Dims dimsOf) {
  std::string text;
  for (const auto &item : list)
    text += (text.empty() ? "" : ",") + item.name + ":" + dimsOf(item);
  return text;
}

/// What identifies the recurrence a saved state belongs to, besides the
/// spec's name and the sizes: "key=value;..." (docs/decoding.md), each state
/// as name:dims:dtype, or name:dims without `stateDtypes` (format version 1).
std::string describeRecurrence(const decayrt_decoder &decoder, bool stateDtypes) {
  const Spec &spec = decoder.package->manifest.spec;
  auto flag = [](bool value) { return value ? "true" : "false"; };
  const Argument *q = argumentNamed(*decoder.step->kernel, "q");
  std::string scans;
  for (const Scan &scan : spec.scans) {
    char init[32];
    std::snprintf(init, sizeof init, "%.9g", scan.init);
    scans += (scans.empty() ? "" : ",") + scan.name + ":" + init;
  }
  auto declaredDims = [](const DeclaredTensor &tensor) { return tensor.dims; };
  return "granularity=" + spec.granularity + ";feature_map=" + spec.featureMap +
         ";normalizer=" + flag(spec.normalizer) + ";derived_key=" + flag(spec.derivedKey) +
         ";rope=" + flag(spec.rope) + ";dtype=" + dtypeName(q->dtype) +
         ";inputs=" + listOf(spec.inputs, declaredDims) +
         ";params=" + listOf(spec.params, declaredDims) + ";scans=" + scans +
         ";states=" + listOf(decoder.components, [&](const CacheComponent &c) {
           return stateDtypes ? c.dims + ":" + dtypeName(c.dtype) : c.dims;
         });
}

/// Makes a decoder of `slots` empty sequences on the package's forward and step kernels.
Error create(const decayrt_package *package, int64_t slots, int64_t heads, int64_t keyDim,
             int64_t valueDim, std::unique_ptr<decayrt_decoder> &out) {
  if (!package)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_decoder_create: package is NULL");
  if (slots < 1 || heads < 1 || keyDim < 1 || valueDim < 1)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                "decayrt_decoder_create: slots, heads, key_dim and value_dim must be at least 1, "
                "got " +
                    std::to_string(slots) + ", " + std::to_string(heads) + ", " +
                    std::to_string(keyDim) + ", " + std::to_string(valueDim));
  const Spec &spec = package->manifest.spec;
  if ((spec.keyDim && *spec.keyDim != keyDim) || (spec.valueDim && *spec.valueDim != valueDim))
    return fail(DECAYRT_ERROR_SHAPE,
                "decayrt_decoder_create: the spec @" + spec.name +
                    " fixes key_dim = " + (spec.keyDim ? std::to_string(*spec.keyDim) : "any") +
                    ", value_dim = " + (spec.valueDim ? std::to_string(*spec.valueDim) : "any") +
                    ", got " + std::to_string(keyDim) + ", " + std::to_string(valueDim));
  if (spec.rope && keyDim % 2)
    return fail(DECAYRT_ERROR_SHAPE, "decayrt_decoder_create: RoPE needs an even key_dim, got " +
                                         std::to_string(keyDim));
  auto decoder = std::make_unique<decayrt_decoder>();
  decoder->package = package;
  decoder->forward = package->findKernel("forward");
  decoder->step = package->findKernel("step");
  if (!decoder->forward || !decoder->step)
    return fail(DECAYRT_ERROR_UNSUPPORTED, "decayrt_decoder_create: package @" + spec.name +
                                               " has no cpu kernel for the " +
                                               (decoder->forward ? "step" : "forward") +
                                               " entry; the decoder needs both forward and step");
  decoder->slots = slots;
  decoder->H = heads;
  decoder->K = keyDim;
  decoder->V = valueDim;
  if (Error error = describeComponents(*decoder); !error.ok())
    return error;
  for (CacheComponent &component : decoder->components) {
    component.bytes.resize(static_cast<size_t>(slots * component.slotBytes()));
    fillBuffer(component.bytes.data(), component.dtype, slots * component.slotElements,
               component.init);
  }
  decoder->positions.assign(static_cast<size_t>(slots), 0);
  decoder->recurrence = describeRecurrence(*decoder, true);
  decoder->recurrenceV1 = describeRecurrence(*decoder, false);
  out = std::move(decoder);
  return Error::success();
}

/// The tensors of one kernel call: the caller's, then the decoder's own
/// (slots, positions, states), whose shapes live as long as this does.
struct CallTensors {
  std::vector<decayrt_tensor> list;
  std::deque<std::vector<int64_t>> shapes;

  CallTensors(const decayrt_tensor *tensors, size_t count) : list(tensors, tensors + count) {}

  void add(const char *name, void *data, decayrt_dtype dtype, std::vector<int64_t> shape) {
    shapes.push_back(std::move(shape));
    const std::vector<int64_t> &held = shapes.back();
    list.push_back({name, data, dtype, static_cast<int32_t>(held.size()), held.data(), nullptr});
  }

  /// Adds the decoder's whole state caches (the step kernel's inout arguments).
  void addCaches(decayrt_decoder &decoder) {
    for (CacheComponent &component : decoder.components) {
      std::vector<int64_t> shape = {decoder.slots};
      shape.insert(shape.end(), component.slotShape.begin(), component.slotShape.end());
      add(component.name.c_str(), component.bytes.data(), component.dtype, std::move(shape));
    }
  }
};

/// Checks the arguments every call on a decoder's tensors shares: a decoder,
/// tensors when count > 0, no tensor the decoder passes itself (states,
/// slots, positions, cu_seqlens), and q [rows, T, H, K], v [rows, T, H, V]
/// with the decoder's H, K, V (T == tokens unless tokens < 0; q and v are
/// checked further, and reported when absent, by the kernel's checks).
Error checkCallTensors(const decayrt_decoder *decoder, const decayrt_tensor *tensors, size_t count,
                       int64_t rows, int64_t tokens, const char *function) {
  if (!decoder)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, std::string(function) + ": decoder is NULL");
  if (!tensors && count > 0)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, std::string(function) + ": tensors is NULL");
  std::set<std::string> own = {"cu_seqlens", "slots", "positions"};
  for (const CacheComponent &component : decoder->components)
    own.insert({component.name, component.initialName, component.finalName});
  for (size_t i = 0; i < count; ++i) {
    const decayrt_tensor &tensor = tensors[i];
    if (!tensor.name)
      continue; // reported by the kernel's checks
    std::string name = tensor.name;
    if (own.count(name))
      return fail(DECAYRT_ERROR_UNKNOWN_TENSOR,
                  std::string(function) + ": tensor '" + name +
                      "' is the decoder's own (it passes the slots' states, positions and "
                      "sequences itself)");
    if ((name != "q" && name != "v") || tensor.rank != 4 || !tensor.shape)
      continue;
    std::vector<int64_t> expected = {rows, tokens < 0 ? tensor.shape[1] : tokens, decoder->H,
                                     name == "q" ? decoder->K : decoder->V};
    if (shapeOf(tensor) != expected)
      return fail(DECAYRT_ERROR_SHAPE,
                  std::string(function) + ": tensor '" + name + "': expected shape " +
                      formatShape(expected) + " (" + std::to_string(rows) +
                      (rows == 1 ? " sequence" : " sequences") +
                      (tokens < 0 ? ", T tokens" : ", one token") + ", the decoder's H, " +
                      (name == "q" ? "K" : "V") + "), got " + formatShape(shapeOf(tensor)));
  }
  return Error::success();
}

/// The number of tokens of a checked call: q's T.
int64_t tokensOf(const decayrt_tensor *tensors, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (std::string(tensors[i].name) == "q")
      return tensors[i].shape[1];
  return 0;
}

/// Runs a prompt at position 0 through the chunked forward, whose states are
/// f32: h0 (and the other initial states) widened from the slot, the final
/// states into runtime buffers stored into the slot (bf16 caches rounded to
/// nearest even) once the kernel has run.
Error prefillForward(decayrt_decoder &decoder, int64_t slot, CallTensors &call) {
  std::vector<std::vector<float>> initials, finals;
  initials.reserve(decoder.components.size());
  finals.reserve(decoder.components.size());
  for (CacheComponent &component : decoder.components) {
    std::vector<int64_t> shape = {1};
    shape.insert(shape.end(), component.slotShape.begin(), component.slotShape.end());
    initials.emplace_back(static_cast<size_t>(component.slotElements));
    widenToF32(component.slot(slot), component.dtype, component.slotElements,
               initials.back().data());
    call.add(component.initialName.c_str(), initials.back().data(), DECAYRT_F32, shape);
    finals.emplace_back(static_cast<size_t>(component.slotElements));
    call.add(component.finalName.c_str(), finals.back().data(), DECAYRT_F32, std::move(shape));
  }
  if (Error error =
          runCpuKernel(*decoder.package, *decoder.forward, call.list.data(), call.list.size());
      !error.ok())
    return error;
  for (size_t i = 0; i < finals.size(); ++i) {
    CacheComponent &component = decoder.components[i];
    narrowFromF32(finals[i].data(), component.slotElements, component.dtype, component.slot(slot));
  }
  return Error::success();
}

/// Runs the step kernel on the decoder's caches for rows of `slots`, each
/// at its slot's position. Its checks (every tensor, the slots and the
/// positions) pass before it writes anything, and once they pass it cannot fail.
Error runStep(decayrt_decoder &decoder, std::vector<int64_t> &slots, CallTensors &call) {
  std::vector<int64_t> positions;
  for (int64_t slot : slots)
    positions.push_back(decoder.positions[static_cast<size_t>(slot)]);
  int64_t rows = static_cast<int64_t>(slots.size());
  call.add("slots", slots.data(), DECAYRT_I64, {rows});
  call.add("positions", positions.data(), DECAYRT_I64, {rows});
  call.addCaches(decoder);
  return runCpuKernel(*decoder.package, *decoder.step, call.list.data(), call.list.size());
}

/// Runs a prompt of T tokens into `slot` (forward at position 0, else step).
Error prefill(decayrt_decoder *decoder, int64_t slot, const decayrt_tensor *tensors, size_t count) {
  const char *function = "decayrt_decoder_prefill";
  if (Error error = checkCallTensors(decoder, tensors, count, 1, -1, function); !error.ok())
    return error;
  if (Error error = checkSlot(*decoder, slot, function); !error.ok())
    return error;
  CallTensors call(tensors, count);
  std::vector<int64_t> slots = {slot};
  int64_t &position = decoder->positions[static_cast<size_t>(slot)];
  Error error =
      position == 0 ? prefillForward(*decoder, slot, call) : runStep(*decoder, slots, call);
  if (!error.ok())
    return error;
  position += tokensOf(tensors, count);
  return Error::success();
}

/// Runs one token of each of `batch` sequences in `slots`.
Error step(decayrt_decoder *decoder, const int64_t *slots, size_t batch,
           const decayrt_tensor *tensors, size_t count) {
  const char *function = "decayrt_decoder_step";
  if (!decoder)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, std::string(function) + ": decoder is NULL");
  if (!slots && batch > 0)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, std::string(function) + ": slots is NULL");
  if (batch > static_cast<uint64_t>(decoder->slots))
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                std::string(function) + ": a batch of " + std::to_string(batch) +
                    " sequences, but the decoder has " + std::to_string(decoder->slots) + " slots");
  std::vector<int64_t> rows(slots, slots + batch);
  std::map<int64_t, size_t> rowOfSlot;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string at = std::string(function) + ": slots[" + std::to_string(i) + "]";
    if (Error error = checkSlot(*decoder, rows[i], at.c_str()); !error.ok())
      return error;
    auto [previous, fresh] = rowOfSlot.emplace(rows[i], i);
    if (!fresh)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  std::string(function) + ": slot " + std::to_string(rows[i]) +
                      " is in the batch twice (slots[" + std::to_string(previous->second) +
                      "] and slots[" + std::to_string(i) + "])");
  }
  if (Error error =
          checkCallTensors(decoder, tensors, count, static_cast<int64_t>(batch), 1, function);
      !error.ok())
    return error;
  CallTensors call(tensors, count);
  if (Error error = runStep(*decoder, rows, call); !error.ok())
    return error;
  for (int64_t slot : rows)
    ++decoder->positions[static_cast<size_t>(slot)];
  return Error::success();
}

} // namespace

Error decayrt::detail::checkSlot(const decayrt_decoder &decoder, int64_t slot,
                                 const char *function) {
  if (slot >= 0 && slot < decoder.slots)
    return Error::success();
  return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
              std::string(function) + ": slot " + std::to_string(slot) +
                  " is not a slot of the decoder (it has " + std::to_string(decoder.slots) +
                  ": 0 to " + std::to_string(decoder.slots - 1) + ")");
}

void decayrt::detail::resetSlot(decayrt_decoder &decoder, int64_t slot) {
  for (CacheComponent &component : decoder.components)
    fillBuffer(component.slot(slot), component.dtype, component.slotElements, component.init);
  decoder.positions[static_cast<size_t>(slot)] = 0;
}

extern "C" decayrt_status decayrt_decoder_create(decayrt_package *package, int64_t slots,
                                                 int64_t heads, int64_t key_dim, int64_t value_dim,
                                                 decayrt_decoder **out) {
  if (out)
    *out = nullptr;
  return guarded("decayrt_decoder_create", [&] {
    if (!out)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_decoder_create: out is NULL");
    std::unique_ptr<decayrt_decoder> decoder;
    if (Error error = create(package, slots, heads, key_dim, value_dim, decoder); !error.ok())
      return error;
    *out = decoder.release();
    return Error::success();
  });
}

extern "C" void decayrt_decoder_free(decayrt_decoder *decoder) { delete decoder; }

extern "C" decayrt_status decayrt_decoder_reset(decayrt_decoder *decoder, int64_t slot) {
  return guarded("decayrt_decoder_reset", [&] {
    if (!decoder)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_decoder_reset: decoder is NULL");
    if (Error error = checkSlot(*decoder, slot, "decayrt_decoder_reset"); !error.ok())
      return error;
    resetSlot(*decoder, slot);
    return Error::success();
  });
}

extern "C" decayrt_status decayrt_decoder_prefill(decayrt_decoder *decoder, int64_t slot,
                                                  const decayrt_tensor *tensors, size_t count) {
  return guarded("decayrt_decoder_prefill", [&] { return prefill(decoder, slot, tensors, count); });
}

extern "C" decayrt_status decayrt_decoder_step(decayrt_decoder *decoder, const int64_t *slots,
                                               size_t batch, const decayrt_tensor *tensors,
                                               size_t count) {
  return guarded("decayrt_decoder_step",
                 [&] { return step(decoder, slots, batch, tensors, count); });
}

extern "C" decayrt_status decayrt_decoder_position(const decayrt_decoder *decoder, int64_t slot,
                                                   int64_t *position) {
  return guarded("decayrt_decoder_position", [&] {
    const char *function = "decayrt_decoder_position";
    if (!decoder || !position)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  std::string(function) + (decoder ? ": position is NULL" : ": decoder is NULL"));
    if (Error error = checkSlot(*decoder, slot, function); !error.ok())
      return error;
    *position = decoder->positions[static_cast<size_t>(slot)];
    return Error::success();
  });
}
