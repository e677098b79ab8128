// The step kernel of every example spec: recurrent mode against the float64 reference forward, and prefill (chunked forward) then decoding steps against one forward.
#include "DecayrtCall.h"
#include "KernelCases.h"
#include "Oracle.h"
#include "StepChecks.h"

#include "TempDir.h"

#include "decay/Codegen/CPU/CpuPackage.h"
#include "decay/Runner/SpecProgram.h"
#include "decay/Support/Bfloat16.h"
#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>

using decay::HostTensor;
using decay::SpecProgram;
using decay::test::Case;
using decay::test::compileBoth;
using decay::test::Programs;
using decay::test::Tensors;
using decay::test::checkPrefillThenDecode;
using decay::test::DecayrtCall;
using decay::test::checkRecurrentMode;
using decay::test::kStepCases;
using decay::test::tokens;
using Entry = SpecProgram::Entry;

namespace {

/// The step kernels of a SpecProgram (JIT-compiled CPU kernels).
decay::test::EntryRunner cpuRunner(const Programs &programs) {
  return [&programs](Entry entry, const Tensors &inputs, Tensors &outputs) {
    return programs.kernels->run(entry, inputs, nullptr, outputs);
  };
}

class StepKernels : public ::testing::TestWithParam<std::string> {};

TEST_P(StepKernels, RecurrentModeMatchesTheReference) {
  Programs programs = compileBoth(decay::test::readExample(GetParam()), GetParam(), 16);
  ASSERT_TRUE(programs.kernels);
  uint64_t seed = 5;
  for (const Case &c : kStepCases) {
    SCOPED_TRACE(c.label);
    checkRecurrentMode(*programs.reference, cpuRunner(programs), c, seed++);
  }
}

TEST_P(StepKernels, PrefillThenDecodeEqualsOneForward) {
  Programs programs = compileBoth(decay::test::readExample(GetParam()), GetParam(), 16);
  ASSERT_TRUE(programs.kernels);
  const Case c{"T37", 2, 37, 2, 16, 12, true, {}};
  for (int64_t prefill : {0, 1, 20, 36}) {
    SCOPED_TRACE("prefill " + std::to_string(prefill));
    checkPrefillThenDecode(*programs.reference, cpuRunner(programs), c, prefill, 70 + prefill);
  }
}

// bf16 storage of the attention state (f32 arithmetic), in recurrent mode
// and after the hand-off from the f32 forward: o within MATH.md's bf16
// tolerance (rel-rms below 5e-3); the stored state, rounded to bf16 at every
// token, drifts like a random walk of half-ulp errors where the decay
// forgets slowly (one rounding is about 2^-9 / sqrt(3) rel-rms, sqrt(37)
// of them about 7e-3: within 1e-2).
TEST_P(StepKernels, Bf16StateStaysWithinTheBf16Tolerance) {
  Programs programs = compileBoth(decay::test::readExample(GetParam()), GetParam(), 16, "bf16");
  ASSERT_TRUE(programs.kernels);
  ASSERT_EQ(programs.kernels->spec().stateDtype, "bf16");
  const decay::test::StepTolerance bf16{{5e-3, 1e-6}, {1e-2, 1e-6}};
  uint64_t seed = 55;
  for (const Case &c : {kStepCases[1], kStepCases[3]}) {
    SCOPED_TRACE(c.label);
    checkRecurrentMode(*programs.reference, cpuRunner(programs), c, seed++, bf16);
  }
  const Case c{"T37", 2, 37, 2, 16, 12, true, {}};
  checkPrefillThenDecode(*programs.reference, cpuRunner(programs), c, 20, 61, bf16);
}

INSTANTIATE_TEST_SUITE_P(Kernels, StepKernels, ::testing::ValuesIn(decay::oracle::variants()),
                         [](const auto &info) { return info.param; });

// RoPE at each sequence's own position, feature maps and the normalizer:
// decoding after a prefill must rotate at the absolute positions.
TEST(StepKernels, RopeFeatureMapsAndNormalizerContinueAcrossTheHandOff) {
  const char *source = R"(
decay.recurrence @opt vector inputs(%gk : [B, T, H, K])
    attributes {feature_map = "elu1", rope_theta = 500.0, normalizer} {
  %g = decay.logsigmoid %gk : f32
  decay.yield %g : f32
}
)";
  Programs programs = compileBoth(source, "opt", 16);
  ASSERT_TRUE(programs.kernels);
  const Case c{"T33", 2, 33, 2, 8, 6, true, {}};
  checkRecurrentMode(*programs.reference, cpuRunner(programs), c, 3);
  for (int64_t prefill : {5, 32})
    checkPrefillThenDecode(*programs.reference, cpuRunner(programs), c, prefill, 9 + prefill);
}

