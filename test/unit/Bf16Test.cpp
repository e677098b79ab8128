// The chunked kernels with bf16 inputs (dtype bf16) against the float64 reference on the same bf16 values; decayrt's bf16 ABI.
#include "TestTensors.h"

#include "decay/Runner/SpecProgram.h"
#include "decay/Support/Bfloat16.h"

#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

using decay::HostTensor;
using decay::SpecProgram;
using decay::test::randomTensor;
using decay::test::relativeRms;
using Entry = SpecProgram::Entry;
using Tensors = std::map<std::string, HostTensor>;

namespace {

/// MATH.md section 6: bf16 inputs with f32 arithmetic.
constexpr double kBf16Tolerance = 5e-3;

/// The names of the example specs (examples/specs/*.mlir), sorted.
std::vector<std::string> exampleSpecs() {
  std::vector<std::string> names;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(DECAY_EXAMPLES_DIR, ec), end; it != end && !ec;
       it.increment(ec))
    if (llvm::sys::path::extension(it->path()) == ".mlir")
      names.push_back(llvm::sys::path::stem(it->path()).str());
  llvm::sort(names);
  return names;
}

std::string readExample(const std::string &name) {
  auto buffer = llvm::MemoryBuffer::getFile(std::string(DECAY_EXAMPLES_DIR) + "/" + name + ".mlir");
  if (!buffer) {
    ADD_FAILURE() << "cannot read example " << name;
    return "";
  }
  return (*buffer)->getBuffer().str();
}

/// One problem of the test matrix.
struct Case {
  const char *label;
  int64_t B, T, H, K, V;
  bool withStates;               ///< h0 and the other initial states (and dht...) given
  std::vector<int64_t> cuSeqlens;
  double gateSpread = 2.0;       ///< gates uniform in [-spread, spread]
  bool normalInputs = false;     ///< q, k, v standard normal instead of uniform [0, 1)

  decay::test::ProblemSizes sizes() const {
    int64_t N = cuSeqlens.empty() ? B : static_cast<int64_t>(cuSeqlens.size()) - 1;
    return {B, T, H, K, V, N};
  }
};

const Case kCases[] = {
    {"T1", 1, 1, 2, 16, 16, true, {}},
    {"T65_normal_inputs", 1, 65, 2, 16, 12, false, {}, 2.0, true},
    {"varlen_with_empty_sequence", 1, 90, 2, 8, 8, true, {0, 30, 30, 90}},
    {"strong_decay", 2, 65, 2, 16, 16, true, {}, 10.0},
};

/// Random values of input `spec` of `summary`'s recurrence: q, k, v in
/// [0, 1) (or normal), params in their models' range, gates in [-spread,
/// spread], initial states and output gradients in [-1, 1).
HostTensor randomValues(const decay::SpecSummary &summary, const decay::TensorSpec &spec,
                        const Case &c, std::mt19937_64 &rng) {
  std::vector<int64_t> shape = c.sizes().shapeOf(spec.dims);
  auto declares = [&](const std::vector<std::pair<std::string, std::string>> &list) {
    return llvm::any_of(list, [&](auto &entry) { return entry.first == spec.name; });
  };
  if (spec.name == "q" || spec.name == "k" || spec.name == "v")
    return randomTensor(shape, 0.0, 1.0, rng, c.normalInputs);
  auto [lo, hi] = declares(summary.params)   ? decay::test::modelParamRange(spec.name)
                  : declares(summary.inputs) ? std::pair{-c.gateSpread, c.gateSpread}
                                             : std::pair{-1.0, 1.0};
  return randomTensor(shape, lo, hi, rng);
}

/// The program's input tensors of the backward (a superset of the forward's)
/// at random, every tensor the kernels store in bf16 rounded to bf16, so the
/// reference sees exactly what the kernels read.
Tensors randomInputs(const SpecProgram &kernels, const Case &c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Tensors tensors;
  for (const decay::TensorSpec &spec : kernels.inputsOf(Entry::Backward)) {
    if (spec.optional && !c.withStates)
      continue;
    HostTensor tensor = randomValues(kernels.spec(), spec, c, rng);
    if (spec.dtype == "bf16")
      for (double &value : tensor.data)
        value = decay::roundToBfloat16(value);
    tensors[spec.name] = std::move(tensor);
  }
  return tensors;
}

