// Unit tests of decayrt (runtime/) on fake packages compiled at test time from C with the system compiler.
#include "FakePackages.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <stdlib.h>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace decayrt::test;

namespace {

/// The fake kernels. Each records what it received into an output, as floats:
/// per argument its descriptor (offset, allocated == aligned, sizes, strides),
/// then the seqs rows; writes stop at the output's end.
const char *const kFakeKernels = R"C(
#include <stdint.h>

typedef struct { float *allocated, *aligned; int64_t offset; int64_t sizes_strides[]; } Desc;
typedef struct { float *at; int64_t left; } Out;

static int64_t count(const Desc *d, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= d->sizes_strides[i];
  return n;
}
static void emit(Out *out, float value) {
  if (out->left > 0) { *out->at++ = value; out->left--; }
}
static Out outputOf(void *argument, int rank) {
  Desc *d = (Desc *)argument;
  Out out = {d->aligned, count(d, rank)};
  return out;
}
static void record(Out *out, void **args, const int *ranks, int n, int seqsIndex) {
  for (int i = 0; i < n; ++i) {
    const Desc *d = (const Desc *)args[i];
    emit(out, (float)d->offset);
    emit(out, d->allocated == d->aligned && d->aligned != 0 ? 1.0f : 0.0f);
    for (int j = 0; j < 2 * ranks[i]; ++j) emit(out, (float)d->sizes_strides[j]);
  }
  const Desc *s = (const Desc *)args[seqsIndex];
  const int64_t *seqs = (const int64_t *)s->aligned;
  for (int64_t i = 0; i < 3 * s->sizes_strides[0]; ++i) emit(out, (float)seqs[i]);
}

/* linear forward: q k v h0 seqs o ht. o gets the record and the sum of q;
   ht = h0 + 1. */
void fake_linear_forward(void **args) {
  static const int ranks[7] = {4, 4, 4, 4, 2, 4, 4};
  Out out = outputOf(args[5], 4);
  record(&out, args, ranks, 7, 4);
  const Desc *q = (const Desc *)args[0];
  float sum = 0;
  for (int64_t i = 0; i < count(q, 4); ++i) sum += q->aligned[i];
  emit(&out, sum);
  const Desc *h0 = (const Desc *)args[3], *ht = (const Desc *)args[6];
  for (int64_t i = 0; i < count(ht, 4); ++i) ht->aligned[i] = h0->aligned[i] + 1.0f;
}

/* gated backward: q k(unused) v h0 seqs dt A scan_z_h0 do dht | dq dk(unused) dv dh0 ddt dA
   dscan_z_h0. dv gets the record; ddt and dA accumulate +1; dscan_z_h0 = scan_z_h0;
   dh0 = h0 + dht. */
void fake_gated_backward(void **args) {
  static const int ranks[17] = {4, 4, 4, 4, 2, 3, 1, 2, 4, 4, 4, 4, 4, 4, 3, 1, 2};
  Out out = outputOf(args[12], 4);
  record(&out, args, ranks, 17, 4);
  const Desc *ddt = (const Desc *)args[14], *dA = (const Desc *)args[15];
  for (int64_t i = 0; i < count(ddt, 3); ++i) ddt->aligned[i] += 1.0f;
  for (int64_t i = 0; i < count(dA, 1); ++i) dA->aligned[i] += 1.0f;
  const Desc *z0 = (const Desc *)args[7], *dz0 = (const Desc *)args[16];
  for (int64_t i = 0; i < count(dz0, 2); ++i) dz0->aligned[i] = z0->aligned[i];
  const Desc *h0 = (const Desc *)args[3], *dht = (const Desc *)args[9];
  const Desc *dh0 = (const Desc *)args[13];
  for (int64_t i = 0; i < count(dh0, 4); ++i) dh0->aligned[i] = h0->aligned[i] + dht->aligned[i];
}
)C";

/// The manifest of a spec `linear` (granularity none) with a forward kernel.
json linearManifest() {
  json spec = {{"name", "linear"},        {"granularity", "none"},   {"feature_map", "identity"},
               {"normalizer", false},     {"derived_key", false},    {"rope", false},
               {"key_dim", nullptr},      {"value_dim", nullptr},    {"chunk_size", 64},
               {"inputs", json::array()}, {"params", json::array()}, {"scans", json::array()}};
  json arguments = {argument("q", "BTHK", "input"),
                    argument("k", "BTHK", "input"),
                    argument("v", "BTHV", "input"),
                    optionalInput("h0", "NHKV"),
                    argument("seqs", "N3", "sequences", "i64"),
                    argument("o", "BTHV", "output"),
                    argument("ht", "NHKV", "output")};
  json kernel = {{"entry", "forward"}, {"target", "cpu"},     {"symbol", "fake_linear_forward"},
                 {"cpu", "native"},    {"threads", "openmp"}, {"arguments", arguments}};
  return {{"format", "decayc-package"},
          {"version", 1},
          {"spec", spec},
          {"kernels", json::array({kernel})}};
}

/// The manifest of a spec `gated` with only a backward kernel.
json gatedManifest() {
  json kernel = {{"entry", "backward"},
                 {"target", "cpu"},
                 {"symbol", "fake_gated_backward"},
                 {"cpu", "native"},
                 {"threads", "openmp"},
                 {"arguments", gatedBackwardArguments()}};
  return {{"format", "decayc-package"},
          {"version", 1},
          {"spec", gatedSpec(32)},
          {"kernels", json::array({kernel})}};
}

/// The template of the fake packages (their kernels), compiled once per process.
PackageTemplate &fakeKernels() {
  static PackageTemplate kernels(kFakeKernels);
  return kernels;
}

/// Builds a package with this manifest text in `dir`; its path, or "" (and a test failure).
std::string buildPackage(const TempDir &dir, const std::string &manifestText) {
  return fakeKernels().build(dir, manifestText);
}

// ---- Tensors ----

decayrt_tensor *tensorNamed(std::vector<decayrt_tensor> &tensors, const std::string &name) {
  for (decayrt_tensor &tensor : tensors)
    if (name == tensor.name)
      return &tensor;
  return nullptr;
}

