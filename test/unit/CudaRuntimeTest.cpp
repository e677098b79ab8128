// Unit tests of decayrt's CUDA back end on a mock driver (MockCudaDriver.c) and fake GPU packages: selection, launches, workspace, errors.
#include "FakePackages.h"
#include "MockCudaDriver.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

using nlohmann::json;
using namespace decayrt::test;

namespace {

// ---- Fake GPU packages ----

const std::string kFunctions = " functions=fwd:12,fwd_tail:5,bwd:14,huge:1\n";

std::vector<Image> images() {
  std::string elf = "\x7f" "ELF mock cubin ";
  return {{"ptx_sm80", "// mock ptx target=sm_80" + kFunctions},
          {"cubin_sm80", elf + "target=sm_80" + kFunctions},
          {"ptx_sm90", "// mock ptx target=sm_90" + kFunctions},
          {"cubin_sm90", elf + "target=sm_90" + kFunctions},
          {"ptx_sm90_jit_fails", "// mock ptx target=sm_90 jit-fail" + kFunctions},
          {"cubin_for_sm86", elf + "target=sm_86" + kFunctions},
          {"cubin_without_functions", elf + "target=sm_80 functions=other:1\n"},
          {"not_elf", "not an ELF image"}};
}

/// The size of the image `symbol` (its text, without the C string's NUL).
int64_t imageSize(const std::string &symbol) {
  for (const Image &image : images())
    if (symbol == image.symbol)
      return static_cast<int64_t>(image.text.size());
  ADD_FAILURE() << "no image " << symbol;
  return 0;
}

/// Builds packages from one compiled template holding every image.
std::string buildGpuPackage(const TempDir &dir, const json &manifest) {
  static PackageTemplate gpuTemplate(imageSource(images()));
  return gpuTemplate.build(dir, manifest.dump());
}

json sizeModel(int64_t token, int64_t chunk, int64_t sequence, int64_t fixed) {
  return {{"token", token}, {"chunk", chunk}, {"sequence", sequence}, {"fixed", fixed}};
}

json gridDim(const char *dims, int64_t divide) { return {{"dims", dims}, {"divide", divide}}; }

json launch(const char *function, json parameters, int64_t threads, json grid,
            int64_t dynamicShared) {
  return {{"function", function},         {"parameters", parameters},
          {"threads", threads},           {"grid", grid},
          {"dynamic_shared_bytes", dynamicShared}, {"static_shared_bytes", 1024},
          {"registers", 156},             {"spills", 0},
          {"stack_bytes", 0}};
}

/// The forward's launches: `fwd` over (N*H, V/4) with 62464 bytes of dynamic
/// shared memory (above 48 KiB: an opt-in), then `fwd_tail` over B*T/3 with
/// 49152 (48 KiB, but 1024 static bytes more: an opt-in too).
json forwardLaunches() {
  return {launch("fwd",
                 {"q", "v", "h0", "seqs", "dt", "A", "scan_z_h0", "o", "ht", "scan_z_ht",
                  "workspace", "N"},
                 128, {gridDim("NH", 1), gridDim("V", 4), gridDim("", 1)}, 62464),
          launch("fwd_tail", {"ht", "T", "H", "K", "V"}, 64, {gridDim("BT", 3)}, 49152)};
}

json backwardLaunches() {
  return {launch("bwd",
                 {"q", "v", "h0", "seqs", "dt", "A", "do", "dq", "dv", "dh0", "ddt", "dA",
                  "workspace", "B"},
                 256, {gridDim("NH", 1)}, 0)};
}

/// A GPU module item of the manifest.
json gpuModule(const char *entry, const char *target, int64_t K, int64_t V, const char *ptx,
               const char *cubin, json workspace) {
  bool forward = std::string(entry) == "forward";
  return {{"entry", entry},
          {"target", target},
          {"key_dim", K},
          {"value_dim", V},
          {"arguments", forward ? gatedForwardArguments() : gatedBackwardArguments()},
          {"ptx", ptx},
          {"cubin", cubin},
          {"cubin_size", imageSize(cubin)},
          {"workspace", workspace},
          {"moves", sizeModel(24, 96, 512, 0)},
          {"launches", forward ? forwardLaunches() : backwardLaunches()}};
}

/// The module workspaces: sm_90's is larger, so decayrt_cuda_workspace_bytes
/// (the largest over the targets) exceeds what sm_80 needs.
json sm80Workspace() { return sizeModel(8, 64, 16, 100); }
json sm90Workspace() { return sizeModel(16, 64, 16, 100); }

/// The package of the tests: forward modules for sm_80 and sm_90 at K=4, V=6
/// and for sm_80 at K=8, V=8; a backward module for sm_80 at K=4, V=6.
json gatedManifest() {
  json kernels = {
      gpuModule("forward", "sm_80", 4, 6, "ptx_sm80", "cubin_sm80", sm80Workspace()),
      gpuModule("forward", "sm_90", 4, 6, "ptx_sm90", "cubin_sm90", sm90Workspace()),
      gpuModule("forward", "sm_80", 8, 8, "ptx_sm80", "cubin_sm80", sm80Workspace()),
      gpuModule("backward", "sm_80", 4, 6, "ptx_sm80", "cubin_sm80", sm80Workspace())};
  return {{"format", "decayc-package"}, {"version", 1}, {"spec", gatedSpec(16)}, {"kernels", kernels}};
}

// ---- Calls ----

/// The tensors of one call (B=2, T=5, H=3, K=4, V=6 by default) in host
/// memory, which the mock takes for device memory. Outputs hold sentinels.
struct GatedCall {
  int64_t B, T, H = 3, K, V, N;
  std::vector<int64_t> qShape, vShape, hShape, tokenShape, headShape, scanShape;
  std::vector<float> q, k, v, dt, A, o, ht, scanHt, dOut, dq, dk, dv, dh0, ddt, dA, dScanH0;

