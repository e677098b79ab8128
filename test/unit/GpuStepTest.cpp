// Tests of GPU step modules in decayrt: the manifest reader, decayrt_run_cuda on the mock driver, and decayrt_run_simt on fake simt kernels that prove the state caches are staged.
#include "FakePackages.h"
#include "MockCudaDriver.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <functional>
#include <tuple>
#include <utility>
#include <string>
#include <vector>

using nlohmann::json;
using namespace decayrt::test;

namespace {

/// The step kernels of the simt modules, for the `plain` recurrence
/// (S <- 0.9 S + k v^T, o = S^T q), with the launch parameters q k v slots
/// positions state o B T H S. One block per (batch row, head), one thread
/// per key channel i (K = V = the block's threads): per token, thread i
/// updates row i of the row's slot, then, after a barrier, writes o[i].
const char *const kSimtKernels = R"C(
#include "decayrt/simt_abi.h"

#define PARAMETER(i, type) (*(type *)parameters[i])

static void step(decay_simt_thread *thread, void **parameters) {
  const float *q = PARAMETER(0, const float *), *k = PARAMETER(1, const float *);
  const float *v = PARAMETER(2, const float *);
  const int64_t *slots = PARAMETER(3, const int64_t *);
  float *state = PARAMETER(5, float *), *o = PARAMETER(6, float *);
  int64_t T = PARAMETER(8, int64_t), H = PARAMETER(9, int64_t), S = PARAMETER(10, int64_t);
  int64_t D = thread->ntid[0], i = thread->tid[0];
  int64_t b = thread->ctaid[0] / H, h = thread->ctaid[0] % H;
  if (slots[b] >= S)
    return; /* never: decayrt checks the slots */
  float *cache = state + (slots[b] * H + h) * D * D;
  for (int64_t t = 0; t < T; ++t) {
    int64_t at = ((b * T + t) * H + h) * D;
    for (int64_t j = 0; j < D; ++j)
      cache[i * D + j] = 0.9f * cache[i * D + j] + k[at + i] * v[at + j];
    thread->ops->barrier(thread);
    float sum = 0.0f;
    for (int64_t r = 0; r < D; ++r)
      sum += cache[r * D + i] * q[at + r];
    o[at + i] = sum;
    thread->ops->barrier(thread);
  }
}

void fake_step(decay_simt_thread *thread, void **parameters) { step(thread, parameters); }

/* The same, then every thread writes the same word of shared memory: a race. */
void fake_racy_step(decay_simt_thread *thread, void **parameters) {
  step(thread, parameters);
  thread->ops->shared_access(thread, thread->shared, 4, DECAY_SIMT_WRITE);
  *(volatile float *)thread->shared = 1.0f;
}
)C";

constexpr int64_t kB = 2, kT = 2, kH = 2, kD = 4, kSlots = 4;
constexpr int kParameterCount = 11;

/// The PTX and cubin of the sm_80 step module, as the mock driver reads them.
std::vector<Image> stepImages() {
  std::string functions = " functions=plain_step:" + std::to_string(kParameterCount) + "\n";
  return {{"step_ptx", "// mock ptx target=sm_80" + functions},
          {"step_cubin", "\x7f" "ELF mock cubin target=sm_80" + functions}};
}

/// Packages with the simt kernels and the step images, from one compiled template.
std::string buildStepPackage(const TempDir &dir, const json &manifest) {
  static PackageTemplate stepTemplate(imageSource(stepImages()) + kSimtKernels,
                                      "-I'" DECAYRT_INCLUDE_DIR "'");
  return stepTemplate.build(dir, manifest.dump());
}

json noBytes() { return {{"token", 0}, {"chunk", 0}, {"sequence", 0}, {"fixed", 0}}; }