/// Whether every value is a bf16 value (a float whose low 16 bits are zero).
bool allBf16(const std::vector<double> &values) {
  return llvm::all_of(values, [](double x) { return decay::roundToBfloat16(x) == x; });
}

/// The worst rel-rms over `actual`'s outputs (outputs within 1e-6 count as 0),
/// after checking that each is finite, within the bf16 tolerance, and stored
/// as bf16 values when the kernels store it in bf16.
double expectWithinBf16Tolerance(const SpecProgram &kernels, Entry entry, const Tensors &expected,
                                 const Tensors &actual) {
  double worst = 0;
  for (const decay::TensorSpec &spec : kernels.outputsOf(entry)) {
    SCOPED_TRACE(spec.name);
    if (!actual.count(spec.name) || !expected.count(spec.name)) {
      ADD_FAILURE() << "missing output";
      continue;
    }
    const std::vector<double> &values = actual.at(spec.name).data, &reference = expected.at(spec.name).data;
    double maxAbs = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      EXPECT_TRUE(std::isfinite(values[i])) << "element " << i;
      maxAbs = std::max(maxAbs, std::fabs(values[i] - reference[i]));
    }
    if (spec.dtype == "bf16")
      EXPECT_TRUE(allBf16(values)) << "a bf16 output holds values that are not bf16";
    if (maxAbs <= 1e-6)
      continue;
    double error = relativeRms(reference, values);
    EXPECT_LT(error, kBf16Tolerance) << "max abs error " << maxAbs;
    worst = std::max(worst, error);
  }
  return worst;
}

struct Programs {
  std::unique_ptr<SpecProgram> reference, kernels;
};

std::unique_ptr<SpecProgram> compileKernels(const std::string &source, const std::string &name,
                                            const std::string &dtype) {
  decay::CompileOptions options;
  options.target = decay::Target::CpuKernels;
  options.chunkSize = 16;
  options.dtype = dtype;
  auto program = SpecProgram::compile(source, name, options);
  if (!program) {
    ADD_FAILURE() << llvm::toString(program.takeError());
    return nullptr;
  }
  return std::move(*program);
}

Programs compileBf16(const std::string &source, const std::string &name) {
  Programs programs;
  auto reference = SpecProgram::compile(source, name);
  if (!reference) {
    ADD_FAILURE() << llvm::toString(reference.takeError());
    return programs;
  }
  programs.reference = std::move(*reference);
  programs.kernels = compileKernels(source, name, "bf16");
  return programs;
}

/// Runs `entry` on both programs; returns the worst rel-rms of the kernels.
double checkEntry(const Programs &programs, Entry entry, const Tensors &inputs, const Case &c) {
  const std::vector<int64_t> *cu = c.cuSeqlens.empty() ? nullptr : &c.cuSeqlens;
  Tensors expected, actual;
  llvm::Error error = programs.reference->run(entry, inputs, cu, expected);
  EXPECT_FALSE(error) << llvm::toString(std::move(error));
  error = programs.kernels->run(entry, inputs, cu, actual);
  EXPECT_FALSE(error) << llvm::toString(std::move(error));
  return expectWithinBf16Tolerance(*programs.kernels, entry, expected, actual);
}

/// The kernels of `source` compiled with bf16 against the reference over the
/// test matrix, forward and backward; prints the worst errors.
void checkSpecOverTheMatrix(const std::string &source, const std::string &name) {
  Programs programs = compileBf16(source, name);
  ASSERT_TRUE(programs.reference && programs.kernels);
  ASSERT_EQ(programs.kernels->spec().dtype, "bf16");
  double worstForward = 0, worstBackward = 0;
  uint64_t seed = 11;
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.label);
    Tensors inputs = randomInputs(*programs.kernels, c, seed++);
    worstForward = std::max(worstForward, checkEntry(programs, Entry::Forward, inputs, c));
    worstBackward = std::max(worstBackward, checkEntry(programs, Entry::Backward, inputs, c));
  }
  std::printf("[ bf16     ] %-14s worst rel-rms: forward %.2e, backward %.2e\n", name.c_str(),
              worstForward, worstBackward);
}

