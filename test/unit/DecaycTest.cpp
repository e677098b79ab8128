// End to end tests of the decayc binary: `decayc run` on .npy files checked against the float64 oracle, its errors, its help.
#include "TempDir.h"
#include "TestTensors.h"
#include "Oracle.h"

#include "decay/Runner/SpecProgram.h"
#include "decay/Support/Npy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

namespace fs = std::filesystem;
using decay::npy::Array;
using decay::npy::DType;

using decay::test::randomTensor;
using decay::test::relativeRms;

namespace {

// ---- Small helpers: temporary folders, running decayc, files ----

using decay::test::TempDir;

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

/// What one decayc process did.
struct Outcome {
  int exitCode = -1;
  std::string out, err;
};

/// Runs DECAYC_PATH with `args`, stdout and stderr redirected into files of `scratch`.
Outcome runDecayc(const std::vector<std::string> &args, const TempDir &scratch) {
  std::string outPath = scratch / "stdout.txt", errPath = scratch / "stderr.txt";
  std::vector<std::string> all = {DECAYC_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (std::string &arg : all)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  Outcome outcome;
  pid_t pid;
  int spawnError = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawnError != 0) {
    ADD_FAILURE() << "cannot start " << DECAYC_PATH << ": " << std::strerror(spawnError);
    return outcome;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid)
    ADD_FAILURE() << "waitpid failed";
  else if (WIFEXITED(status))
    outcome.exitCode = WEXITSTATUS(status);
  else
    ADD_FAILURE() << "decayc did not exit normally (status " << status << ")";
  outcome.out = readFile(outPath);
  outcome.err = readFile(errPath);
  return outcome;
}

/// `decayc run SPEC --entry forward --inputs IN --outputs OUT --reference`.
Outcome runSpec(const std::string &spec, const std::string &in, const std::string &out,
                const TempDir &scratch) {
  return runDecayc({"run", spec, "--entry", "forward", "--inputs", in, "--outputs", out,
                    "--reference"},
                   scratch);
}

std::string exampleSpec(const std::string &variant) {
  return std::string(DECAY_EXAMPLES_DIR) + "/" + variant + ".mlir";
}

/// The lines of `text` that contain `needle`.
std::vector<std::string> linesWith(const std::string &text, const std::string &needle) {
  std::vector<std::string> found;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.find(needle) != std::string::npos)
      found.push_back(line);
  return found;
}

/// Names of the entries of `dir` (none when it does not exist), sorted.
std::vector<std::string> entriesOf(const std::string &dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void writeArray(const std::string &path, const Array &array) {
  std::string error;
  ASSERT_TRUE(decay::npy::writeNpy(path, array, error)) << error;
}

/// Reads an output of decayc: float64 with the expected shape.
std::vector<double> readOutput(const std::string &path, const std::vector<int64_t> &shape) {
  Array array;
  std::string error;
  if (!decay::npy::readNpy(path, array, error)) {
    ADD_FAILURE() << error;
    return {};
  }
  EXPECT_EQ(array.dtype, DType::F64) << path;
  EXPECT_EQ(array.shape, shape) << path;
  return array.toF64();
}


void expectClose(const std::string &what, const std::vector<double> &expected,
                 const std::vector<double> &actual) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  for (double value : actual)
    ASSERT_TRUE(std::isfinite(value)) << what << " has a non-finite value";
  EXPECT_LT(relativeRms(expected, actual), 1e-9) << what;
}

// ---- The example specs and the problems written for them ----

/// An example spec as this test knows it (independently of the compiler):
/// its spec tensors (name, dims), whether it derives its key, its extra state.
struct Variant {
  std::string name;
  std::vector<std::pair<std::string, std::string>> tensors;
  bool derivedKey = false;
  std::string state; // "norm" or "scan_z": writes STATE_ht [N,H,K], reads STATE_h0
};

const Variant kVariants[] = {
    {"mamba2", {{"dt", "BTH"}, {"A_log", "H"}, {"dt_bias", "H"}}, false, ""},
    {"gla", {{"gk", "BTHK"}}, false, ""},
    {"hgrn2", {{"f", "BTHK"}}, true, ""},
    {"lightnet", {{"f", "BTHK"}}, true, "scan_z"},
    {"d2d_exp", {{"ps", "HK"}}, false, "norm"},
    {"retnet", {}, false, ""},
};

void PrintTo(const Variant &variant, std::ostream *os) { *os << variant.name; }

/// One problem: sizes, dtype, initial states, varlen offsets.
struct Case {
  const char *label;
  int64_t B, T, H, K, V;
  bool f32;         // q, k, v and the spec tensors as float32 (states stay float64)
  bool withH0;      // h0 and the variant's extra initial state
  std::vector<int64_t> cuSeqlens; // empty: no varlen
  bool cuInt64 = false;
  int64_t N() const { return cuSeqlens.empty() ? B : int64_t(cuSeqlens.size()) - 1; }
  std::vector<int64_t> shape(const std::string &dims) const {
    std::vector<int64_t> shape;
    for (char d : dims)
      shape.push_back(d == 'B' ? B : d == 'T' ? T : d == 'H' ? H : d == 'K' ? K
                      : d == 'V' ? V : N());
    return shape;
  }
};