/// The step module's one launch; `symbol` is its host entry point (simt) or null.
json stepLaunch(const char *symbol) {
  json launch = {{"function", "plain_step"},
                 {"parameters",
                  {"q", "k", "v", "slots", "positions", "state", "o", "B", "T", "H", "S"}},
                 {"threads", kD},
                 {"grid", {{{"dims", "BH"}, {"divide", 1}}, {{"dims", "V"}, {"divide", 64}},
                           {{"dims", ""}, {"divide", 1}}}},
                 {"dynamic_shared_bytes", 16},
                 {"static_shared_bytes", 0},
                 {"registers", 0},
                 {"spills", 0},
                 {"stack_bytes", 0}};
  if (symbol)
    launch["symbol"] = symbol;
  return launch;
}

/// A step module for K = V = kD: target sm_80 (the mock's images), or simt
/// running the host function `symbol`.
json stepModule(const std::string &target, const char *symbol = "fake_step") {
  json module = {{"entry", "step"},
                 {"target", target},
                 {"key_dim", kD},
                 {"value_dim", kD},
                 {"chunk_size", 32},
                 {"arguments", recurrenceStepArguments(false)},
                 {"workspace", noBytes()},
                 {"moves", noBytes()},
                 {"launches", {stepLaunch(target == "simt" ? symbol : nullptr)}}};
  if (target != "simt")
    for (const Image &image : stepImages()) {
      bool cubin = image.text[0] == '\x7f';
      module[cubin ? "cubin" : "ptx"] = image.symbol;
      if (cubin)
        module["cubin_size"] = image.text.size();
    }
  return module;
}

json stepManifest(const std::vector<json> &modules) {
  return {{"format", "decayc-package"},
          {"version", 1},
          {"spec", recurrenceSpec("plain", false)},
          {"kernels", modules}};
}

/// Deterministic values in [-1, 1).
std::vector<float> values(size_t count, uint32_t seed) {
  std::vector<float> out(count);
  uint32_t state = seed * 2654435761u + 12345u;
  for (float &x : out) {
    state = state * 1664525u + 1013904223u;
    x = -1.0f + 2.0f * static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
  }
  return out;
}

constexpr float kSentinel = 42.0f;

/// The tensors of one step call (B = 2 rows of T = 2 tokens, H = 2, K = V =
/// 4, 4 slots), and the results the plain recurrence gives.
struct StepCall {
  std::vector<int64_t> qShape{kB, kT, kH, kD}, rowShape{kB}, stateShape{kSlots, kH, kD, kD};
  std::vector<float> q = values(kB * kT * kH * kD, 1), k = values(kB * kT * kH * kD, 2),
                     v = values(kB * kT * kH * kD, 3), o = std::vector<float>(q.size(), kSentinel);
  std::vector<float> state = values(kSlots * kH * kD * kD, 4), state0 = state;
  std::vector<int64_t> slots{2, 0}, positions{0, 5};
  void *slotsData = slots.data(), *positionsData = positions.data(); ///< or device copies

  std::vector<decayrt_tensor> tensors() {
    return {view("q", q, qShape),
            view("k", k, qShape),
            view("v", v, qShape),
            {"slots", slotsData, DECAYRT_I64, 1, rowShape.data(), nullptr},
            {"positions", positionsData, DECAYRT_I64, 1, rowShape.data(), nullptr},
            view("state", state, stateShape),
            view("o", o, qShape)};
  }

  /// The state and outputs the call must leave, worked out token by token.
  std::pair<std::vector<float>, std::vector<float>> expected() const {
    std::vector<float> cacheAfter = state0, out(o.size());
    for (int64_t b = 0; b < kB; ++b)
      for (int64_t h = 0; h < kH; ++h) {
        float *cache = cacheAfter.data() + (slots[b] * kH + h) * kD * kD;
        for (int64_t t = 0; t < kT; ++t) {
          int64_t at = ((b * kT + t) * kH + h) * kD;
          for (int64_t i = 0; i < kD; ++i)
            for (int64_t j = 0; j < kD; ++j)
              cache[i * kD + j] = 0.9f * cache[i * kD + j] + k[at + i] * v[at + j];
          for (int64_t j = 0; j < kD; ++j) {
            float sum = 0.0f;
            for (int64_t r = 0; r < kD; ++r)
              sum += cache[r * kD + j] * q[at + r];
            out[at + j] = sum;
          }
        }
      }
    return {cacheAfter, out};
  }

