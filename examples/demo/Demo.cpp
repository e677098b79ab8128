// decay-demo: compiles every example spec given on the command line, runs it on random inputs, prints a table.
#include "decay/Runner/SpecProgram.h"

#include "llvm/Support/Path.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

using decay::HostTensor;

namespace {
constexpr int64_t kB = 2, kT = 512, kH = 4, kK = 64, kV = 64;

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The range of a param as the models initialize it (MATH.md section 5):
/// TNL's log_decay is negative, D2D's ps starts at 0, simple_decay's delta at
/// log(0.99/0.01); other params uniform in [-2, 2).
std::pair<double, double> paramRange(const std::string &name) {
  if (name == "log_decay")
    return {-1.0, -0.01};
  if (name == "ps")
    return {0.0, 0.1};
  if (name == "delta")
    return {4.0, 5.0};
  return {-2.0, 2.0};
}

/// Random inputs: q, k, v uniform in [0, 1); per-token gates uniform in
/// [-2, 2); params in their paramRange.
std::map<std::string, HostTensor> randomInputs(const decay::SpecProgram &program) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::map<std::string, HostTensor> inputs;
  for (const decay::TensorSpec &spec : program.inputsOf(decay::SpecProgram::Entry::Forward)) {
    if (spec.optional)
      continue;
    HostTensor tensor;
    int64_t count = 1;
    for (char dim : spec.dims) {
      int64_t size = dim == 'B' ? kB : dim == 'T' ? kT : dim == 'H' ? kH : dim == 'K' ? kK : kV;
      tensor.shape.push_back(size);
      count *= size;
    }
    bool gate = spec.name != "q" && spec.name != "k" && spec.name != "v";
    auto [lo, hi] = gate ? paramRange(spec.name) : std::pair{0.0, 1.0};
    for (int64_t i = 0; i < count; ++i)
      tensor.data.push_back(lo + (hi - lo) * unit(rng));
    inputs[spec.name] = std::move(tensor);
  }
  return inputs;
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
  std::printf("decayc demo: the float64 reference path of each example spec, compiled for this CPU\n");
  std::printf("shape B=%lld T=%lld H=%lld K=%lld V=%lld, random inputs\n\n", (long long)kB,
              (long long)kT, (long long)kH, (long long)kK, (long long)kV);
  std::printf("%-14s %-16s %-26s %-28s %10s %9s %12s %10s\n", "spec", "granularity",
              "inputs/params", "options", "compile ms", "run ms", "tokens/s", "rms(o)");
  int failures = 0;
  for (int i = 1; i < argc; ++i) {
    std::string name = llvm::sys::path::stem(argv[i]).str();
    auto start = std::chrono::steady_clock::now();
    auto program = decay::SpecProgram::compileFile(argv[i]);
    if (!program) {
      std::printf("%-14s FAILED: %s\n", name.c_str(), llvm::toString(program.takeError()).c_str());
      ++failures;
      continue;
    }
    double compileSeconds = secondsSince(start);
    const decay::SpecSummary &spec = (*program)->spec();
    std::string declared;
    for (auto &entry : spec.inputs)
      declared += (declared.empty() ? "" : ",") + entry.first;
    for (auto &entry : spec.params)
      declared += (declared.empty() ? "" : ",") + entry.first;
    auto inputs = randomInputs(**program);
    std::map<std::string, HostTensor> outputs;
    start = std::chrono::steady_clock::now();
    if (llvm::Error error = (*program)->run(decay::SpecProgram::Entry::Forward, inputs, nullptr, outputs)) {
      std::printf("%-14s FAILED: %s\n", name.c_str(), llvm::toString(std::move(error)).c_str());
      ++failures;
      continue;
    }
    double runSeconds = secondsSince(start);
    double sum = 0;
    bool finite = true;
    for (double value : outputs["o"].data) {
      sum += value * value;
      finite &= std::isfinite(value);
    }
    failures += !finite;
    std::printf("%-14s %-16s %-26s %-28s %10.1f %9.1f %12.0f %10.4g%s\n", name.c_str(),
                spec.granularity.c_str(), declared.empty() ? "-" : declared.c_str(),
                describeOptions(spec).c_str(), compileSeconds * 1e3, runSeconds * 1e3,
                kB * kT / runSeconds, std::sqrt(sum / outputs["o"].data.size()),
                finite ? "" : "  NOT FINITE");
  }
  std::printf("\n%d of %d specs ran%s\n", argc - 1 - failures, argc - 1,
              failures ? " (see the failures above)" : "");
  return failures ? 1 : 0;
}