  explicit GatedCall(int64_t b = 2, int64_t t = 5, int64_t n = -1, int64_t k = 4, int64_t vDim = 6)
      : B(b), T(t), K(k), V(vDim), N(n < 0 ? b : n), qShape{B, T, H, K}, vShape{B, T, H, V},
        hShape{N, H, K, V}, tokenShape{B, T, H}, headShape{H}, scanShape{N, H},
        q(B * T * H * K, 1.0f), k(B * T * H * K, 2.0f), v(B * T * H * V, 3.0f),
        dt(B * T * H, 0.5f), A(H, -1.0f), o(B * T * H * V, kSentinel),
        ht(N * H * K * V, kSentinel), scanHt(N * H, kSentinel), dOut(B * T * H * V, 1.0f),
        dq(B * T * H * K, kSentinel), dk(B * T * H * K, kSentinel), dv(B * T * H * V, kSentinel),
        dh0(N * H * K * V, kSentinel), ddt(B * T * H, kSentinel), dA(H, kSentinel),
        dScanH0(N * H, kSentinel) {}
  GatedCall(const GatedCall &) = delete;

  static constexpr float kSentinel = 42.0f;

  std::vector<decayrt_tensor> forward() {
    return {view("q", q, qShape),       view("v", v, vShape),   view("dt", dt, tokenShape),
            view("A", A, headShape),    view("o", o, vShape),   view("ht", ht, hShape),
            view("scan_z_ht", scanHt, scanShape)};
  }
  std::vector<decayrt_tensor> backward() {
    return {view("q", q, qShape),           view("v", v, vShape),       view("dt", dt, tokenShape),
            view("A", A, headShape),        view("do", dOut, vShape),   view("dq", dq, qShape),
            view("dk", dk, qShape),         view("dv", dv, vShape),     view("dh0", dh0, hShape),
            view("ddt", ddt, tokenShape),   view("dA", dA, headShape),
            view("dscan_z_h0", dScanH0, scanShape)};
  }

  bool forwardOutputsUntouched() const {
    for (const std::vector<float> *output : {&o, &ht, &scanHt})
      for (float x : *output)
        if (x != kSentinel)
          return false;
    return true;
  }
};

uint64_t address(const void *data) { return reinterpret_cast<uintptr_t>(data); }

/// Device memory the caller owns, aligned to 256 bytes and filled with 0xCD.
struct CallerWorkspace {
  std::vector<unsigned char> storage;
  unsigned char *data;
  explicit CallerWorkspace(size_t bytes) : storage(bytes + 256, 0xCD) {
    data = storage.data() + (256 - address(storage.data()) % 256) % 256;
  }
};

/// The workspace layout of the default forward call (B=2, T=5, H=3, K=4,
/// V=6, N=2; one chunk of 16 per sequence), worked out by hand for sm_80's
/// model {token 8, chunk 64, sequence 16, fixed 100}:
///   module  8*30 + 64*(3*2) + 16*(2*3) + 100 = 240 + 384 + 96 + 100 = 820 bytes at 0
///   seqs    2 rows * 24 = 48 bytes at 1024 (820 aligned to 256)
///   h0      zeros, 2*3*4*6 floats = 576 bytes at 1280 (1072 aligned)
///   scan_z_h0  init -0.5, 2*3 floats = 24 bytes at 2048 (1856 aligned)
///   k       unused: scratch of 2*5*3*4 floats = 480 bytes at 2304 (2072 aligned)
///   total   2784
constexpr uint64_t kSeqsOffset = 1024, kH0Offset = 1280, kScanOffset = 2048, kScratchOffset = 2304,
                   kForwardTotal = 2784;
/// sm_90's module {token 16, ...} needs 480 + 384 + 96 + 100 = 1060 bytes: the
/// regions after it start at 1280, 1536, 2304 and 2560; total 3040.
constexpr uint64_t kForwardLargestTotal = 3040;

// ---- Fixture ----

/// Loads the gated package through the mock driver (capability 8.0 unless set).
class CudaMock : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    MockDriver::get();
    packageDir = new TempDir;
    packagePath = new std::string(buildGpuPackage(*packageDir, gatedManifest()));
  }
  static void TearDownTestSuite() {
    delete packagePath;
    delete packageDir;
  }

  void SetUp() override {
    mock().reset();
    ASSERT_FALSE(packagePath->empty());
    ASSERT_EQ(decayrt_package_load(packagePath->c_str(), &package), DECAYRT_OK)
        << decayrt_last_error();
  }
  void TearDown() override {
    decayrt_package_free(package);
    EXPECT_EQ(mock().liveAllocations(), 0) << "device memory leaked";
  }

  static MockDriver &mock() { return MockDriver::get(); }

  decayrt_status runForward(GatedCall &call, void *workspace = nullptr, size_t bytes = 0,
                            void *stream = nullptr) {
    std::vector<decayrt_tensor> tensors = call.forward();
    return decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), stream, workspace,
                            bytes);
  }

  /// Expects a failure of `status` whose message holds `fragment`, with
  /// nothing written and nothing launched.
  void expectRejected(GatedCall &call, decayrt_status status, const std::string &fragment,
                      void *workspace = nullptr, size_t bytes = 0) {
    EXPECT_EQ(runForward(call, workspace, bytes), status) << decayrt_last_error();
    std::string message = decayrt_last_error();
    EXPECT_TRUE(contains(message, fragment));
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_TRUE(mock().writes().empty());
    EXPECT_TRUE(mock().launches().empty());
    EXPECT_TRUE(call.forwardOutputsUntouched());
  }

  static TempDir *packageDir;
  static std::string *packagePath;
  decayrt_package *package = nullptr;
};

TempDir *CudaMock::packageDir = nullptr;
std::string *CudaMock::packagePath = nullptr;

/// Runs `check` in a fresh process (a death test re-executing this binary),
/// where decayrt has not loaded a driver yet; `check` prints its findings to
/// stderr and returns whether they are right.
template <typename Check> void inFreshProcess(Check check, const char *expectedOutput) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(check() ? 0 : 1), ::testing::ExitedWithCode(0), expectedOutput);
}

/// decayrt_cuda_available's status and message, printed to stderr.
bool availabilityIs(decayrt_status expected) {
  decayrt_status status = decayrt_cuda_available();
  std::fprintf(stderr, "%s: %s\n", decayrt_status_name(status), decayrt_last_error());
  return status == expected;
}

} // namespace

// ---- Without a usable driver ----