class Bf16Kernels : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16Kernels, MatchReferenceOnTheSameBf16Inputs) {
  checkSpecOverTheMatrix(readExample(GetParam()), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Examples, Bf16Kernels, ::testing::ValuesIn(exampleSpecs()),
                         [](const auto &info) { return info.param; });

// Gradients of inputs without H (or without K in a vector decay) collect one
// contribution per head (per channel): the kernel sums them in f32 and rounds
// the sum to bf16 once.
TEST(Bf16Kernels, SharedInputGradientsAreRoundedOnce) {
  const char *source = R"(
decay.recurrence @shared vector inputs(%a : [B, T], %f : [B, T, H]) {
  %x = arith.addf %a, %f : f32
  %g = decay.logsigmoid %x : f32
  decay.yield %g : f32
})";
  checkSpecOverTheMatrix(source, "shared");
}

// The test is not secretly running f32: the same spec compiled for f32 on the
// same inputs gives outputs that are not all bf16 values.
TEST(Bf16Kernels, DifferFromF32Kernels) {
  std::string source = readExample("gla");
  Programs programs = compileBf16(source, "gla");
  auto f32 = compileKernels(source, "gla", "f32");
  ASSERT_TRUE(programs.kernels && f32);
  ASSERT_EQ(f32->spec().dtype, "f32");
  const Case &c = kCases[1];
  Tensors inputs = randomInputs(*programs.kernels, c, 5);
  Tensors fromBf16, fromF32;
  ASSERT_FALSE(bool(programs.kernels->run(Entry::Backward, inputs, nullptr, fromBf16)));
  ASSERT_FALSE(bool(f32->run(Entry::Backward, inputs, nullptr, fromF32)));
  for (const char *name : {"dq", "dk", "dv", "dgk"}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(allBf16(fromBf16.at(name).data));
    EXPECT_FALSE(allBf16(fromF32.at(name).data));
    EXPECT_NE(fromBf16.at(name).data, fromF32.at(name).data);
  }
}

// Stores round to nearest even, ties to even, and keep NaN: with K = 1, T = 1
// and no initial state, o_j = q k v_j, exact in f32 (8-bit mantissas), so the
// kernel's bf16 o must be that product rounded once.
TEST(Bf16Kernels, StoresRoundToNearestEvenAndKeepNaN) {
  auto kernels = compileKernels(readExample("linear"), "linear", "bf16");
  ASSERT_TRUE(kernels);
  const double q = 1.0625, k = 1.0625; // q k = 1 + 2^-3 + 2^-8: halfway between two bf16
  std::vector<double> v = {1.0, 1.1875, -3.0, 0.0078125, 1.5, NAN};
  Tensors inputs = {{"q", {{1, 1, 1, 1}, {q}}},
                    {"k", {{1, 1, 1, 1}, {k}}},
                    {"v", {{1, 1, 1, static_cast<int64_t>(v.size())}, v}}};
  Tensors outputs;
  ASSERT_FALSE(bool(kernels->run(Entry::Forward, inputs, nullptr, outputs)));
  const std::vector<double> &o = outputs.at("o").data;
  EXPECT_EQ(o[0], 1.125);     // the tie goes down to the even neighbour
  EXPECT_EQ(o[1], 1.34375);   // 1.3406... rounds up (truncation would give 1.3359375)
  for (size_t j = 0; j + 1 < v.size(); ++j)
    EXPECT_EQ(o[j], decay::roundToBfloat16(q * k * v[j])) << "j = " << j;
  EXPECT_TRUE(std::isnan(o.back()));
}

} // namespace

// ---- decayrt on a bf16 package ----

namespace {
/// A package of examples/specs/linear.mlir compiled with --dtype bf16 in a
/// temporary folder, loaded through decayrt.
class Bf16Package : public ::testing::Test {
protected:
  void SetUp() override {
    llvm::SmallString<128> made;
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("decay-bf16-test", made));
    dir = made.str().str();
    std::string path = dir + "/linear.so";
    std::string command = std::string(DECAYC_PATH) + " compile " + DECAY_EXAMPLES_DIR +
                          "/linear.mlir --dtype bf16 -o " + path;
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    ASSERT_EQ(decayrt_package_load(path.c_str(), &package), DECAYRT_OK) << decayrt_last_error();
  }
  void TearDown() override {
    decayrt_package_free(package);
    llvm::sys::fs::remove_directories(dir);
  }

