// Compiling an example spec's GPU kernels for the SIMT emulator into a loaded package, for the emulated-kernel tests.
#ifndef DECAY_TEST_UNIT_SIMTPACKAGE_H
#define DECAY_TEST_UNIT_SIMTPACKAGE_H

#include "TempDir.h"

#include "decay/Codegen/CPU/CpuPackage.h"
#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace decay::test {

/// A package with the spec's simt modules, loaded.
struct SimtPackage {
  decay::test::TempDir dir;
  decayrt_package *package = nullptr;
  ~SimtPackage() { decayrt_package_free(package); }
};

/// The simt package of the spec file `specPath` (head dims 64 and 128;
/// `dtype`, `stateDtype`: decayc compile's --dtype, --state-dtype); a test
/// failure and null when it does not compile or load.
inline std::unique_ptr<SimtPackage> compileSimtFile(const std::string &specPath,
                                                    int64_t omitBarrier = -1,
                                                    const std::string &dtype = "",
                                                    const std::string &stateDtype = "") {
  auto result = std::make_unique<SimtPackage>();
  std::string path = result->dir / "package.so";
  decay::CpuPackageOptions options;
  options.cpuKernels = false;
  options.gpu.targets = {"simt"};
  options.gpu.headDims = {64, 128};
  options.gpu.testOmitBarrier = omitBarrier;
  options.dtype = dtype;
  options.stateDtype = stateDtype;
  if (llvm::Error error = decay::compileCpuPackage(specPath, path, options)) {
    ADD_FAILURE() << llvm::toString(std::move(error));
    return nullptr;
  }
  if (decayrt_package_load(path.c_str(), &result->package) != DECAYRT_OK) {
    ADD_FAILURE() << decayrt_last_error();
    return nullptr;
  }
  return result;
}

/// The simt package of the example spec `variant`.
inline std::unique_ptr<SimtPackage> compileSimt(const std::string &variant, int64_t omitBarrier = -1,
                                                const std::string &dtype = "",
                                                const std::string &stateDtype = "") {
  return compileSimtFile(std::string(DECAY_EXAMPLES_DIR) + "/" + variant + ".mlir", omitBarrier,
                         dtype, stateDtype);
}

} // namespace decay::test

#endif
