// The CPU kernels give the same results on tensors at any alignment: non-temporal stores where aligned, plain ones elsewhere.
#include "ExamplePackage.h"

#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int64_t B = 2, T = 70, H = 2, K = 16, V = 16;

/// A named f32 tensor placed `shift` floats past a 64-byte boundary.
struct Placed {
  std::string name;
  std::vector<int64_t> shape;
  int64_t shift;
  std::vector<float> storage;

  Placed(std::string tensorName, std::vector<int64_t> dims, int64_t floats)
      : name(std::move(tensorName)), shape(std::move(dims)), shift(floats),
        storage(static_cast<size_t>(count() + 32), 0.0f) {}
  /// The tensor's first element (recomputed: a copy has its own storage).
  float *data() const {
    auto address = reinterpret_cast<uintptr_t>(storage.data());
    return reinterpret_cast<float *>((address + 63) & ~uintptr_t(63)) + shift;
  }
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  decayrt_tensor view() const {
    return {name.c_str(), data(), DECAYRT_F32, static_cast<int32_t>(shape.size()), shape.data(), nullptr};
  }
};

/// Every output of mamba2's forward and backward on the same inputs, with
/// every tensor `shift` floats past a 64-byte boundary.
std::map<std::string, std::vector<float>> runMamba2(decayrt_package *package, int64_t shift) {
  std::vector<Placed> inputs = {{"q", {B, T, H, K}, shift},  {"k", {B, T, H, K}, shift},
                                {"v", {B, T, H, V}, shift},  {"dt", {B, T, H}, shift},
                                {"A_log", {H}, shift},       {"dt_bias", {H}, shift},
                                {"do", {B, T, H, V}, shift}};
  std::vector<Placed> forwardOutputs = {{"o", {B, T, H, V}, shift}, {"ht", {B, H, K, V}, shift}};
  std::vector<Placed> backwardOutputs = {{"dq", {B, T, H, K}, shift}, {"dk", {B, T, H, K}, shift},
                                         {"dv", {B, T, H, V}, shift}, {"dh0", {B, H, K, V}, shift},
                                         {"ddt", {B, T, H}, shift},   {"dA_log", {H}, shift},
                                         {"ddt_bias", {H}, shift}};
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (Placed &tensor : inputs)
    for (int64_t i = 0; i < tensor.count(); ++i)
      tensor.data()[i] = unit(rng);
  std::vector<decayrt_tensor> forward, backward;
  for (const Placed &tensor : inputs) {
    if (tensor.name != "do")
      forward.push_back(tensor.view());
    backward.push_back(tensor.view());
  }
  for (const Placed &tensor : forwardOutputs)
    forward.push_back(tensor.view());
  for (const Placed &tensor : backwardOutputs)
    backward.push_back(tensor.view());
  EXPECT_EQ(decayrt_run(package, "forward", forward.data(), forward.size()), DECAYRT_OK) << decayrt_last_error();
  EXPECT_EQ(decayrt_run(package, "backward", backward.data(), backward.size()), DECAYRT_OK)
      << decayrt_last_error();
  std::map<std::string, std::vector<float>> results;
  for (const auto *outputs : {&forwardOutputs, &backwardOutputs})
    for (const Placed &tensor : *outputs)
      results[tensor.name].assign(tensor.data(), tensor.data() + tensor.count());
  return results;
}

TEST(StreamingStores, ResultsDoNotDependOnTheTensorsAlignment) {
  decay::test::ExamplePackage mamba2("mamba2");
  ASSERT_NE(mamba2.package, nullptr);
  decayrt_package *package = mamba2.package;
  // 0: every row of o, dq, dk, dv starts a cache line (streaming stores);
  // 1 and 4: none does (plain stores). Exact comparison: each param
  // gradient element sums two work items' shares (B = 2), in either order
  // the same f32 sum.
  auto aligned = runMamba2(package, 0);
  for (int64_t shift : {1, 4}) {
    SCOPED_TRACE("shift " + std::to_string(shift));
    auto shifted = runMamba2(package, shift);
    for (const auto &[name, values] : aligned) {
      SCOPED_TRACE(name);
      ASSERT_EQ(shifted[name].size(), values.size());
      for (size_t i = 0; i < values.size(); ++i)
        ASSERT_EQ(shifted[name][i], values[i]) << "element " << i;
    }
  }
}

} // namespace
