// The reference backward of every example spec against central finite differences of the reference forward.
#include "TestTensors.h"
#include "Oracle.h"

#include "decay/Runner/SpecProgram.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using decay::HostTensor;
using decay::SpecProgram;
using Entry = SpecProgram::Entry;
using Tensors = std::map<std::string, HostTensor>;

using decay::test::randomTensor;
using decay::test::relativeRms;

namespace {

struct Shape {
  const char *label;
  int64_t B, T, H, K, V;
  std::vector<int64_t> cuSeqlens;
};

const Shape kShapes[] = {
    {"batch_odd_T", 2, 5, 2, 4, 3, {}},
    {"varlen_with_empty_sequence", 1, 7, 2, 4, 3, {0, 3, 3, 7}},
};


std::vector<int64_t> shapeOf(const Shape &s, const std::string &dims) {
  int64_t N = s.cuSeqlens.empty() ? s.B : static_cast<int64_t>(s.cuSeqlens.size()) - 1;
  std::vector<int64_t> shape;
  for (char d : dims)
    shape.push_back(d == 'B' ? s.B : d == 'T' ? s.T : d == 'H' ? s.H : d == 'K' ? s.K
                    : d == 'V' ? s.V : N);
  return shape;
}

/// Every input of `entry`, optional ones included, at random values. Gates and
/// params are kept moderate so the decay neither vanishes nor explodes.
Tensors randomInputs(const SpecProgram &program, Entry entry, const Shape &s,
                     std::mt19937_64 &rng) {
  Tensors tensors;
  for (const decay::TensorSpec &spec : program.inputsOf(entry)) {
    bool qkv = spec.name == "q" || spec.name == "k" || spec.name == "v";
    tensors[spec.name] = qkv ? randomTensor(shapeOf(s, spec.dims), 0.0, 1.0, rng)
                             : randomTensor(shapeOf(s, spec.dims), -1.0, 1.0, rng);
  }
  return tensors;
}

double dot(const std::vector<double> &x, const std::vector<double> &y) {
  double total = 0;
  for (size_t i = 0; i < x.size(); ++i)
    total += x[i] * y[i];
  return total;
}

/// The loss whose gradients the backward computes: every forward output
/// dotted with its gradient input (do, dht, dnorm_ht, dscan_<name>_ht).
double loss(const SpecProgram &program, const Tensors &inputs, const Tensors &seeds,
            const std::vector<int64_t> *cu) {
  Tensors outputs;
  llvm::Error error = program.run(Entry::Forward, inputs, cu, outputs);
  EXPECT_FALSE(error) << llvm::toString(std::move(error));
  double total = 0;
  for (auto &[name, tensor] : outputs)
    total += dot(tensor.data, seeds.at(name == "o" ? "do" : "d" + name).data);
  return total;
}

/// Checks, tensor by tensor, that the backward's gradient agrees with the
/// central difference of the forward's loss along a random direction.
void checkGradients(const SpecProgram &program, const Shape &s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::vector<int64_t> *cu = s.cuSeqlens.empty() ? nullptr : &s.cuSeqlens;
  Tensors all = randomInputs(program, Entry::Backward, s, rng);
  Tensors inputs, seeds;
  for (const decay::TensorSpec &spec : program.inputsOf(Entry::Forward))
    inputs[spec.name] = all[spec.name];
  for (auto &[name, tensor] : all)
    if (!inputs.count(name))
      seeds[name] = tensor;

  Tensors gradients;
  llvm::Error error = program.run(Entry::Backward, all, cu, gradients);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  EXPECT_EQ(gradients.size(), inputs.size()) << "one gradient per differentiable input";

  const double eps = 1e-5;
  for (auto &[name, tensor] : inputs) {
    SCOPED_TRACE("d" + name);
    ASSERT_TRUE(gradients.count("d" + name));
    const HostTensor &gradient = gradients.at("d" + name);
    ASSERT_EQ(gradient.shape, tensor.shape);
    HostTensor direction = randomTensor(tensor.shape, -1.0, 1.0, rng);
    Tensors plus = inputs, minus = inputs;
    for (size_t i = 0; i < direction.data.size(); ++i) {
      plus[name].data[i] += eps * direction.data[i];
      minus[name].data[i] -= eps * direction.data[i];
    }
    double numeric = (loss(program, plus, seeds, cu) - loss(program, minus, seeds, cu)) / (2 * eps);
    double analytic = dot(gradient.data, direction.data);
    for (double value : gradient.data)
      ASSERT_TRUE(std::isfinite(value));
    EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::fabs(numeric)))
        << "analytic " << analytic << " vs finite difference " << numeric;
  }
}

