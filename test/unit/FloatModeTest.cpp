// CPU kernels, from a package or compiled in process, run with subnormals flushed to zero and leave the caller's MXCSR as it was.
#include "ExamplePackage.h"
#include "KernelCases.h"

#include "decay/Runner/SpecProgram.h"

#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include <xmmintrin.h>

namespace {

constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040, kRoundDown = 0x2000;

/// The forward of examples/specs/linear.mlir (no decay) on q = k = `x` and
/// v = 1 in every element: o_t = scale * (t + 1) * K * x^2.
std::vector<float> linearForward(decayrt_package *package, float x) {
  constexpr int64_t B = 1, T = 4, H = 1, K = 8, V = 8;
  int64_t qkShape[] = {B, T, H, K}, vShape[] = {B, T, H, V}, stateShape[] = {B, H, K, V};
  std::vector<float> q(B * T * H * K, x), k = q, v(B * T * H * V, 1.0f);
  std::vector<float> o(B * T * H * V, -1.0f), ht(B * H * K * V, -1.0f);
  decayrt_tensor tensors[] = {{"q", q.data(), DECAYRT_F32, 4, qkShape, nullptr},
                              {"k", k.data(), DECAYRT_F32, 4, qkShape, nullptr},
                              {"v", v.data(), DECAYRT_F32, 4, vShape, nullptr},
                              {"o", o.data(), DECAYRT_F32, 4, vShape, nullptr},
                              {"ht", ht.data(), DECAYRT_F32, 4, stateShape, nullptr}};
  EXPECT_EQ(decayrt_run(package, "forward", tensors, 5), DECAYRT_OK) << decayrt_last_error();
  return o;
}

TEST(PackageFloatMode, SubnormalsFlushToZeroAndTheCallersMxcsrIsRestored) {
  decay::test::ExamplePackage linear("linear");
  ASSERT_NE(linear.package, nullptr);
  decayrt_package *package = linear.package;

  unsigned original = _mm_getcsr();
  // The caller computes with subnormals and rounds down: both stay so.
  unsigned callers = (original & ~(kFlushToZero | kDenormalsAreZero)) | kRoundDown;
  _mm_setcsr(callers);
  // x^2 = 1e-40 is subnormal in f32: every product q_c k_c flushes to 0.
  std::vector<float> tiny = linearForward(package, 1e-20f);
  unsigned after = _mm_getcsr();
  // x^2 = 1e-10: normal, and the outputs are as computed without flushing.
  std::vector<float> small = linearForward(package, 1e-5f);
  _mm_setcsr(original);

  // The control bits (the sticky exception flags, bits 0-5, aside).
  EXPECT_EQ(after & ~0x3Fu, callers & ~0x3Fu);
  for (float value : tiny)
    EXPECT_EQ(value, 0.0f);
  for (float value : small)
    EXPECT_GT(value, 0.0f);
}

/// linearForward through kernels compiled in process (decay::SpecProgram).
std::vector<double> linearForward(const decay::SpecProgram &program, double x) {
  constexpr int64_t B = 1, T = 4, H = 1, K = 8, V = 8;
  std::map<std::string, decay::HostTensor> inputs = {
      {"q", {{B, T, H, K}, std::vector<double>(B * T * H * K, x)}},
      {"k", {{B, T, H, K}, std::vector<double>(B * T * H * K, x)}},
      {"v", {{B, T, H, V}, std::vector<double>(B * T * H * V, 1.0)}}};
  std::map<std::string, decay::HostTensor> outputs;
  llvm::Error error = program.run(decay::Entry::Forward, inputs, nullptr, outputs);
  EXPECT_FALSE(bool(error)) << llvm::toString(std::move(error));
  return outputs["o"].data;
}

TEST(SpecProgramFloatMode, SubnormalsFlushToZeroAndTheCallersMxcsrIsRestored) {
  decay::CompileOptions options;
  options.target = decay::Target::CpuKernels;
  auto program = decay::SpecProgram::compile(decay::test::readExample("linear"), "linear", options);
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());

  unsigned original = _mm_getcsr();
  unsigned callers = (original & ~(kFlushToZero | kDenormalsAreZero)) | kRoundDown;
  _mm_setcsr(callers);
  std::vector<double> tiny = linearForward(**program, 1e-20);
  unsigned after = _mm_getcsr();
  std::vector<double> small = linearForward(**program, 1e-5);
  _mm_setcsr(original);

  EXPECT_EQ(after & ~0x3Fu, callers & ~0x3Fu);
  ASSERT_FALSE(tiny.empty());
  for (double value : tiny)
    EXPECT_EQ(value, 0.0);
  for (double value : small)
    EXPECT_GT(value, 0.0);
}

} // namespace