TEST(CudaNoDriver, MissingLibraryIsReportedByEveryCall) {
  inFreshProcess(
      [] {
        setenv("DECAYRT_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
        bool ok = availabilityIs(DECAYRT_ERROR_NO_CUDA_DRIVER);
        // A GPU package still loads, and its CUDA run fails the same way.
        TempDir dir;
        decayrt_package *package = nullptr;
        ok &= decayrt_package_load(buildGpuPackage(dir, gatedManifest()).c_str(), &package) ==
              DECAYRT_OK;
        GatedCall call;
        std::vector<decayrt_tensor> tensors = call.forward();
        ok &= decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), nullptr, nullptr,
                               0) == DECAYRT_ERROR_NO_CUDA_DRIVER;
        std::fprintf(stderr, "run: %s\n", decayrt_last_error());
        void *memory = nullptr;
        ok &= decayrt_cuda_alloc(16, &memory) == DECAYRT_ERROR_NO_CUDA_DRIVER && !memory;
        // The workspace needs no driver (no device cu_seqlens without one).
        size_t bytes = 0;
        ok &= decayrt_cuda_workspace_bytes(package, "forward", tensors.data(), tensors.size(),
                                           nullptr, &bytes) == DECAYRT_OK &&
              bytes == kForwardLargestTotal;
        decayrt_package_free(package);
        return ok && call.forwardOutputsUntouched();
      },
      "ERROR_NO_CUDA_DRIVER: no CUDA driver: /nonexistent/libcuda.so.1: cannot open shared "
      "object file(.|\n)*run: no CUDA driver: /nonexistent");
}

TEST(CudaNoDriver, LibraryWithoutTheDriverApi) {
  inFreshProcess(
      [] {
        setenv("DECAYRT_CUDA_DRIVER", "libm.so.6", 1);
        return availabilityIs(DECAYRT_ERROR_NO_CUDA_DRIVER);
      },
      "no CUDA driver: 'libm.so.6' does not export cuGetErrorName");
}

/// Expects decayrt_cuda_available to fail with DECAYRT_ERROR_NO_DEVICE and
/// `output` in a fresh process on the mock driver with `variable` = `value`.
void expectNoDevice(const char *variable, const char *value, const char *output) {
  inFreshProcess(
      [&] {
        setenv("DECAYRT_CUDA_DRIVER", DECAY_MOCK_CUDA_DRIVER, 1);
        setenv(variable, value, 1);
        return availabilityIs(DECAYRT_ERROR_NO_DEVICE);
      },
      output);
}

TEST(CudaNoDriver, NoDevice) {
  expectNoDevice("MOCK_CUDA_DEVICES", "0",
                 "ERROR_NO_DEVICE: no CUDA device: the driver reports none");
}

TEST(CudaNoDriver, FailingInit) {
  expectNoDevice("MOCK_CUDA_INIT_RESULT", "100",
                 "no CUDA device: cuInit failed: CUDA_ERROR_NO_DEVICE \\(mock description, code "
                 "100\\)");
}

TEST(CudaStatus, NamesOfTheNewStatuses) {
  EXPECT_STREQ(decayrt_status_name(DECAYRT_ERROR_NO_CUDA_DRIVER), "ERROR_NO_CUDA_DRIVER");
  EXPECT_STREQ(decayrt_status_name(DECAYRT_ERROR_NO_DEVICE), "ERROR_NO_DEVICE");
  EXPECT_STREQ(decayrt_status_name(DECAYRT_ERROR_CUDA), "ERROR_CUDA");
  // Appended: the earlier values keep their numbers.
  EXPECT_EQ(DECAYRT_ERROR_OUT_OF_MEMORY, 10);
  EXPECT_EQ(DECAYRT_ERROR_NO_CUDA_DRIVER, 11);
  EXPECT_EQ(DECAYRT_ERROR_CUDA, 13);
}

// ---- Manifests with GPU modules ----

