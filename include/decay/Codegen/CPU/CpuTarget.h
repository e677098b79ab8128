// What the CPU kernels are compiled for and run with: the vector register width of a -march CPU, the MXCSR bits they set.
#ifndef DECAY_CODEGEN_CPU_CPUTARGET_H
#define DECAY_CODEGEN_CPU_CPUTARGET_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>

namespace decay {

/// The width in bits of the vector registers the kernels use on `cpu` (a
/// -march name such as znver4, x86-64-v3, or "native" for this machine):
/// 512 where the CPU has AVX-512F, else 256 (AVX2). This is
/// decay-expand-kernels' `vector-bits` (a package also asks LLVM to keep
/// 512-bit vectors whole where the CPU's tuning prefers 256-bit ones). An
/// error names a CPU that LLVM's x86 back end does not know.
llvm::Expected<int64_t> cpuVectorBits(llvm::StringRef cpu);

/// MXCSR's flush-to-zero (FTZ, bit 15) and denormals-are-zero (DAZ, bit 6):
/// the CPU kernels run with both set (a package's entry point sets them for
/// the call, as SpecProgram does for the kernels it compiles in process).
constexpr uint32_t kFlushSubnormals = 0x8040;

} // namespace decay

#endif