  bool untouched() const {
    return state == state0 && o == std::vector<float>(o.size(), kSentinel);
  }
};

/// Whether `got` equals `expected` up to float rounding (the kernels may fuse multiply-adds).
::testing::AssertionResult near(const std::vector<float> &got, const std::vector<float> &expected) {
  if (got.size() != expected.size())
    return ::testing::AssertionFailure() << "sizes " << got.size() << " and " << expected.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (std::fabs(got[i] - expected[i]) > 1e-5f * (1.0f + std::fabs(expected[i])))
      return ::testing::AssertionFailure() << "element " << i << ": " << got[i] << " vs "
                                           << expected[i];
  return ::testing::AssertionSuccess();
}

/// Expects `status` with a one-line message holding `fragment`.
void expectError(decayrt_status got, decayrt_status expected, const std::string &fragment) {
  EXPECT_EQ(got, expected) << decayrt_status_name(got) << ": " << decayrt_last_error();
  std::string message = decayrt_last_error();
  EXPECT_TRUE(contains(message, fragment));
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

/// Fills `call` with a bad value: each case and the error it must give.
struct BadValues {
  const char *what;
  std::function<void(StepCall &)> mutate;
  std::string fragment;
};

std::vector<BadValues> badValues() {
  return {{"slot out of range", [](StepCall &c) { c.slots = {2, 9}; },
           "tensor 'slots': slots[1] = 9 is not a slot of state [4, 2, 4, 4]"},
          {"duplicate slots", [](StepCall &c) { c.slots = {3, 3}; },
           "tensor 'slots': slot 3 is used by rows 0 and 1"},
          {"negative position", [](StepCall &c) { c.positions = {0, -4}; },
           "tensor 'positions': positions[1] = -4 is negative"}};
}

decayrt_package *load(const std::string &path) {
  decayrt_package *package = nullptr;
  EXPECT_EQ(decayrt_package_load(path.c_str(), &package), DECAYRT_OK) << decayrt_last_error();
  return package;
}

} // namespace

// ---- The manifest ----

TEST(GpuStepManifest, StepModulesLoadForEveryGpuTarget) {
  TempDir dir;
  decayrt_package *package =
      load(buildStepPackage(dir, stepManifest({stepModule("sm_80"), stepModule("simt")})));
  decayrt_package_free(package);
}

TEST(GpuStepManifest, MalformedStepModulesAreRejected) {
  auto parameters = [](json &m) -> json & { return m["kernels"][0]["launches"][0]["parameters"]; };
  auto firstGrid = [](json &m) -> json & { return m["kernels"][0]["launches"][0]["grid"][0]; };
  // The module made a forward's, whose last launch parameter is the size `last`.
  auto asForward = [&](json &m, const char *last) {
    m["kernels"][0]["entry"] = "forward";
    m["kernels"][0]["arguments"] = recurrenceForwardArguments(false);
    parameters(m) = {"q", "k", "v", "h0", "seqs", "o", "ht", last};
  };
  std::vector<std::tuple<const char *, std::string, std::function<void(json &)>>> cases = {
      {"without state", "kernels[0].arguments: a step kernel takes the inout state cache 'state'",
       [&](json &m) {
         m["kernels"][0]["arguments"].erase(5);
         parameters(m).erase(5);
       }},
      {"unknown size", "kernels[0].launches[0].parameters[10]: 'Q' is neither an argument, the "
                       "workspace nor one of B, T, H, K, V, N, S",
       [&](json &m) { parameters(m)[10] = "Q"; }},
      {"N parameter", "kernels[0].launches[0].parameters[10]: a step module has no sequences (N)",
       [&](json &m) { parameters(m)[10] = "N"; }},
      {"N grid", "kernels[0].launches[0].grid[0].dims: a step module has no sequences (N)",
       [&](json &m) { firstGrid(m)["dims"] = "NH"; }},
      {"argument called S",
       "kernels[0].arguments[1].name: 'S' names a launch parameter of its own in a GPU module",
       [&](json &m) { m["kernels"][0]["arguments"][1]["name"] = "S"; }},
      {"S in a forward",
       "kernels[0].launches[0].parameters[7]: S (the state slots) is a size of step modules only",
       [&](json &m) { asForward(m, "S"); }},
      {"S grid in a forward",
       "kernels[0].launches[0].grid[0].dims: S (the state slots) is a size of step modules only",
       [&](json &m) {
         asForward(m, "N");
         firstGrid(m)["dims"] = "SH";
       }},
  };
  TempDir dir;
  for (const auto &[what, fragment, mutate] : cases) {
    SCOPED_TRACE(what);
    json manifest = stepManifest({stepModule("simt")});
    mutate(manifest);
    expectLoadFailure(buildStepPackage(dir, manifest), fragment);
  }
}

