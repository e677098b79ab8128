// CPU code generation: the kernels of a recurrence as one shared object with its manifest (docs/package.md).
#ifndef DECAY_CODEGEN_CPU_CPUPACKAGE_H
#define DECAY_CODEGEN_CPU_CPUPACKAGE_H

#include "decay/Codegen/GPU/GpuPackage.h"

#include "llvm/Support/Error.h"

#include <string>

namespace mlir {
class OpPassManager;
}

namespace decay {

/// How `decayc compile` builds a package.
struct CpuPackageOptions {
  bool cpuKernels = true;       ///< compile the CPU kernels (--target cpu)
  GpuOptions gpu;               ///< GPU modules (--target sm_XX), none when gpu.targets is empty
  std::string recurrence;       ///< which decay.recurrence (empty: the file's only one)
  int64_t chunkSize = 0;        ///< tokens per chunk (0: the spec's hint, else 64)
  std::string dtype;            ///< per-token tensors: "f32" or "bf16" (empty: the spec's dtype)
  std::string stateDtype;       ///< the step's attention state: "f32" or "bf16" (empty: the spec's)
  std::string cpu = "native";   ///< -march for the kernels
  std::string compiler = "clang-22"; ///< compiles and links the LLVM IR
  std::string emitLLVMPath;     ///< when set, also write the LLVM IR there
  bool profilePhases = false;   ///< line tables naming each kernel phase (--profile-phases)
};

/// Lowers the chunked kernels (decay-expand-kernels output) to the LLVM
/// dialect, with the (sequence, group of heads) loops on OpenMP threads. With
/// `cachedScratch`, the kernels' buffers come from `_mlir_memref_to_llvm_alloc`
/// and `_mlir_memref_to_llvm_free` (a package defines them: PackageScratch.c)
/// instead of malloc and free. With `lineTables`, every function gets a
/// debug-info scope, so that the LLVM IR carries line tables of the ops'
/// locations.
void buildCpuKernelsToLLVMPipeline(mlir::OpPassManager &pm, bool cachedScratch = false,
                                   bool lineTables = false);

/// Compiles the spec at `specPath` into the package `outputPath`: the CPU
/// forward and backward kernels and their entry points, the GPU modules'
/// PTX and cubin as exported data, and the manifest. Writes `outputPath`
/// only when everything succeeded.
llvm::Error compileCpuPackage(llvm::StringRef specPath, llvm::StringRef outputPath,
                              const CpuPackageOptions &options);

} // namespace decay

#endif