/// Manifests broken one GPU field at a time, each with what the error must say.
std::vector<std::pair<json, std::string>> brokenGpuManifests() {
  std::vector<std::pair<json, std::string>> cases;
  auto mutate = [&](const std::string &fragment, const std::function<void(json &)> &change) {
    json manifest = gatedManifest();
    change(manifest);
    cases.push_back({manifest, fragment});
  };
  auto module = [](json &m) -> json & { return m["kernels"][0]; };
  auto firstLaunch = [](json &m) -> json & { return m["kernels"][0]["launches"][0]; };
  mutate("kernels[0].target: unknown target 'gpu' (expected cpu, sm_XY or simt)",
         [&](json &m) { module(m)["target"] = "gpu"; });
  mutate("kernels[0].target: unknown target 'sm_8'", [&](json &m) { module(m)["target"] = "sm_8"; });
  mutate("kernels[0].key_dim: missing", [&](json &m) { module(m).erase("key_dim"); });
  mutate("kernels[0].value_dim: expected an integer >= 1", [&](json &m) { module(m)["value_dim"] = 0; });
  mutate("kernels[0].ptx: expected a non-empty string", [&](json &m) { module(m)["ptx"] = 3; });
  mutate("kernels[0].cubin_size: expected an integer >= 1", [&](json &m) { module(m)["cubin_size"] = -4; });
  mutate("kernels[0].workspace: expected an object", [&](json &m) { module(m)["workspace"] = 0; });
  mutate("kernels[0].moves.fixed: missing", [&](json &m) { module(m)["moves"].erase("fixed"); });
  mutate("kernels[0].workspace.token: expected an integer >= 0",
         [&](json &m) { module(m)["workspace"]["token"] = -1; });
  mutate("kernels[0].launches: a GPU module needs at least one launch",
         [&](json &m) { module(m)["launches"] = json::array(); });
  mutate("kernels[0].launches[0].function: 'f-1' is not a function name",
         [&](json &m) { firstLaunch(m)["function"] = "f-1"; });
  mutate("kernels[0].launches[0].threads: expected an integer in [1, 1024]",
         [&](json &m) { firstLaunch(m)["threads"] = 2048; });
  mutate("kernels[0].launches[0].grid: expected 1 to 3 dimensions, got 4", [&](json &m) {
    firstLaunch(m)["grid"] = {gridDim("N", 1), gridDim("H", 1), gridDim("", 1), gridDim("", 1)};
  });
  mutate("kernels[0].launches[0].grid[1].dims: 'VX' is not made of the letters B, T, H, K, V, N, S",
         [&](json &m) { firstLaunch(m)["grid"][1]["dims"] = "VX"; });
  mutate("kernels[0].launches[0].grid[1].divide: expected an integer >= 1",
         [&](json &m) { firstLaunch(m)["grid"][1]["divide"] = 0; });
  mutate("kernels[0].launches[0].registers: expected an integer >= 0",
         [&](json &m) { firstLaunch(m)["registers"] = -1; });
  mutate("kernels[0].launches[0].spills: missing", [&](json &m) { firstLaunch(m).erase("spills"); });
  mutate("kernels[0].launches[0].parameters[1]: 'w' is neither an argument, the workspace nor one "
         "of B, T, H, K, V, N, S",
         [&](json &m) { firstLaunch(m)["parameters"][1] = "w"; });
  mutate("kernels[0].launches[0].parameters[1]: parameter 'q' is listed twice",
         [&](json &m) { firstLaunch(m)["parameters"][1] = "q"; });
  mutate("kernels[0].launches[0].parameters[0]: expected a non-empty string",
         [&](json &m) { firstLaunch(m)["parameters"][0] = ""; });
  mutate("kernels[0].arguments[5].name: 'N' names a launch parameter of its own in a GPU module",
         [&](json &m) {
           for (json *item : {&m["kernels"][0], &m["kernels"][1], &m["kernels"][2]})
             (*item)["arguments"][5]["name"] = "N";
         });
  mutate("kernels[1].arguments: differ from those of kernels[0], the same entry",
         [&](json &m) { m["kernels"][1]["arguments"][3].erase("optional"); });
  mutate("kernels[2]: a second forward kernel for target sm_80 with K = 4, V = 6", [&](json &m) {
    m["kernels"][2]["key_dim"] = 4;
    m["kernels"][2]["value_dim"] = 6;
  });
  mutate("missing PTX symbol 'ptx_absent' of the forward entry (sm_80)",
         [&](json &m) { module(m)["ptx"] = "ptx_absent"; });
  mutate("missing cubin symbol 'cubin_absent'", [&](json &m) { module(m)["cubin"] = "cubin_absent"; });
  mutate("cubin not_elf is not an ELF image", [&](json &m) {
    module(m)["cubin"] = "not_elf";
    module(m)["cubin_size"] = imageSize("not_elf");
  });
  mutate("the manifest says cubin_size 100000",
         [&](json &m) { module(m)["cubin_size"] = 100000; });
  // A simt module: no PTX or cubin, a host symbol per launch.
  auto asSimt = [&](json &m) {
    for (json *item : {&m["kernels"][0], &m["kernels"][1], &m["kernels"][2]}) {
      (*item)["target"] = "simt";
      for (const char *key : {"ptx", "cubin", "cubin_size"})
        item->erase(key);
      for (json &launch : (*item)["launches"])
        launch["symbol"] = "absent_simt_launch";
    }
    m["kernels"][1]["key_dim"] = 5; // sm_80 and sm_90 modules become simt ones of other head dims
    m["kernels"][2]["key_dim"] = 7;
  };
  mutate("kernels[0].launches[0].symbol: missing", [&](json &m) {
    asSimt(m);
    firstLaunch(m).erase("symbol");
  });
  mutate("kernels[0].launches[0].symbol: 'a b' is not a symbol name", [&](json &m) {
    asSimt(m);
    firstLaunch(m)["symbol"] = "a b";
  });
  mutate("missing simt launch symbol 'absent_simt_launch' of the forward entry (simt)",
         [&](json &m) { asSimt(m); });
  return cases;
}

TEST(CudaManifest, MalformedGpuModulesAreRejected) {
  TempDir dir;
  for (const auto &[manifest, fragment] : brokenGpuManifests()) {
    SCOPED_TRACE(fragment);
    expectLoadFailure(buildGpuPackage(dir, manifest), fragment);
  }
}

TEST(CudaManifest, CpuKernelsBesideGpuModules) {
  TempDir dir;
  json manifest = gatedManifest();
  // A CPU kernel of the forward next to its GPU modules is read and resolved
  // like any CPU kernel (this template exports no kernel function).
  manifest["kernels"].push_back({{"entry", "forward"},
                                 {"target", "cpu"},
                                 {"symbol", "absent_cpu_kernel"},
                                 {"cpu", "native"},
                                 {"threads", "openmp"},
                                 {"arguments", gatedForwardArguments()}});
  expectLoadFailure(buildGpuPackage(dir, manifest), "missing kernel symbol 'absent_cpu_kernel'");
  // Without it, the CPU path says there is no CPU kernel.
  decayrt::Package package;
  ASSERT_EQ(package.load(buildGpuPackage(dir, gatedManifest())), DECAYRT_OK) << decayrt::lastError();
  GatedCall call;
  EXPECT_EQ(package.run("forward", call.forward()), DECAYRT_ERROR_UNSUPPORTED);
  EXPECT_TRUE(contains(decayrt::lastError(), "has no cpu kernel for the forward entry"));
}

// ---- Choosing the module ----

TEST_F(CudaMock, ModuleByComputeCapability) {
  // The exact target's cubin, else the PTX of the highest target below.
  struct Case {
    int major, minor;
    int cubin, target;
  };
  for (const Case &c : {Case{8, 0, 1, 80}, Case{9, 0, 1, 90}, Case{8, 6, 0, 80}, Case{8, 9, 0, 80},
                        Case{10, 0, 0, 90}, Case{12, 0, 0, 90}}) {
    SCOPED_TRACE(c.major * 10 + c.minor);
    decayrt_package_free(package); // a fresh module cache
    ASSERT_EQ(decayrt_package_load(packagePath->c_str(), &package), DECAYRT_OK);
    mock().reset();
    mock().setCapability(c.major, c.minor);
    GatedCall call;
    ASSERT_EQ(runForward(call), DECAYRT_OK) << decayrt_last_error();
    std::vector<MockLoad> loads = mock().loads();
    ASSERT_EQ(loads.size(), 1u);
    EXPECT_EQ(loads[0].cubin, c.cubin);
    EXPECT_EQ(loads[0].target, c.target);
  }
}

TEST_F(CudaMock, OlderDeviceIsUnsupported) {
  mock().setCapability(7, 5);
  GatedCall call;
  expectRejected(call, DECAYRT_ERROR_UNSUPPORTED,
                 "the forward modules of @gated for K = 4, V = 6 target sm_80, sm_90, none of "
                 "which runs on a device of compute capability 7.5");
}

TEST_F(CudaMock, HeadDimsWithoutModuleAreUnsupported) {
  GatedCall call(2, 5, -1, /*k=*/5, /*v=*/6);
  expectRejected(call, DECAYRT_ERROR_UNSUPPORTED,
                 "package @gated has no GPU forward kernel for K = 5, V = 6: its modules are "
                 "compiled for (K, V) = (4, 6), (8, 8)");
  // The other head dims have their own module.
  GatedCall wide(2, 5, -1, 8, 8);
  EXPECT_EQ(runForward(wide), DECAYRT_OK) << decayrt_last_error();
}

