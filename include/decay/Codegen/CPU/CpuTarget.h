// What the CPU kernels are compiled for: the vector register width of a -march CPU.
#ifndef DECAY_CODEGEN_CPU_CPUTARGET_H
#define DECAY_CODEGEN_CPU_CPUTARGET_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace decay {

/// The width in bits of the vector registers the kernels use on `cpu` (a
/// -march name such as znver4, x86-64-v3, or "native" for this machine):
/// 512 where the CPU has AVX-512F, else 256 (AVX2). This is
/// decay-expand-kernels' `vector-bits` (a package also asks LLVM to keep
/// 512-bit vectors whole where the CPU's tuning prefers 256-bit ones). An
/// error names a CPU that LLVM's x86 back end does not know.
llvm::Expected<int64_t> cpuVectorBits(llvm::StringRef cpu);

} // namespace decay

#endif
