// The chunked f32 CPU kernels of every example spec against the float64 reference, over MATH.md section 6's matrix.
#include "KernelCases.h"
#include "Oracle.h"

#include "decay/Runner/SpecProgram.h"

#include <gtest/gtest.h>

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <random>
#include <set>
#include <tuple>

using decay::HostTensor;
using decay::SpecProgram;
using Entry = SpecProgram::Entry;
using Tensors = std::map<std::string, HostTensor>;

using decay::test::addOutputGradients;
using decay::test::compileBoth;
using decay::test::Programs;
using decay::test::Case;
using decay::test::expectMatches;
using decay::test::randomInputs;
using decay::test::randomTensor;
using decay::test::readExample;
using decay::test::relativeRms;

namespace {

const Case kCases[] = {
    {"T1", 1, 1, 2, 16, 16, true, {}},
    {"T63_odd_dims", 2, 63, 2, 5, 7, true, {}},
    {"T64", 1, 64, 2, 16, 12, false, {}},
    {"T65_normal_inputs", 1, 65, 1, 16, 16, true, {}, 2.0, true},
    {"T1000", 1, 1000, 1, 16, 16, false, {}},
    {"K60_V100", 1, 70, 1, 60, 100, true, {}},
    {"K64_V64", 1, 65, 1, 64, 64, true, {}},
    {"varlen_with_empty_sequence", 1, 150, 2, 8, 8, true, {0, 40, 40, 117, 150}},
    {"strong_decay", 2, 100, 2, 8, 8, true, {}, 10.0},
    {"T256_H4_K64", 2, 256, 4, 64, 64, true, {}},
    // Enough (sequence, head) pairs for the forward's items to take groups
    // of heads: 21 pairs -> 2 heads per item (the last group has one), 36
    // pairs -> 4 heads per item (4, 4, 1); varlen groups heads per sequence.
    {"B3_H7_two_heads_per_item", 3, 70, 7, 8, 12, true, {}},
    {"B4_H9_four_heads_per_item", 4, 33, 9, 8, 8, true, {}},
    {"varlen_H9_grouped_heads", 1, 130, 9, 8, 8, true, {0, 64, 64, 100, 130}},
};


void checkForward(const Programs &programs, const Case &c, uint64_t seed) {
  Tensors inputs = randomInputs(*programs.reference, c, seed);
  const std::vector<int64_t> *cu = c.cuSeqlens.empty() ? nullptr : &c.cuSeqlens;
  Tensors expected, actual;
  llvm::Error error = programs.reference->run(Entry::Forward, inputs, cu, expected);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  error = programs.kernels->run(Entry::Forward, inputs, cu, actual);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  expectMatches(expected, actual);
}

void checkBackward(const Programs &programs, const Case &c, uint64_t seed) {
  Tensors inputs = randomInputs(*programs.reference, c, seed);
  addOutputGradients(*programs.reference, c, inputs, seed + 1000);
  const std::vector<int64_t> *cu = c.cuSeqlens.empty() ? nullptr : &c.cuSeqlens;
  Tensors expected, actual;
  llvm::Error error = programs.reference->run(Entry::Backward, inputs, cu, expected);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  error = programs.kernels->run(Entry::Backward, inputs, cu, actual);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  expectMatches(expected, actual);
}

/// An example spec and the vector width its kernels' register tiles are
/// sized for: 512 (AVX-512) and 256 (AVX2) are both checked on every
/// machine (on one without AVX-512, LLVM splits the 512-bit vectors).
using VariantAndWidth = std::tuple<std::string, int64_t>;

std::string variantAndWidthName(const ::testing::TestParamInfo<VariantAndWidth> &info) {
  return std::get<0>(info.param) + "_" + std::to_string(std::get<1>(info.param)) + "bit";
}

auto variantsAndWidths() {
  return ::testing::Combine(::testing::ValuesIn(decay::oracle::variants()),
                            ::testing::Values(int64_t{512}, int64_t{256}));
}

/// The variant's reference and kernels (chunks of 16) for the parameter's width.
Programs compileVariant(const VariantAndWidth &param) {
  const auto &[variant, vectorBits] = param;
  return compileBoth(readExample(variant), variant, /*chunkSize=*/16, /*stateDtype=*/"", vectorBits);
}

class ChunkedForward : public ::testing::TestWithParam<VariantAndWidth> {};

TEST_P(ChunkedForward, MatchesReferenceOverTheTestMatrix) {
  Programs programs = compileVariant(GetParam());
  ASSERT_TRUE(programs.kernels);
  uint64_t seed = 3;
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.label);
    checkForward(programs, c, seed++);
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, ChunkedForward, variantsAndWidths(), variantAndWidthName);

