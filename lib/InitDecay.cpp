// One registration of decayc's dialects and passes, shared by every tool and test.
#include "decay/InitDecay.h"

#include "decay/Codegen/CPU/CpuPackage.h"
#include "decay/Codegen/GPU/GpuPackage.h"
#include "decay/Conversion/Passes.h"
#include "decay/Dialect/Decay/IR/DecayDialect.h"
#include "decay/Dialect/Decay/Transforms/Passes.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Pass/PassRegistry.h"

void decay::registerDecayDialects(mlir::DialectRegistry &registry) {
  registry.insert<DecayDialect, mlir::arith::ArithDialect, mlir::math::MathDialect,
                  mlir::func::FuncDialect, mlir::scf::SCFDialect,
                  mlir::memref::MemRefDialect, mlir::cf::ControlFlowDialect,
                  mlir::LLVM::LLVMDialect, mlir::omp::OpenMPDialect,
                  mlir::vector::VectorDialect, mlir::gpu::GPUDialect,
                  mlir::nvgpu::NVGPUDialect, mlir::NVVM::NVVMDialect>();
}

namespace {
struct GpuPipelineOptions : mlir::PassPipelineOptions<GpuPipelineOptions> {
  Option<std::string> chip{*this, "chip", llvm::cl::desc("The NVIDIA chip: sm_80, sm_90, ..."),
                           llvm::cl::init("sm_80")};
  Option<std::string> toolkit{*this, "toolkit",
                              llvm::cl::desc("The CUDA toolkit whose libdevice is linked (default: "
                                             "$CUDA_HOME, else /usr/local/cuda)"),
                              llvm::cl::init("")};
};
} // namespace

void decay::registerDecayPasses() {
  registerDecayTransformsPasses();
  registerDecayPassesAndPipelines();
  mlir::PassPipelineRegistration<>(
      "decay-cpu-kernels-to-llvm",
      "Lower the kernels of decay-expand-kernels to the LLVM dialect, with OpenMP threads",
      [](mlir::OpPassManager &pm) { buildCpuKernelsToLLVMPipeline(pm); });
  mlir::PassPipelineRegistration<>(
      "decay-gpu-kernels-to-nvvm",
      "Lower the gpu.modules of decay-expand-gpu-kernels to the LLVM and NVVM dialects",
      [](mlir::OpPassManager &pm) { buildGpuKernelsToNvvmPipeline(pm); });
  mlir::PassPipelineRegistration<>(
      "decay-gpu-kernels-to-simt",
      "Lower the gpu.modules of decay-expand-gpu-kernels to host functions for the SIMT emulator",
      [](mlir::OpPassManager &pm) { buildGpuKernelsToSimtPipeline(pm); });
  mlir::PassPipelineRegistration<GpuPipelineOptions>(
      "decay-gpu-kernels-to-ptx",
      "Lower the gpu.modules of decay-expand-gpu-kernels to PTX (a gpu.binary per module)",
      [](mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
        buildGpuKernelsToPtxPipeline(pm, options.chip,
                                     options.toolkit.empty() ? defaultCudaToolkit() : options.toolkit.getValue());
      });
}