void removeTensor(std::vector<decayrt_tensor> &tensors, const std::string &name) {
  for (auto it = tensors.begin(); it != tensors.end(); ++it)
    if (name == it->name) {
      tensors.erase(it);
      return;
    }
}

/// What a fake kernel saw of one argument.
struct Seen {
  int64_t offset = -1;
  bool alignedIsAllocated = false;
  std::vector<int64_t> sizes, strides;
};

/// Decodes the record a fake kernel wrote: one Seen per argument of `ranks`,
/// then `rows` seqs rows.
void decodeRecord(const std::vector<float> &record, const std::vector<int> &ranks, size_t rows,
                  std::vector<Seen> &seen, std::vector<int64_t> &seqs, size_t &end) {
  size_t at = 0;
  auto next = [&] { return static_cast<int64_t>(record.at(at++)); };
  for (int rank : ranks) {
    Seen s;
    s.offset = next();
    s.alignedIsAllocated = next() == 1;
    for (int i = 0; i < rank; ++i)
      s.sizes.push_back(next());
    for (int i = 0; i < rank; ++i)
      s.strides.push_back(next());
    seen.push_back(s);
  }
  for (size_t i = 0; i < 3 * rows; ++i)
    seqs.push_back(next());
  end = at;
}

std::vector<int64_t> rowMajor(const std::vector<int64_t> &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;)
    strides[i - 1] = strides[i] * shape[i];
  return strides;
}

/// The tensors of one call of the linear forward, B=2, T=5, H=3, K=4, V=6 by
/// default, outputs filled with sentinels so that tests see untouched outputs.
struct LinearCall {
  int64_t B, T, H = 3, K = 4, V = 6, N;
  std::vector<int64_t> qShape, vShape, hShape;
  std::vector<float> q, k, v, h0, o, ht;

  explicit LinearCall(int64_t b = 2, int64_t t = 5, int64_t n = -1)
      : B(b), T(t), N(n < 0 ? b : n), qShape{B, T, H, K}, vShape{B, T, H, V}, hShape{N, H, K, V},
        q(B * T * H * K), k(B * T * H * K, 0.5f), v(B * T * H * V, 0.25f), h0(N * H * K * V),
        o(B * T * H * V, kOutputSentinel), ht(N * H * K * V, kStateSentinel) {
    for (size_t i = 0; i < q.size(); ++i)
      q[i] = static_cast<float>(i % 7);
    for (size_t i = 0; i < h0.size(); ++i)
      h0[i] = static_cast<float>(i % 5);
  }
  LinearCall(const LinearCall &) = delete;

  static constexpr float kOutputSentinel = 42.0f, kStateSentinel = 43.0f;

  /// q, k, v, o, ht (and h0 when `withH0`).
  std::vector<decayrt_tensor> tensors(bool withH0 = false) {
    std::vector<decayrt_tensor> list = {view("q", q, qShape), view("k", k, qShape),
                                        view("v", v, vShape), view("o", o, vShape),
                                        view("ht", ht, hShape)};
    if (withH0)
      list.push_back(view("h0", h0, hShape));
    return list;
  }

  float qSum() const {
    float sum = 0;
    for (float x : q)
      sum += x;
    return sum;
  }

  bool outputsUntouched() const {
    for (float x : o)
      if (x != kOutputSentinel)
        return false;
    for (float x : ht)
      if (x != kStateSentinel)
        return false;
    return true;
  }
};

// ---- Fixtures ----

/// Builds the linear and gated packages once for every test of the suite.
class Runtime : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    packageDir = new TempDir;
    linearPath = new std::string(buildPackage(*packageDir, linearManifest().dump()));
    gatedPath = new std::string(buildPackage(*packageDir, gatedManifest().dump()));
  }
  static void TearDownTestSuite() {
    delete linearPath;
    delete gatedPath;
    delete packageDir;
  }

  void SetUp() override {
    ASSERT_FALSE(linearPath->empty());
    ASSERT_EQ(decayrt_package_load(linearPath->c_str(), &linear), DECAYRT_OK)
        << decayrt_last_error();
    ASSERT_EQ(decayrt_package_load(gatedPath->c_str(), &gated), DECAYRT_OK) << decayrt_last_error();
  }
  void TearDown() override {
    decayrt_package_free(linear);
    decayrt_package_free(gated);
  }

  /// Runs the linear forward on `tensors`.
  decayrt_status runLinear(const std::vector<decayrt_tensor> &tensors) {
    return decayrt_run(linear, "forward", tensors.data(), tensors.size());
  }

  /// Expects a failure of `status` whose message names `tensor` (and holds
  /// `fragment`), with every output untouched.
  void expectFailure(LinearCall &call, const std::vector<decayrt_tensor> &tensors,
                     decayrt_status status, const std::string &tensor,
                     const std::string &fragment = "") {
    EXPECT_EQ(runLinear(tensors), status)
        << decayrt_status_name(status) << ": " << decayrt_last_error();
    std::string message = decayrt_last_error();
    EXPECT_TRUE(contains(message, "'" + tensor + "'"));
    EXPECT_TRUE(contains(message, fragment));
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_TRUE(call.outputsUntouched());
  }

  static TempDir *packageDir;
  static std::string *linearPath, *gatedPath;
  decayrt_package *linear = nullptr, *gated = nullptr;
};

TempDir *Runtime::packageDir = nullptr;
std::string *Runtime::linearPath = nullptr, *Runtime::gatedPath = nullptr;

} // namespace

// ---- Loading ----

TEST(RuntimeLoad, StatusNames) {
  EXPECT_STREQ(decayrt_status_name(DECAYRT_OK), "OK");
  EXPECT_STREQ(decayrt_status_name(DECAYRT_ERROR_ALIASING), "ERROR_ALIASING");
  EXPECT_STREQ(decayrt_status_name(DECAYRT_ERROR_OUT_OF_MEMORY), "ERROR_OUT_OF_MEMORY");
}

