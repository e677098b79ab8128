// The pipeline from the GPU kernels of decay-expand-gpu-kernels to PTX (NVGPU and GPU to NVVM, then the NVPTX back end).
#include "decay/Codegen/GPU/GpuPackage.h"
#include "decay/Conversion/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVM.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVM.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVM.h"
#include "mlir/Conversion/NVGPUToNVVM/NVGPUToNVVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/Support/FileSystem.h"

using namespace mlir;

namespace {
/// Makes the dynamic shared memory of each kernel an external declaration,
/// which the NVPTX back end prints as `.extern .shared .b8 name[]`: the
/// memory the launch gives. convert-gpu-to-nvvm makes it an internal
/// zero-sized global, which NVPTX prints as a 1-byte static array that the
/// kernels then index past.
struct ExternDynamicSharedMemoryPass
    : PassWrapper<ExternDynamicSharedMemoryPass, OperationPass<gpu::GPUModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ExternDynamicSharedMemoryPass)
  StringRef getArgument() const override { return "decay-extern-dynamic-shared-memory"; }
  void runOnOperation() override {
    getOperation().walk([](LLVM::GlobalOp global) {
      auto array = dyn_cast<LLVM::LLVMArrayType>(global.getGlobalType());
      if (global.getAddrSpace() == static_cast<unsigned>(NVVM::NVVMMemorySpace::Shared) && array &&
          array.getNumElements() == 0)
        global.setLinkage(LLVM::Linkage::External);
    });
  }
};
} // namespace

void decay::registerGpuCodegen(DialectRegistry &registry) {
  registry.insert<gpu::GPUDialect, nvgpu::NVGPUDialect, NVVM::NVVMDialect>();
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  // convert-gpu-to-nvvm takes the patterns of every dialect that offers them.
  arith::registerConvertArithToLLVMInterface(registry);
  cf::registerConvertControlFlowToLLVMInterface(registry);
  registerConvertFuncToLLVMInterface(registry);
  NVVM::registerConvertGpuToNVVMInterface(registry);
  index::registerConvertIndexToLLVMInterface(registry);
  registerConvertMathToLLVMInterface(registry);
  registerConvertMemRefToLLVMInterface(registry);
  registerConvertNVVMToLLVMInterface(registry);
  ub::registerConvertUBToLLVMInterface(registry);
  vector::registerConvertVectorToLLVMInterface(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerGPUDialectTranslation(registry);
  registerNVVMDialectTranslation(registry);
}

std::string decay::ptxFeaturesOf(const std::string &chip) {
  // The first PTX ISA version of each chip (the NVPTX back end aborts on
  // older ones; CUDA's default for a chip is too old for CUDA 13's ptxas).
  if (chip == "sm_86")
    return "+ptx71";
  if (chip == "sm_87")
    return "+ptx74";
  if (chip == "sm_89")
    return "+ptx78";
  if (chip == "sm_90")
    return "+ptx80";
  return "+ptx70";
}

std::vector<std::string> decay::cudaToolkitCandidates() {
  std::vector<std::string> candidates;
  if (const char *home = std::getenv("CUDA_HOME"))
    candidates.push_back(home);
  candidates.push_back("/usr/local/cuda");
  return candidates;
}

std::string decay::defaultCudaToolkit() {
  for (const std::string &candidate : cudaToolkitCandidates())
    if (llvm::sys::fs::exists(candidate + "/nvvm/libdevice/libdevice.10.bc"))
      return candidate;
  return "";
}

void decay::buildGpuKernelsToNvvmPipeline(OpPassManager &pm) {
  OpPassManager &device = pm.nest<gpu::GPUModuleOp>();
  // nvgpu first: convert-gpu-to-nvvm leaves nvgpu ops alone, silently.
  device.addPass(createConvertNVGPUToNVVMPass());
  // Subviews (the backward's per-sequence views) become plain index math.
  device.addPass(memref::createExpandStridedMetadataPass());
  device.addPass(createLowerAffinePass());
  device.addPass(createSCFToControlFlowPass());
  device.addPass(createConvertGpuOpsToNVVMOps());
  device.addPass(createCanonicalizerPass());
  device.addPass(createReconcileUnrealizedCastsPass());
  device.addPass(std::make_unique<ExternDynamicSharedMemoryPass>());
}

void decay::buildGpuKernelsToSimtPipeline(OpPassManager &pm) {
  // The emulated kernels run on x86-64, where only AVX512-BF16 CPUs convert
  // f32 to bf16 in hardware; LLVM calls __truncsfbf2 elsewhere, which
  // Debian 12's libgcc lacks. PTX keeps its cvt.rn.bf16.f32.
  pm.addPass(createDecayExpandBf16Pass());
  buildGpuKernelsToNvvmPipeline(pm);
  pm.addPass(createDecayGpuToSimtPass());
}

void decay::buildGpuKernelsToPtxPipeline(OpPassManager &pm, const std::string &chip,
                                         const std::string &toolkit) {
  buildGpuKernelsToNvvmPipeline(pm);
  GpuNVVMAttachTargetOptions target;
  target.chip = chip;
  target.features = ptxFeaturesOf(chip);
  target.optLevel = 3;
  pm.addPass(createGpuNVVMAttachTarget(target));
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = "isa"; // PTX: ptxas makes the cubin, with its report
  binary.toolkitPath = toolkit;       // where libdevice is (the environment may not say)
  pm.addPass(createGpuModuleToBinaryPass(binary));
}