  /// Runs the forward with q, k, v, o as `qkvo` (data, dtype) and ht in f32.
  decayrt_status forward(void *q, decayrt_dtype qDtype, void *k, void *v, void *o, float *ht) {
    decayrt_tensor tensors[] = {{"q", q, qDtype, 4, qkShape, nullptr},
                                {"k", k, DECAYRT_BF16, 4, qkShape, nullptr},
                                {"v", v, DECAYRT_BF16, 4, vShape, nullptr},
                                {"o", o, DECAYRT_BF16, 4, vShape, nullptr},
                                {"ht", ht, DECAYRT_F32, 4, stateShape, nullptr}};
    return decayrt_run(package, "forward", tensors, 5);
  }

  static constexpr int64_t B = 1, T = 20, H = 2, K = 8, V = 8;
  int64_t qkShape[4] = {B, T, H, K}, vShape[4] = {B, T, H, V}, stateShape[4] = {B, H, K, V};
  std::string dir;
  decayrt_package *package = nullptr;
};

TEST_F(Bf16Package, RejectsF32ForABf16TensorAndAcceptsUint16) {
  std::mt19937_64 rng(9);
  HostTensor q = randomTensor({B, T, H, K}, 0, 1, rng), k = randomTensor({B, T, H, K}, 0, 1, rng),
             v = randomTensor({B, T, H, V}, 0, 1, rng);
  auto bits = [](const HostTensor &t) {
    std::vector<uint16_t> out;
    for (double x : t.data)
      out.push_back(decay::toBfloat16(static_cast<float>(x)));
    return out;
  };
  std::vector<uint16_t> qBits = bits(q), kBits = bits(k), vBits = bits(v);
  std::vector<float> qSingle(q.data.begin(), q.data.end());
  const uint16_t sentinel = 0x4228; // 42.0 in bf16
  std::vector<uint16_t> o(B * T * H * V, sentinel);
  std::vector<float> ht(B * H * K * V, 43.0f);

  EXPECT_EQ(forward(qSingle.data(), DECAYRT_F32, kBits.data(), vBits.data(), o.data(), ht.data()),
            DECAYRT_ERROR_DTYPE);
  EXPECT_STREQ(decayrt_last_error(), "tensor 'q': expected dtype bf16, got f32");
  EXPECT_TRUE(llvm::all_of(o, [&](uint16_t x) { return x == sentinel; })) << "o was written";
  EXPECT_TRUE(llvm::all_of(ht, [](float x) { return x == 43.0f; })) << "ht was written";

  ASSERT_EQ(forward(qBits.data(), DECAYRT_BF16, kBits.data(), vBits.data(), o.data(), ht.data()),
            DECAYRT_OK)
      << decayrt_last_error();
  // Against the reference on the same bf16 values.
  auto reference = SpecProgram::compile(readExample("linear"), "linear");
  ASSERT_TRUE(bool(reference)) << llvm::toString(reference.takeError());
  auto widen = [](const std::vector<uint16_t> &bits, std::vector<int64_t> shape) {
    HostTensor t{std::move(shape), {}};
    for (uint16_t b : bits)
      t.data.push_back(decay::fromBfloat16(b));
    return t;
  };
  Tensors inputs = {{"q", widen(qBits, {B, T, H, K})}, {"k", widen(kBits, {B, T, H, K})},
                    {"v", widen(vBits, {B, T, H, V})}};
  Tensors expected;
  ASSERT_FALSE(bool((*reference)->run(Entry::Forward, inputs, nullptr, expected)));
  EXPECT_LT(relativeRms(expected.at("o").data, widen(o, {B, T, H, V}).data), kBf16Tolerance);
  EXPECT_LT(relativeRms(expected.at("ht").data, std::vector<double>(ht.begin(), ht.end())), 1e-5);
}
} // namespace
