// Test helpers for decayrt: temporary folders, fake packages compiled from C at test time, manifest pieces, tensor views.
#ifndef DECAY_TEST_FAKEPACKAGES_H
#define DECAY_TEST_FAKEPACKAGES_H

#include "decayrt/decayrt.h"
#include "decayrt/decayrt.hpp"

#include "TempDir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <stdlib.h>

namespace decayrt::test {

/// Whether `text` holds `fragment` (gmock is not linked).
inline ::testing::AssertionResult contains(const std::string &text, const std::string &fragment) {
  if (text.find(fragment) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << fragment << "'";
}

using decay::test::TempDir;

inline void writeFile(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out.good())
    ADD_FAILURE() << "cannot write " << path;
}

/// `text` as a C string literal (bytes other than '"', '\\' and '\n' as they are).
inline std::string cStringLiteral(const std::string &text) {
  std::string literal = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      literal += '\\';
    if (c == '\n') {
      literal += "\\n";
      continue;
    }
    literal += c;
  }
  return literal + "\"";
}

/// Compiles C `source` into the shared object `dir/name.so` with the system
/// compiler ($CC or cc) and the extra `flags`; returns its path, or "" (and a
/// test failure).
inline std::string compileSharedObject(const TempDir &dir, const std::string &name,
                                       const std::string &source, const std::string &flags = "") {
  std::string cFile = dir / (name + ".c"), soFile = dir / (name + ".so"),
              log = dir / (name + ".log");
  writeFile(cFile, source);
  const char *compiler = std::getenv("CC");
  std::string command = std::string(compiler && *compiler ? compiler : "cc") +
                        " -std=c99 -shared -fPIC -O1 " + flags + " -o '" + soFile + "' '" + cFile + "' > '" +
                        log + "' 2>&1";
  if (std::system(command.c_str()) != 0) {
    std::ifstream in(log);
    std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ADD_FAILURE() << "cannot compile the fake package: " << command << "\n" << output;
    return "";
  }
  return soFile;
}

/// A fake package compiled once with a manifest placeholder, then copied with
/// each manifest patched in (one compile per process instead of one per manifest).
class PackageTemplate {
public:
  /// `source`: the C code of the package besides its manifest (kernels,
  /// images); `flags`: extra compiler flags (include folders).
  explicit PackageTemplate(std::string source, std::string flags = "")
      : source(std::move(source)), flags(std::move(flags)) {}

  /// A package with `manifestText` in `dir`; its path, or "" (and a test failure).
  std::string build(const TempDir &dir, const std::string &manifestText) {
    static std::atomic<int> counter{0};
    std::string image = bytes();
    size_t at = image.find(kMarker);
    if (at == std::string::npos || manifestText.size() >= kCapacity) {
      ADD_FAILURE() << "cannot build a package from the template";
      return "";
    }
    image.replace(at, manifestText.size() + 1, manifestText + '\0');
    std::string path = dir / ("package" + std::to_string(counter++) + ".so");
    writeFile(path, image);
    return path;
  }

private:
  /// The capacity of the manifest, NUL included.
  static constexpr size_t kCapacity = 16384;
  /// What the template's manifest holds until it is patched.
  static constexpr const char *kMarker = "@@DECAYRT-TEST-MANIFEST@@";

