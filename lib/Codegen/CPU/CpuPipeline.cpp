// The pipeline from the chunked kernels to the LLVM dialect, with OpenMP threads over (sequence, group of heads).
#include "decay/Codegen/CPU/CpuPackage.h"
#include "decay/Conversion/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/OpenMPToLLVM/ConvertOpenMPToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Conversion/SCFToOpenMP/SCFToOpenMP.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/DialectConversion.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

namespace {
/// Converts only math.log1p and math.expm1 to libm calls.
struct AccurateMathToLibmPass : PassWrapper<AccurateMathToLibmPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(AccurateMathToLibmPass)
  StringRef getArgument() const override { return "decay-accurate-math-to-libm"; }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<func::FuncDialect, LLVM::LLVMDialect>();
  }
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathToLibmConversionPatterns(patterns);
    ConversionTarget target(getContext());
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    target.addIllegalOp<math::Log1pOp, math::ExpM1Op>();
    if (failed(applyPartialConversion(getOperation(), target, std::move(patterns))))
      signalPassFailure();
  }
};

/// Expands f32 math.exp and math.log into MLIR's polynomial approximations:
/// plain arithmetic that LLVM vectorizes at any width (libmvec offers LLVM 22
/// only 8-lane variants) and inside loops it would otherwise leave scalar
/// because of a call.
struct ApproximateExpLogPass : PassWrapper<ApproximateExpLogPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ApproximateExpLogPass)
  StringRef getArgument() const override { return "decay-approximate-exp-log"; }
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [](StringRef name) { return name == "math.exp" || name == "math.log"; });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
/// Hands out the chunked kernels' work items, (sequence, group of heads) of
/// unequal length under varlen, one at a time (OpenMP's dynamic schedule,
/// chunk 1) instead of in equal shares. The step kernels (`*_step`) keep the
/// static schedule: their items are equal, and a decoding step is short
/// enough for the dispatch to show.
struct DynamicSchedulePass : PassWrapper<DynamicSchedulePass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(DynamicSchedulePass)
  StringRef getArgument() const override { return "decay-dynamic-schedule"; }
  void runOnOperation() override {
    getOperation().walk([](omp::WsloopOp loop) {
      auto function = loop->getParentOfType<func::FuncOp>();
      if (function && function.getSymName().ends_with("_step"))
        return;
      OpBuilder b(loop);
      Value one = arith::ConstantOp::create(b, loop.getLoc(), b.getI32IntegerAttr(1));
      loop.setScheduleKind(omp::ClauseScheduleKind::Dynamic);
      loop.getScheduleChunkMutable().assign(one);
    });
  }
};
} // namespace

void decay::buildCpuKernelsToLLVMPipeline(OpPassManager &pm, bool cachedScratch, bool lineTables) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createConvertSCFToOpenMPPass());
  pm.addPass(std::make_unique<DynamicSchedulePass>());
  // log1p and expm1 go to libm, which keeps them accurate near 0 (MathToLLVM
  // would expand them to log(1 + x) and exp(x) - 1); exp and log become
  // polynomials in f32 arithmetic; the rest become LLVM intrinsics, which LLVM
  // vectorizes with libmvec (-fveclib); libm takes what remains.
  pm.addPass(std::make_unique<AccurateMathToLibmPass>());
  pm.addPass(std::make_unique<ApproximateExpLogPass>());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  // The backward's per-head views of its work item's buffers (memref.subview)
  // as offsets and strides, then as LLVM.
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  FinalizeMemRefToLLVMConversionPassOptions memrefOptions;
  memrefOptions.useGenericFunctions = cachedScratch;
  pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefOptions));
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(decay::createDecayExpandBf16Pass()); // loads and stores of bf16 tensors
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  if (lineTables)
    pm.addPass(LLVM::createDIScopeForLLVMFuncOpPass());
}
