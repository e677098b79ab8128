// The GPU step kernel of every example spec under SIMT emulation: recurrent mode against the float64 reference, and the GPU forward's prefill then emulated decoding steps against one forward.
#include "DecayrtCall.h"
#include "Oracle.h"
#include "SimtPackage.h"
#include "StepChecks.h"
#include "TempDir.h"

#include "decay/Runner/Signature.h"
#include "decay/Support/Bfloat16.h"
#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

#include <deque>
#include <fstream>

using decay::HostTensor;
using decay::SpecProgram;
using decay::test::Case;
using decay::test::Entry;
using decay::test::Tensors;

namespace {

/// The size a dims letter names, from q [B,T,H,K], v [B,T,H,V] and a step's state [S,H,K,V].
int64_t sizeOf(char dim, const Tensors &inputs) {
  const std::vector<int64_t> &q = inputs.at("q").shape, &v = inputs.at("v").shape;
  switch (dim) {
  case 'B':
  case 'N':
    return q[0];
  case 'T':
    return q[1];
  case 'H':
    return q[2];
  case 'K':
    return q[3];
  case 'V':
    return v[3];
  case 'S':
    return inputs.at("state").shape[0];
  default:
    return 3;
  }
}

/// The arguments of `entry` (its signature) for decayrt_run_simt: its inputs
/// from `inputs` (absent ones left out), its outputs shaped by their dims.
decay::test::DecayrtCall emulatedCall(const decay::SpecSummary &spec, Entry entry, const Tensors &inputs) {
  decay::test::DecayrtCall call;
  decay::Entry signatureEntry = entry == Entry::Step ? decay::Entry::Step : decay::Entry::Forward;
  for (const decay::Argument &argument : decay::signatureOf(spec, signatureEntry)) {
    const decay::TensorSpec &tensor = argument.tensor;
    if (argument.kind == decay::Argument::Sequences)
      continue;
    if (argument.kind == decay::Argument::Output) {
      std::vector<int64_t> shape;
      for (char dim : tensor.dims)
        shape.push_back(sizeOf(dim, inputs));
      int64_t count = 1;
      for (int64_t extent : shape)
        count *= extent;
      call.add(tensor, HostTensor{shape, std::vector<double>(static_cast<size_t>(count), 0.0)}, true);
    } else if (auto found = inputs.find(tensor.name); found != inputs.end()) {
      call.add(tensor, found->second, argument.kind == decay::Argument::InOut);
    }
  }
  return call;
}

/// Runs `entry` of a simt package with decayrt_run_simt; returns the outputs
/// and the updated in-out tensors.
llvm::Error runEmulated(decayrt_package *package, const decay::SpecSummary &spec, Entry entry,
                        const Tensors &inputs, Tensors &outputs) {
  decay::test::DecayrtCall call = emulatedCall(spec, entry, inputs);
  const char *name = entry == Entry::Step ? "step" : "forward";
  if (decayrt_run_simt(package, name, call.list.data(), call.list.size(), nullptr) != DECAYRT_OK)
    return llvm::createStringError(std::string("decayrt_run_simt: ") + decayrt_last_error());
  for (const std::string &written : call.written)
    outputs[written] = call.read(written);
  return llvm::Error::success();
}

decay::test::EntryRunner emulatedRunner(decayrt_package *package, const decay::SpecSummary &spec) {
  return [package, &spec](Entry entry, const Tensors &inputs, Tensors &outputs) {
    return runEmulated(package, spec, entry, inputs, outputs);
  };
}

/// The GPU modules' head dims (K = V = 64 or 128): odd T, one token, no
/// initial state, strong decay, several rows and heads in reversed slots.
const Case kEmulatedStepCases[] = {
    {"T1", 2, 1, 2, 64, 64, true, {}},
    {"T37_B2_H2", 2, 37, 2, 64, 64, true, {}},
    {"T20_no_h0", 1, 20, 3, 64, 64, false, {}},
    {"strong_decay", 2, 30, 1, 64, 64, true, {}, 10.0},
    {"K128_V128", 1, 9, 2, 128, 128, true, {}},
};

/// An example spec's float64 reference, its simt package (the step storing
/// its state in `stateDtype`) and a runner of the package's entries.
struct EmulatedExample {
  std::unique_ptr<SpecProgram> reference;
  std::unique_ptr<decay::test::SimtPackage> package;
  decay::SpecSummary spec; ///< the package's tensors (the reference's, but the state dtype)
  decay::test::EntryRunner run;
};

/// Compiles example `variant` both ways; a test failure and null when
/// either does not compile.
std::unique_ptr<EmulatedExample> openEmulated(const std::string &variant,
                                              const std::string &stateDtype = "") {
  auto example = std::make_unique<EmulatedExample>();
  auto reference = SpecProgram::compile(decay::test::readExample(variant), variant);
  if (!reference) {
    ADD_FAILURE() << llvm::toString(reference.takeError());
    return nullptr;
  }
  example->reference = std::move(*reference);
  example->package = decay::test::compileSimt(variant, -1, "", stateDtype);
  if (!example->package)
    return nullptr;
  example->spec = example->reference->spec();
  if (!stateDtype.empty())
    example->spec.stateDtype = stateDtype;
  example->run = emulatedRunner(example->package->package, example->spec);
  return example;
}

class EmulatedStepKernels : public ::testing::TestWithParam<std::string> {};

TEST_P(EmulatedStepKernels, RecurrentModeMatchesTheReference) {
  std::unique_ptr<EmulatedExample> example = openEmulated(GetParam());
  ASSERT_TRUE(example);
  uint64_t seed = 23;
  for (const Case &c : kEmulatedStepCases) {
    SCOPED_TRACE(c.label);
    decay::test::checkRecurrentMode(*example->reference, example->run, c, seed++);
  }
}

// The GPU forward's final states handed to the GPU step: prefill then
// decoding equals one forward.
TEST_P(EmulatedStepKernels, PrefillThenDecodeEqualsOneForward) {
  std::unique_ptr<EmulatedExample> example = openEmulated(GetParam());
  ASSERT_TRUE(example);
  const Case c{"T21", 2, 21, 2, 64, 64, true, {}};
  for (int64_t prefill : {0, 1, 20}) {
    SCOPED_TRACE("prefill " + std::to_string(prefill));
    decay::test::checkPrefillThenDecode(*example->reference, example->run, c, prefill, 90 + prefill);
  }
}

// bf16 storage of the attention state on the GPU: the same tolerances as
// the CPU's (StepTest): o within 5e-3, the stored state within 1e-2.
TEST_P(EmulatedStepKernels, Bf16StateStaysWithinTheBf16Tolerance) {
  std::unique_ptr<EmulatedExample> example = openEmulated(GetParam(), "bf16");
  ASSERT_TRUE(example);
  const decay::test::StepTolerance bf16{{5e-3, 1e-6}, {1e-2, 1e-6}};
  decay::test::checkRecurrentMode(*example->reference, example->run, kEmulatedStepCases[1], 71,
                                  bf16);
  decay::test::checkPrefillThenDecode(*example->reference, example->run,
                                      {"T21", 2, 21, 2, 64, 64, true, {}}, 12, 72, bf16);
}

// The emulator's race detector on the step kernel: without the barrier
// between preparing a token's channels and sweeping the state, the step
// fails with a race, and the caller's state caches and o are untouched.
TEST(EmulatedStepKernels, AMissingBarrierIsARaceThatLeavesTheCachesUntouched) {
  auto reference = SpecProgram::compile(decay::test::readExample("gla"), "gla");
  ASSERT_TRUE(bool(reference)) << llvm::toString(reference.takeError());
  std::unique_ptr<decay::test::SimtPackage> racy =
      decay::test::compileSimt("gla", /*omitBarrier=*/0); // the step's first barrier
  ASSERT_TRUE(racy);
  const Case c = kEmulatedStepCases[1];
  Tensors step = decay::test::recurrentCall(**reference, c, decay::test::randomInputs(**reference, c, 5));
  decay::test::DecayrtCall call = emulatedCall((*reference)->spec(), Entry::Step, step);
  EXPECT_EQ(decayrt_run_simt(racy->package, "step", call.list.data(), call.list.size(), nullptr),
            DECAYRT_ERROR_SIMT_RACE);
  EXPECT_NE(std::string(decayrt_last_error()).find("gla_step"), std::string::npos)
      << decayrt_last_error();
  std::vector<double> given;
  for (double value : step.at("state").data)
    given.push_back(static_cast<float>(value));
  EXPECT_EQ(call.read("state").data, given);
  for (double value : call.read("o").data)
    ASSERT_EQ(value, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Emulated, EmulatedStepKernels,
                         ::testing::ValuesIn(decay::oracle::variants()),
                         [](const auto &info) { return info.param; });

// RoPE at each sequence's own position (rotated by pairs across threads),
// the normalizer (z advanced per channel, z . q' summed by every thread),
// elu1, and a scalar decay with a scan (evaluated alike by every thread,
// stored by one): across the GPU hand-off.
TEST(EmulatedStepKernels, RopeNormalizerAndScansContinueAcrossTheHandOff) {
  const char *sources[] = {R"(
decay.recurrence @opt vector inputs(%gk : [B, T, H, K])
    attributes {feature_map = "elu1", rope_theta = 500.0, normalizer} {
  %g = decay.logsigmoid %gk : f32
  decay.yield %g : f32
}
)",
                           R"(
decay.recurrence @opt scalar inputs(%dt : [B, T, H])
    attributes {rope_theta = 500.0, normalizer} {
  %prev, %c = decay.cumsum "c" %dt init 0.0 : f32
  %g = arith.subf %prev, %c : f32
  decay.yield %g : f32
}
)"};
  for (const char *source : sources) {
    SCOPED_TRACE(source);
    auto reference = SpecProgram::compile(source, "opt");
    ASSERT_TRUE(bool(reference)) << llvm::toString(reference.takeError());
    decay::test::TempDir dir;
    std::string specPath = dir / "opt.mlir";
    std::ofstream(specPath) << source;
    std::unique_ptr<decay::test::SimtPackage> package = decay::test::compileSimtFile(specPath);
    ASSERT_TRUE(package);
    decay::test::EntryRunner run = emulatedRunner(package->package, (*reference)->spec());
    const Case c{"T19", 2, 19, 2, 64, 64, true, {}};
    decay::test::checkRecurrentMode(**reference, run, c, 3);
    for (int64_t prefill : {5, 18})
      decay::test::checkPrefillThenDecode(**reference, run, c, prefill, 9 + prefill);
  }
}

} // namespace
