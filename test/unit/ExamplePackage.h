// An example spec compiled by `decayc compile` into a test's folder and loaded through decayrt.
#ifndef DECAY_TEST_UNIT_EXAMPLEPACKAGE_H
#define DECAY_TEST_UNIT_EXAMPLEPACKAGE_H

#include "TempDir.h"

#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace decay::test {

/// examples/specs/<spec>.mlir compiled into `dir` and loaded; freed with the
/// object. `package` is null (and the test failed) when either step failed.
struct ExamplePackage {
  decayrt_package *package = nullptr;

  ExamplePackage(const TempDir &dir, const std::string &spec) {
    std::string path = dir / (spec + ".so");
    std::string command =
        std::string(DECAYC_PATH) + " compile " + DECAY_EXAMPLES_DIR + "/" + spec + ".mlir -o " + path;
    if (std::system(command.c_str()) != 0) {
      ADD_FAILURE() << "failed: " << command;
      return;
    }
    if (decayrt_package_load(path.c_str(), &package) != DECAYRT_OK)
      ADD_FAILURE() << "cannot load " << path << ": " << decayrt_last_error();
  }
  ~ExamplePackage() { decayrt_package_free(package); }
  ExamplePackage(const ExamplePackage &) = delete;
  ExamplePackage &operator=(const ExamplePackage &) = delete;
};

} // namespace decay::test

#endif
