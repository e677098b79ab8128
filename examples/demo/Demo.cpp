// decay-demo: compiles every example spec to the reference path and the chunked kernels, runs both, prints a table.
#include "decay/Runner/ParamRanges.h"
#include "decay/Runner/SpecProgram.h"

#include "llvm/Support/Path.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

using decay::HostTensor;

namespace {
constexpr int64_t kB = 2, kT = 256, kH = 4, kK = 64, kV = 64;

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Random inputs: q, k, v uniform in [0, 1); per-token gates uniform in
/// [-2, 2); params as the models initialize them (others in [-2, 2)).
std::map<std::string, HostTensor> randomInputs(const decay::SpecProgram &program, decay::Entry entry) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::map<std::string, HostTensor> inputs;
  for (const decay::TensorSpec &spec : program.inputsOf(entry)) {
    if (spec.optional)
      continue;
    HostTensor tensor;
    int64_t count = 1;
    for (char dim : spec.dims) {
      int64_t size = dim == 'B' ? kB : dim == 'T' ? kT : dim == 'H' ? kH : dim == 'K' ? kK : kV;
      tensor.shape.push_back(size);
      count *= size;
    }
    bool gate = spec.name != "q" && spec.name != "k" && spec.name != "v" && spec.name != "do";
    auto [lo, hi] = gate ? decay::modelParamRange(spec.name, {-2.0, 2.0}) : std::pair{0.0, 1.0};
    for (int64_t i = 0; i < count; ++i)
      tensor.data.push_back(lo + (hi - lo) * unit(rng));
    inputs[spec.name] = std::move(tensor);
  }
  return inputs;
}

/// The largest rel-rms error over the tensors of `actual` against `expected`,
/// with the name of the tensor that has it and that tensor's largest
/// absolute error (MATH.md section 6 passes a tensor whose rel-rms is below
/// the tolerance or whose max-abs error is at most 1e-6).
struct WorstError {
  double error = 0;
  std::string tensor = "-";
  double maxAbs = 0;
  bool passes(double tolerance) const { return error < tolerance || maxAbs <= 1e-6; }
};
WorstError worstRelativeRms(const std::map<std::string, HostTensor> &expected,
                            const std::map<std::string, HostTensor> &actual) {
  WorstError worst;
  for (auto &[name, reference] : expected) {
    auto found = actual.find(name);
    if (found == actual.end())
      return {NAN, name};
    double diff = 0, norm = 0, maxAbs = 0;
    for (size_t i = 0; i < reference.data.size(); ++i) {
      double d = reference.data[i] - found->second.data[i];
      diff += d * d;
      norm += reference.data[i] * reference.data[i];
      maxAbs = std::max(maxAbs, std::fabs(d));
    }
    double error = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
    if (!(error <= worst.error))
      worst = {error, name, maxAbs};
  }
  return worst;
}