  /// The compiled template ("" on failure).
  const std::string &bytes() {
    if (compiled.empty()) {
      std::string path = compileSharedObject(
          folder, "template",
          "const char decay_package_manifest[" + std::to_string(kCapacity) +
              "] = " + cStringLiteral(kMarker) + ";\n" + source,
          flags);
      std::ifstream in(path, std::ios::binary);
      compiled.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return compiled;
  }

  std::string source, flags, compiled;
  TempDir folder;
};

/// A kernel argument of a manifest.
inline nlohmann::json argument(const char *name, const char *dims, const char *role,
                               const char *dtype = "f32") {
  return {{"name", name}, {"dims", dims}, {"dtype", dtype}, {"role", role}};
}
inline nlohmann::json optionalInput(const char *name, const char *dims) {
  nlohmann::json a = argument(name, dims, "input");
  a["optional"] = true;
  return a;
}
inline nlohmann::json unusedArgument(const char *name, const char *dims, const char *role) {
  nlohmann::json a = argument(name, dims, role);
  a["unused"] = true;
  return a;
}

/// The spec `gated`: scalar decay from input dt and param A, a scan z with
/// init -0.5, a derived key (k and dk unused).
inline nlohmann::json gatedSpec(int64_t chunkSize) {
  return {{"name", "gated"},
          {"granularity", "scalar"},
          {"feature_map", "identity"},
          {"normalizer", false},
          {"derived_key", true},
          {"rope", false},
          {"key_dim", nullptr},
          {"value_dim", nullptr},
          {"chunk_size", chunkSize},
          {"inputs", {{{"name", "dt"}, {"dims", "BTH"}}}},
          {"params", {{{"name", "A"}, {"dims", "H"}}}},
          {"scans", {{{"name", "z"}, {"init", -0.5}}}}};
}

/// The inputs of `gated` both entries take, in the kernels' order.
inline nlohmann::json gatedInputs() {
  return {argument("q", "BTHK", "input"),
          unusedArgument("k", "BTHK", "input"),
          argument("v", "BTHV", "input"),
          optionalInput("h0", "NHKV"),
          argument("seqs", "N3", "sequences", "i64"),
          argument("dt", "BTH", "input"),
          argument("A", "H", "input"),
          optionalInput("scan_z_h0", "NH")};
}

/// The arguments of the forward of `gated`.
inline nlohmann::json gatedForwardArguments() {
  nlohmann::json arguments = gatedInputs();
  for (nlohmann::json output : {argument("o", "BTHV", "output"), argument("ht", "NHKV", "output"),
                                argument("scan_z_ht", "NH", "output")})
    arguments.push_back(output);
  return arguments;
}

/// The arguments of the backward of `gated`.
inline nlohmann::json gatedBackwardArguments() {
  nlohmann::json arguments = gatedInputs();
  for (nlohmann::json more :
       {argument("do", "BTHV", "input"), optionalInput("dht", "NHKV"),
        argument("dq", "BTHK", "output"), unusedArgument("dk", "BTHK", "output"),
        argument("dv", "BTHV", "output"), argument("dh0", "NHKV", "output"),
        argument("ddt", "BTH", "output"), argument("dA", "H", "output"),
        argument("dscan_z_h0", "NH", "output")})
    arguments.push_back(more);
  return arguments;
}

/// The spec of a fake recurrence (DecoderTest.cpp's kernels): `plain` has
/// the state alone; `full` adds the input dt, the param A, the scan c (init
/// `scanInit`), the normalizer and RoPE.
inline nlohmann::json recurrenceSpec(const std::string &name, bool full, double scanInit = 0.5) {
  nlohmann::json none = nlohmann::json::array();
  return {{"name", name},
          {"granularity", full ? "scalar" : "constant_scalar"},
          {"feature_map", "identity"},
          {"normalizer", full},
          {"derived_key", false},
          {"rope", full},
          {"key_dim", nullptr},
          {"value_dim", nullptr},
          {"chunk_size", 64},
          {"inputs", full ? nlohmann::json{{{"name", "dt"}, {"dims", "BTH"}}} : none},
          {"params", full ? nlohmann::json{{{"name", "A"}, {"dims", "H"}}} : none},
          {"scans", full ? nlohmann::json{{{"name", "c"}, {"init", scanInit}}} : none}};
}

/// The forward arguments of a fake recurrence (recurrenceSpec).
inline nlohmann::json recurrenceForwardArguments(bool full) {
  nlohmann::json arguments = {argument("q", "BTHK", "input"), argument("k", "BTHK", "input"),
                    argument("v", "BTHV", "input"), optionalInput("h0", "NHKV"),
                    argument("seqs", "N3", "sequences", "i64")};
  if (full)
    for (nlohmann::json more : {argument("dt", "BTH", "input"), argument("A", "H", "input"),
                      optionalInput("norm_h0", "NHK"), optionalInput("scan_c_h0", "NH")})
      arguments.push_back(more);
  arguments.push_back(argument("o", "BTHV", "output"));
  arguments.push_back(argument("ht", "NHKV", "output"));
  if (full)
    for (nlohmann::json more : {argument("norm_ht", "NHK", "output"), argument("scan_c_ht", "NH", "output")})
      arguments.push_back(more);
  return arguments;
}

/// The step arguments of a fake recurrence (recurrenceSpec).
inline nlohmann::json recurrenceStepArguments(bool full) {
  nlohmann::json arguments = {argument("q", "BTHK", "input"), argument("k", "BTHK", "input"),
                    argument("v", "BTHV", "input"), argument("slots", "B", "input", "i64"),
                    argument("positions", "B", "input", "i64")};
  if (full)
    for (nlohmann::json more : {argument("dt", "BTH", "input"), argument("A", "H", "input")})
      arguments.push_back(more);
  arguments.push_back(argument("state", "SHKV", "inout"));
  if (full)
    for (nlohmann::json more :
         {argument("norm_state", "SHK", "inout"), argument("scan_c_state", "SH", "inout")})
      arguments.push_back(more);
  arguments.push_back(argument("o", "BTHV", "output"));
  return arguments;
}

/// A C tensor view of `data` with `shape` (the vectors must outlive the view).
template <typename T>
decayrt_tensor view(const char *name, std::vector<T> &data, const std::vector<int64_t> &shape) {
  return decayrt_tensor{
      name,         data.data(), decayrt::DtypeOf<T>::value, static_cast<int32_t>(shape.size()),
      shape.data(), nullptr};
}

/// Expects loading `path` to fail with DECAYRT_ERROR_PACKAGE and a message holding `fragment`.
inline void expectLoadFailure(const std::string &path, const std::string &fragment) {
  decayrt_package *package = reinterpret_cast<decayrt_package *>(&package); // must be reset
  EXPECT_EQ(decayrt_package_load(path.c_str(), &package), DECAYRT_ERROR_PACKAGE);
  EXPECT_EQ(package, nullptr);
  std::string message = decayrt_last_error();
  EXPECT_TRUE(contains(message, fragment));
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  decayrt_package_free(package);
}

} // namespace decayrt::test

#endif // DECAY_TEST_FAKEPACKAGES_H