TEST_F(CudaMock, FallsBackWhenAnImageDoesNotLoad) {
  TempDir dir;
  json manifest = gatedManifest();
  // sm_90: a cubin for another chip and PTX the driver cannot compile.
  manifest["kernels"][1]["cubin"] = "cubin_for_sm86";
  manifest["kernels"][1]["cubin_size"] = imageSize("cubin_for_sm86");
  manifest["kernels"][1]["ptx"] = "ptx_sm90_jit_fails";
  std::string path = buildGpuPackage(dir, manifest);
  for (int major : {9, 10}) {
    SCOPED_TRACE(major);
    decayrt::Package fallback; // its own module cache
    ASSERT_EQ(fallback.load(path), DECAYRT_OK) << decayrt::lastError();
    mock().reset();
    mock().setCapability(major, 0);
    GatedCall call;
    ASSERT_EQ(fallback.runCuda("forward", call.forward()), DECAYRT_OK) << decayrt::lastError();
    std::vector<MockLoad> loads = mock().loads();
    ASSERT_EQ(loads.size(), 1u);
    EXPECT_EQ(loads[0].cubin, 0); // sm_80's PTX
    EXPECT_EQ(loads[0].target, 80);
  }
  // Without sm_80, nothing loads: UNSUPPORTED with every attempt and the JIT's first log line.
  manifest["kernels"].erase(0);
  decayrt::Package broken;
  ASSERT_EQ(broken.load(buildGpuPackage(dir, manifest)), DECAYRT_OK) << decayrt::lastError();
  mock().reset();
  mock().setCapability(9, 0);
  GatedCall call;
  EXPECT_EQ(broken.runCuda("forward", call.forward()), DECAYRT_ERROR_UNSUPPORTED);
  std::string message = decayrt::lastError();
  EXPECT_TRUE(contains(message, "target sm_90, and none loads on this device of compute capability 9.0; "
                                "sm_90 cubin: cuModuleLoadDataEx failed: CUDA_ERROR_NO_BINARY_FOR_GPU"));
  EXPECT_TRUE(contains(message, "; sm_90 PTX: cuModuleLoadDataEx failed: "
                                "CUDA_ERROR_UNSUPPORTED_PTX_VERSION (mock description, code 222): "
                                "ptxas fatal   : Unsupported .version 9.9"));
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_TRUE(call.forwardOutputsUntouched());
}

TEST_F(CudaMock, EntryWithoutGpuModuleIsUnsupported) {
  TempDir dir;
  json manifest = gatedManifest();
  manifest["kernels"].erase(3);
  decayrt::Package forwardOnly;
  ASSERT_EQ(forwardOnly.load(buildGpuPackage(dir, manifest)), DECAYRT_OK);
  GatedCall call;
  EXPECT_EQ(forwardOnly.runCuda("backward", call.backward()), DECAYRT_ERROR_UNSUPPORTED);
  EXPECT_STREQ(decayrt::lastError(), "package @gated has no GPU kernel for the backward entry");
  EXPECT_EQ(forwardOnly.runCuda("sideways", call.backward()), DECAYRT_ERROR_INVALID_ARGUMENT);
}

// ---- Launches: grids, parameters, shared memory ----

TEST_F(CudaMock, LaunchesWithTheManifestsGridsAndParameters) {
  GatedCall call;
  CallerWorkspace workspace(kForwardTotal);
  int streamTag = 0;
  void *stream = &streamTag;
  ASSERT_EQ(runForward(call, workspace.data, kForwardTotal, stream), DECAYRT_OK)
      << decayrt_last_error();
  std::vector<MockLaunch> launches = mock().launches();
  ASSERT_EQ(launches.size(), 2u);
  uint64_t base = address(workspace.data);

  // fwd: grid (N*H, ceil(V/4), 1) = (6, 2, 1), 128 threads, 62464 bytes.
  const MockLaunch &fwd = launches[0];
  EXPECT_STREQ(fwd.function, "fwd");
  EXPECT_EQ(std::vector<unsigned>(fwd.grid, fwd.grid + 3), (std::vector<unsigned>{6, 2, 1}));
  EXPECT_EQ(std::vector<unsigned>(fwd.block, fwd.block + 3), (std::vector<unsigned>{128, 1, 1}));
  EXPECT_EQ(fwd.sharedBytes, 62464u);
  EXPECT_EQ(fwd.stream, stream);
  ASSERT_EQ(fwd.parameterCount, 12);
  std::vector<uint64_t> expected = {
      address(call.q.data()),  address(call.v.data()),  base + kH0Offset, base + kSeqsOffset,
      address(call.dt.data()), address(call.A.data()),  base + kScanOffset,
      address(call.o.data()),  address(call.ht.data()), address(call.scanHt.data()),
      base,                    2 /* N */};
  EXPECT_EQ(std::vector<uint64_t>(fwd.parameters, fwd.parameters + 12), expected);

  // fwd_tail: grid ceil(B*T/3) = ceil(10/3) = 4; the sizes as int64.
  const MockLaunch &tail = launches[1];
  EXPECT_STREQ(tail.function, "fwd_tail");
  EXPECT_EQ(std::vector<unsigned>(tail.grid, tail.grid + 3), (std::vector<unsigned>{4, 1, 1}));
  EXPECT_EQ(tail.block[0], 64u);
  EXPECT_EQ(tail.sharedBytes, 49152u);
  ASSERT_EQ(tail.parameterCount, 5);
  EXPECT_EQ(std::vector<uint64_t>(tail.parameters, tail.parameters + 5),
            (std::vector<uint64_t>{address(call.ht.data()), 5, 3, 4, 6}));

  // Both blocks need more than 48 KiB of shared memory: two opt-ins.
  EXPECT_EQ(mock().attributes(), 2);
}

