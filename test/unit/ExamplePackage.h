// An example spec compiled by `decayc compile` into a temporary folder and loaded through decayrt.
#ifndef DECAY_TEST_UNIT_EXAMPLEPACKAGE_H
#define DECAY_TEST_UNIT_EXAMPLEPACKAGE_H

#include "TempDir.h"

#include "decayrt/decayrt.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace decay::test {

/// examples/specs/<spec>.mlir compiled into a folder of its own and loaded;
/// freed, folder and all, with the object. `package` is null (and the test
/// failed) when either step failed.
struct ExamplePackage {
  TempDir dir;
  decayrt_package *package = nullptr;

  explicit ExamplePackage(const std::string &spec) {
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
