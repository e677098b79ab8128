// The GPU kernels of every example spec, run under SIMT emulation (decayrt_run_simt), against the float64 reference; and a deliberately racy kernel the emulator catches.
#include "KernelCases.h"
#include "Oracle.h"
#include "SimtPackage.h"
#include "TempDir.h"

#include "decay/Codegen/CPU/CpuPackage.h"
#include "decay/Support/Bfloat16.h"
#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>

using decay::HostTensor;
using decay::SpecProgram;
using decay::test::Case;
using decay::test::compileSimt;
using decay::test::SimtPackage;
using decay::test::Tensors;
using Entry = SpecProgram::Entry;

namespace {

/// Problems that cover several blocks, several chunks of 32 tokens, a partial
/// last chunk, odd T, varlen with an empty sequence, strong decay and both
/// value tiles of K = V = 128, yet stay small enough for the emulator.
const Case kSimtCases[] = {
    {"T1", 1, 1, 1, 64, 64, false, {}},
    {"T65_B2_H2", 2, 65, 2, 64, 64, true, {}},
    {"varlen_with_empty_sequence", 1, 97, 2, 64, 64, true, {0, 40, 40, 97}},
    {"strong_decay", 1, 50, 1, 64, 64, true, {}, 10.0},
    {"K128_V128", 1, 37, 1, 128, 128, true, {}},
};

/// Float tensors as decayrt takes them by name: f32 buffers, or bfloat16
/// bits for the names in `bf16`.
struct RuntimeTensors {
  std::set<std::string> bf16;
  std::map<std::string, std::vector<float>> values;
  std::map<std::string, std::vector<uint16_t>> bits;
  std::map<std::string, std::vector<int64_t>> shapes;
  std::vector<decayrt_tensor> list;

