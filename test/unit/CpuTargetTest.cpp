// decay::cpuVectorBits: the vector width that sizes the CPU kernels' register tiles, by -march CPU.
#include "decay/Codegen/CPU/CpuTarget.h"

#include <gtest/gtest.h>

#include "llvm/ADT/StringMap.h"
#include "llvm/TargetParser/Host.h"

namespace {

int64_t bitsOf(llvm::StringRef cpu) {
  auto bits = decay::cpuVectorBits(cpu);
  if (!bits) {
    ADD_FAILURE() << cpu.str() << ": " << llvm::toString(bits.takeError());
    return 0;
  }
  return *bits;
}

TEST(CpuVectorBits, AvxFiveTwelveCpusGetWideTiles) {
  EXPECT_EQ(bitsOf("znver4"), 512);
  EXPECT_EQ(bitsOf("znver5"), 512);
  EXPECT_EQ(bitsOf("x86-64-v4"), 512);
  EXPECT_EQ(bitsOf("sapphirerapids"), 512);
}

TEST(CpuVectorBits, AvxTwoCpusGetNarrowTiles) {
  EXPECT_EQ(bitsOf("znver3"), 256);
  EXPECT_EQ(bitsOf("x86-64-v3"), 256);
  EXPECT_EQ(bitsOf("haswell"), 256);
  EXPECT_EQ(bitsOf("x86-64"), 256);
}

TEST(CpuVectorBits, CpusWhereLlvmPrefers256BitVectorsStillGetWideTiles) {
  // Their tuning prefers 256-bit vectors; a package marks its kernels with
  // min-legal-vector-width = 512 so that the 16-lane tiles stay in zmm.
  EXPECT_EQ(bitsOf("skylake-avx512"), 512);
  EXPECT_EQ(bitsOf("icelake-server"), 512);
}

TEST(CpuVectorBits, NativeFollowsThisMachinesFeatures) {
  bool avx512 = llvm::sys::getHostCPUFeatures().lookup("avx512f");
  int64_t bits = bitsOf("native");
  if (!avx512)
    EXPECT_EQ(bits, 256);
  else
    EXPECT_TRUE(bits == 512 || bits == 256) << bits;
}

TEST(CpuVectorBits, UnknownCpusAreErrors) {
  for (const char *cpu : {"not-a-cpu", "", "ZNVER4"}) {
    auto bits = decay::cpuVectorBits(cpu);
    ASSERT_FALSE(bits) << cpu;
    EXPECT_EQ(llvm::toString(bits.takeError()),
              std::string("unknown CPU '") + cpu +
                  "' (expected an x86-64 -march name such as znver4, x86-64-v3 or native)");
  }
}

} // namespace