const Case kCases[] = {
    {"float32_with_h0", 2, 5, 3, 4, 3, true, true, {}},
    {"float64_no_h0", 2, 6, 2, 5, 4, false, false, {}},
    {"varlen_int32_empty_sequence", 1, 9, 2, 4, 3, false, true, {0, 3, 3, 9}},
    {"varlen_int64_float32", 1, 7, 3, 3, 2, true, false, {0, 2, 7}, true},
};

/// Writes random inputs of `c` for `variant` into `dir` as .npy files and
/// returns the same problem (with float32-rounded values) for the oracle.
decay::oracle::Problem writeInputs(const Variant &variant, const Case &c, const std::string &dir,
                                   uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto tensor = [&](const std::string &name, const std::string &dims, double lo, double hi,
                    bool asF32) {
    std::vector<int64_t> shape = c.shape(dims);
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    std::vector<double> values;
    std::vector<float> rounded;
    for (int64_t i = 0; i < n; ++i) {
      double x = lo + (hi - lo) * unit(rng);
      rounded.push_back(static_cast<float>(x));
      values.push_back(asF32 ? double(rounded.back()) : x);
    }
    writeArray(dir + "/" + name + ".npy",
               asF32 ? Array::fromF32(rounded, shape) : Array::fromF64(values, shape));
    return values;
  };
  decay::oracle::Problem p;
  p.B = c.B, p.T = c.T, p.H = c.H, p.K = c.K, p.V = c.V;
  p.q = tensor("q", "BTHK", -1, 1, c.f32);
  p.k = tensor("k", "BTHK", -1, 1, c.f32); // also for derived keys: decayc must ignore it
  p.v = tensor("v", "BTHV", -1, 1, c.f32);
  for (auto &[name, dims] : variant.tensors)
    p.tensors[name] = tensor(name, dims, -3, 3, c.f32);
  if (c.withH0) {
    p.h0 = tensor("h0", "NHKV", -1, 1, false);
    if (variant.state == "norm") // z stays positive: phi = exp
      p.states["norm_h0"] = tensor("norm_h0", "NHK", 0.5, 2, false);
    else if (!variant.state.empty())
      p.states[variant.state + "_h0"] = tensor(variant.state + "_h0", "NHK", -1, 1, false);
  }
  if (!c.cuSeqlens.empty()) {
    p.cuSeqlens = c.cuSeqlens;
    std::vector<int32_t> narrow(c.cuSeqlens.begin(), c.cuSeqlens.end());
    int64_t n = int64_t(c.cuSeqlens.size());
    writeArray(dir + "/cu_seqlens.npy", c.cuInt64 ? Array::fromI64(c.cuSeqlens, {n})
                                                  : Array::fromI32(narrow, {n}));
  }
  return p;
}

/// Reads the outputs decayc wrote for `c` and compares them with the oracle.
void checkOutputs(const Variant &variant, const Case &c, const std::string &outDir,
                  const decay::oracle::Result &expected) {
  std::vector<std::string> names = {"ht.npy", "o.npy"};
  if (!variant.state.empty())
    names.push_back(variant.state + "_ht.npy");
  std::sort(names.begin(), names.end());
  EXPECT_EQ(entriesOf(outDir), names) << "exactly the outputs, no temporaries";
  expectClose("o", expected.o, readOutput(outDir + "/o.npy", c.shape("BTHV")));
  expectClose("ht", expected.ht, readOutput(outDir + "/ht.npy", c.shape("NHKV")));
  if (!variant.state.empty()) {
    std::string name = variant.state + "_ht";
    ASSERT_TRUE(expected.states.count(name)) << "the oracle has no " << name;
    expectClose(name, expected.states.at(name),
                readOutput(outDir + "/" + name + ".npy", c.shape("NHK")));
  }
}

class DecaycRunExample : public ::testing::TestWithParam<Variant> {};

TEST_P(DecaycRunExample, MatchesOracleOnNpyFiles) {
  const Variant &variant = GetParam();
  uint64_t seed = 11;
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.label);
    TempDir dir;
    fs::create_directory(dir / "in");
    decay::oracle::Problem problem = writeInputs(variant, c, dir / "in", seed++);
    Outcome outcome = runSpec(exampleSpec(variant.name), dir / "in", dir / "out", dir);
    ASSERT_EQ(outcome.exitCode, 0) << outcome.err;
    if (variant.derivedKey) {
      EXPECT_EQ(linesWith(outcome.err, "warning:").size(), 1u) << outcome.err;
      EXPECT_EQ(linesWith(outcome.err, "k.npy is ignored").size(), 1u) << outcome.err;
    } else {
      EXPECT_EQ(outcome.err, "");
    }
    EXPECT_EQ(outcome.out, "");
    checkOutputs(variant, c, dir / "out", decay::oracle::run(variant.name, problem));
  }
}

INSTANTIATE_TEST_SUITE_P(Decayc, DecaycRunExample, ::testing::ValuesIn(kVariants),
                         [](const auto &info) { return info.param.name; });