TEST_F(CudaMock, FillsTheWorkspacesRuntimeBuffers) {
  GatedCall call;
  CallerWorkspace workspace(kForwardTotal);
  ASSERT_EQ(runForward(call, workspace.data, kForwardTotal), DECAYRT_OK) << decayrt_last_error();
  auto at = [&](uint64_t offset) { return workspace.data + offset; };
  // The sequence table: (n, 0, T) per batch row.
  std::vector<int64_t> seqs(6);
  std::memcpy(seqs.data(), at(kSeqsOffset), 48);
  EXPECT_EQ(seqs, (std::vector<int64_t>{0, 0, 5, 1, 0, 5}));
  // Absent h0: zeros; absent scan_z_h0: the scan's init; unused k: zeroed scratch.
  for (uint64_t i = 0; i < 576; ++i)
    ASSERT_EQ(at(kH0Offset)[i], 0) << i;
  std::vector<float> scan(6);
  std::memcpy(scan.data(), at(kScanOffset), 24);
  EXPECT_EQ(scan, std::vector<float>(6, -0.5f));
  for (uint64_t i = 0; i < 480; ++i)
    ASSERT_EQ(at(kScratchOffset)[i], 0) << i;
  // The module's own scratch is left as it was.
  EXPECT_EQ(at(0)[0], 0xCD);
  // Forward outputs are not zeroed: the kernels write them.
  EXPECT_TRUE(call.forwardOutputsUntouched());
}

TEST_F(CudaMock, BackwardZeroesAccumulatingOutputs) {
  GatedCall call;
  std::vector<decayrt_tensor> tensors = call.backward();
  ASSERT_EQ(decayrt_run_cuda(package, "backward", tensors.data(), tensors.size(), nullptr, nullptr,
                             0),
            DECAYRT_OK)
      << decayrt_last_error();
  // d<input> and d<param> accumulate, and an unused dk is its (zero) gradient.
  for (const std::vector<float> *zeroed : {&call.ddt, &call.dA, &call.dk})
    for (float x : *zeroed)
      ASSERT_EQ(x, 0.0f);
  for (const std::vector<float> *written : {&call.dq, &call.dv, &call.dh0})
    for (float x : *written)
      ASSERT_EQ(x, GatedCall::kSentinel);
  std::vector<uint64_t> memsets;
  for (const MockWrite &write : mock().writes())
    if (write.value == 0)
      memsets.push_back(write.address);
  for (const std::vector<float> *zeroed : {&call.ddt, &call.dA, &call.dk})
    EXPECT_NE(std::find(memsets.begin(), memsets.end(), address(zeroed->data())), memsets.end());
  ASSERT_EQ(mock().launches().size(), 1u);
  EXPECT_EQ(mock().launches()[0].parameters[13], 2u); // B
}

TEST_F(CudaMock, CuSeqlensSetsTheSequencesAndTheGrid) {
  // Four sequences of 3, 0, 4 and 1 tokens in one batch row.
  GatedCall call(/*b=*/1, /*t=*/8, /*n=*/4);
  std::vector<int32_t> offsets = {0, 3, 3, 7, 8};
  std::vector<int64_t> shape = {5};
  std::vector<decayrt_tensor> tensors = call.forward();
  tensors.push_back(view("cu_seqlens", offsets, shape));
  // Workspace: chunks of 16 tokens: 1 + 0 + 1 + 1 = 3. The module's scratch
  // on sm_80 is 8*24 + 64*(3 heads * 3 chunks) + 16*(4*3) + 100 = 192 + 576 +
  // 192 + 100 = 1060 bytes (on sm_90, token 16: 1252; both end below 1280).
  // Then seqs 4*24 = 96 bytes at 1280, h0 4*3*4*6 floats = 1152 bytes at 1536,
  // scan_z_h0 48 bytes at 2816, the scratch for k 8*3*4 floats = 384 bytes at
  // 3072: 3456 on either target.
  size_t bytes = 0;
  ASSERT_EQ(decayrt_cuda_workspace_bytes(package, "forward", tensors.data(), tensors.size(),
                                         nullptr, &bytes),
            DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_EQ(bytes, 3456u);
  CallerWorkspace workspace(bytes);
  ASSERT_EQ(decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), nullptr,
                             workspace.data, bytes),
            DECAYRT_OK)
      << decayrt_last_error();
  std::vector<int64_t> seqs(12);
  std::memcpy(seqs.data(), workspace.data + 1280, 96);
  EXPECT_EQ(seqs, (std::vector<int64_t>{0, 0, 3, 0, 3, 3, 0, 3, 7, 0, 7, 8}));
  std::vector<MockLaunch> launches = mock().launches();
  ASSERT_EQ(launches.size(), 2u);
  EXPECT_EQ(launches[0].grid[0], 12u); // N*H
  EXPECT_EQ(launches[0].parameters[11], 4u);
  EXPECT_EQ(mock().synchronizations(), 0); // host cu_seqlens: nothing to wait for
}

TEST_F(CudaMock, DeviceCuSeqlensIsCopiedBack) {
  GatedCall call(1, 8, 2);
  std::vector<int64_t> offsets = {0, 5, 8}, shape = {3};
  void *device = nullptr;
  ASSERT_EQ(decayrt_cuda_alloc(sizeof(int64_t) * 3, &device), DECAYRT_OK) << decayrt_last_error();
  ASSERT_EQ(decayrt_cuda_copy_to_device(device, offsets.data(), sizeof(int64_t) * 3), DECAYRT_OK);
  std::vector<decayrt_tensor> tensors = call.forward();
  tensors.push_back({"cu_seqlens", device, DECAYRT_I64, 1, shape.data(), nullptr});
  EXPECT_EQ(decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), nullptr, nullptr,
                             0),
            DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_EQ(mock().synchronizations(), 1);
  ASSERT_EQ(mock().launches().size(), 2u);
  EXPECT_EQ(mock().launches()[0].grid[0], 6u); // N = 2 sequences, H = 3
  // The workspace's size needs its values too.
  size_t bytes = 0;
  EXPECT_EQ(decayrt_cuda_workspace_bytes(package, "forward", tensors.data(), tensors.size(),
                                         nullptr, &bytes),
            DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_EQ(mock().synchronizations(), 2);
  // Device memory takes part in the aliasing check: an output over it is refused.
  tensors[4].data = device; // o
  mock().reset();
  EXPECT_EQ(decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), nullptr, nullptr,
                             0),
            DECAYRT_ERROR_ALIASING);
  EXPECT_STREQ(decayrt_last_error(), "output 'o' overlaps tensor 'cu_seqlens' in memory");
  EXPECT_EQ(decayrt_cuda_free(device), DECAYRT_OK);
}

