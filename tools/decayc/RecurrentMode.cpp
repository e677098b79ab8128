// decayc's recurrent mode (`run --entry step`): the forward's tensors run token by token through a package's step kernel, the final states kept in place.
#include "RecurrentMode.h"

#include "CudaTransfer.h"
#include "TensorList.h"

#include "decayrt/decayrt.h"

#include <array>

using namespace decayc;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// Elements per token of a per-token tensor [B, T, ...].
int64_t elementsPerToken(const DeviceTensor &tensor) {
  int64_t count = 1;
  for (size_t d = 2; d < tensor.shape.size(); ++d)
    count *= tensor.shape[d];
  return count;
}

/// One step call: the decayrt tensors and the slots and positions they point
/// to; how each moves to and from a CUDA device.
struct StepCall {
  TensorList tensors;
  std::vector<int64_t> slots, positions;
  std::vector<Transfer> transfers;

  /// `tensor`, or its tokens [first, first + count) of batch row 0 when it is per token.
  void add(const std::string &name, const DeviceTensor &tensor, bool perToken, int64_t first,
           int64_t count, Transfer transfer = Transfer::In) {
    decayrt_dtype dtype = tensor.bf16 ? DECAYRT_BF16 : DECAYRT_F32;
    transfers.push_back(transfer);
    if (!perToken)
      return tensors.add(name, tensor.data(), dtype, tensor.shape);
    std::vector<int64_t> shape = tensor.shape;
    shape[1] = count;
    size_t element = tensor.bf16 ? sizeof(uint16_t) : sizeof(float);
    auto *base = static_cast<char *>(tensor.data());
    tensors.add(name, base + first * elementsPerToken(tensor) * element, dtype, std::move(shape));
  }
};

/// Runs the package's step kernel on `call` on the device `kind`.
llvm::Error launchStep(decayrt_package *package, DeviceKind kind, const StepCall &call) {
  decayrt_status status = DECAYRT_OK;
  switch (kind) {
  case DeviceKind::Cpu:
    status = decayrt_run(package, "step", call.tensors.data(), call.tensors.size());
    break;
  case DeviceKind::Simt:
    status = decayrt_run_simt(package, "step", call.tensors.data(), call.tensors.size(), nullptr);
    break;
  case DeviceKind::Cuda:
    return runOnCuda(package, "step",
                     std::vector<decayrt_tensor>(call.tensors.data(),
                                                 call.tensors.data() + call.tensors.size()),
                     call.transfers);
  }
  return status == DECAYRT_OK ? llvm::Error::success() : makeError(decayrt_last_error());
}
} // namespace

llvm::Error decayc::runRecurrentMode(decayrt_package *package, DeviceKind kind,
                                     const decay::SpecSummary &spec,
                                     const std::map<std::string, DeviceTensor> &inputs,
                                     const std::vector<int64_t> *cuSeqlens,
                                     std::map<std::string, DeviceTensor> &outputs) {
  auto q = inputs.find("q");
  if (q == inputs.end() || q->second.shape.size() != 4)
    return makeError("missing tensor 'q': expected shape [B, T, H, K]");
  int64_t B = q->second.shape[0], T = q->second.shape[1];
  if (cuSeqlens && B != 1)
    return makeError("tensor 'cu_seqlens': varlen packing needs B = 1, got B = " + llvm::Twine(B));
  // The final states start as the initial ones and are the step's slots.
  const std::vector<decay::StepState> states = decay::stepStatesOf(spec);
  for (const decay::StepState &names : states) {
    auto final = outputs.find(names.final);
    if (final == outputs.end())
      return makeError("the recurrent mode has no output '" + names.final + "'");
    auto initial = inputs.find(names.initial);
    if (initial == inputs.end()) {
      std::fill(final->second.f32.begin(), final->second.f32.end(), static_cast<float>(names.init));
    } else if (initial->second.shape != final->second.shape) {
      return makeError("tensor '" + names.initial + "': expected the shape of '" + names.final +
                       "'");
    } else {
      final->second.f32 = initial->second.f32;
    }
  }
  // A state the step stores in bf16 is staged: its slots are a bf16 copy of
  // the final state, widened back into it when every call is done.
  std::map<std::string, DeviceTensor> bf16Slots;
  for (const decay::StepState &names : states)
    if (names.slots == "state" && spec.stateDtype == "bf16") {
      const DeviceTensor &final = outputs.at(names.final);
      bf16Slots[names.slots] = DeviceTensor::of(final.shape, final.f32, /*bf16=*/true);
    }
  auto slotsOf = [&](const decay::StepState &names) -> const DeviceTensor & {
    auto staged = bf16Slots.find(names.slots);
    return staged != bf16Slots.end() ? staged->second : outputs.at(names.final);
  };
  // Without cu_seqlens one call advances every batch row from slot b; with
  // it, one call per sequence advances slot n through its tokens.
  std::vector<std::array<int64_t, 3>> calls; // (first token, tokens, slot)
  if (!cuSeqlens)
    calls.push_back({0, T, -1});
  else
    for (size_t n = 0; n + 1 < cuSeqlens->size(); ++n)
      if ((*cuSeqlens)[n + 1] > (*cuSeqlens)[n])
        calls.push_back({(*cuSeqlens)[n], (*cuSeqlens)[n + 1] - (*cuSeqlens)[n],
                         static_cast<int64_t>(n)});
  for (auto [first, count, slot] : calls) {
    StepCall call;
    int64_t rows = slot < 0 ? B : 1;
    for (int64_t row = 0; row < rows; ++row) {
      call.slots.push_back(slot < 0 ? row : slot);
      call.positions.push_back(0);
    }
    call.tensors.add("slots", call.slots.data(), DECAYRT_I64, {rows});
    call.tensors.add("positions", call.positions.data(), DECAYRT_I64, {rows});
    call.transfers.insert(call.transfers.end(), 2, Transfer::In);
    for (auto &[name, tensor] : inputs) {
      bool isState = false;
      for (const decay::StepState &names : states)
        isState |= name == names.initial;
      if (!isState)
        call.add(name, tensor, isPerToken(spec, name), first, count);
    }
    for (const decay::StepState &names : states)
      call.add(names.slots, slotsOf(names), /*perToken=*/false, 0, 0, Transfer::InOut);
    call.add("o", outputs.at("o"), /*perToken=*/true, first, count, Transfer::Out);
    if (llvm::Error error = launchStep(package, kind, call))
      return error;
  }
  for (const decay::StepState &names : states)
    if (auto staged = bf16Slots.find(names.slots); staged != bf16Slots.end()) {
      std::vector<float> widened = staged->second.values();
      outputs.at(names.final).f32.assign(widened.begin(), widened.end());
    }
  return llvm::Error::success();
}

bool decayc::isPerToken(const decay::SpecSummary &spec, const std::string &name) {
  if (name == "q" || name == "k" || name == "v")
    return true;
  for (auto &[input, dims] : spec.inputs)
    if (input == name)
      return llvm::StringRef(dims).starts_with("BT");
  return false;
}