// ---- The decoder (decayrt) on compiled packages ----

/// One prompt or step call of sequence `row`'s tokens [first, first + count)
/// (or of several rows, one token each, with `rows`); o is the last tensor.
DecayrtCall decoderCall(const SpecProgram &program, const Tensors &inputs,
                        const std::vector<int64_t> &rows, int64_t first, int64_t count,
                        bool bf16Tokens) {
  DecayrtCall call;
  auto add = [&](const std::string &name, const HostTensor &tensor, bool perToken) {
    call.add({name, "", false, perToken && bf16Tokens ? "bf16" : "f32"}, tensor, false);
  };
  for (const decay::TensorSpec &spec : program.inputsOf(Entry::Forward)) {
    auto found = inputs.find(spec.name);
    if (spec.optional || found == inputs.end())
      continue;
    HostTensor tensor = found->second;
    bool perToken = spec.dims.rfind("BT", 0) == 0;
    if (perToken) {
      HostTensor part = tokens(tensor, first, count);
      int64_t inner = static_cast<int64_t>(part.data.size()) / (part.shape[0] * count);
      tensor = HostTensor{part.shape, {}};
      tensor.shape[0] = static_cast<int64_t>(rows.size());
      for (int64_t row : rows)
        tensor.data.insert(tensor.data.end(), part.data.begin() + row * count * inner,
                           part.data.begin() + (row + 1) * count * inner);
    }
    add(spec.name, tensor, perToken);
  }
  const HostTensor &v = inputs.at("v");
  add("o", HostTensor{{static_cast<int64_t>(rows.size()), count, v.shape[2], v.shape[3]},
                      std::vector<double>(rows.size() * count * v.shape[2] * v.shape[3], 0.0)},
      /*perToken=*/true);
  return call;
}