TEST_F(CudaMock, EmptyBatchLaunchesNothing) {
  GatedCall call(/*b=*/0);
  ASSERT_EQ(runForward(call), DECAYRT_OK) << decayrt_last_error();
  EXPECT_TRUE(mock().launches().empty());
}

TEST_F(CudaMock, GridAboveCudasLimitIsRefused) {
  TempDir dir;
  json manifest = gatedManifest();
  manifest["kernels"][0]["launches"][0]["grid"] = {gridDim("", 1), gridDim("BT", 1)};
  decayrt::Package tall;
  ASSERT_EQ(tall.load(buildGpuPackage(dir, manifest)), DECAYRT_OK);
  GatedCall call(/*b=*/1, /*t=*/70000);
  EXPECT_EQ(tall.runCuda("forward", call.forward()), DECAYRT_ERROR_SHAPE);
  EXPECT_STREQ(decayrt::lastError(), "launch 'fwd': grid dimension y (BT / 1) is 70000, above "
                                     "CUDA's limit of 65535");
  EXPECT_TRUE(mock().launches().empty());
}

// ---- The workspace ----

TEST_F(CudaMock, WorkspaceBytesIsTheLargestOverTheTargets) {
  GatedCall call;
  std::vector<decayrt_tensor> tensors = call.forward();
  size_t bytes = 0;
  ASSERT_EQ(decayrt_cuda_workspace_bytes(package, "forward", tensors.data(), tensors.size(),
                                         nullptr, &bytes),
            DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_EQ(bytes, kForwardLargestTotal);
  EXPECT_TRUE(mock().loads().empty()); // no module is needed to tell
  // The sm_80 device needs less: its own total is enough, one byte less is not.
  CallerWorkspace workspace(bytes);
  EXPECT_EQ(runForward(call, workspace.data, kForwardTotal), DECAYRT_OK) << decayrt_last_error();
  mock().reset();
  expectRejected(call, DECAYRT_ERROR_INVALID_ARGUMENT,
                 "workspace: 2783 bytes given, the call needs 2784 (decayrt_cuda_workspace_bytes)",
                 workspace.data, kForwardTotal - 1);
  EXPECT_EQ(decayrt_cuda_workspace_bytes(package, "forward", tensors.data(), tensors.size(),
                                         nullptr, nullptr),
            DECAYRT_ERROR_INVALID_ARGUMENT);
}

TEST_F(CudaMock, CallerWorkspaceMustBeAlignedAndApart) {
  GatedCall call;
  CallerWorkspace workspace(kForwardTotal + 16);
  expectRejected(call, DECAYRT_ERROR_LAYOUT, "workspace: not aligned to 256 bytes",
                 workspace.data + 16, kForwardTotal);
  // An output inside the workspace.
  std::vector<decayrt_tensor> tensors = call.forward();
  tensors[4].data = workspace.data + 512; // o
  EXPECT_EQ(decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), nullptr,
                             workspace.data, kForwardTotal),
            DECAYRT_ERROR_ALIASING);
  EXPECT_STREQ(decayrt_last_error(), "output 'o' overlaps the workspace in memory");
  EXPECT_TRUE(mock().writes().empty());
}

TEST_F(CudaMock, RuntimeWorkspaceIsFreedOnTheStream) {
  GatedCall call;
  ASSERT_EQ(runForward(call), DECAYRT_OK) << decayrt_last_error();
  EXPECT_EQ(mock().liveAllocations(), 0);
  EXPECT_EQ(mock().synchronizations(), 0); // stream-ordered: the call does not wait
  // A device without memory pools: cuMemAlloc, then wait for the stream before cuMemFree.
  mock().fail("cuMemAllocAsync", 801);
  ASSERT_EQ(runForward(call), DECAYRT_OK) << decayrt_last_error();
  EXPECT_EQ(mock().liveAllocations(), 0);
  EXPECT_EQ(mock().synchronizations(), 1);
}

// ---- Checks before anything is enqueued ----

TEST_F(CudaMock, TensorsAreCheckedAsOnTheCpu) {
  GatedCall call;
  std::vector<decayrt_tensor> tensors = call.forward();
  std::vector<int64_t> wrong = {2, 5, 3, 7};
  tensors[4].shape = wrong.data(); // o
  EXPECT_EQ(decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), nullptr, nullptr,
                             0),
            DECAYRT_ERROR_SHAPE);
  EXPECT_TRUE(contains(decayrt_last_error(), "tensor 'o': expected shape [2, 5, 3, 6]"));
  tensors = call.forward();
  tensors[1].dtype = DECAYRT_BF16; // v
  EXPECT_EQ(decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), nullptr, nullptr,
                             0),
            DECAYRT_ERROR_DTYPE);
  tensors = call.forward();
  tensors.pop_back(); // scan_z_ht
  EXPECT_EQ(decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), nullptr, nullptr,
                             0),
            DECAYRT_ERROR_MISSING_TENSOR);
  tensors = call.forward();
  tensors[5].data = call.o.data(); // ht over o
  EXPECT_EQ(decayrt_run_cuda(package, "forward", tensors.data(), tensors.size(), nullptr, nullptr,
                             0),
            DECAYRT_ERROR_ALIASING);
  EXPECT_EQ(decayrt_run_cuda(nullptr, "forward", tensors.data(), tensors.size(), nullptr, nullptr,
                             0),
            DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(mock().writes().empty());
  EXPECT_TRUE(mock().launches().empty());
  EXPECT_TRUE(call.forwardOutputsUntouched());
}

// ---- Driver failures ----

TEST_F(CudaMock, FailingLaunchIsReportedAndTheWorkspaceFreed) {
  mock().fail("cuLaunchKernel", 701);
  GatedCall call;
  EXPECT_EQ(runForward(call), DECAYRT_ERROR_CUDA);
  EXPECT_STREQ(decayrt_last_error(),
               "cuLaunchKernel of 'fwd' failed: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (mock "
               "description, code 701)");
  // TearDown checks that the workspace was freed.
}