// ---- decayrt_run_cuda on the mock driver ----

/// Loads a package with the sm_80 step module through the mock driver.
class CudaStep : public ::testing::Test {
protected:
  void SetUp() override {
    MockDriver::get().reset();
    package = load(buildStepPackage(directory, stepManifest({stepModule("sm_80")})));
    ASSERT_NE(package, nullptr);
  }
  void TearDown() override {
    for (void *device : deviceMemory)
      EXPECT_EQ(decayrt_cuda_free(device), DECAYRT_OK);
    decayrt_package_free(package);
    EXPECT_EQ(MockDriver::get().liveAllocations(), 0) << "device memory leaked";
  }

  /// Copies the call's slots and positions to device memory, which the call then passes.
  void moveIndicesToDevice(StepCall &call) {
    for (auto [host, data] : {std::pair{&call.slots, &call.slotsData},
                              std::pair{&call.positions, &call.positionsData}}) {
      size_t bytes = host->size() * sizeof(int64_t);
      void *device = nullptr;
      ASSERT_EQ(decayrt_cuda_alloc(bytes, &device), DECAYRT_OK) << decayrt_last_error();
      ASSERT_EQ(decayrt_cuda_copy_to_device(device, host->data(), bytes), DECAYRT_OK);
      deviceMemory.push_back(device);
      *data = device;
    }
  }

  decayrt_status run(StepCall &call) {
    std::vector<decayrt_tensor> tensors = call.tensors();
    return decayrt_run_cuda(package, "step", tensors.data(), tensors.size(), nullptr, nullptr, 0);
  }

  TempDir directory;
  decayrt_package *package = nullptr;
  std::vector<void *> deviceMemory;
};

TEST_F(CudaStep, LaunchesOnTheCallersBuffersWithTheSlotsReadFromTheDevice) {
  StepCall call;
  moveIndicesToDevice(call);
  std::vector<decayrt_tensor> tensors = call.tensors();
  size_t bytes = 1;
  ASSERT_EQ(decayrt_cuda_workspace_bytes(package, "step", tensors.data(), tensors.size(), nullptr,
                                         &bytes),
            DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_EQ(bytes, 0u); // no module scratch, no sequence table
  EXPECT_EQ(MockDriver::get().synchronizations(), 2); // slots and positions copied back
  ASSERT_EQ(run(call), DECAYRT_OK) << decayrt_last_error();
  EXPECT_EQ(MockDriver::get().synchronizations(), 4);
  std::vector<MockLaunch> launches = MockDriver::get().launches();
  ASSERT_EQ(launches.size(), 1u);
  const MockLaunch &launch = launches[0];
  EXPECT_STREQ(launch.function, "plain_step");
  EXPECT_EQ(std::vector<unsigned>(launch.grid, launch.grid + 3),
            (std::vector<unsigned>{kB * kH, 1, 1}));
  EXPECT_EQ(launch.block[0], static_cast<unsigned>(kD));
  EXPECT_EQ(launch.sharedBytes, 16u);
  ASSERT_EQ(launch.parameterCount, kParameterCount);
  auto address = [](const void *data) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(data)); };
  std::vector<uint64_t> expected = {address(call.q.data()),     address(call.k.data()),
                                    address(call.v.data()),     address(call.slotsData),
                                    address(call.positionsData), address(call.state.data()),
                                    address(call.o.data()),     kB,
                                    kT,                          kH,
                                    kSlots};
  EXPECT_EQ(std::vector<uint64_t>(launch.parameters, launch.parameters + kParameterCount),
            expected);
  // Nothing but the launch: no workspace to fill, the caches updated in place.
  EXPECT_TRUE(MockDriver::get().writes().empty());
  EXPECT_TRUE(call.untouched()); // the mock runs no kernel
}

