// `decayc bench`: median time, tokens/s and GFLOP/s of a kernel, beside the machine's measured peak and a baseline.
#include "Commands.h"
#include "CpuDevice.h"
#include "MachineBaselines.h"
#include "ProblemShape.h"
#include "StepBench.h"
#include "Timing.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

using decay::Entry;

const char *const decayc::kBenchHelp = R"(USAGE: decayc bench SPEC|PKG [options]

Times a kernel on generated inputs: warm-up runs, then the median of timed
runs. Reports seconds, tokens/s and GFLOP/s, and, measured in the same run, the
machine's fp32 FMA peak over the same threads and a hand-vectorized
token-by-token recurrence (the forward's baseline). Every tensor (the
baseline's too) starts on a 64-byte boundary, as PyTorch's CPU allocator
places them: the kernels' vector rows then never straddle cache lines, and
the forward writes o with non-temporal stores (docs/package.md).

OPTIONS:
  --entry forward|backward|both|step
                       What to time (default: forward). `backward` times the
                       backward alone; `both` a forward followed by a backward;
                       `step` one decoding step: one token for each of B
                       sequences (T is ignored), their fp32 states in B slots
                       of the state cache, read and written in place. It
                       reports the time per step, the state bandwidth (state
                       bytes read plus written per step over the time) and
                       its fraction of a STREAM triad (a[i] = b[i] + s c[i]
                       over 3 x 128 MiB, 12 bytes per element) measured in the
                       same run on the same threads; with --json: median_s,
                       tokens_per_s, state_bytes, gb_per_s, triad_gb_per_s,
                       fraction_of_triad.
  --shape B=..,T=..,H=..,K=..,V=..
                       The problem (default: B=4,T=4096,H=8,K=128,V=128; for
                       step B=64,H=16,K=128,V=128).
  --device cpu         The device (the only one so far).
  --threads N          Threads (default: every core). Sets OMP_NUM_THREADS.
                       Unless set already, OMP_WAIT_POLICY and KMP_BLOCKTIME
                       make the kernels' threads sleep between runs (passive,
                       0), for step spin (active, 200 ms) as a decoding loop's
                       would.
  --runs N             Timed runs (default: 7); --warmup N (default: 2).
  --chunk-size N       Tokens per chunk when compiling a spec (default: the
                       spec's chunk_size hint, else 64); a package's must
                       match. FLOPs are counted with the chunk size the
                       package records.
  --dtype f32|bf16     How the kernels store the per-token tensors when
                       compiling a spec (default: the spec's dtype option,
                       else f32); a package's must match. The inputs are
                       generated in that dtype; FLOPs are counted the same.
  --recurrence NAME    Which recurrence of SPEC.
  --json               Also print one JSON object on the last line, with
                       dtype, median_s, tokens_per_s, gflops, peak_gflops,
                       fraction_of_peak, baseline_median_s, speedup_vs_baseline.

FLOPs follow MATH.md section 2: 2T[C(K+V) + 2KV] per (batch, head) for the
forward; the backward is counted as twice the forward (the usual convention;
the kernel also recomputes the forward's states), `both` as three times.
)";

namespace {
int fail(const std::string &message) {
  std::fprintf(stderr, "decayc bench: error: %s\n", message.c_str());
  return 1;
}

/// Inputs of `entry` at moderate values: q, k, v in [0, 0.5), gates and
/// params in [-1, 1), optional states zero (absent); in the package's dtypes.
std::map<std::string, decayc::DeviceTensor> generateInputs(const decayc::CpuDevice &device,
                                                           Entry entry, const decayc::ProblemShape &shape) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::map<std::string, decayc::DeviceTensor> inputs;
  for (const decay::TensorSpec &spec : device.inputsOf(entry)) {
    if (spec.optional)
      continue;
    std::vector<int64_t> dims;
    int64_t count = 1;
    for (char dim : spec.dims) {
      int64_t size = dim == 'B' ? shape.B : dim == 'T' ? shape.T : dim == 'H' ? shape.H
                     : dim == 'K' ? shape.K : dim == 'V' ? shape.V : shape.B;
      dims.push_back(size);
      count *= size;
    }
    bool data = spec.name == "q" || spec.name == "k" || spec.name == "v" || spec.name == "do";
    std::vector<float> values(count);
    for (float &value : values)
      value = data ? 0.5f * unit(rng) : 2.0f * unit(rng) - 1.0f;
    inputs[spec.name] = decayc::DeviceTensor::of(dims, values, spec.dtype == "bf16");
  }
  return inputs;
}

double secondsOf(const std::function<void()> &work) {
  auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
} // namespace

int decayc::benchCommand(int argc, char **argv) {
  Arguments args;
  if (!parseArguments(argc, argv, 2,
                      {"entry", "shape", "device", "threads", "runs", "warmup", "chunk-size", "recurrence",
                       "dtype"},
                      {"json", "help"}, args))
    return 1;
  if (args.has("help")) {
    std::fputs(kBenchHelp, stdout);
    return 0;
  }
  if (args.positionals.size() != 1)
    return fail("expected exactly one SPEC or PKG (see decayc bench --help)");
  std::string entryName = args.get("entry").value_or("forward");
  if (entryName != "forward" && entryName != "backward" && entryName != "both" &&
      entryName != "step")
    return fail("--entry must be forward, backward, both or step, got '" + entryName + "'");
  if (args.get("device").value_or("cpu") != "cpu")
    return fail("--device " + *args.get("device") + " is not available: the only device is cpu");
  ProblemShape shape;
  std::string error, dtype;
  if (auto text = args.get("shape"); text && !parseShape(*text, shape, error))
    return fail(error);
  if (!readDtypeOption(args, dtype, error))
    return fail(error);
  auto positive = [&](const char *name, int64_t fallback, int64_t &out) {
    auto text = args.get(name);
    if (!text) {
      out = fallback;
      return true;
    }
    char *end = nullptr;
    long long value = std::strtoll(text->c_str(), &end, 10);
    if (text->empty() || *end != '\0' || value < 1) {
      error = std::string("--") + name + " must be a positive integer, got '" + *text + "'";
      return false;
    }
    out = value;
    return true;
  };
  int64_t threads, runs, warmup, chunkSize;
  if (!positive("threads", hardwareThreads(), threads) || !positive("runs", 7, runs) ||
      !positive("warmup", 2, warmup) || !positive("chunk-size", 64, chunkSize))
    return fail(error);
  if (!args.get("chunk-size"))
    chunkSize = 0;
  // The kernels' OpenMP runtime reads these when the package is loaded:
  // threads sleep between parallel regions instead of spinning (a spinning
  // vCPU was seen to stall the other for milliseconds on these machines).
  setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
  // Decoding calls the step back to back, microseconds apart: its threads
  // wait for the next step spinning (waking a sleeping thread costs hundreds
  // of microseconds on these machines, more than a step).
  bool decoding = entryName == "step";
  setenv("OMP_WAIT_POLICY", decoding ? "active" : "passive", 0);
  setenv("KMP_BLOCKTIME", decoding ? "200" : "0", 0);
  if (entryName == "step") {
    auto device = CpuDevice::open(args.positionals[0], args.get("recurrence").value_or(""),
                                  chunkSize, dtype);
    if (!device)
      return fail(llvm::toString(device.takeError()));
    if (!args.get("shape"))
      shape = ProblemShape{64, 1, 16, 128, 128}; // decoding 64 sequences
    StepBenchOptions options{threads, runs, warmup, args.has("json")};
    if (llvm::Error error = benchStep(**device, shape, options))
      return fail(llvm::toString(std::move(error)));
    return 0;
  }
  // The peak first, before any kernel thread exists.
  double peak = measurePeakGflops(threads);

  auto device = CpuDevice::open(args.positionals[0], args.get("recurrence").value_or(""), chunkSize, dtype);
  if (!device)
    return fail(llvm::toString(device.takeError()));
  bool forward = entryName != "backward", backward = entryName != "forward";
  auto forwardInputs = generateInputs(**device, Entry::Forward, shape);
  auto backwardInputs = generateInputs(**device, Entry::Backward, shape);
  auto forwardOutputs = (*device)->allocateOutputs(Entry::Forward, forwardInputs, nullptr);
  auto backwardOutputs = (*device)->allocateOutputs(Entry::Backward, backwardInputs, nullptr);
  llvm::Error runError = llvm::Error::success();
  auto once = [&] {
    if (forward && !runError)
      runError = (*device)->run(Entry::Forward, forwardInputs, nullptr, forwardOutputs);
    if (backward && !runError)
      runError = (*device)->run(Entry::Backward, backwardInputs, nullptr, backwardOutputs);
  };
  for (int64_t i = 0; i < warmup; ++i)
    once();
  std::vector<double> times;
  for (int64_t i = 0; i < runs && !runError; ++i)
    times.push_back(secondsOf(once));
  if (runError)
    return fail(llvm::toString(std::move(runError)));

  int64_t chunk = (*device)->chunkSize();
  double flops = forwardFlops(shape, chunk) * ((forward ? 1 : 0) + (backward ? 2 : 0));
  double seconds = median(times);
  double tokens = static_cast<double>(shape.B) * shape.T;
  double gflops = flops / seconds / 1e9;
  double baseline = forward && !backward ? measureRecurrenceBaseline(shape.B, shape.T, shape.H, shape.K,
                                                                     shape.V, threads, runs)
                                         : 0.0;
  std::printf("decayc bench: @%s %s, B=%lld T=%lld H=%lld K=%lld V=%lld, %lld threads, chunk %lld, %s\n",
              (*device)->spec().name.c_str(), entryName.c_str(), (long long)shape.B, (long long)shape.T,
              (long long)shape.H, (long long)shape.K, (long long)shape.V, (long long)threads,
              (long long)chunk, (*device)->spec().dtype.c_str());
  std::printf("  median %.4f s over %lld runs (min %.4f, max %.4f)\n", seconds, (long long)runs,
              *std::min_element(times.begin(), times.end()), *std::max_element(times.begin(), times.end()));
  std::printf("  %.3g tokens/s, %.1f GFLOP/s = %.1f%% of the measured fp32 peak (%.1f GFLOP/s)\n", tokens / seconds,
              gflops, 100.0 * gflops / peak, peak);
  if (baseline > 0)
    std::printf("  token-by-token recurrence (hand-vectorized): median %.4f s; the kernel is %.2fx faster\n",
                baseline, baseline / seconds);
  if (args.has("json")) {
    llvm::json::Object result{{"spec", (*device)->spec().name},
                              {"entry", entryName},
                              {"B", shape.B}, {"T", shape.T}, {"H", shape.H}, {"K", shape.K}, {"V", shape.V},
                              {"threads", threads},
                              {"chunk_size", chunk},
                              {"dtype", (*device)->spec().dtype},
                              {"median_s", seconds},
                              {"tokens_per_s", tokens / seconds},
                              {"gflops", gflops},
                              {"peak_gflops", peak},
                              {"fraction_of_peak", gflops / peak}};
    if (baseline > 0) {
      result["baseline_median_s"] = baseline;
      result["speedup_vs_baseline"] = baseline / seconds;
    }
    std::string text;
    llvm::raw_string_ostream os(text);
    os << llvm::json::Value(std::move(result));
    std::printf("%s\n", text.c_str());
  }
  return 0;
}
