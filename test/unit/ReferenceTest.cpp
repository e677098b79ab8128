// The compiled float64 reference path of every example spec against the independent hand-written oracle.
#include "TestTensors.h"
#include "Oracle.h"

#include "decay/Runner/SpecProgram.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using decay::HostTensor;
using decay::SpecProgram;

using decay::test::randomTensor;
using decay::test::relativeRms;

namespace {

/// One problem shape: sizes, h0 or not, varlen offsets or none, gate spread.
struct Case {
  const char *label;
  int64_t B, T, H, K, V;
  bool withH0;
  std::vector<int64_t> cuSeqlens;
  double gateSpread = 3.0;
  bool normalInputs = false;
};

const Case kCases[] = {
    {"odd_T_with_h0", 2, 7, 3, 5, 4, true, {}},
    {"single_token", 1, 1, 2, 4, 3, false, {}},
    {"T65_no_h0", 1, 65, 2, 6, 5, false, {}},
    {"varlen_with_empty_sequence", 1, 11, 2, 4, 3, true, {0, 4, 4, 11}},
    {"strong_decay_normal_inputs", 2, 9, 2, 4, 4, true, {}, 30.0, true},
};


void expectClose(const std::string &what, const std::vector<double> &expected,
                 const std::vector<double> &actual) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  for (double value : actual)
    ASSERT_TRUE(std::isfinite(value)) << what << " has a non-finite value";
  EXPECT_LT(relativeRms(expected, actual), 1e-9) << what;
}

/// Random inputs for one case, as both the oracle and the reference path take them.
struct Inputs {
  decay::oracle::Problem problem;
  std::map<std::string, HostTensor> tensors;
};

Inputs makeInputs(const SpecProgram &program, const Case &c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto random = [&](std::vector<int64_t> shape, double lo, double hi, bool useNormal) {
    HostTensor t{shape, {}};
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    for (int64_t i = 0; i < n; ++i)
      t.data.push_back(useNormal ? normal(rng) : lo + (hi - lo) * unit(rng));
    return t;
  };
  int64_t N = c.cuSeqlens.empty() ? c.B : static_cast<int64_t>(c.cuSeqlens.size()) - 1;
  auto shapeOf = [&](const std::string &dims) {
    std::vector<int64_t> shape;
    for (char d : dims)
      shape.push_back(d == 'B' ? c.B : d == 'T' ? c.T : d == 'H' ? c.H : d == 'K' ? c.K
                      : d == 'V' ? c.V : N);
    return shape;
  };
  Inputs in;
  in.problem.B = c.B, in.problem.T = c.T, in.problem.H = c.H, in.problem.K = c.K,
  in.problem.V = c.V;
  in.problem.cuSeqlens = c.cuSeqlens;
  for (const decay::TensorSpec &spec : program.inputsOf(SpecProgram::Entry::Forward)) {
    bool isGate = spec.name != "q" && spec.name != "k" && spec.name != "v";
    if (spec.optional && !c.withH0)
      continue;
    HostTensor t = isGate ? random(shapeOf(spec.dims), -c.gateSpread, c.gateSpread, false)
                          : random(shapeOf(spec.dims), 0.0, 1.0, c.normalInputs);
    if (spec.name == "q")
      in.problem.q = t.data;
    else if (spec.name == "k")
      in.problem.k = t.data;
    else if (spec.name == "v")
      in.problem.v = t.data;
    else if (spec.name == "h0")
      in.problem.h0 = t.data;
    else if (spec.optional)
      in.problem.states[spec.name] = t.data;
    else
      in.problem.tensors[spec.name] = t.data;
    in.tensors[spec.name] = std::move(t);
  }
  if (program.spec().derivedKey) // the oracle checks sizes of k too
    in.problem.k = in.problem.q;
  return in;
}

void compareWithOracle(const SpecProgram &program, const std::string &variant,
                       Inputs in, const Case &c) {
  std::map<std::string, HostTensor> outputs;
  llvm::Error error = program.run(SpecProgram::Entry::Forward, in.tensors, c.cuSeqlens.empty() ? nullptr : &c.cuSeqlens,
                                         outputs);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  decay::oracle::Result expected = decay::oracle::run(variant, in.problem);
  expectClose("o", expected.o, outputs["o"].data);
  expectClose("ht", expected.ht, outputs["ht"].data);
  for (auto &[name, state] : expected.states) {
    ASSERT_TRUE(outputs.count(name)) << "missing output " << name;
    expectClose(name, state, outputs[name].data);
  }
  EXPECT_EQ(outputs.size(), 2 + expected.states.size());
}

std::unique_ptr<SpecProgram> compileExample(const std::string &variant) {
  auto program = SpecProgram::compileFile(std::string(DECAY_EXAMPLES_DIR) + "/" +
                                               variant + ".mlir");
  if (!program) {
    ADD_FAILURE() << llvm::toString(program.takeError());
    return nullptr;
  }
  return std::move(*program);
}

class ExampleSpec : public ::testing::TestWithParam<std::string> {};

TEST_P(ExampleSpec, MatchesIndependentOracle) {
  auto program = compileExample(GetParam());
  ASSERT_TRUE(program);
  uint64_t seed = 1;
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.label);
    compareWithOracle(*program, GetParam(), makeInputs(*program, c, seed++), c);
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, ExampleSpec,
                         ::testing::ValuesIn(decay::oracle::variants()),
                         [](const auto &info) { return info.param; });

/// A spec written in the test, with options the examples do not use, checked
/// against the oracle with the same overrides.
struct OptionCase {
  const char *label;
  const char *variant;
  const char *source;
  std::string featureMap;
  std::optional<double> scale, ropeTheta;
  std::optional<bool> normalizer;
  double eps = 1e-6;
};

