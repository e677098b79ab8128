// `decayc bench --entry step`: the decoding step's time per token batch and the state bandwidth it reaches, beside a triad loop measured in the same run.
#include "StepBench.h"

#include "MachineBaselines.h"
#include "TensorList.h"
#include "Timing.h"

#include "decayrt/decayrt.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <random>

using namespace decayc;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// The buffers of one decoding step over B sequences (slot b for row b).
struct StepBuffers {
  std::deque<std::vector<float>> floats;
  std::deque<std::vector<uint16_t>> halves;
  std::deque<std::vector<int64_t>> integers;
  TensorList tensors;
  int64_t stateBytes = 0; ///< the in-out states, read and written by a step
};

/// The shape of `dims` (T = 1, S = B).
std::vector<int64_t> shapeOf(const std::string &dims, const ProblemShape &shape) {
  std::vector<int64_t> sizes;
  for (char dim : dims)
    sizes.push_back(dim == 'T' ? 1 : dim == 'H' ? shape.H : dim == 'K' ? shape.K
                    : dim == 'V' ? shape.V : shape.B);
  return sizes;
}

/// Every tensor of the step at `shape`: q, k, v in [0, 0.5), gates and params
/// in [-1, 1), states zero, slots 0..B-1 at position 0.
StepBuffers makeStep(const decay::SpecSummary &spec, const ProblemShape &shape) {
  StepBuffers buffers;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (const decay::Argument &argument : decay::signatureOf(spec, decay::Entry::Step)) {
    const decay::TensorSpec &tensor = argument.tensor;
    if (argument.placeholder)
      continue;
    std::vector<int64_t> sizes = shapeOf(tensor.dims, shape);
    int64_t count = 1;
    for (int64_t size : sizes)
      count *= size;
    if (tensor.dtype == "i64") {
      std::vector<int64_t> values(count, 0);
      if (tensor.name == "slots")
        for (int64_t b = 0; b < count; ++b)
          values[b] = b;
      buffers.integers.push_back(std::move(values));
      buffers.tensors.add(tensor.name, buffers.integers.back().data(), DECAYRT_I64, sizes);
      continue;
    }
    bool data = tensor.name == "q" || tensor.name == "k" || tensor.name == "v";
    std::vector<float> values(count, 0.0f);
    if (argument.kind == decay::Argument::Input)
      for (float &value : values)
        value = data ? 0.5f * unit(rng) : 2.0f * unit(rng) - 1.0f;
    if (argument.kind == decay::Argument::InOut) // as stored: 2 bytes per bf16 element
      buffers.stateBytes += count * (tensor.dtype == "bf16" ? 2 : 4);
    if (tensor.dtype == "bf16") {
      std::vector<uint16_t> bits;
      for (float value : values)
        bits.push_back(decay::toBfloat16(value));
      buffers.halves.push_back(std::move(bits));
      buffers.tensors.add(tensor.name, buffers.halves.back().data(), DECAYRT_BF16, sizes);
      continue;
    }
    buffers.floats.push_back(std::move(values));
    buffers.tensors.add(tensor.name, buffers.floats.back().data(), DECAYRT_F32, sizes);
  }
  return buffers;
}

} // namespace

llvm::Error decayc::benchStep(const CpuDevice &device, const ProblemShape &shape,
                              const StepBenchOptions &options) {
  StepBuffers step = makeStep(device.spec(), shape);
  auto once = [&]() -> llvm::Error {
    if (decayrt_run(device.handle(), "step", step.tensors.data(), step.tensors.size()) !=
        DECAYRT_OK)
      return makeError(decayrt_last_error());
    return llvm::Error::success();
  };
  using Clock = std::chrono::steady_clock;
  for (int64_t i = 0; i < options.warmup; ++i)
    if (llvm::Error error = once())
      return error;
  // Each timed run repeats the step until it lasts 20 ms, so that a step of
  // microseconds is timed over many.
  int64_t repeats = 1;
  for (;;) {
    auto start = Clock::now();
    for (int64_t i = 0; i < repeats; ++i)
      if (llvm::Error error = once())
        return error;
    if (std::chrono::duration<double>(Clock::now() - start).count() >= 0.02 || repeats >= (1 << 20))
      break;
    repeats *= 2;
  }
  std::vector<double> times;
  for (int64_t run = 0; run < options.runs; ++run) {
    auto start = Clock::now();
    for (int64_t i = 0; i < repeats; ++i)
      if (llvm::Error error = once())
        return error;
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count() / repeats);
  }
  double seconds = median(times);
  double moved = 2.0 * static_cast<double>(step.stateBytes); // read and written
  double bandwidth = moved / seconds / 1e9;
  double triad = measureTriadGBps(options.threads);
  std::printf("decayc bench: @%s step, B=%lld H=%lld K=%lld V=%lld (one token per sequence, "
              "%lld slots), %lld threads, %s, state %s\n",
              device.spec().name.c_str(), (long long)shape.B, (long long)shape.H,
              (long long)shape.K, (long long)shape.V, (long long)shape.B,
              (long long)options.threads, device.spec().dtype.c_str(),
              device.spec().stateDtype.c_str());
  std::printf("  median %.3f us per step over %lld runs of %lld steps (min %.3f, max %.3f)\n",
              seconds * 1e6, (long long)options.runs, (long long)repeats,
              *std::min_element(times.begin(), times.end()) * 1e6,
              *std::max_element(times.begin(), times.end()) * 1e6);
  std::printf("  state %.3g MB read and written per step: %.1f GB/s = %.1f%% of the measured "
              "triad bandwidth (%.1f GB/s)\n",
              step.stateBytes / 1e6, bandwidth, 100.0 * bandwidth / triad, triad);
  if (options.json) {
    llvm::json::Object result{{"spec", device.spec().name},
                              {"entry", "step"},
                              {"B", shape.B}, {"H", shape.H}, {"K", shape.K}, {"V", shape.V},
                              {"threads", options.threads},
                              {"dtype", device.spec().dtype},
                              {"state_dtype", device.spec().stateDtype},
                              {"median_s", seconds},
                              {"tokens_per_s", static_cast<double>(shape.B) / seconds},
                              {"state_bytes", step.stateBytes},
                              {"gb_per_s", bandwidth},
                              {"triad_gb_per_s", triad},
                              {"fraction_of_triad", bandwidth / triad}};
    std::string text;
    llvm::raw_string_ostream os(text);
    os << llvm::json::Value(std::move(result));
    std::printf("%s\n", text.c_str());
  }
  return llvm::Error::success();
}
