// The kernel tests' shared machinery: a test problem of MATH.md section 6's matrix, its random inputs, and the fp32 acceptance check against the float64 reference.
#ifndef DECAY_TEST_UNIT_KERNELCASES_H
#define DECAY_TEST_UNIT_KERNELCASES_H

#include "TestTensors.h"

#include "decay/Runner/SpecProgram.h"

#include <gtest/gtest.h>

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace decay::test {

using Tensors = std::map<std::string, HostTensor>;

/// One problem of the matrix: sizes, initial states or not, varlen offsets, gate range.
struct Case {
  const char *label;
  int64_t B, T, H, K, V;
  bool withStates;
  std::vector<int64_t> cuSeqlens;
  double gateSpread = 2.0;
  bool normalInputs = false;
};

inline Tensors randomInputs(const SpecProgram &program, const Case &c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int64_t N = c.cuSeqlens.empty() ? c.B : static_cast<int64_t>(c.cuSeqlens.size()) - 1;
  Tensors tensors;
  for (const decay::TensorSpec &spec : program.inputsOf(SpecProgram::Entry::Forward)) {
    if (spec.optional && !c.withStates)
      continue;
    std::vector<int64_t> shape;
    for (char d : spec.dims)
      shape.push_back(d == 'B' ? c.B : d == 'T' ? c.T : d == 'H' ? c.H : d == 'K' ? c.K
                      : d == 'V' ? c.V : N);
    bool qkv = spec.name == "q" || spec.name == "k" || spec.name == "v";
    bool param = llvm::any_of(program.spec().params, [&](auto &p) { return p.first == spec.name; });
    bool state = spec.optional;
    auto [lo, hi] = param ? decay::test::modelParamRange(spec.name)
                    : state ? std::pair{-1.0, 1.0}
                            : std::pair{-c.gateSpread, c.gateSpread};
    tensors[spec.name] = qkv ? randomTensor(shape, 0.0, 1.0, rng, c.normalInputs)
                             : randomTensor(shape, lo, hi, rng);
  }
  return tensors;
}


/// MATH.md section 6: rel-rms below 1e-5 for fp32, or max-abs below 1e-6; never NaN.
/// Every tensor, the gradients of params (sums over every token of dg) included.
/// How close a kernel's tensor must be to the reference's: its relative RMS
/// error below `relRms`, unless its largest absolute error is at most `maxAbs`.
struct Tolerance {
  double relRms = 1e-5, maxAbs = 1e-6; ///< fp32 kernels (MATH.md section 6)
};

inline void expectMatches(const Tensors &expected, const Tensors &actual,
                          const Tolerance &tolerance = {}) {
  ASSERT_EQ(expected.size(), actual.size());
  for (auto &[name, reference] : expected) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(actual.count(name));
    const std::vector<double> &values = actual.at(name).data;
    ASSERT_EQ(values.size(), reference.data.size());
    double maxAbs = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_TRUE(std::isfinite(values[i])) << "element " << i;
      maxAbs = std::max(maxAbs, std::fabs(values[i] - reference.data[i]));
    }
    if (maxAbs > tolerance.maxAbs)
      EXPECT_LT(relativeRms(reference.data, values), tolerance.relRms) << "max abs error " << maxAbs;
  }
}

inline std::string readExample(const std::string &variant) {
  std::string path = std::string(DECAY_EXAMPLES_DIR) + "/" + variant + ".mlir";
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer) {
    ADD_FAILURE() << "cannot read " << path;
    return "";
  }
  return (*buffer)->getBuffer().str();
}

/// Random gradients of every forward output (do, dht, dnorm_ht, dscan_<name>_ht).
inline void addOutputGradients(const SpecProgram &program, const Case &c, Tensors &inputs, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int64_t N = c.cuSeqlens.empty() ? c.B : static_cast<int64_t>(c.cuSeqlens.size()) - 1;
  for (const decay::TensorSpec &spec : program.inputsOf(SpecProgram::Entry::Backward)) {
    if (inputs.count(spec.name) || (spec.optional && !c.withStates))
      continue;
    bool isGradient = spec.name == "do" || (spec.name.size() > 2 && spec.name[0] == 'd' &&
                                            spec.name.substr(spec.name.size() - 2) == "ht");
    if (!isGradient)
      continue;
    std::vector<int64_t> shape;
    for (char d : spec.dims)
      shape.push_back(d == 'B' ? c.B : d == 'T' ? c.T : d == 'H' ? c.H : d == 'K' ? c.K
                      : d == 'V' ? c.V : N);
    inputs[spec.name] = randomTensor(shape, -1.0, 1.0, rng);
  }
}

/// A spec compiled twice: the float64 reference and the chunked kernels.
struct Programs {
  std::unique_ptr<SpecProgram> reference, kernels;
};

/// The reference and the kernels (chunks of `chunkSize`, the step's state
/// stored in `stateDtype`, register tiles for `vectorBits`-wide vectors, 0:
/// this CPU's) of `source`; a test failure and null programs when either
/// does not compile.
inline Programs compileBoth(const std::string &source, const std::string &name, int64_t chunkSize,
                            const std::string &stateDtype = "", int64_t vectorBits = 0) {
  Programs programs;
  auto reference = SpecProgram::compile(source, name);
  decay::CompileOptions options;
  options.target = decay::Target::CpuKernels;
  options.chunkSize = chunkSize;
  options.stateDtype = stateDtype;
  options.vectorBits = vectorBits;
  auto kernels = SpecProgram::compile(source, name, options);
  if (!reference || !kernels) {
    ADD_FAILURE() << (reference ? "" : llvm::toString(reference.takeError()))
                  << (kernels ? "" : llvm::toString(kernels.takeError()));
    return programs;
  }
  programs.reference = std::move(*reference);
  programs.kernels = std::move(*kernels);
  return programs;
}

} // namespace decay::test

#endif