/// Every output decayc wrote to `dir`, by file name, as float64 (any shape).
std::map<std::string, decay::npy::Array> readOutputs(const std::string &dir) {
  std::map<std::string, decay::npy::Array> outputs;
  for (const std::string &name : entriesOf(dir)) {
    std::string error;
    if (!decay::npy::readNpy(dir + "/" + name, outputs[name], error))
      ADD_FAILURE() << error;
  }
  return outputs;
}

// decayc run --device simt: a package compiled with --target simt runs its
// GPU kernels under emulation and writes, forward, backward and in recurrent
// mode (the GPU step kernel), the files the float64 reference writes, within
// MATH.md's fp32 tolerance.
class DecaycRunSimt : public ::testing::TestWithParam<Variant> {};

TEST_P(DecaycRunSimt, ForwardAndBackwardMatchTheReference) {
  const Variant &variant = GetParam();
  TempDir dir;
  std::string package = dir / "simt.so";
  Outcome compiled = runDecayc({"compile", exampleSpec(variant.name), "-o", package, "--target",
                                "simt", "--gpu-head-dims", "64"},
                               dir);
  ASSERT_EQ(compiled.exitCode, 0) << compiled.err;
  const Case c{"B2_T37_H2_K64", 2, 37, 2, 64, 64, true, true, {}};
  fs::create_directory(dir / "in");
  writeInputs(variant, c, dir / "in", 21);
  std::mt19937_64 rng(22);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::vector<float> gradient(static_cast<size_t>(c.B * c.T * c.H * c.V));
  for (float &value : gradient)
    value = unit(rng);
  writeArray(dir / "in/do.npy", Array::fromF32(gradient, c.shape("BTHV")));
  for (std::string entry : {"forward", "backward", "step"}) {
    SCOPED_TRACE(entry);
    std::string emulated = dir / ("simt-" + entry), reference = dir / ("ref-" + entry);
    Outcome run = runDecayc({"run", package, "--device", "simt", "--entry", entry, "--inputs",
                             dir / "in", "--outputs", emulated},
                            dir);
    ASSERT_EQ(run.exitCode, 0) << run.err;
    std::string oracleEntry = entry == "step" ? "forward" : entry; // the same recurrence
    Outcome oracle = runDecayc({"run", exampleSpec(variant.name), "--reference", "--entry",
                                oracleEntry, "--inputs", dir / "in", "--outputs", reference},
                               dir);
    ASSERT_EQ(oracle.exitCode, 0) << oracle.err;
    std::map<std::string, decay::npy::Array> expected = readOutputs(reference),
                                             actual = readOutputs(emulated);
    ASSERT_EQ(entriesOf(emulated), entriesOf(reference));
    for (auto &[name, array] : expected) {
      SCOPED_TRACE(name);
      EXPECT_EQ(actual[name].shape, array.shape);
      std::vector<double> want = array.toF64(), got = actual[name].toF64();
      ASSERT_EQ(got.size(), want.size());
      double maxAbs = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_TRUE(std::isfinite(got[i])) << "element " << i;
        maxAbs = std::max(maxAbs, std::fabs(got[i] - want[i]));
      }
      if (maxAbs > 1e-6)
        EXPECT_LT(relativeRms(want, got), 1e-5) << "max abs error " << maxAbs;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Decayc, DecaycRunSimt, ::testing::ValuesIn(kVariants),
                         [](const auto &info) { return info.param.name; });

// decayc run --entry step: the recurrent mode (the package's step kernel,
// token by token) writes the forward reference's files, with and without
// varlen packing (an empty sequence included).
class DecaycRunStep : public ::testing::TestWithParam<Variant> {};

TEST_P(DecaycRunStep, RecurrentModeMatchesTheForwardReference) {
  const Variant &variant = GetParam();
  TempDir dir;
  std::string package = dir / "cpu.so";
  Outcome compiled = runDecayc({"compile", exampleSpec(variant.name), "-o", package}, dir);
  ASSERT_EQ(compiled.exitCode, 0) << compiled.err;
  uint64_t seed = 31;
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.label);
    std::string in = dir / (std::string("in-") + c.label);
    fs::create_directory(in);
    writeInputs(variant, c, in, seed++);
    std::string recurrent = dir / (std::string("step-") + c.label),
                reference = dir / (std::string("ref-") + c.label);
    Outcome run = runDecayc({"run", package, "--entry", "step", "--inputs", in, "--outputs", recurrent},
                            dir);
    ASSERT_EQ(run.exitCode, 0) << run.err;
    Outcome oracle = runSpec(exampleSpec(variant.name), in, reference, dir);
    ASSERT_EQ(oracle.exitCode, 0) << oracle.err;
    ASSERT_EQ(entriesOf(recurrent), entriesOf(reference));
    std::map<std::string, decay::npy::Array> expected = readOutputs(reference),
                                             actual = readOutputs(recurrent);
    for (auto &[name, array] : expected) {
      SCOPED_TRACE(name);
      EXPECT_EQ(actual[name].shape, array.shape);
      std::vector<double> want = array.toF64(), got = actual[name].toF64();
      ASSERT_EQ(got.size(), want.size());
      for (double value : got)
        ASSERT_TRUE(std::isfinite(value));
      EXPECT_LT(relativeRms(want, got), 1e-5);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Decayc, DecaycRunStep, ::testing::ValuesIn(kVariants),
                         [](const auto &info) { return info.param.name; });

TEST(DecaycRun, LightnetScanInitialStateChangesResultsAsOraclePredicts) {
  const Variant &lightnet = kVariants[3];
  ASSERT_EQ(lightnet.name, "lightnet");
  Case c{"scan", 2, 6, 2, 3, 2, false, false, {}};
  TempDir dir;
  fs::create_directory(dir / "in");
  decay::oracle::Problem problem = writeInputs(lightnet, c, dir / "in", 5);
  Outcome plain = runSpec(exampleSpec("lightnet"), dir / "in", dir / "out0", dir);
  ASSERT_EQ(plain.exitCode, 0) << plain.err;
  decay::oracle::Result expected0 = decay::oracle::run("lightnet", problem);
  checkOutputs(lightnet, c, dir / "out0", expected0);

  std::vector<double> z0;
  for (int64_t i = 0; i < c.N() * c.H * c.K; ++i)
    z0.push_back(0.7 * std::sin(double(i)) - 0.4); // far enough from the default 0
  writeArray(dir / "in/scan_z_h0.npy", Array::fromF64(z0, c.shape("NHK")));
  problem.states["scan_z_h0"] = z0;
  Outcome withZ0 = runSpec(exampleSpec("lightnet"), dir / "in", dir / "out1", dir);
  ASSERT_EQ(withZ0.exitCode, 0) << withZ0.err;
  decay::oracle::Result expected1 = decay::oracle::run("lightnet", problem);
  checkOutputs(lightnet, c, dir / "out1", expected1);

  // The initial scan state matters, in the oracle and in decayc alike.
  EXPECT_GT(relativeRms(expected0.o, expected1.o), 1e-3);
  EXPECT_GT(relativeRms(readOutput(dir / "out0/o.npy", c.shape("BTHV")),
                        readOutput(dir / "out1/o.npy", c.shape("BTHV"))),
            1e-3);
  EXPECT_GT(relativeRms(readOutput(dir / "out0/scan_z_ht.npy", c.shape("NHK")),
                        readOutput(dir / "out1/scan_z_ht.npy", c.shape("NHK"))),
            1e-3);
}

TEST(DecaycRun, UnknownNpyFileIsIgnoredWithAWarning) {
  Case c{"extra", 1, 3, 2, 2, 2, false, false, {}};
  TempDir dir;
  fs::create_directory(dir / "in");
  decay::oracle::Problem problem = writeInputs(kVariants[0], c, dir / "in", 3);
  writeArray(dir / "in/extra.npy", Array::fromF64({1.0}, {1}));
  Outcome outcome = runSpec(exampleSpec("mamba2"), dir / "in", dir / "out", dir);
  ASSERT_EQ(outcome.exitCode, 0) << outcome.err;
  EXPECT_EQ(linesWith(outcome.err, "extra.npy").size(), 1u) << outcome.err;
  EXPECT_EQ(linesWith(outcome.err, "warning:").size(), 1u) << outcome.err;
  checkOutputs(kVariants[0], c, dir / "out", decay::oracle::run("mamba2", problem));
}

TEST(DecaycRun, RecurrenceOptionChoosesOneOfSeveral) {
  TempDir dir;
  std::string spec = "decay.recurrence @plain none\n" + readFile(exampleSpec("retnet"));
  writeFile(dir / "two.mlir", spec);
  fs::create_directory(dir / "in");
  Case c{"two", 2, 4, 3, 2, 3, false, false, {}};
  decay::oracle::Problem problem = writeInputs(kVariants[5], c, dir / "in", 9);

  Outcome ambiguous = runSpec(dir / "two.mlir", dir / "in", dir / "out0", dir);
  EXPECT_NE(ambiguous.exitCode, 0);
  EXPECT_EQ(linesWith(ambiguous.err, "--recurrence").size(), 1u) << ambiguous.err;
  EXPECT_EQ(entriesOf(dir / "out0"), std::vector<std::string>{});

  for (auto [name, variant] : {std::pair{"retnet", "retnet"}, std::pair{"plain", "linear"}}) {
    SCOPED_TRACE(name);
    std::string out = dir / (std::string("out_") + name);
    Outcome chosen = runDecayc({"run", dir / "two.mlir", "--recurrence", name, "--inputs",
                                dir / "in", "--outputs", out, "--reference"},
                               dir);
    ASSERT_EQ(chosen.exitCode, 0) << chosen.err;
    checkOutputs(kVariants[5], c, out, decay::oracle::run(variant, problem));
  }
}

// ---- Errors: exit code, one `error:` line, no outputs ----

/// Valid mamba2 inputs (B = 2, T = 4, H = 2, K = 3, V = 2) in `dir`; with
/// `packed`, B = 1, T = 4 and a valid cu_seqlens {0, 1, 4}.
void writeMamba2Inputs(const std::string &dir, bool packed = false) {
  fs::create_directories(dir);
  Case c{"mamba2", packed ? 1 : 2, 4, 2, 3, 2, false, false,
         packed ? std::vector<int64_t>{0, 1, 4} : std::vector<int64_t>{}};
  writeInputs(kVariants[0], c, dir, 17);
}

/// Runs decayc with `args` (IN and OUT replaced by the folders of `dir`) and
/// expects a failure: non-zero exit, exactly one `error:` line containing
/// every needle, and nothing in the outputs folder.
void expectFailure(const TempDir &dir, std::vector<std::string> args,
                   const std::vector<std::string> &needles) {
  for (std::string &arg : args)
    arg = arg == "IN" ? dir / "in" : arg == "OUT" ? dir / "out" : arg;
  Outcome outcome = runDecayc(args, dir);
  EXPECT_NE(outcome.exitCode, 0) << outcome.err;
  std::vector<std::string> errors = linesWith(outcome.err, "error:");
  ASSERT_EQ(errors.size(), 1u) << "stderr:\n" << outcome.err;
  for (const std::string &needle : needles)
    EXPECT_NE(errors[0].find(needle), std::string::npos)
        << "expected '" << needle << "' in: " << errors[0];
  EXPECT_EQ(entriesOf(dir / "out"), std::vector<std::string>{}) << "outputs after a failure";
}

std::vector<std::string> runArgs(const std::string &spec) {
  return {"run", spec, "--entry", "forward", "--inputs", "IN", "--outputs", "OUT",
          "--reference"};
}

TEST(DecaycErrors, MissingTensors) {
  {
    SCOPED_TRACE("missing q.npy");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    fs::remove(dir / "in/q.npy");
    // q gives B, T, H and K, so the expectation can only be its dims.
    expectFailure(dir, runArgs(exampleSpec("mamba2")), {"missing tensor 'q'", "[B, T, H, K]"});
  }
  {
    SCOPED_TRACE("missing v.npy");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    fs::remove(dir / "in/v.npy");
    expectFailure(dir, runArgs(exampleSpec("mamba2")), {"missing tensor 'v'", "[B, T, H, V]"});
  }
  {
    SCOPED_TRACE("missing dt.npy");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    fs::remove(dir / "in/dt.npy");
    expectFailure(dir, runArgs(exampleSpec("mamba2")),
                  {"missing tensor 'dt'", "expected shape [2, 4, 2]", "[B, T, H]"});
  }
}

TEST(DecaycErrors, WrongShapeOrDtype) {
  {
    SCOPED_TRACE("dt of the wrong shape");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    writeArray(dir / "in/dt.npy", Array::fromF64(std::vector<double>(2 * 4 * 3), {2, 4, 3}));
    expectFailure(dir, runArgs(exampleSpec("mamba2")),
                  {"'dt'", "expected shape [2, 4, 2]", "got [2, 4, 3]"});
  }
  {
    SCOPED_TRACE("int64 q");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    writeArray(dir / "in/q.npy", Array::fromI64(std::vector<int64_t>(2 * 4 * 2 * 3), {2, 4, 2, 3}));
    expectFailure(dir, runArgs(exampleSpec("mamba2")),
                  {"q.npy", "expected float32 or float64", "got int64"});
  }
  {
    SCOPED_TRACE("float cu_seqlens");
    TempDir dir;
    writeMamba2Inputs(dir / "in", /*packed=*/true);
    writeArray(dir / "in/cu_seqlens.npy", Array::fromF32({0, 1, 4}, {3}));
    expectFailure(dir, runArgs(exampleSpec("mamba2")),
                  {"cu_seqlens.npy", "expected int32 or int64", "got float32"});
  }
}

TEST(DecaycErrors, MalformedNpyFiles) {
  {
    SCOPED_TRACE("truncated v.npy");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    std::string bytes = readFile(dir / "in/v.npy");
    ASSERT_GT(bytes.size(), 140u);
    writeFile(dir / "in/v.npy", bytes.substr(0, bytes.size() - 20));
    expectFailure(dir, runArgs(exampleSpec("mamba2")), {dir / "in/v.npy"});
  }
  {
    SCOPED_TRACE("garbage A_log.npy");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    writeFile(dir / "in/A_log.npy", "this is not a numpy file at all\n");
    expectFailure(dir, runArgs(exampleSpec("mamba2")), {dir / "in/A_log.npy"});
  }
}

TEST(DecaycErrors, BadCuSeqlens) {
  {
    SCOPED_TRACE("B = 2 with cu_seqlens");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    writeArray(dir / "in/cu_seqlens.npy", Array::fromI32({0, 2, 4}, {3}));
    expectFailure(dir, runArgs(exampleSpec("mamba2")), {"cu_seqlens", "B = 1"});
  }
  {
    SCOPED_TRACE("cu_seqlens not ending at T");
    TempDir dir;
    writeMamba2Inputs(dir / "in", /*packed=*/true);
    writeArray(dir / "in/cu_seqlens.npy", Array::fromI32({0, 1, 3}, {3}));
    expectFailure(dir, runArgs(exampleSpec("mamba2")), {"cu_seqlens", "T = 4"});
  }
}

TEST(DecaycErrors, BadSpecs) {
  {
    SCOPED_TRACE("spec that does not exist");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    expectFailure(dir, runArgs(dir / "nowhere.mlir"), {"nowhere.mlir"});
  }
  {
    SCOPED_TRACE("malformed spec");
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    writeFile(dir / "bad.mlir", "// a spec with a broken op\n"
                                "decay.recurrence @bad scalar inputs(%dt : [B, T, H]) {\n"
                                "  %g = arith.frobf %dt : f32\n"
                                "  decay.yield %g : f32\n"
                                "}\n");
    std::vector<std::string> args = runArgs(dir / "bad.mlir");
    args[5] = dir / "in", args[7] = dir / "out";
    Outcome outcome = runDecayc(args, dir);
    EXPECT_NE(outcome.exitCode, 0);
    std::vector<std::string> located = linesWith(outcome.err, dir / "bad.mlir:3:");
    ASSERT_FALSE(located.empty()) << outcome.err;
    EXPECT_NE(located[0].find(": error:"), std::string::npos)
        << "expected bad.mlir:3:COL: error: in " << located[0];
    EXPECT_EQ(entriesOf(dir / "out"), std::vector<std::string>{});
  }
}

TEST(DecaycErrors, BadCommandLines) {
  std::string spec = exampleSpec("mamba2");
  struct Line {
    const char *label;
    std::vector<std::string> args, needles;
  } lines[] = {
      {"unknown device",
       {"run", spec, "--inputs", "IN", "--outputs", "OUT", "--device", "tpu"},
       {"--device tpu", "cpu"}},
      {"--reference with --device",
       {"run", spec, "--inputs", "IN", "--outputs", "OUT", "--device", "cpu", "--reference"},
       {"--reference", "--device"}},
      {"--entry step with --reference", {"run", spec, "--entry", "step", "--inputs", "IN",
                                         "--outputs", "OUT", "--reference"},
       {"--entry step", "--entry forward --reference"}},
      {"--entry sideways", {"run", spec, "--entry", "sideways", "--inputs", "IN", "--outputs",
                            "OUT", "--reference"},
       {"--entry sideways", "forward, backward and step"}},
      {"unknown option", {"run", spec, "--inputs", "IN", "--outputs", "OUT", "--reference",
                          "--bogus"},
       {"--bogus"}},
      {"no SPEC", {"run", "--inputs", "IN", "--outputs", "OUT", "--reference"}, {"SPEC"}},
      {"no --inputs", {"run", spec, "--outputs", "OUT", "--reference"}, {"--inputs"}},
  };
  for (const Line &line : lines) {
    SCOPED_TRACE(line.label);
    TempDir dir;
    writeMamba2Inputs(dir / "in");
    expectFailure(dir, line.args, line.needles);
  }
}

// ---- Outputs of an earlier run survive a failed run ----

TEST(DecaycOutputs, FailedRunKeepsEarlierOutputsUntouched) {
  TempDir dir;
  writeMamba2Inputs(dir / "in");
  ASSERT_EQ(runSpec(exampleSpec("mamba2"), dir / "in", dir / "out", dir).exitCode, 0);
  std::string o = readFile(dir / "out/o.npy"), ht = readFile(dir / "out/ht.npy");
  ASSERT_FALSE(o.empty());
  const std::vector<std::string> before = {"ht.npy", "o.npy"};
  ASSERT_EQ(entriesOf(dir / "out"), before);

  // Different inputs, so a run that wrote anything would change the bytes.
  writeArray(dir / "in/v.npy", Array::fromF64(std::vector<double>(2 * 4 * 2 * 2, 5.0),
                                              {2, 4, 2, 2}));
  writeArray(dir / "in/dt.npy", Array::fromF64(std::vector<double>(2 * 4 * 3), {2, 4, 3}));
  Outcome badShape = runSpec(exampleSpec("mamba2"), dir / "in", dir / "out", dir);
  EXPECT_NE(badShape.exitCode, 0);
  EXPECT_EQ(linesWith(badShape.err, "error:").size(), 1u) << badShape.err;

  writeArray(dir / "in/dt.npy", Array::fromF64(std::vector<double>(2 * 4 * 2), {2, 4, 2}));
  fs::remove(dir / "in/A_log.npy");
  Outcome missing = runSpec(exampleSpec("mamba2"), dir / "in", dir / "out", dir);
  EXPECT_NE(missing.exitCode, 0);
  EXPECT_EQ(linesWith(missing.err, "error:").size(), 1u) << missing.err;

  EXPECT_EQ(entriesOf(dir / "out"), before);
  EXPECT_TRUE(readFile(dir / "out/o.npy") == o) << "o.npy changed";
  EXPECT_TRUE(readFile(dir / "out/ht.npy") == ht) << "ht.npy changed";
}

TEST(DecaycOutputs, FailedWriteLeavesNoPartialOutputs) {
  // o.npy cannot be replaced (it is a folder), so the run fails at its very
  // last step; ht.npy, written first, must not be left behind.
  TempDir dir;
  writeMamba2Inputs(dir / "in");
  fs::create_directories(dir / "out/o.npy");
  Outcome outcome = runSpec(exampleSpec("mamba2"), dir / "in", dir / "out", dir);
  EXPECT_NE(outcome.exitCode, 0);
  std::vector<std::string> errors = linesWith(outcome.err, "error:");
  ASSERT_EQ(errors.size(), 1u) << outcome.err;
  EXPECT_NE(errors[0].find("o.npy"), std::string::npos) << errors[0];
  EXPECT_EQ(entriesOf(dir / "out"), std::vector<std::string>{"o.npy"})
      << "only the folder that was there before";
}

// ---- Help and subcommands ----

TEST(DecaycHelp, HelpExitsZeroAndListsEveryRunOption) {
  TempDir dir;
  Outcome top = runDecayc({"--help"}, dir);
  EXPECT_EQ(top.exitCode, 0);
  EXPECT_NE(top.out.find("run"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("--help"), std::string::npos) << top.out;
  for (std::vector<std::string> args : {std::vector<std::string>{"run", "--help"},
                                        std::vector<std::string>{"--help", "run"}}) {
    SCOPED_TRACE(args[0] + " " + args[1]);
    Outcome run = runDecayc(args, dir);
    EXPECT_EQ(run.exitCode, 0);
    EXPECT_EQ(run.err, "");
    for (const char *option : {"--entry", "--inputs", "--outputs", "--reference",
                               "--recurrence", "--help"})
      EXPECT_NE(run.out.find(option), std::string::npos) << option << " not in:\n" << run.out;
  }
}

TEST(DecaycHelp, UnknownSubcommandOrNoneFails) {
  TempDir dir;
  Outcome unknown = runDecayc({"frobnicate", "--help"}, dir);
  EXPECT_NE(unknown.exitCode, 0);
  std::vector<std::string> errors = linesWith(unknown.err, "error:");
  ASSERT_EQ(errors.size(), 1u) << unknown.err;
  EXPECT_NE(errors[0].find("frobnicate"), std::string::npos) << errors[0];
  Outcome none = runDecayc({}, dir);
  EXPECT_NE(none.exitCode, 0);
  EXPECT_NE(none.err.find("USAGE"), std::string::npos) << none.err;
}

} // namespace

// ---- The backward entry ----

namespace {
/// Reads every .npy file of `dir` as float64 tensors (cu_seqlens excepted).
std::map<std::string, decay::HostTensor> readAllTensors(const std::string &dir) {
  std::map<std::string, decay::HostTensor> tensors;
  for (const std::string &file : entriesOf(dir)) {
    if (file.size() < 4 || file.substr(file.size() - 4) != ".npy" || file == "cu_seqlens.npy")
      continue;
    Array array;
    std::string error;
    EXPECT_TRUE(decay::npy::readNpy(dir + "/" + file, array, error)) << error;
    tensors[file.substr(0, file.size() - 4)] = decay::HostTensor{array.shape, array.toF64()};
  }
  return tensors;
}
} // namespace

TEST(DecaycRun, BackwardWritesEveryGradientAsTheLibraryComputesIt) {
  TempDir dir;
  writeMamba2Inputs(dir / "in");
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  auto randomArray = [&](std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    std::vector<double> values(n);
    for (double &value : values)
      value = unit(rng);
    return Array::fromF64(values, shape);
  };
  writeArray(dir / "in/do.npy", randomArray({2, 4, 2, 2}));
  writeArray(dir / "in/dht.npy", randomArray({2, 2, 3, 2}));
  Outcome outcome = runDecayc({"run", exampleSpec("mamba2"), "--entry", "backward", "--inputs",
                               dir / "in", "--outputs", dir / "out", "--reference"},
                              dir);
  ASSERT_EQ(outcome.exitCode, 0) << outcome.err;
  EXPECT_EQ(entriesOf(dir / "out"),
            (std::vector<std::string>{"dA_log.npy", "ddt.npy", "ddt_bias.npy", "dh0.npy",
                                      "dk.npy", "dq.npy", "dv.npy"}));

  auto program = decay::SpecProgram::compileFile(exampleSpec("mamba2"));
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
  std::map<std::string, decay::HostTensor> expected;
  llvm::Error error = (*program)->run(decay::SpecProgram::Entry::Backward,
                                      readAllTensors(dir / "in"), nullptr, expected);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  std::map<std::string, decay::HostTensor> written = readAllTensors(dir / "out");
  for (auto &[name, tensor] : expected) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(written.count(name));
    EXPECT_EQ(written[name].shape, tensor.shape);
    EXPECT_EQ(written[name].data, tensor.data);
  }
}