std::unique_ptr<SpecProgram> compile(const std::string &source, const std::string &name) {
  auto program = SpecProgram::compile(source, name);
  if (!program) {
    ADD_FAILURE() << llvm::toString(program.takeError());
    return nullptr;
  }
  return std::move(*program);
}

class ExampleGradients : public ::testing::TestWithParam<std::string> {};

TEST_P(ExampleGradients, MatchFiniteDifferences) {
  auto program = SpecProgram::compileFile(std::string(DECAY_EXAMPLES_DIR) + "/" +
                                               GetParam() + ".mlir");
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
  uint64_t seed = 11;
  for (const Shape &s : kShapes) {
    SCOPED_TRACE(s.label);
    checkGradients(**program, s, seed++);
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, ExampleGradients,
                         ::testing::ValuesIn(decay::oracle::variants()),
                         [](const auto &info) { return info.param; });

/// Options the examples do not exercise: feature maps with RoPE, a scalar
/// decay with the normalizer, a cumsum scan, input dims broadcast over H,
/// every differentiable math op of the adjoint rules.
const std::pair<const char *, const char *> kOptionSpecs[] = {
    {"silu_rope", R"(
decay.recurrence @a vector inputs(%gk : [B, T, H, K]) attributes {feature_map = "silu", rope_theta = 50.0} {
  %g = decay.logsigmoid %gk : f32
  decay.yield %g : f32
})"},
    {"elu1_normalizer_scalar", R"(
decay.recurrence @b scalar inputs(%dt : [B, T, H]) params(%A_log : [H]) attributes {feature_map = "elu1", normalizer} {
  %sp = decay.softplus %dt : f32
  %a = math.exp %A_log : f32
  %g = arith.mulf %a, %sp : f32
  %ng = arith.negf %g : f32
  decay.yield %ng : f32
})"},
    {"cumsum_broadcast_input", R"(
decay.recurrence @c vector inputs(%x : [B, T]) params(%w : [K]) {
  %prev, %s = decay.cumsum "s" %x init 0.5 : f32
  %t = math.tanh %s : f32
  %u = arith.mulf %t, %w : f32
  %v = math.sin %u : f32
  %g = decay.logsigmoid %v : f32
  decay.yield %g : f32
})"},
    {"scalar_decay_with_scan", R"(
decay.recurrence @e scalar inputs(%x : [B, T, H]) {
  %prev, %c = decay.cumsum "c" %x init 0.25 : f32
  %g = decay.logsigmoid %c : f32
  decay.yield %g : f32
})"},
    {"many_rules_exp_rope_derived", R"(
decay.recurrence @d vector inputs(%f : [B, T, H, K]) params(%p : [H, K]) attributes {feature_map = "exp", rope_theta = 20.0} {
  %one = arith.constant 1.0 : f32
  %two = arith.constant 2.0 : f32
  %a = arith.addf %f, %p : f32
  %sq = arith.mulf %a, %a : f32
  %r = arith.addf %sq, %one : f32
  %s = math.sqrt %r : f32
  %l = math.log %s : f32
  %d = arith.divf %l, %two : f32
  %m = arith.maximumf %d, %a : f32
  %c = math.cos %m : f32
  %e2 = math.exp2 %c : f32
  %pw = math.powf %e2, %two : f32
  %lae = decay.logaddexp %pw, %a : f32
  %g = arith.negf %lae : f32
  %one_minus = arith.subf %one, %f : f32
  %key = math.tanh %one_minus : f32
  decay.yield %g, %key : f32, f32
})"},
};

TEST(ReferenceGradients, OptionsAndAdjointRulesMatchFiniteDifferences) {
  for (auto [label, source] : kOptionSpecs) {
    SCOPED_TRACE(label);
    auto program = compile(source, label);
    ASSERT_TRUE(program);
    uint64_t seed = 40;
    for (const Shape &s : kShapes) {
      SCOPED_TRACE(s.label);
      checkGradients(*program, s, seed++);
    }
  }
}

TEST(ReferenceGradients, LinearHasNoDecayGradient) {
  auto program = compile("decay.recurrence @lin none\n", "lin");
  ASSERT_TRUE(program);
  std::vector<std::string> names;
  for (const decay::TensorSpec &spec : program->outputsOf(Entry::Backward))
    names.push_back(spec.name);
  EXPECT_EQ(names, (std::vector<std::string>{"dq", "dk", "dv", "dh0"}));
}

} // namespace