TEST_F(CudaMock, FailingCallsBeforeTheLaunches) {
  struct Case {
    const char *call;
    int result;
    const char *message;
    int unloads; ///< modules loaded, then unloaded again
  };
  for (const Case &c : {
           Case{"cuMemAllocAsync", 2,
                "cuMemAllocAsync failed: CUDA_ERROR_OUT_OF_MEMORY (mock description, code 2)", 0},
           Case{"cuMemcpyHtoDAsync_v2", 1,
                "cuMemcpyHtoDAsync of the sequence table failed: CUDA_ERROR_INVALID_VALUE", 0},
           Case{"cuMemsetD8Async", 1, "cuMemsetD8Async of 'k' failed: CUDA_ERROR_INVALID_VALUE", 0},
           Case{"cuModuleLoadDataEx", 2,
                "sm_80 cubin: cuModuleLoadDataEx failed: CUDA_ERROR_OUT_OF_MEMORY", 0},
           Case{"cuFuncSetAttribute", 1,
                "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES) failed: "
                "CUDA_ERROR_INVALID_VALUE",
                1},
           Case{"cuDeviceGetAttribute", 1,
                "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR) failed", 0},
       }) {
    SCOPED_TRACE(c.call);
    decayrt_package_free(package); // a fresh module cache
    ASSERT_EQ(decayrt_package_load(packagePath->c_str(), &package), DECAYRT_OK);
    mock().reset();
    mock().fail(c.call, c.result);
    GatedCall call;
    EXPECT_EQ(runForward(call), DECAYRT_ERROR_CUDA);
    EXPECT_TRUE(contains(decayrt_last_error(), c.message));
    EXPECT_TRUE(mock().launches().empty());
    EXPECT_EQ(mock().liveAllocations(), 0);
    EXPECT_EQ(mock().unloads(), c.unloads);
  }
}

TEST_F(CudaMock, ModuleWithoutTheLaunchedFunctionIsAPackageError) {
  TempDir dir;
  json manifest = gatedManifest();
  manifest["kernels"][0]["cubin"] = "cubin_without_functions";
  manifest["kernels"][0]["cubin_size"] = imageSize("cubin_without_functions");
  decayrt::Package missing;
  ASSERT_EQ(missing.load(buildGpuPackage(dir, manifest)), DECAYRT_OK);
  GatedCall call;
  EXPECT_EQ(missing.runCuda("forward", call.forward()), DECAYRT_ERROR_PACKAGE);
  EXPECT_STREQ(decayrt::lastError(), "the sm_80 module of the forward entry has no function "
                                     "'fwd': cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND "
                                     "(mock description, code 500)");
  EXPECT_EQ(mock().unloads(), 1);
}

// ---- The module cache, contexts and threads ----

TEST_F(CudaMock, ModulesAreCachedPerContextAndUnloadedWithThePackage) {
  GatedCall call;
  ASSERT_EQ(runForward(call), DECAYRT_OK);
  ASSERT_EQ(runForward(call), DECAYRT_OK);
  EXPECT_EQ(mock().loads().size(), 1u);
  // The caller's own context gets its own module.
  mock().pushNewContext();
  ASSERT_EQ(runForward(call), DECAYRT_OK) << decayrt_last_error();
  ASSERT_EQ(runForward(call), DECAYRT_OK);
  std::vector<MockLoad> loads = mock().loads();
  ASSERT_EQ(loads.size(), 2u);
  EXPECT_EQ(loads[0].context, 1u); // device 0's primary context
  EXPECT_NE(loads[1].context, 1u);
  std::vector<MockLaunch> launches = mock().launches();
  ASSERT_EQ(launches.size(), 8u);
  EXPECT_EQ(launches[7].context, loads[1].context);
  mock().popContext();
  decayrt_package_free(package);
  package = nullptr;
  EXPECT_EQ(mock().unloads(), 2);
}

TEST_F(CudaMock, ConcurrentRunsShareOneModule) {
  constexpr int kThreads = 4, kRuns = 8;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRuns; ++i) {
        GatedCall call;
        failures[t] += runForward(call) != DECAYRT_OK;
      }
    });
  for (std::thread &thread : threads)
    thread.join();
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_EQ(mock().loads().size(), 1u);
  EXPECT_EQ(mock().launches().size(), static_cast<size_t>(2 * kThreads * kRuns));
}

// ---- Helpers and availability ----

TEST_F(CudaMock, AvailableAndMemoryHelpers) {
  EXPECT_EQ(decayrt_cuda_available(), DECAYRT_OK);
  void *device = nullptr;
  ASSERT_EQ(decayrt_cuda_alloc(12, &device), DECAYRT_OK);
  std::vector<float> in = {1, 2, 3}, out(3);
  EXPECT_EQ(decayrt_cuda_copy_to_device(device, in.data(), 12), DECAYRT_OK);
  EXPECT_EQ(decayrt_cuda_copy_to_host(out.data(), device, 12), DECAYRT_OK);
  EXPECT_EQ(out, in);
  EXPECT_EQ(decayrt_cuda_free(device), DECAYRT_OK);
  EXPECT_EQ(decayrt_cuda_free(nullptr), DECAYRT_OK);
  EXPECT_EQ(decayrt_cuda_alloc(12, nullptr), DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(decayrt_cuda_copy_to_host(nullptr, device, 4), DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(decayrt_last_error(), "decayrt_cuda_copy_to_host: host is NULL"));
  mock().fail("cuMemAlloc_v2", 2);
  EXPECT_EQ(decayrt_cuda_alloc(12, &device), DECAYRT_ERROR_CUDA);
  EXPECT_EQ(device, nullptr);
  EXPECT_TRUE(contains(decayrt_last_error(), "cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY"));
}

TEST_F(CudaMock, CppApi) {
  decayrt::Package cpp;
  ASSERT_EQ(cpp.load(*packagePath), DECAYRT_OK);
  EXPECT_EQ(decayrt::cudaAvailable(), DECAYRT_OK);
  GatedCall call;
  std::vector<decayrt::Tensor> tensors = {
      {"q", call.q.data(), call.qShape},       {"v", call.v.data(), call.vShape},
      {"dt", call.dt.data(), call.tokenShape}, {"A", call.A.data(), call.headShape},
      {"o", call.o.data(), call.vShape},       {"ht", call.ht.data(), call.hShape},
      {"scan_z_ht", call.scanHt.data(), call.scanShape}};
  size_t bytes = 0;
  ASSERT_EQ(cpp.cudaWorkspaceBytes("forward", tensors, bytes), DECAYRT_OK);
  EXPECT_EQ(bytes, kForwardLargestTotal);
  CallerWorkspace workspace(bytes);
  EXPECT_EQ(cpp.runCuda("forward", tensors, nullptr, workspace.data, bytes), DECAYRT_OK)
      << decayrt::lastError();
  EXPECT_EQ(mock().launches().size(), 2u);
}
