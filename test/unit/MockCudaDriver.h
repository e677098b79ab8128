// The mock CUDA driver (MockCudaDriver.c) as the tests see it: its records, its control functions, and the fake images it loads.
#ifndef DECAY_TEST_MOCKCUDADRIVER_H
#define DECAY_TEST_MOCKCUDADRIVER_H

#include "FakePackages.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef DECAY_MOCK_CUDA_DRIVER
#error "define DECAY_MOCK_CUDA_DRIVER as the path of the mock driver (decay-mock-cuda)"
#endif

// What the mock records: the structs of MockCudaDriver.c, at global scope
// under the same tags, so that the functions returning them are called
// through pointers of their exact type (UBSan checks it).
struct MockLaunch {
  char function[64];
  unsigned grid[3], block[3];
  unsigned sharedBytes;
  void *stream;
  int parameterCount;
  uint64_t parameters[32];
  unsigned long long context;
};
struct MockWrite {
  uint64_t address;
  size_t bytes;
  int value;
};
struct MockLoad {
  int cubin;
  int target;
  unsigned long long context;
};
/// A CUDA context (CUcontext is a pointer to it, as in cuda.h).
struct CUctx_st;

namespace decayrt::test {

/// The mock driver's control functions, from the very library decayrt loads.
class MockDriver {
public:
  /// Points decayrt at the mock (before its first CUDA call) and opens it.
  static MockDriver &get() {
    static MockDriver driver;
    return driver;
  }

  void reset() { call<void (*)()>("mock_cuda_reset")(); }
  void setCapability(int major, int minor) {
    call<void (*)(int, int)>("mock_cuda_set_capability")(major, minor);
  }
  void fail(const char *function, int result) {
    call<void (*)(const char *, int)>("mock_cuda_fail")(function, result);
  }
  std::vector<MockLaunch> launches() { return records<MockLaunch>("launch"); }
  std::vector<MockWrite> writes() { return records<MockWrite>("write"); }
  std::vector<MockLoad> loads() { return records<MockLoad>("load"); }
  int unloads() { return count("mock_cuda_unload_count"); }
  int attributes() { return count("mock_cuda_attribute_count"); }
  int synchronizations() { return count("mock_cuda_synchronize_count"); }
  int liveAllocations() { return count("mock_cuda_live_allocations"); }

  /// Pushes a new context on this thread (as a framework's own context would be).
  void pushNewContext() {
    CUctx_st *context = call<CUctx_st *(*)()>("mock_cuda_new_context")();
    call<int (*)(CUctx_st *)>("cuCtxPushCurrent_v2")(context);
  }
  void popContext() {
    CUctx_st *context = nullptr;
    call<int (*)(CUctx_st **)>("cuCtxPopCurrent_v2")(&context);
  }

private:
  MockDriver() {
    setenv("DECAYRT_CUDA_DRIVER", DECAY_MOCK_CUDA_DRIVER, 1);
    library = dlopen(DECAY_MOCK_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL);
    if (!library)
      ADD_FAILURE() << "cannot open the mock driver: " << dlerror();
  }

  template <typename Function> Function call(const char *name) {
    void *address = library ? dlsym(library, name) : nullptr;
    if (!address)
      throw std::runtime_error(std::string("the mock driver lacks ") + name);
    return reinterpret_cast<Function>(address);
  }
  int count(const char *name) { return call<int (*)()>(name)(); }
  template <typename Record> std::vector<Record> records(const std::string &kind) {
    int total = count(("mock_cuda_" + kind + "_count").c_str());
    auto at = call<const Record *(*)(int)>(("mock_cuda_" + kind).c_str());
    std::vector<Record> result;
    for (int i = 0; i < total; ++i)
      result.push_back(*at(i));
    return result;
  }

  void *library = nullptr;
};

/// A fake image the package exports: "functions=name:count" gives each
/// function's parameter count (see MockCudaDriver.c).
struct Image {
  const char *symbol;
  std::string text;
};

/// The C source of the images (a cubin's 0x7f byte escaped).
inline std::string imageSource(const std::vector<Image> &images) {
  std::string source;
  for (const Image &image : images) {
    bool elf = image.text[0] == '\x7f';
    source += std::string(elf ? "const unsigned char " : "const char ") + image.symbol + "[] = " +
              (elf ? "\"\\x7f\" " + cStringLiteral(image.text.substr(1)) : cStringLiteral(image.text)) +
              ";\n";
  }
  return source;
}

} // namespace decayrt::test

#endif // DECAY_TEST_MOCKCUDADRIVER_H