const OptionCase kOptionCases[] = {
    {"gla_silu_rope_scale", "gla", R"(
decay.recurrence @gla vector inputs(%gk : [B, T, H, K])
    attributes {feature_map = "silu", rope_theta = 500.0, scale = 0.3} {
  %ls = decay.logsigmoid %gk : f32
  %c = arith.constant 16.0 : f32
  %g = arith.divf %ls, %c : f32
  decay.yield %g : f32
})", "silu", 0.3, 500.0, std::nullopt},
    {"mamba2_elu1_normalizer", "mamba2", R"(
decay.recurrence @m scalar inputs(%dt : [B, T, H]) params(%A_log : [H], %dt_bias : [H])
    attributes {feature_map = "elu1", normalizer, eps = 1.0e-3} {
  %x = arith.addf %dt, %dt_bias : f32
  %sp = decay.softplus %x : f32
  %a = math.exp %A_log : f32
  %na = arith.negf %a : f32
  %g = arith.mulf %na, %sp : f32
  decay.yield %g : f32
})", "elu1", std::nullopt, std::nullopt, true, 1e-3},
    {"linear_relu_rope", "linear", R"(
decay.recurrence @lin none attributes {feature_map = "relu", rope_theta = 10000.0}
)", "relu", std::nullopt, 10000.0, std::nullopt},
    {"hgrn2_rope_exp_query", "hgrn2", R"(
decay.recurrence @h vector inputs(%f : [B, T, H, K]) attributes {feature_map = "exp", rope_theta = 100.0} {
  %ls = decay.logsigmoid %f : f32
  %one = arith.constant 1.0 : f32
  %e = math.exp %ls : f32
  %key = arith.subf %one, %e : f32
  decay.yield %ls, %key : f32, f32
})", "exp", std::nullopt, 100.0, std::nullopt},
};

TEST(ReferenceOptions, FeatureMapsRopeNormalizerAndScaleMatchOracle) {
  for (const OptionCase &option : kOptionCases) {
    SCOPED_TRACE(option.label);
    auto program = SpecProgram::compile(option.source, option.label);
    ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
    uint64_t seed = 100;
    for (const Case &c : kCases) {
      SCOPED_TRACE(c.label);
      if (c.K % 2)
        continue; // RoPE needs an even K; covered by the even cases
      Inputs in = makeInputs(**program, c, seed++);
      in.problem.featureMap = option.featureMap;
      in.problem.scale = option.scale;
      in.problem.ropeTheta = option.ropeTheta;
      in.problem.normalizer = option.normalizer;
      in.problem.eps = option.eps;
      compareWithOracle(**program, option.variant, in, c);
    }
  }
}

TEST(ReferenceErrors, ShapesAndSequencesAreCheckedBeforeRunning) {
  auto program = compileExample("mamba2");
  ASSERT_TRUE(program);
  Case c{"base", 2, 5, 2, 4, 3, false, {}};
  Inputs in = makeInputs(*program, c, 7);
  auto expectError = [&](std::map<std::string, HostTensor> tensors,
                         const std::vector<int64_t> *cu, const std::string &needle) {
    std::map<std::string, HostTensor> outputs;
    llvm::Error error = program->run(SpecProgram::Entry::Forward, tensors, cu, outputs);
    ASSERT_TRUE(bool(error)) << "expected an error containing: " << needle;
    std::string message = llvm::toString(std::move(error));
    EXPECT_NE(message.find(needle), std::string::npos) << message;
    EXPECT_TRUE(outputs.empty());
  };
  auto missing = in.tensors;
  missing.erase("dt");
  expectError(missing, nullptr, "missing tensor 'dt': expected shape [2, 5, 2] ([B, T, H])");
  auto wrong = in.tensors;
  wrong["dt_bias"].shape = {3};
  expectError(wrong, nullptr, "tensor 'dt_bias': expected shape [2] ([H]), got [3]");
  auto badH0 = in.tensors;
  badH0["h0"] = HostTensor{{2, 2, 4}, std::vector<double>(16)};
  expectError(badH0, nullptr, "tensor 'h0': expected shape [2, 2, 4, 3]");
  std::vector<int64_t> cu = {0, 2, 5};
  expectError(in.tensors, &cu, "varlen packing needs B = 1");
  Case packed{"packed", 1, 5, 2, 4, 3, false, {}};
  Inputs one = makeInputs(*program, packed, 8);
  std::vector<int64_t> decreasing = {0, 3, 2, 5};
  expectError(one.tensors, &decreasing, "must not decrease");
  std::vector<int64_t> short_ = {0, 4};
  expectError(one.tensors, &short_, "from 0 to T = 5");
}

TEST(ReferenceErrors, MalformedSpecIsRejected) {
  auto program = SpecProgram::compile("decay.recurrence @x scalar {\n}\n", "bad.mlir");
  ASSERT_FALSE(bool(program));
  EXPECT_NE(llvm::toString(program.takeError()).find("bad.mlir"), std::string::npos);
  auto two = SpecProgram::compile(
      "decay.recurrence @a none\ndecay.recurrence @b none\n", "two.mlir");
  ASSERT_FALSE(bool(two));
  EXPECT_NE(llvm::toString(two.takeError()).find("--recurrence"), std::string::npos);
  auto chosen = SpecProgram::compile(
      "decay.recurrence @a none\ndecay.recurrence @b none\n", "two.mlir", {"b"});
  ASSERT_TRUE(bool(chosen)) << llvm::toString(chosen.takeError());
  EXPECT_EQ((*chosen)->spec().name, "b");
}

} // namespace