/// Prefill a prompt into a slot, then decode: two sequences in slots 2 and 0
/// of a decoder on the package of `variant` (compiled with `options`),
/// prefilled to different lengths, stepped together and alone (continuous
/// batching), one saved and restored into a second decoder midway: every
/// output equals the float64 reference forward's within `tolerance`.
void checkDecoderOnPackage(const char *variant, const decay::CpuPackageOptions &options,
                           const decay::test::Tolerance &tolerance) {
  SCOPED_TRACE(variant);
  std::string source = decay::test::readExample(variant);
  Programs programs = compileBoth(source, variant, 16);
  ASSERT_TRUE(programs.kernels);
  decay::test::TempDir dir;
  std::string path = dir / "package.so";
  if (llvm::Error error = decay::compileCpuPackage(
          std::string(DECAY_EXAMPLES_DIR) + "/" + variant + ".mlir", path, options))
    FAIL() << llvm::toString(std::move(error));
  decayrt_package *package = nullptr;
  ASSERT_EQ(decayrt_package_load(path.c_str(), &package), DECAYRT_OK) << decayrt_last_error();
  const Case c{"B2_T24", 2, 24, 2, 8, 6, false, {}};
  Tensors inputs = decay::test::randomInputs(*programs.reference, c, 17), expected;
  bool bf16Tokens = options.dtype == "bf16";
  if (bf16Tokens) // the reference sees the values the kernels get
    for (const decay::TensorSpec &spec : programs.reference->inputsOf(Entry::Forward))
      if (spec.dims.rfind("BT", 0) == 0 && inputs.count(spec.name))
        for (double &value : inputs.at(spec.name).data)
          value = decay::roundToBfloat16(value);
  ASSERT_FALSE(bool(programs.reference->run(Entry::Forward, inputs, nullptr, expected)));
  decayrt_decoder *decoder = nullptr, *other = nullptr;
  ASSERT_EQ(decayrt_decoder_create(package, 3, c.H, c.K, c.V, &decoder), DECAYRT_OK)
      << decayrt_last_error();
  ASSERT_EQ(decayrt_decoder_create(package, 1, c.H, c.K, c.V, &other), DECAYRT_OK);
  HostTensor o = expected.at("o");
  std::fill(o.data.begin(), o.data.end(), std::nan(""));
  int64_t inner = c.H * c.V;
  auto place = [&](const DecayrtCall &call, const std::vector<int64_t> &rows, int64_t first,
                   int64_t count) {
    std::vector<double> out = call.read("o").data;
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t t = 0; t < count; ++t)
        for (int64_t i = 0; i < inner; ++i)
          o.data[(rows[r] * c.T + first + t) * inner + i] = out[(r * count + t) * inner + i];
  };
  // Prompts: sequence 0 (slot 2) of 10 tokens, sequence 1 (slot 0) of 3.
  const int64_t slotOf[] = {2, 0}, prompt[] = {10, 3};
  for (int64_t row : {0, 1}) {
    DecayrtCall call = decoderCall(*programs.kernels, inputs, {row}, 0, prompt[row], bf16Tokens);
    ASSERT_EQ(decayrt_decoder_reset(decoder, slotOf[row]), DECAYRT_OK);
    ASSERT_EQ(decayrt_decoder_prefill(decoder, slotOf[row], call.list.data(), call.list.size()),
              DECAYRT_OK)
        << decayrt_last_error();
    place(call, {row}, 0, prompt[row]);
  }
  // Sequence 1 decodes alone up to token 10, then both together.
  for (int64_t t = 3; t < 10; ++t) {
    DecayrtCall call = decoderCall(*programs.kernels, inputs, {1}, t, 1, bf16Tokens);
    ASSERT_EQ(decayrt_decoder_step(decoder, &slotOf[1], 1, call.list.data(), call.list.size()),
              DECAYRT_OK)
        << decayrt_last_error();
    place(call, {1}, t, 1);
  }
  for (int64_t t = 10; t < c.T; ++t) {
    if (t == 17) { // sequence 0 moves to the other decoder through its saved bytes
      size_t size = 0;
      ASSERT_EQ(decayrt_decoder_save(decoder, 2, nullptr, 0, &size), DECAYRT_OK);
      std::vector<char> bytes(size);
      ASSERT_EQ(decayrt_decoder_save(decoder, 2, bytes.data(), bytes.size(), &size), DECAYRT_OK);
      ASSERT_EQ(decayrt_decoder_restore(other, 0, bytes.data(), size), DECAYRT_OK)
          << decayrt_last_error();
    }
    bool moved = t >= 17;
    DecayrtCall both = decoderCall(*programs.kernels, inputs, {0, 1}, t, 1, bf16Tokens);
    if (!moved) {
      int64_t slots[] = {2, 0};
      ASSERT_EQ(decayrt_decoder_step(decoder, slots, 2, both.list.data(), both.list.size()),
                DECAYRT_OK)
          << decayrt_last_error();
      place(both, {0, 1}, t, 1);
      continue;
    }
    DecayrtCall first = decoderCall(*programs.kernels, inputs, {0}, t, 1, bf16Tokens);
    DecayrtCall second = decoderCall(*programs.kernels, inputs, {1}, t, 1, bf16Tokens);
    int64_t zero = 0;
    ASSERT_EQ(decayrt_decoder_step(other, &zero, 1, first.list.data(), first.list.size()),
              DECAYRT_OK)
        << decayrt_last_error();
    ASSERT_EQ(decayrt_decoder_step(decoder, &slotOf[1], 1, second.list.data(),
                                   second.list.size()),
              DECAYRT_OK)
        << decayrt_last_error();
    place(first, {0}, t, 1);
    place(second, {1}, t, 1);
  }
  int64_t position = 0;
  ASSERT_EQ(decayrt_decoder_position(other, 0, &position), DECAYRT_OK);
  EXPECT_EQ(position, c.T);
  Tensors want{{"o", expected.at("o")}}, got{{"o", o}};
  decay::test::expectMatches(want, got, tolerance);
  decayrt_decoder_free(other);
  decayrt_decoder_free(decoder);
  decayrt_package_free(package);
}

// Specs with a scan (lightnet), a normalizer (d2d_exp), a vector gate (gla)
// and a derived key (hgrn2, whose k the decoder does not take).
TEST(DecoderOnPackages, PrefillThenStepsMatchTheReference) {
  for (const char *variant : {"lightnet", "d2d_exp", "gla", "hgrn2"})
    checkDecoderOnPackage(variant, {}, {});
}

// bf16 packages: bf16 per-token tensors, and the attention state cached in
// bf16 (the prefill's f32 final state rounded into the slot), within the
// bf16 tolerance of MATH.md (the reference on the same bf16 inputs).
TEST(DecoderOnPackages, Bf16PackagesAndBf16StateCachesMatchTheReference) {
  decay::CpuPackageOptions bf16;
  bf16.dtype = "bf16";
  bf16.stateDtype = "bf16";
  for (const char *variant : {"lightnet", "gla", "mamba2"})
    checkDecoderOnPackage(variant, bf16, {5e-3, 1e-6});
}

} // namespace