TEST(RuntimeLoad, MissingFile) {
  TempDir dir;
  expectLoadFailure(dir / "absent.so", "absent.so");
}

TEST(RuntimeLoad, NotASharedObject) {
  TempDir dir;
  writeFile(dir / "text.so", "this is not an ELF file\n");
  expectLoadFailure(dir / "text.so", "cannot load package");
}

TEST(RuntimeLoad, SharedObjectWithoutManifest) {
  TempDir dir;
  std::string path = compileSharedObject(dir, "plain", "int decay_something = 1;\n");
  ASSERT_FALSE(path.empty());
  expectLoadFailure(path, "decay_package_manifest");
}

TEST(RuntimeLoad, ManifestWithoutTerminator) {
  TempDir dir;
  std::string path = compileSharedObject(
      dir, "unterminated", "const char decay_package_manifest[4] = {'{', '}', ' ', ' '};\n");
  ASSERT_FALSE(path.empty());
  expectLoadFailure(path, "NUL-terminated");
}

TEST(RuntimeLoad, NullArguments) {
  decayrt_package *package = nullptr;
  EXPECT_EQ(decayrt_package_load(nullptr, &package), DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(decayrt_package_load("x.so", nullptr), DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STRNE(decayrt_last_error(), "");
  decayrt_package_free(nullptr);
  EXPECT_EQ(decayrt_package_manifest(nullptr), nullptr);
  EXPECT_EQ(decayrt_package_spec_name(nullptr), nullptr);
}

TEST_F(Runtime, LoadReadsTheManifest) {
  EXPECT_STREQ(decayrt_package_spec_name(linear), "linear");
  EXPECT_EQ(decayrt_package_manifest(linear), linearManifest().dump());
  EXPECT_STREQ(decayrt_package_spec_name(gated), "gated");
}

TEST(RuntimeLoad, RelativePathIsTheWorkingDirectory) {
  TempDir dir;
  std::string path = buildPackage(dir, linearManifest().dump());
  ASSERT_FALSE(path.empty());
  fs::path previous = fs::current_path();
  fs::current_path(dir.path);
  decayrt_package *package = nullptr;
  EXPECT_EQ(decayrt_package_load(fs::path(path).filename().c_str(), &package), DECAYRT_OK)
      << decayrt_last_error();
  decayrt_package_free(package);
  fs::current_path(previous);
}

/// One malformed manifest: how it is broken and what the error must say.
struct BrokenManifest {
  const char *what;
  std::string text;
  std::string fragment;
};

/// Manifests broken one field at a time.
std::vector<BrokenManifest> brokenManifests() {
  std::vector<BrokenManifest> cases;
  auto mutate = [&](const char *what, const std::string &fragment, auto change) {
    json manifest = linearManifest();
    change(manifest);
    cases.push_back({what, manifest.dump(), fragment});
  };
  json &(*kernel)(json &) = [](json &m) -> json & { return m["kernels"][0]; };
  json &(*args)(json &) = [](json &m) -> json & { return m["kernels"][0]["arguments"]; };
  cases.push_back({"not json", "{\"format\": \"decayc-package\",", "not valid JSON"});
  cases.push_back({"not an object", "[1, 2]", "expected an object"});
  cases.push_back({"empty", "", "not valid JSON"});
  mutate("wrong format", "format", [](json &m) { m["format"] = "zip"; });
  mutate("no format", "format: missing", [](json &m) { m.erase("format"); });
  mutate("version 2", "unsupported version 2", [](json &m) { m["version"] = 2; });
  mutate("version string", "version", [](json &m) { m["version"] = "1"; });
  mutate("no spec", "spec: missing", [](json &m) { m.erase("spec"); });
  mutate("spec not object", "spec: expected an object", [](json &m) { m["spec"] = 3; });
  mutate("no spec name", "spec.name: missing", [](json &m) { m["spec"].erase("name"); });
  mutate("empty spec name", "spec.name", [](json &m) { m["spec"]["name"] = ""; });
  mutate("bad granularity", "spec.granularity", [](json &m) { m["spec"]["granularity"] = "big"; });
  mutate("bad feature map", "spec.feature_map", [](json &m) { m["spec"]["feature_map"] = 1; });
  mutate("normalizer not bool", "spec.normalizer", [](json &m) { m["spec"]["normalizer"] = 0; });
  mutate("no derived_key", "spec.derived_key: missing",
         [](json &m) { m["spec"].erase("derived_key"); });
  mutate("no rope", "spec.rope: missing", [](json &m) { m["spec"].erase("rope"); });
  mutate("key_dim string", "spec.key_dim", [](json &m) { m["spec"]["key_dim"] = "4"; });
  mutate("value_dim zero", "spec.value_dim", [](json &m) { m["spec"]["value_dim"] = 0; });
  mutate("chunk_size float", "spec.chunk_size", [](json &m) { m["spec"]["chunk_size"] = 6.5; });
  mutate("inputs not array", "spec.inputs", [](json &m) { m["spec"]["inputs"] = json::object(); });
  mutate("input bad dims", "spec.inputs[0].dims", [](json &m) {
    m["spec"]["inputs"] = {{{"name", "dt"}, {"dims", "XY"}}};
  });
  mutate("param without name", "spec.params[0].name: missing", [](json &m) {
    m["spec"]["params"] = {{{"dims", "H"}}};
  });
  mutate("scan without init", "spec.scans[0].init: missing", [](json &m) {
    m["spec"]["scans"] = {{{"name", "z"}}};
  });
  mutate("no kernels", "kernels: missing", [](json &m) { m.erase("kernels"); });
  mutate("empty kernels", "kernels", [](json &m) { m["kernels"] = json::array(); });
  mutate("bad entry", "kernels[0].entry", [kernel](json &m) { kernel(m)["entry"] = "sideways"; });
  mutate("no symbol", "kernels[0].symbol: missing",
         [kernel](json &m) { kernel(m).erase("symbol"); });
  mutate("symbol not exported", "missing kernel symbol 'absent_kernel'",
         [kernel](json &m) { kernel(m)["symbol"] = "absent_kernel"; });
  mutate("no cpu", "kernels[0].cpu: missing", [kernel](json &m) { kernel(m).erase("cpu"); });
  mutate("no threads", "kernels[0].threads", [kernel](json &m) { kernel(m)["threads"] = nullptr; });
  mutate("arguments not array", "kernels[0].arguments",
         [kernel](json &m) { kernel(m)["arguments"] = "q"; });
  mutate("argument bad dtype", "kernels[0].arguments[1].dtype",
         [args](json &m) { args(m)[1]["dtype"] = "f16"; });
  mutate("argument bad role", "kernels[0].arguments[2].role",
         [args](json &m) { args(m)[2]["role"] = "inout"; });
  mutate("argument bad dims", "kernels[0].arguments[3].dims",
         [args](json &m) { args(m)[3]["dims"] = "NHKX"; });
  mutate("argument no name", "kernels[0].arguments[0].name: missing",
         [args](json &m) { args(m)[0].erase("name"); });
  mutate("optional not bool", "kernels[0].arguments[3].optional",
         [args](json &m) { args(m)[3]["optional"] = "yes"; });
  mutate("optional output", "only inputs may be optional",
         [args](json &m) { args(m)[5]["optional"] = true; });
  mutate("overwritten input", "only a backward kernel's outputs that it writes can be overwritten",
         [args](json &m) { args(m)[0]["overwritten"] = true; });
  mutate("overwritten forward output", "only a backward kernel's outputs",
         [args](json &m) { args(m)[5]["overwritten"] = true; });
  mutate("overwritten not bool", "kernels[0].arguments[5].overwritten",
         [args](json &m) { args(m)[5]["overwritten"] = 1; });
  mutate("duplicate argument", "duplicate argument 'k'",
         [args](json &m) { args(m)[0]["name"] = "k"; });
  mutate("no sequences", "role sequences", [args](json &m) { args(m).erase(4); });
  mutate("seqs not i64", "kernels[0].arguments[4].dtype",
         [args](json &m) { args(m)[4]["dtype"] = "i32"; });
  mutate("no v", "v (dims BTHV)", [args](json &m) { args(m).erase(2); });
  mutate("two forward kernels", "kernels[1]",
         [kernel](json &m) { m["kernels"].push_back(kernel(m)); });
  return cases;
}

TEST(RuntimeLoad, MalformedManifestsAreRejected) {
  TempDir dir;
  for (const BrokenManifest &broken : brokenManifests()) {
    SCOPED_TRACE(broken.what);
    std::string path = buildPackage(dir, broken.text);
    ASSERT_FALSE(path.empty());
    expectLoadFailure(path, broken.fragment);
  }
}

TEST(RuntimeLoad, NonFiniteScanInitsAreSpelledAsStrings) {
  TempDir dir;
  json manifest = gatedManifest();
  manifest["spec"]["scans"][0]["init"] = "-inf";
  std::string path = buildPackage(dir, manifest.dump());
  ASSERT_FALSE(path.empty());
  decayrt::Package package;
  EXPECT_EQ(package.load(path), DECAYRT_OK) << decayrt::lastError();
}

// ---- Running: what the kernel receives ----

TEST_F(Runtime, PassesDescriptorsAndSequences) {
  LinearCall call;
  ASSERT_EQ(runLinear(call.tensors()), DECAYRT_OK) << decayrt_last_error();
  std::vector<Seen> seen;
  std::vector<int64_t> seqs;
  size_t end = 0;
  decodeRecord(call.o, {4, 4, 4, 4, 2, 4, 4}, 2, seen, seqs, end);
  std::vector<std::vector<int64_t>> shapes = {call.qShape, call.qShape, call.vShape, call.hShape,
                                              {2, 3},      call.vShape, call.hShape};
  for (size_t i = 0; i < shapes.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(seen[i].offset, 0);
    EXPECT_TRUE(seen[i].alignedIsAllocated);
    EXPECT_EQ(seen[i].sizes, shapes[i]);
    EXPECT_EQ(seen[i].strides, rowMajor(shapes[i]));
  }
  EXPECT_EQ(seqs, (std::vector<int64_t>{0, 0, 5, 1, 0, 5}));
  EXPECT_EQ(call.o.at(end), call.qSum());
  for (float x : call.ht) // absent h0: zeros
    ASSERT_EQ(x, 1.0f);
}

TEST_F(Runtime, PassesTheCallersBuffers) {
  LinearCall call;
  ASSERT_EQ(runLinear(call.tensors(/*withH0=*/true)), DECAYRT_OK) << decayrt_last_error();
  for (size_t i = 0; i < call.ht.size(); ++i)
    ASSERT_EQ(call.ht[i], call.h0[i] + 1.0f);
}

TEST_F(Runtime, BuildsSequencesFromCuSeqlens) {
  for (decayrt_dtype dtype : {DECAYRT_I32, DECAYRT_I64}) {
    SCOPED_TRACE(dtype);
    LinearCall call(/*b=*/1, /*t=*/8, /*n=*/4);
    std::vector<int32_t> offsets32 = {0, 3, 3, 7, 8};
    std::vector<int64_t> offsets64 = {0, 3, 3, 7, 8}, shape = {5};
    std::vector<decayrt_tensor> tensors = call.tensors(true);
    tensors.push_back(dtype == DECAYRT_I32 ? view("cu_seqlens", offsets32, shape)
                                           : view("cu_seqlens", offsets64, shape));
    ASSERT_EQ(runLinear(tensors), DECAYRT_OK) << decayrt_last_error();
    std::vector<Seen> seen;
    std::vector<int64_t> seqs;
    size_t end = 0;
    decodeRecord(call.o, {4, 4, 4, 4, 2, 4, 4}, 4, seen, seqs, end);
    EXPECT_EQ(seen[4].sizes, (std::vector<int64_t>{4, 3}));
    EXPECT_EQ(seen[3].sizes, (std::vector<int64_t>{4, 3, 4, 6}));
    EXPECT_EQ(seqs, (std::vector<int64_t>{0, 0, 3, 0, 3, 3, 0, 3, 7, 0, 7, 8}));
  }
}

TEST_F(Runtime, AcceptsExplicitRowMajorStrides) {
  LinearCall call(/*b=*/1);
  std::vector<decayrt_tensor> tensors = call.tensors();
  std::vector<int64_t> strides = rowMajor(call.qShape);
  strides[0] = 12345; // the stride of a size-1 dim does not matter
  tensorNamed(tensors, "q")->strides = strides.data();
  EXPECT_EQ(runLinear(tensors), DECAYRT_OK) << decayrt_last_error();
}

TEST_F(Runtime, AcceptsEmptyTensorsWithoutData) {
  LinearCall call(/*b=*/1, /*t=*/0);
  std::vector<decayrt_tensor> tensors = call.tensors();
  for (const char *name : {"q", "k", "v", "o"})
    tensorNamed(tensors, name)->data = nullptr;
  ASSERT_EQ(runLinear(tensors), DECAYRT_OK) << decayrt_last_error();
  for (float x : call.ht)
    ASSERT_EQ(x, 1.0f);
}

TEST_F(Runtime, InputsMayShareMemory) {
  LinearCall call;
  std::vector<decayrt_tensor> tensors = call.tensors();
  tensorNamed(tensors, "k")->data = call.q.data();
  EXPECT_EQ(runLinear(tensors), DECAYRT_OK) << decayrt_last_error();
}

/// The tensors of a call of the fake `gated` backward (ddt and dA: + 1):
/// inputs of ones; outputs holding 5 (ddt and dA: 7) before the call.
struct GatedBackwardCall {
  static constexpr int64_t B = 2, T = 5, H = 3, K = 4, V = 6;
  std::vector<int64_t> qShape = {B, T, H, K}, vShape = {B, T, H, V}, btShape = {B, T, H},
                       hShape = {H}, zShape = {B, H}, stateShape = {B, H, K, V};
  std::vector<float> q = std::vector<float>(B * T * H * K, 1), v = std::vector<float>(B * T * H * V, 1),
                     dt = std::vector<float>(B * T * H, 1), A = std::vector<float>(H, 1), d_o = v,
                     dq = std::vector<float>(q.size(), 5), dv = std::vector<float>(v.size(), 5),
                     dh0 = std::vector<float>(B * H * K * V, 5), ddt = std::vector<float>(dt.size(), 7),
                     dA = std::vector<float>(H, 7), dz = std::vector<float>(B * H, 5);
  std::vector<decayrt_tensor> tensors = {
      view("q", q, qShape),   view("v", v, vShape),          view("dt", dt, btShape),
      view("A", A, hShape),   view("do", d_o, vShape),       view("dq", dq, qShape),
      view("dv", dv, vShape), view("dh0", dh0, stateShape),  view("ddt", ddt, btShape),
      view("dA", dA, hShape), view("dscan_z_h0", dz, zShape)};

  GatedBackwardCall() = default;
  GatedBackwardCall(const GatedBackwardCall &) = delete; // the views point into this object
  GatedBackwardCall &operator=(const GatedBackwardCall &) = delete;
};

TEST_F(Runtime, BackwardZeroesAccumulatorsAndFillsScanStates) {
  GatedBackwardCall call;
  std::vector<decayrt_tensor> &tensors = call.tensors;
  std::vector<float> &q = call.q, &dv = call.dv, &dh0 = call.dh0, &ddt = call.ddt, &dA = call.dA,
                     &dz = call.dz;
  const std::vector<int64_t> &qShape = call.qShape, &zShape = call.zShape;
  const int64_t B = call.B, H = call.H;
  ASSERT_EQ(decayrt_run(gated, "backward", tensors.data(), tensors.size()), DECAYRT_OK)
      << decayrt_last_error();
  for (float x : ddt)
    ASSERT_EQ(x, 1.0f); // zeroed, then +1 by the kernel
  for (float x : dA)
    ASSERT_EQ(x, 1.0f);
  for (float x : dz)
    ASSERT_EQ(x, -0.5f); // the scan's init
  for (float x : dh0)
    ASSERT_EQ(x, 0.0f); // h0 and dht absent: zeros
  std::vector<Seen> seen;
  std::vector<int64_t> seqs;
  size_t end = 0;
  decodeRecord(dv, {4, 4, 4, 4, 2, 3, 1, 2, 4, 4, 4, 4, 4, 4, 3, 1, 2}, 2, seen, seqs, end);
  EXPECT_EQ(seen[1].sizes, qShape); // k: scratch of the right shape
  EXPECT_TRUE(seen[1].alignedIsAllocated);
  EXPECT_EQ(seen[11].sizes, qShape); // dk
  EXPECT_EQ(seen[7].sizes, zShape);
  EXPECT_EQ(seqs, (std::vector<int64_t>{0, 0, 5, 1, 0, 5}));

  // A given dk is checked and zeroed (the gradient of a key the spec ignores);
  // a given k is ignored; a given scan state reaches the kernel.
  std::vector<float> z0(B * H, 3), k(q.size(), 9), dk(q.size(), 5);
  tensors.push_back(view("dk", dk, qShape));
  tensors.push_back(view("k", k, qShape));
  tensors.push_back(view("scan_z_h0", z0, zShape));
  ASSERT_EQ(decayrt_run(gated, "backward", tensors.data(), tensors.size()), DECAYRT_OK)
      << decayrt_last_error();
  for (float x : dk)
    ASSERT_EQ(x, 0.0f);
  for (float x : dz)
    ASSERT_EQ(x, 3.0f);
  for (float x : ddt)
    ASSERT_EQ(x, 1.0f);
}

TEST(RuntimeRun, OverwrittenGradientsAreNotZeroed) {
  // The same fake backward (ddt and dA: + 1) with ddt marked overwritten: the
  // runtime leaves it as given (a real kernel stores every element of it),
  // and still zeroes dA.
  json manifest = gatedManifest();
  for (json &argument : manifest["kernels"][0]["arguments"])
    if (argument["name"] == "ddt")
      argument["overwritten"] = true;
  TempDir dir;
  std::string path = buildPackage(dir, manifest.dump());
  ASSERT_FALSE(path.empty());
  decayrt_package *package = nullptr;
  ASSERT_EQ(decayrt_package_load(path.c_str(), &package), DECAYRT_OK) << decayrt_last_error();
  GatedBackwardCall call;
  ASSERT_EQ(decayrt_run(package, "backward", call.tensors.data(), call.tensors.size()), DECAYRT_OK)
      << decayrt_last_error();
  for (float x : call.ddt)
    EXPECT_EQ(x, 8.0f); // as given, then + 1
  for (float x : call.dA)
    EXPECT_EQ(x, 1.0f); // zeroed, then + 1
  decayrt_package_free(package);
}

// ---- Running: validation ----

TEST_F(Runtime, MissingTensors) {
  for (const char *name : {"q", "v", "k", "o", "ht"}) {
    SCOPED_TRACE(name);
    LinearCall call;
    std::vector<decayrt_tensor> tensors = call.tensors();
    removeTensor(tensors, name);
    expectFailure(call, tensors, DECAYRT_ERROR_MISSING_TENSOR, name);
  }
}

TEST_F(Runtime, MissingTensorNamesTheExpectedShape) {
  LinearCall call;
  std::vector<decayrt_tensor> tensors = call.tensors();
  removeTensor(tensors, "ht");
  EXPECT_EQ(runLinear(tensors), DECAYRT_ERROR_MISSING_TENSOR);
  EXPECT_STREQ(decayrt_last_error(),
               "missing output 'ht': expected shape [2, 3, 4, 6] ([N, H, K, V])");
}

TEST_F(Runtime, UnknownTensors) {
  for (const char *name : {"qq", "seqs", "dq", "norm_h0"}) {
    SCOPED_TRACE(name);
    LinearCall call;
    std::vector<decayrt_tensor> tensors = call.tensors();
    tensors.push_back(view(name, call.k, call.qShape));
    expectFailure(call, tensors, DECAYRT_ERROR_UNKNOWN_TENSOR, name, "takes q, k, v, h0");
  }
}

TEST_F(Runtime, DuplicateAndNamelessTensors) {
  LinearCall call;
  std::vector<decayrt_tensor> tensors = call.tensors();
  tensors.push_back(tensors[0]);
  expectFailure(call, tensors, DECAYRT_ERROR_INVALID_ARGUMENT, "q", "twice");
  tensors.pop_back();
  tensors[1].name = nullptr;
  EXPECT_EQ(runLinear(tensors), DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(decayrt_last_error(), "NULL name"));
  EXPECT_TRUE(call.outputsUntouched());
}

TEST_F(Runtime, WrongShapes) {
  LinearCall call;
  std::vector<int64_t> shortState = {2, 3, 4}, wrongK = {2, 5, 3, 5}, wrongO = {2, 5, 3, 7},
                       q3 = {2, 5, 3}, negative = {2, -5, 3, 4};
  struct Case {
    const char *name;
    const std::vector<int64_t> *shape;
    std::string fragment;
  } cases[] = {
      {"h0", &shortState, "expected shape [2, 3, 4, 6] ([N, H, K, V]), got [2, 3, 4]"},
      {"k", &wrongK, "expected shape [2, 5, 3, 4] ([B, T, H, K]), got [2, 5, 3, 5]"},
      {"o", &wrongO, "([B, T, H, V])"},
      {"ht", &shortState, "got [2, 3, 4]"},
      {"q", &q3, "expected 4 dims [B, T, H, K], got [2, 5, 3]"},
      {"q", &negative, "negative size"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.fragment);
    std::vector<decayrt_tensor> tensors = call.tensors(true);
    decayrt_tensor *tensor = tensorNamed(tensors, c.name);
    tensor->shape = c.shape->data();
    tensor->rank = static_cast<int32_t>(c.shape->size());
    expectFailure(call, tensors, DECAYRT_ERROR_SHAPE, c.name, c.fragment);
  }
}

TEST_F(Runtime, WrongShapeMessageIsExact) {
  LinearCall call;
  std::vector<decayrt_tensor> tensors = call.tensors(true);
  std::vector<int64_t> shape = {2, 3, 4};
  tensorNamed(tensors, "h0")->shape = shape.data();
  tensorNamed(tensors, "h0")->rank = 3;
  EXPECT_EQ(runLinear(tensors), DECAYRT_ERROR_SHAPE);
  EXPECT_STREQ(decayrt_last_error(),
               "tensor 'h0': expected shape [2, 3, 4, 6] ([N, H, K, V]), got [2, 3, 4]");
}

TEST_F(Runtime, WrongDtypes) {
  LinearCall call;
  std::vector<double> wide(call.v.size());
  std::vector<decayrt_tensor> tensors = call.tensors();
  *tensorNamed(tensors, "v") = view("v", wide, call.vShape);
  expectFailure(call, tensors, DECAYRT_ERROR_DTYPE, "v", "expected dtype f32, got f64");
  tensors = call.tensors();
  const int invalidDtype = 42; // as a C caller may store it
  std::memcpy(&tensorNamed(tensors, "o")->dtype, &invalidDtype, sizeof invalidDtype);
  expectFailure(call, tensors, DECAYRT_ERROR_DTYPE, "o", "invalid dtype 42");
}

TEST_F(Runtime, NonContiguousStrides) {
  LinearCall call;
  std::vector<decayrt_tensor> tensors = call.tensors();
  std::vector<int64_t> transposed = {60, 12, 1, 3}; // K and H swapped
  tensorNamed(tensors, "k")->strides = transposed.data();
  expectFailure(call, tensors, DECAYRT_ERROR_LAYOUT, "k",
                "expected contiguous row-major strides [60, 12, 4, 1], got [60, 12, 1, 3]");
}

TEST_F(Runtime, MisalignedAndNullData) {
  LinearCall call;
  std::vector<decayrt_tensor> tensors = call.tensors();
  tensorNamed(tensors, "v")->data = reinterpret_cast<char *>(call.v.data()) + 2;
  expectFailure(call, tensors, DECAYRT_ERROR_LAYOUT, "v", "aligned");
  tensors = call.tensors();
  tensorNamed(tensors, "k")->data = nullptr;
  expectFailure(call, tensors, DECAYRT_ERROR_INVALID_ARGUMENT, "k", "NULL");
  tensors = call.tensors();
  tensorNamed(tensors, "q")->shape = nullptr;
  expectFailure(call, tensors, DECAYRT_ERROR_INVALID_ARGUMENT, "q", "shape is NULL");
}

TEST_F(Runtime, OutputsMustNotAlias) {
  LinearCall call;
  std::vector<float> big(call.o.size() + call.q.size() + 8, LinearCall::kOutputSentinel);
  {
    std::vector<decayrt_tensor> tensors = call.tensors();
    tensorNamed(tensors, "o")->data = call.q.data(); // o over q (q is smaller than o)
    EXPECT_EQ(runLinear(tensors), DECAYRT_ERROR_ALIASING);
    EXPECT_TRUE(contains(decayrt_last_error(), "output 'o' overlaps tensor 'q'"));
  }
  {
    std::vector<decayrt_tensor> tensors = call.tensors();
    tensorNamed(tensors, "ht")->data = call.o.data() + 10; // two outputs overlap partly
    expectFailure(call, tensors, DECAYRT_ERROR_ALIASING, "ht", "'o'");
  }
  {
    // The last element of o is the first of an input.
    std::vector<decayrt_tensor> tensors = call.tensors();
    tensorNamed(tensors, "o")->data = big.data();
    tensorNamed(tensors, "v")->data = big.data() + call.o.size() - 1;
    EXPECT_EQ(runLinear(tensors), DECAYRT_ERROR_ALIASING);
    EXPECT_TRUE(contains(decayrt_last_error(), "'v'"));
    for (float x : big)
      ASSERT_EQ(x, LinearCall::kOutputSentinel);
    // Adjacent but disjoint is fine.
    tensorNamed(tensors, "v")->data = big.data() + call.o.size();
    EXPECT_EQ(runLinear(tensors), DECAYRT_OK) << decayrt_last_error();
  }
  {
    LinearCall packed(/*b=*/1, /*t=*/8, /*n=*/2);
    std::vector<int64_t> offsetShape = {3};
    std::vector<decayrt_tensor> tensors = packed.tensors();
    std::memcpy(packed.o.data(), std::vector<int64_t>{0, 4, 8}.data(), 3 * sizeof(int64_t));
    decayrt_tensor cu = {"cu_seqlens",       packed.o.data(), DECAYRT_I64, 1,
                         offsetShape.data(), nullptr};
    tensors.push_back(cu);
    EXPECT_EQ(runLinear(tensors), DECAYRT_ERROR_ALIASING);
    EXPECT_TRUE(contains(decayrt_last_error(), "'cu_seqlens'"));
  }
}

TEST_F(Runtime, BadCuSeqlens) {
  struct Case {
    std::vector<int64_t> offsets;
    decayrt_status status;
    std::string fragment;
  } cases[] = {
      {{1, 4, 8}, DECAYRT_ERROR_INVALID_ARGUMENT, "from 0 to T = 8"},
      {{0, 4, 7}, DECAYRT_ERROR_INVALID_ARGUMENT, "from 0 to T = 8"},
      {{0, 5, 3, 8}, DECAYRT_ERROR_INVALID_ARGUMENT, "must not decrease"},
      {{0}, DECAYRT_ERROR_INVALID_ARGUMENT, "N+1 >= 2"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.fragment);
    int64_t n = static_cast<int64_t>(c.offsets.size()) - 1;
    LinearCall call(/*b=*/1, /*t=*/8, /*n=*/n < 1 ? 1 : n);
    std::vector<int64_t> offsets = c.offsets, shape = {static_cast<int64_t>(offsets.size())};
    std::vector<decayrt_tensor> tensors = call.tensors();
    tensors.push_back(view("cu_seqlens", offsets, shape));
    expectFailure(call, tensors, c.status, "cu_seqlens", c.fragment);
  }
  {
    LinearCall call(/*b=*/2, /*t=*/4, /*n=*/1);
    std::vector<int64_t> offsets = {0, 4}, shape = {2};
    std::vector<decayrt_tensor> tensors = call.tensors();
    tensors.push_back(view("cu_seqlens", offsets, shape));
    expectFailure(call, tensors, DECAYRT_ERROR_SHAPE, "cu_seqlens", "needs B = 1, got B = 2");
  }
  {
    LinearCall call(/*b=*/1, /*t=*/4, /*n=*/1);
    std::vector<float> offsets = {0, 4};
    std::vector<int64_t> shape = {2};
    std::vector<decayrt_tensor> tensors = call.tensors();
    tensors.push_back(view("cu_seqlens", offsets, shape));
    expectFailure(call, tensors, DECAYRT_ERROR_DTYPE, "cu_seqlens", "i32 or i64");
  }
  {
    LinearCall call(/*b=*/1, /*t=*/4, /*n=*/1);
    std::vector<int32_t> offsets = {0, 4};
    std::vector<int64_t> shape = {1, 2};
    std::vector<decayrt_tensor> tensors = call.tensors();
    tensors.push_back(view("cu_seqlens", offsets, shape));
    expectFailure(call, tensors, DECAYRT_ERROR_SHAPE, "cu_seqlens", "[N+1]");
  }
  {
    // N follows cu_seqlens: an h0 shaped for N = B = 1 no longer fits N = 2.
    LinearCall call(/*b=*/1, /*t=*/4, /*n=*/1);
    std::vector<int64_t> offsets = {0, 2, 4}, shape = {3};
    std::vector<decayrt_tensor> tensors = call.tensors(true);
    tensors.push_back(view("cu_seqlens", offsets, shape));
    expectFailure(call, tensors, DECAYRT_ERROR_SHAPE, "h0", "[2, 3, 4, 6]");
  }
}

TEST_F(Runtime, EntriesAndNullArguments) {
  LinearCall call;
  std::vector<decayrt_tensor> tensors = call.tensors();
  EXPECT_EQ(decayrt_run(linear, "sideways", tensors.data(), tensors.size()),
            DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(decayrt_last_error(), "unknown entry 'sideways'"));
  EXPECT_EQ(decayrt_run(linear, "backward", tensors.data(), tensors.size()),
            DECAYRT_ERROR_UNSUPPORTED);
  EXPECT_TRUE(contains(decayrt_last_error(), "backward"));
  EXPECT_EQ(decayrt_run(gated, "forward", tensors.data(), tensors.size()),
            DECAYRT_ERROR_UNSUPPORTED);
  EXPECT_EQ(decayrt_run(linear, nullptr, tensors.data(), tensors.size()),
            DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(decayrt_run(nullptr, "forward", tensors.data(), tensors.size()),
            DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(decayrt_run(linear, "forward", nullptr, 3), DECAYRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(decayrt_run(linear, "forward", nullptr, 0), DECAYRT_ERROR_MISSING_TENSOR);
  EXPECT_TRUE(call.outputsUntouched());
}

TEST_F(Runtime, SpecFixedSizesAreChecked) {
  TempDir dir;
  json manifest = linearManifest();
  manifest["spec"]["key_dim"] = 8;
  decayrt::Package package;
  ASSERT_EQ(package.load(buildPackage(dir, manifest.dump())), DECAYRT_OK) << decayrt::lastError();
  LinearCall call;
  EXPECT_EQ(package.run("forward", call.tensors()), DECAYRT_ERROR_SHAPE);
  EXPECT_TRUE(contains(decayrt::lastError(), "key_dim = 8, got K = 4"));
  EXPECT_TRUE(call.outputsUntouched());
}

// ---- Threads ----

TEST_F(Runtime, ConcurrentRunsOnOnePackage) {
  constexpr int kThreads = 8, kRuns = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int run = 0; run < kRuns; ++run) {
        LinearCall call(/*b=*/1 + t % 3, /*t=*/4 + run % 4);
        for (float &x : call.q)
          x = static_cast<float>(t + 1);
        for (float &x : call.h0)
          x = static_cast<float>(run);
        std::vector<decayrt_tensor> tensors = call.tensors(true);
        if (decayrt_run(linear, "forward", tensors.data(), tensors.size()) != DECAYRT_OK) {
          ++failures;
          continue;
        }
        std::vector<Seen> seen;
        std::vector<int64_t> seqs;
        size_t end = 0;
        decodeRecord(call.o, {4, 4, 4, 4, 2, 4, 4}, static_cast<size_t>(call.N), seen, seqs, end);
        bool ok = seen[0].sizes == call.qShape && call.o.at(end) == call.qSum() &&
                  seqs.size() == 3 * static_cast<size_t>(call.N);
        for (size_t i = 0; i < call.ht.size(); ++i)
          ok &= call.ht[i] == call.h0[i] + 1.0f;
        // A failing call on this thread sets only this thread's message.
        std::vector<decayrt_tensor> bad = call.tensors();
        removeTensor(bad, "v");
        ok &= decayrt_run(linear, "forward", bad.data(), bad.size()) ==
                  DECAYRT_ERROR_MISSING_TENSOR &&
              std::string(decayrt_last_error()).find("'v'") != std::string::npos;
        failures += !ok;
      }
    });
  for (std::thread &thread : threads)
    thread.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(Runtime, LastErrorIsPerThread) {
  LinearCall call;
  std::vector<decayrt_tensor> tensors = call.tensors();
  removeTensor(tensors, "q");
  ASSERT_EQ(runLinear(tensors), DECAYRT_ERROR_MISSING_TENSOR);
  std::string mine = decayrt_last_error();
  std::string other;
  std::thread([&] {
    std::vector<decayrt_tensor> none;
    decayrt_run(linear, "sideways", none.data(), 0);
    other = decayrt_last_error();
  }).join();
  EXPECT_TRUE(contains(other, "sideways"));
  EXPECT_EQ(decayrt_last_error(), mine);
}

// ---- The C++ API ----

TEST_F(Runtime, CppPackageAndTensors) {
  decayrt::Package package;
  EXPECT_FALSE(package.loaded());
  EXPECT_EQ(package.load(*linearPath + ".absent"), DECAYRT_ERROR_PACKAGE);
  EXPECT_FALSE(package);
  ASSERT_EQ(package.load(*linearPath), DECAYRT_OK) << decayrt::lastError();
  EXPECT_STREQ(package.specName(), "linear");
  decayrt::Package moved = std::move(package);
  EXPECT_FALSE(package.loaded());
  ASSERT_TRUE(moved.loaded());

  LinearCall call;
  const std::vector<float> &constQ = call.q;
  std::vector<decayrt::Tensor> tensors = {decayrt::Tensor("q", constQ.data(), call.qShape),
                                          decayrt::Tensor("k", call.k.data(), call.qShape),
                                          decayrt::Tensor("v", call.v.data(), call.vShape),
                                          decayrt::Tensor("o", call.o.data(), call.vShape),
                                          decayrt::Tensor("ht", call.ht.data(), call.hShape)};
  EXPECT_EQ(tensors[0].view().dtype, DECAYRT_F32);
  EXPECT_EQ(moved.run("forward", tensors), DECAYRT_OK) << decayrt::lastError();
  EXPECT_EQ(call.ht[0], 1.0f);

  tensors.pop_back();
  EXPECT_EQ(moved.run("forward", tensors), DECAYRT_ERROR_MISSING_TENSOR);
  EXPECT_STREQ(decayrt::statusName(DECAYRT_ERROR_MISSING_TENSOR), "ERROR_MISSING_TENSOR");
  EXPECT_TRUE(contains(decayrt::lastError(), "'ht'"));
}