// decayc's output buffers start as NaN, so a gradient element that neither
// the kernels store nor the runtime zeroes (a manifest that marks a gradient
// "overwritten" that the kernel adds into, or leaves partly unwritten) shows.
// Every example with inputs or params; varlen with an empty sequence, in one
// chunk and across chunks (the last one partial), f32 and bf16.
const Variant kBackwardVariants[] = {
    kVariants[0], kVariants[1], kVariants[2], kVariants[3], kVariants[4],
    {"mamba2_vector", {{"dt", "BTHK"}, {"A_log", "HK"}, {"dt_bias", "HK"}}, false, ""},
    {"simple_decay", {{"f", "BTHK"}, {"delta", "HK"}}, false, ""},
};

class DecaycRunBackward : public ::testing::TestWithParam<Variant> {};

TEST_P(DecaycRunBackward, WritesEveryElementOfEveryGradient) {
  const Variant &variant = GetParam();
  struct Run {
    Case problem;
    std::vector<std::string> flags;
  };
  const Run runs[] = {
      {kCases[2], {}}, // varlen_int32_empty_sequence: 9 tokens, one chunk
      {{"across_chunks", 1, 75, 2, 5, 3, true, true, {0, 7, 7, 75}}, {"--chunk-size", "32"}},
      {{"across_chunks_bf16", 1, 75, 2, 5, 3, true, true, {0, 7, 7, 75}},
       {"--chunk-size", "32", "--dtype", "bf16"}},
  };
  uint64_t seed = 21;
  for (const Run &run : runs) {
    const Case &c = run.problem;
    SCOPED_TRACE(c.label);
    TempDir dir;
    fs::create_directory(dir / "in");
    writeInputs(variant, c, dir / "in", seed++);
    std::vector<double> gradient;
    for (int64_t i = 0; i < c.B * c.T * c.H * c.V; ++i)
      gradient.push_back(std::sin(0.7 * double(i)));
    writeArray(dir / "in/do.npy", Array::fromF64(gradient, c.shape("BTHV")));
    std::vector<std::string> command = {"run", exampleSpec(variant.name), "--entry", "backward",
                                        "--inputs", dir / "in", "--outputs", dir / "out"};
    command.insert(command.end(), run.flags.begin(), run.flags.end());
    Outcome outcome = runDecayc(command, dir);
    ASSERT_EQ(outcome.exitCode, 0) << outcome.err;
    std::map<std::string, decay::HostTensor> written = readAllTensors(dir / "out");
    EXPECT_TRUE(written.count("dq") && written.count("dv"));
    for (auto &[name, tensor] : written) {
      SCOPED_TRACE(name);
      size_t finite = 0;
      for (double value : tensor.data)
        finite += std::isfinite(value);
      EXPECT_EQ(finite, tensor.data.size());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Decayc, DecaycRunBackward, ::testing::ValuesIn(kBackwardVariants),
                         [](const auto &info) { return info.param.name; });

TEST(DecaycErrors, BackwardWithoutOutputGradient) {
  TempDir dir;
  writeMamba2Inputs(dir / "in");
  expectFailure(dir,
                {"run", exampleSpec("mamba2"), "--entry", "backward", "--inputs", "IN",
                 "--outputs", "OUT", "--reference"},
                {"missing tensor 'do'", "[2, 4, 2, 2]"});
}

// ---- The CPU kernels through decayrt ----

namespace {
} // namespace

TEST(DecaycRun, CpuKernelsOfSpecAndPackageMatchTheReference) {
  TempDir dir;
  writeMamba2Inputs(dir / "in");
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::vector<double> gradient(2 * 4 * 2 * 2);
  for (double &value : gradient)
    value = unit(rng);
  writeArray(dir / "in/do.npy", Array::fromF64(gradient, {2, 4, 2, 2}));
  Outcome compiled = runDecayc({"compile", exampleSpec("mamba2"), "-o", dir / "mamba2.so"}, dir);
  ASSERT_EQ(compiled.exitCode, 0) << compiled.err;
  for (const char *entry : {"forward", "backward"}) {
    SCOPED_TRACE(entry);
    auto run = [&](std::vector<std::string> extra, const std::string &out, const std::string &what) {
      std::vector<std::string> args = {"run", what, "--entry", entry, "--inputs", dir / "in",
                                       "--outputs", out};
      args.insert(args.end(), extra.begin(), extra.end());
      Outcome outcome = runDecayc(args, dir);
      EXPECT_EQ(outcome.exitCode, 0) << outcome.err;
      return readAllTensors(out);
    };
    auto reference = run({"--reference"}, dir / (std::string("ref_") + entry), exampleSpec("mamba2"));
    auto fromSpec = run({"--device", "cpu", "--chunk-size", "2"}, dir / (std::string("spec_") + entry),
                        exampleSpec("mamba2"));
    auto fromPackage = run({}, dir / (std::string("pkg_") + entry), dir / "mamba2.so");
    ASSERT_FALSE(reference.empty());
    for (auto *kernels : {&fromSpec, &fromPackage}) {
      ASSERT_EQ(kernels->size(), reference.size());
      for (auto &[name, tensor] : reference) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(kernels->count(name));
        EXPECT_EQ(kernels->at(name).shape, tensor.shape);
        EXPECT_LT(relativeRms(tensor.data, kernels->at(name).data), name[0] == 'd' && name.size() > 2 &&
                                                                    (name == "dA_log" || name == "ddt_bias")
                                                                ? 1e-4
                                                                : 1e-5);
      }
    }
  }
}