// The kernel reads slots and positions on the device: host memory would
// fault there, so it is refused before anything runs.
TEST_F(CudaStep, HostSlotsAreRefused) {
  StepCall call;
  expectError(run(call), DECAYRT_ERROR_INVALID_ARGUMENT,
              "tensor 'slots' is in host memory, but the GPU step module reads it on the device");
  EXPECT_TRUE(MockDriver::get().launches().empty());
  EXPECT_TRUE(MockDriver::get().writes().empty());
}

TEST_F(CudaStep, BadSlotsInDeviceMemoryAreRefusedBeforeAnything) {
  for (const BadValues &bad : badValues()) {
    SCOPED_TRACE(bad.what);
    MockDriver::get().reset();
    StepCall call;
    bad.mutate(call);
    moveIndicesToDevice(call);
    expectError(run(call), DECAYRT_ERROR_INVALID_ARGUMENT, bad.fragment);
    EXPECT_TRUE(MockDriver::get().launches().empty());
    EXPECT_TRUE(MockDriver::get().writes().empty());
  }
}

// ---- decayrt_run_simt ----

/// Runs a simt step module whose launch runs the host function `symbol`.
class SimtStep : public ::testing::Test {
protected:
  decayrt_status run(const char *symbol, StepCall &call, int ignoreRaces = 0) {
    decayrt_package *package =
        load(buildStepPackage(directory, stepManifest({stepModule("simt", symbol)})));
    std::vector<decayrt_tensor> tensors = call.tensors();
    decayrt_simt_options options{};
    options.ignore_races = ignoreRaces;
    decayrt_status status =
        decayrt_run_simt(package, "step", tensors.data(), tensors.size(), &options);
    lastMessage = decayrt_last_error();
    decayrt_package_free(package);
    return status;
  }

  TempDir directory;
  std::string lastMessage; ///< decayrt_last_error of the last run
};

TEST_F(SimtStep, AdvancesTheRowsSlotsInPlace) {
  StepCall call;
  auto [state, o] = call.expected();
  ASSERT_EQ(run("fake_step", call), DECAYRT_OK) << lastMessage;
  EXPECT_TRUE(near(call.state, state));
  EXPECT_TRUE(near(call.o, o));
  EXPECT_NE(call.state, call.state0);
  int64_t perSlot = kH * kD * kD;
  for (int64_t slot : {1, 3}) // slots of no row are untouched
    EXPECT_TRUE(std::equal(call.state0.begin() + slot * perSlot,
                           call.state0.begin() + (slot + 1) * perSlot,
                           call.state.begin() + slot * perSlot));
}

TEST_F(SimtStep, FailingLaunchLeavesTheStateUntouched) {
  StepCall call;
  EXPECT_EQ(run("fake_racy_step", call), DECAYRT_ERROR_SIMT_RACE) << lastMessage;
  EXPECT_TRUE(contains(lastMessage, "plain_step"));
  EXPECT_TRUE(call.untouched());
  // The same kernel with races ignored succeeds, and its update is delivered.
  auto [state, o] = call.expected();
  ASSERT_EQ(run("fake_racy_step", call, /*ignoreRaces=*/1), DECAYRT_OK) << lastMessage;
  EXPECT_TRUE(near(call.state, state));
  EXPECT_TRUE(near(call.o, o));
}

TEST_F(SimtStep, BadSlotsAreRefusedBeforeAnyLaunch) {
  for (const BadValues &bad : badValues()) {
    SCOPED_TRACE(bad.what);
    StepCall call;
    bad.mutate(call);
    EXPECT_EQ(run("fake_step", call), DECAYRT_ERROR_INVALID_ARGUMENT) << lastMessage;
    EXPECT_TRUE(contains(lastMessage, bad.fragment));
    EXPECT_TRUE(call.untouched());
  }
}
