// GPU code generation: a recurrence's GPU kernels as PTX and cubin, with what the manifest says about them.
#ifndef DECAY_CODEGEN_GPU_GPUPACKAGE_H
#define DECAY_CODEGEN_GPU_GPUPACKAGE_H

#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mlir {
class ModuleOp;
class OpPassManager;
class DialectRegistry;
} // namespace mlir

namespace decay {

/// How the GPU modules of a package are built.
struct GpuOptions {
  /// Chips ("sm_80", "sm_90", ...) and "simt": the same kernels compiled for
  /// the host to run under decayrt's SIMT emulator.
  std::vector<std::string> targets;
  /// K = V of each module; empty: the spec's fixed K (= V), else 64 and 128.
  std::vector<int64_t> headDims;
  std::string ptxas;                          ///< empty: $CUDA_HOME/bin, /usr/local/cuda/bin, PATH
  std::string emitPtxDir;                     ///< when set, one .ptx file per module is written there
  /// Tests of the SIMT emulator only: a barrier each kernel leaves out
  /// (decay-expand-gpu-kernels{test-omit-barrier}); -1: none.
  int64_t testOmitBarrier = -1;
};

/// One launch of a module, as ptxas and the kernel builder report it.
struct GpuLaunch {
  std::string function;
  std::string symbol; ///< target simt: the host entry point (decayrt/simt_abi.h)
  int64_t threads = 0;
  std::vector<std::pair<std::string, int64_t>> grid; ///< (dims letters, divide) for x, y, z
  int64_t dynamicSharedBytes = 0, staticSharedBytes = 0;
  int64_t registers = 0, spillBytes = 0, stackBytes = 0;
};

/// A size of the form token * (B T H) + chunk * (H chunks) + sequence * (N H) + fixed, in bytes.
struct ByteModel {
  int64_t token = 0, chunk = 0, sequence = 0, fixed = 0;
};

/// One CUDA module: the kernels of one entry for one chip (or simt) and head dims.
struct GpuModule {
  std::string entry, target;
  int64_t keyDim = 0, valueDim = 0, chunkSize = 0;
  std::string ptx, cubin;
  std::vector<GpuLaunch> launches;
  ByteModel workspace, moves;
};

/// Registers what the GPU pipeline needs in a context: the GPU, NVGPU and
/// NVVM dialects, the NVVM target and the LLVM IR translations.
void registerGpuCodegen(mlir::DialectRegistry &registry);

/// Lowers the gpu.modules of decay-expand-gpu-kernels to the LLVM and NVVM
/// dialects (NVGPU and GPU ops to NVVM; the dynamic shared memory an extern
/// array): the IR the NVPTX back end (and the SIMT emulation) takes.
void buildGpuKernelsToNvvmPipeline(mlir::OpPassManager &pm);

/// Lowers the gpu.modules of decay-expand-gpu-kernels to PTX for `chip`
/// (sm_80, sm_90): NVGPU and GPU ops to NVVM, then gpu-module-to-binary,
/// which links libdevice from the CUDA toolkit at `toolkit` (for the math
/// functions) and leaves each module's PTX in a gpu.binary.
void buildGpuKernelsToPtxPipeline(mlir::OpPassManager &pm, const std::string &chip,
                                  const std::string &toolkit);

/// Where a CUDA toolkit is looked for, in order: $CUDA_HOME, /usr/local/cuda.
std::vector<std::string> cudaToolkitCandidates();

/// The first of cudaToolkitCandidates() that holds nvvm/libdevice (empty if none).
std::string defaultCudaToolkit();

/// Lowers the gpu.modules of decay-expand-gpu-kernels to host functions for
/// the SIMT emulator: the NVVM pipeline (the same IR the NVPTX back end
/// gets), then decay-gpu-to-simt.
void buildGpuKernelsToSimtPipeline(mlir::OpPassManager &pm);

/// The GPU modules of a package.
struct GpuCompilation {
  std::vector<GpuModule> modules;
  /// With target simt: LLVM IR (text) of the host entry points of every
  /// simt module's launches.
  std::string simtLLVMIR;
};

/// Compiles the recurrence of `specModule` (a module holding one
/// decay.recurrence, left unchanged) into one GpuModule per (entry, target,
/// head dim): for a chip, PTX from MLIR, cubin from ptxas, and the
/// registers, spills and shared memory ptxas reports (fails if a kernel
/// spills); for simt, host code for the emulator.
llvm::Expected<GpuCompilation> compileGpuModules(mlir::ModuleOp specModule,
                                                 const GpuOptions &options);

/// The PTX ISA version of `chip`, as an NVPTX feature (sm_80: +ptx70, sm_86: +ptx71, sm_87: +ptx74,
/// sm_89: +ptx78, sm_90: +ptx80).
std::string ptxFeaturesOf(const std::string &chip);

} // namespace decay

#endif