std::string describeOptions(const decay::SpecSummary &spec) {
  std::string out = spec.featureMap == "identity" ? "" : "phi=" + spec.featureMap;
  auto add = [&](const std::string &item) { out += (out.empty() ? "" : ",") + item; };
  if (spec.derivedKey)
    add("derived-key");
  if (spec.normalizer)
    add("normalizer");
  if (spec.rope)
    add("rope");
  for (auto &scan : spec.scans)
    add("scan:" + scan.first);
  return out.empty() ? "-" : out;
}
} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: decay-demo SPEC.mlir...\n");
    return 2;
  }
  std::printf("decayc demo: every example spec compiled for this CPU twice: the float64 reference\n"
              "path and the chunked f32 kernels (forward and backward, one thread), with the\n"
              "kernels' largest relative rms error against the reference\n");
  std::printf("shape B=%lld T=%lld H=%lld K=%lld V=%lld, random inputs\n\n", (long long)kB,
              (long long)kT, (long long)kH, (long long)kK, (long long)kV);
  std::printf("%-14s %-16s %-18s %-26s %9s %9s %9s %-14s %-18s\n", "spec", "granularity",
              "inputs/params", "options", "ref ms", "chunk ms", "tokens/s", "fwd error (worst)", "bwd error (worst)");
  int failures = 0;
  for (int i = 1; i < argc; ++i) {
    std::string name = llvm::sys::path::stem(argv[i]).str();
    auto fail = [&](llvm::Error error) {
      std::printf("%-14s FAILED: %s\n", name.c_str(), llvm::toString(std::move(error)).c_str());
      ++failures;
    };
    decay::CompileOptions kernelOptions;
    kernelOptions.target = decay::Target::CpuKernels;
    auto reference = decay::SpecProgram::compileFile(argv[i]);
    if (!reference) {
      fail(reference.takeError());
      continue;
    }
    auto kernels = decay::SpecProgram::compileFile(argv[i], kernelOptions);
    if (!kernels) {
      fail(kernels.takeError());
      continue;
    }
    const decay::SpecSummary &spec = (*reference)->spec();
    std::string declared;
    for (auto &entry : spec.inputs)
      declared += (declared.empty() ? "" : ",") + entry.first;
    for (auto &entry : spec.params)
      declared += (declared.empty() ? "" : ",") + entry.first;
    auto inputs = randomInputs(**reference, decay::Entry::Backward);
    std::map<std::string, HostTensor> expected, actual, expectedGradients, actualGradients;
    // Runs `program`'s `entry` on the inputs, timing it into `seconds` when
    // given; on an error, reports it and returns false.
    auto run = [&](decay::SpecProgram &program, decay::Entry entry,
                   std::map<std::string, HostTensor> &outputs, double *seconds = nullptr) {
      auto start = std::chrono::steady_clock::now();
      if (llvm::Error error = program.run(entry, inputs, nullptr, outputs)) {
        fail(std::move(error));
        return false;
      }
      if (seconds)
        *seconds = secondsSince(start);
      return true;
    };
    double referenceSeconds = 0, kernelSeconds = 0;
    // A first run each (the JIT materializes a function when it is first
    // called), then the timed ones, then the backward.
    if (!run(**reference, decay::Entry::Forward, expected) ||
        !run(**kernels, decay::Entry::Forward, actual) ||
        !run(**reference, decay::Entry::Forward, expected, &referenceSeconds) ||
        !run(**kernels, decay::Entry::Forward, actual, &kernelSeconds) ||
        !run(**reference, decay::Entry::Backward, expectedGradients) ||
        !run(**kernels, decay::Entry::Backward, actualGradients))
      continue;
    WorstError forward = worstRelativeRms(expected, actual);
    WorstError backward = worstRelativeRms(expectedGradients, actualGradients);
    bool ok = std::isfinite(forward.error) && std::isfinite(backward.error);
    failures += !ok;
    // MATH.md's fp32 bar: rel-rms below 1e-5, or max-abs at most 1e-6.
    const char *verdict = !ok ? "  NOT FINITE"
                          : forward.passes(1e-5) && backward.passes(1e-5)
                              ? ""
                              : "  above 1e-5 (max abs > 1e-6)";
    std::printf("%-14s %-16s %-18s %-26s %9.1f %9.1f %9.0f %9.2e %-4s %9.2e %-8s%s\n", name.c_str(),
                spec.granularity.c_str(), declared.empty() ? "-" : declared.c_str(),
                describeOptions(spec).c_str(), referenceSeconds * 1e3, kernelSeconds * 1e3,
                kB * kT / kernelSeconds, forward.error, forward.tensor.c_str(), backward.error,
                backward.tensor.c_str(), verdict);
  }
  std::printf("\n%d of %d specs ran%s\n", argc - 1 - failures, argc - 1,
              failures ? " (see the failures above)" : "");
  return failures ? 1 : 0;
}
