// The decay-expand-kernels pass: a recurrence becomes its chunked f32 forward (and backward) kernels.
#include "KernelBuilders.h"

#include "decay/Conversion/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decay {
#define GEN_PASS_DEF_DECAYEXPANDKERNELSPASS
#include "decay/Conversion/Passes.h.inc"
} // namespace decay

using namespace mlir;
using namespace decay;

namespace {
struct DecayExpandKernelsPass
    : public decay::impl::DecayExpandKernelsPassBase<DecayExpandKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (chunkSize < 0 || chunkSize > 1024) {
      module.emitError() << "decay-expand-kernels: chunk-size must be in [0, 1024] (0: the "
                            "spec's hint, else 64), got "
                         << static_cast<int64_t>(chunkSize);
      return signalPassFailure();
    }
    std::optional<RegisterTiling> tiling = RegisterTiling::forVectorBits(vectorBits);
    if (!tiling) {
      module.emitError() << "decay-expand-kernels: vector-bits must be 512 (AVX-512) or 256 "
                            "(AVX2), got "
                         << static_cast<int64_t>(vectorBits);
      return signalPassFailure();
    }
    llvm::StringMap<AdjointOp> adjoints;
    for (AdjointOp adjoint : module.getOps<AdjointOp>())
      adjoints[adjoint.getRecurrence()] = adjoint;
    SmallVector<RecurrenceOp> specs(module.getOps<RecurrenceOp>());
    for (RecurrenceOp spec : specs)
      if (!dtype.empty() && failed(spec.setDtypeByName(dtype))) {
        module.emitError() << "decay-expand-kernels: dtype must be f32 or bf16, got '" << dtype
                           << "'";
        return signalPassFailure();
      }
    for (RecurrenceOp spec : specs) {
      int64_t size = chunkSize > 0 ? chunkSize : spec.getChunkSize().value_or(64);
      ImplicitLocOpBuilder builder(spec.getLoc(), spec);
      buildChunkedForward(spec, size, *tiling, builder, phaseLocations);
      if (step)
        buildRecurrentStep(spec, builder);
      if (!backward)
        continue;
      AdjointOp adjoint = adjoints.lookup(spec.getSymName());
      if (!adjoint && spec.getGranularity() != Granularity::none) {
        spec.emitOpError() << "has no decay.adjoint: run decay-derive-gradients before "
                              "decay-expand-kernels{backward=true}";
        return signalPassFailure();
      }
      buildChunkedBackward(spec, adjoint, size, *tiling, builder, phaseLocations);
    }
    for (auto &entry : adjoints)
      entry.second.erase();
    for (RecurrenceOp spec : specs)
      spec.erase();
  }
};
} // namespace