  void add(const std::string &name, const HostTensor &tensor) {
    if (bf16.count(name))
      for (double value : tensor.data)
        bits[name].push_back(decay::toBfloat16(static_cast<float>(value)));
    else
      values[name].assign(tensor.data.begin(), tensor.data.end());
    shapes[name] = tensor.shape;
  }
  /// The decayrt tensors (valid while this object is unchanged).
  const std::vector<decayrt_tensor> &bind(const std::vector<int64_t> *cuSeqlens, int64_t &count) {
    list.clear();
    for (auto &[name, shape] : shapes) {
      bool isBf16 = bf16.count(name) != 0;
      void *data = isBf16 ? static_cast<void *>(bits[name].data()) : values[name].data();
      list.push_back({name.c_str(), data, isBf16 ? DECAYRT_BF16 : DECAYRT_F32,
                      static_cast<int32_t>(shape.size()), shape.data(), nullptr});
    }
    if (cuSeqlens) {
      count = static_cast<int64_t>(cuSeqlens->size());
      list.push_back({"cu_seqlens", const_cast<int64_t *>(cuSeqlens->data()), DECAYRT_I64, 1,
                      &count, nullptr});
    }
    return list;
  }
  /// A tensor's values as float64.
  std::vector<double> read(const std::string &name) {
    std::vector<double> out;
    if (bf16.count(name))
      for (uint16_t value : bits[name])
        out.push_back(decay::fromBfloat16(value));
    else
      out.assign(values[name].begin(), values[name].end());
    return out;
  }
};

/// Runs `entry` of the package under emulation; the outputs take the names
/// and shapes of the reference's.
decayrt_status runSimt(decayrt_package *package, Entry entry, const Tensors &inputs,
                       const Tensors &expected, const std::vector<int64_t> *cuSeqlens,
                       Tensors &actual, const std::set<std::string> &bf16 = {}) {
  RuntimeTensors tensors;
  tensors.bf16 = bf16;
  for (auto &[name, tensor] : inputs)
    tensors.add(name, tensor);
  for (auto &[name, tensor] : expected)
    tensors.add(name, HostTensor{tensor.shape, std::vector<double>(tensor.data.size(), 0.0)});
  int64_t count = 0;
  const std::vector<decayrt_tensor> &list = tensors.bind(cuSeqlens, count);
  decayrt_status status = decayrt_run_simt(
      package, entry == Entry::Forward ? "forward" : "backward", list.data(), list.size(), nullptr);
  for (auto &[name, tensor] : expected)
    actual[name] = HostTensor{tensor.shape, tensors.read(name)};
  return status;
}

void checkEntry(const SpecProgram &reference, decayrt_package *package, Entry entry, const Case &c,
                uint64_t seed) {
  Tensors inputs = decay::test::randomInputs(reference, c, seed);
  if (entry == Entry::Backward)
    decay::test::addOutputGradients(reference, c, inputs, seed + 1000);
  const std::vector<int64_t> *cu = c.cuSeqlens.empty() ? nullptr : &c.cuSeqlens;
  Tensors expected, actual;
  llvm::Error error = reference.run(entry, inputs, cu, expected);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  ASSERT_EQ(runSimt(package, entry, inputs, expected, cu, actual), DECAYRT_OK)
      << decayrt_last_error();
  decay::test::expectMatches(expected, actual);
}

class SimtKernels : public ::testing::TestWithParam<std::string> {};

TEST_P(SimtKernels, ForwardAndBackwardMatchTheReference) {
  auto reference = SpecProgram::compile(decay::test::readExample(GetParam()), GetParam());
  ASSERT_TRUE(bool(reference)) << llvm::toString(reference.takeError());
  std::unique_ptr<SimtPackage> package = compileSimt(GetParam());
  ASSERT_TRUE(package);
  uint64_t seed = 11;
  for (const Case &c : kSimtCases) {
    SCOPED_TRACE(c.label);
    {
      SCOPED_TRACE("forward");
      checkEntry(**reference, package->package, Entry::Forward, c, seed++);
    }
    {
      SCOPED_TRACE("backward");
      checkEntry(**reference, package->package, Entry::Backward, c, seed++);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Emulated, SimtKernels, ::testing::ValuesIn(decay::oracle::variants()),
                         [](const auto &info) { return info.param; });

// bf16 storage of the per-token tensors (dtype bf16): the kernels widen
// them to f32; against the reference on the same bf16 values, MATH.md's bf16
// tolerance (rel-rms below 5e-3), a scalar and a vector decay.
class SimtBf16Kernels : public ::testing::TestWithParam<std::string> {};

TEST_P(SimtBf16Kernels, MatchTheReferenceOnTheSameBf16Inputs) {
  std::string source = decay::test::readExample(GetParam());
  auto reference = SpecProgram::compile(source, GetParam());
  ASSERT_TRUE(bool(reference)) << llvm::toString(reference.takeError());
  decay::CompileOptions options;
  options.target = decay::Target::CpuKernels;
  options.dtype = "bf16";
  auto bf16Program = SpecProgram::compile(source, GetParam(), options); // for its tensors' dtypes
  ASSERT_TRUE(bool(bf16Program)) << llvm::toString(bf16Program.takeError());
  std::set<std::string> bf16;
  for (Entry entry : {Entry::Forward, Entry::Backward})
    for (const auto &specs : {(*bf16Program)->inputsOf(entry), (*bf16Program)->outputsOf(entry)})
      for (const decay::TensorSpec &spec : specs)
        if (spec.dtype == "bf16")
          bf16.insert(spec.name);
  ASSERT_FALSE(bf16.empty());
  std::unique_ptr<SimtPackage> package = compileSimt(GetParam(), -1, "bf16");
  ASSERT_TRUE(package);
  uint64_t seed = 41;
  for (const Case &c : {kSimtCases[1], kSimtCases[4]}) {
    SCOPED_TRACE(c.label);
    for (Entry entry : {Entry::Forward, Entry::Backward}) {
      SCOPED_TRACE(entry == Entry::Forward ? "forward" : "backward");
      Tensors inputs = decay::test::randomInputs(**reference, c, seed++);
      if (entry == Entry::Backward)
        decay::test::addOutputGradients(**reference, c, inputs, seed++);
      for (auto &[name, tensor] : inputs)
        if (bf16.count(name))
          for (double &value : tensor.data)
            value = decay::roundToBfloat16(value);
      Tensors expected, actual;
      llvm::Error error = (*reference)->run(entry, inputs, nullptr, expected);
      ASSERT_FALSE(error) << llvm::toString(std::move(error));
      ASSERT_EQ(runSimt(package->package, entry, inputs, expected, nullptr, actual, bf16),
                DECAYRT_OK)
          << decayrt_last_error();
      for (auto &[name, tensor] : expected) {
        SCOPED_TRACE(name);
        for (double value : actual[name].data)
          ASSERT_TRUE(std::isfinite(value));
        EXPECT_LT(decay::test::relativeRms(tensor.data, actual[name].data), 5e-3);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Emulated, SimtBf16Kernels, ::testing::Values("mamba2", "gla"),
                         [](const auto &info) { return info.param; });

// The chunk kernel without the barrier between staging a chunk's rows
// (cp.async by every thread) and reading them: the emulator reports the
// race, and the same kernel with its barrier runs clean.
TEST(SimtKernels, TheRaceDetectorCatchesAMissingBarrier) {
  auto reference = SpecProgram::compile(decay::test::readExample("gla"), "gla");
  ASSERT_TRUE(bool(reference)) << llvm::toString(reference.takeError());
  std::unique_ptr<SimtPackage> broken = compileSimt("gla", /*omitBarrier=*/1);
  ASSERT_TRUE(broken);
  const Case &c = kSimtCases[1];
  Tensors inputs = decay::test::randomInputs(**reference, c, 7);
  Tensors expected, actual;
  llvm::Error error = (*reference)->run(Entry::Forward, inputs, nullptr, expected);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  EXPECT_EQ(runSimt(broken->package, Entry::Forward, inputs, expected, nullptr, actual),
            DECAYRT_ERROR_SIMT_RACE);
  EXPECT_NE(std::string(decayrt_last_error()).find("gla_forward_chunks"), std::string::npos)
      << decayrt_last_error();
  EXPECT_NE(std::string(decayrt_last_error()).find("data race in shared memory"), std::string::npos)
      << decayrt_last_error();
  // A failed call leaves the caller's outputs as they were (here zeros).
  for (auto &[name, tensor] : actual)
    for (double value : tensor.data)
      ASSERT_EQ(value, 0.0) << name;
  // With races ignored the same kernel runs to the end (its numbers are not checked).
  RuntimeTensors tensors;
  for (auto &[name, tensor] : inputs)
    tensors.add(name, tensor);
  for (auto &[name, tensor] : expected)
    tensors.add(name, HostTensor{tensor.shape, std::vector<double>(tensor.data.size(), 0.0)});
  int64_t count = 0;
  const std::vector<decayrt_tensor> &list = tensors.bind(nullptr, count);
  decayrt_simt_options options{};
  options.ignore_races = 1;
  options.workers = 1;
  EXPECT_EQ(decayrt_run_simt(broken->package, "forward", list.data(), list.size(), &options),
            DECAYRT_OK)
      << decayrt_last_error();
}

// The C API's argument checks, before anything runs.
TEST(SimtKernels, BadCallsAreRejected) {
  std::unique_ptr<SimtPackage> package = compileSimt("retnet");
  ASSERT_TRUE(package);
  EXPECT_EQ(decayrt_run_simt(nullptr, "forward", nullptr, 0, nullptr),
            DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(decayrt_last_error(), "decayrt_run_simt: package is NULL");
  EXPECT_EQ(decayrt_run_simt(package->package, "sideways", nullptr, 0, nullptr),
            DECAYRT_ERROR_INVALID_ARGUMENT);
  // The step module exists: a call without tensors misses q.
  EXPECT_EQ(decayrt_run_simt(package->package, "step", nullptr, 0, nullptr),
            DECAYRT_ERROR_MISSING_TENSOR);
  EXPECT_EQ(decayrt_run_simt(package->package, "forward", nullptr, 3, nullptr),
            DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(decayrt_run_simt(package->package, "forward", nullptr, 0, nullptr),
            DECAYRT_ERROR_MISSING_TENSOR);
  // K = V = 32: no module.
  auto reference = SpecProgram::compile(decay::test::readExample("retnet"), "retnet");
  ASSERT_TRUE(bool(reference)) << llvm::toString(reference.takeError());
  Case small{"K32", 1, 5, 1, 32, 32, false, {}};
  Tensors inputs = decay::test::randomInputs(**reference, small, 3), expected, actual;
  ASSERT_FALSE(bool((*reference)->run(Entry::Forward, inputs, nullptr, expected)));
  EXPECT_EQ(runSimt(package->package, Entry::Forward, inputs, expected, nullptr, actual),
            DECAYRT_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(decayrt_last_error()).find("compiled for (K, V) = (64, 64), (128, 128)"),
            std::string::npos)
      << decayrt_last_error();
}

} // namespace
