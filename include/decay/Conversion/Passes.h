// Declarations of decayc's conversion passes and of the pipelines built from them.
#ifndef DECAY_CONVERSION_PASSES_H
#define DECAY_CONVERSION_PASSES_H

#include "mlir/Pass/Pass.h"

namespace mlir {
class OpPassManager;
}

namespace decay {
#define GEN_PASS_DECL
#include "decay/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "decay/Conversion/Passes.h.inc"

/// Lowers the output of decay-lower-to-reference (func, scf, memref, arith,
/// math) to the LLVM dialect, ready for translation and the JIT.
void buildReferenceToLLVMPipeline(mlir::OpPassManager &pm);

/// Registers the passes and the named pipelines with the global registry.
void registerDecayPassesAndPipelines();

/// Name of the reference function generated for the recurrence `specName`.
std::string referenceFunctionName(llvm::StringRef specName);
} // namespace decay

#endif
