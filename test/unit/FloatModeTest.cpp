// A CPU package's kernels run with subnormals flushed to zero and leave the caller's MXCSR as it was.
#include "ExamplePackage.h"

#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

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

} // namespace