class ChunkedBackward : public ::testing::TestWithParam<VariantAndWidth> {};

TEST_P(ChunkedBackward, MatchesReferenceGradients) {
  Programs programs = compileVariant(GetParam());
  ASSERT_TRUE(programs.kernels);
  uint64_t seed = 50;
  for (const Case &c : kCases) {
    if (c.T > 200)
      continue; // the float64 reference backward keeps every token's state: stay small
    SCOPED_TRACE(c.label);
    checkBackward(programs, c, seed++);
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, ChunkedBackward, variantsAndWidths(), variantAndWidthName);

TEST(ChunkedForwardOptions, ChunkSizesFeatureMapsRopeAndScale) {
  const char *source = R"(
decay.recurrence @opt vector inputs(%gk : [B, T, H, K])
    attributes {feature_map = "silu", rope_theta = 500.0, scale = 0.3} {
  %g = decay.logsigmoid %gk : f32
  decay.yield %g : f32
})";
  for (int64_t chunkSize : {16, 32, 64, 128}) {
    SCOPED_TRACE("chunk size " + std::to_string(chunkSize));
    Programs programs = compileBoth(source, "opt", chunkSize);
    ASSERT_TRUE(programs.kernels);
    checkForward(programs, {"T200", 2, 200, 2, 16, 8, true, {}}, 77);
  }
}

} // namespace

namespace {
/// Every value of every output is finite.
void expectFinite(const Tensors &outputs) {
  for (auto &[name, tensor] : outputs)
    for (size_t i = 0; i < tensor.data.size(); ++i)
      ASSERT_TRUE(std::isfinite(tensor.data[i])) << name << "[" << i << "]";
}
} // namespace

// MATH.md's exponent safety rule, at the length where a cumulative decay
// would underflow or overflow: T = 65536 tokens with per-step log-decay from
// -20 to exactly 0, forward and backward stay finite.
TEST(ChunkedKernels, LongSequencesWithExtremeDecayStayFinite) {
  const char *source = R"(
decay.recurrence @raw vector inputs(%g : [B, T, H, K]) {
  decay.yield %g : f32
})";
  decay::CompileOptions options;
  options.target = decay::Target::CpuKernels;
  auto program = SpecProgram::compile(source, "raw", options);
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
  const int64_t T = 65536, H = 2, K = 16, V = 16;
  std::mt19937_64 rng(5);
  Tensors inputs;
  inputs["q"] = randomTensor({1, T, H, K}, 0.0, 1.0, rng);
  inputs["k"] = randomTensor({1, T, H, K}, 0.0, 1.0, rng);
  inputs["v"] = randomTensor({1, T, H, V}, 0.0, 1.0, rng);
  // Head 0: log-decay uniform in [-20, 0]; head 1: exactly 0 (no decay).
  HostTensor g = randomTensor({1, T, H, K}, -20.0, 0.0, rng);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < K; ++c)
      g.data[(t * H + 1) * K + c] = 0.0;
  inputs["g"] = g;
  Tensors outputs;
  llvm::Error error = (*program)->run(Entry::Forward, inputs, nullptr, outputs);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  expectFinite(outputs);
  inputs["do"] = randomTensor({1, T, H, V}, -1.0, 1.0, rng);
  Tensors gradients;
  error = (*program)->run(Entry::Backward, inputs, nullptr, gradients);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  expectFinite(gradients);
}
