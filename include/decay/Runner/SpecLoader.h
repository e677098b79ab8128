// Parsing a spec file: diagnostics with locations, and the choice of one recurrence.
#ifndef DECAY_RUNNER_SPECLOADER_H
#define DECAY_RUNNER_SPECLOADER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include "llvm/Support/Error.h"

namespace decay {
/// Parses and verifies `source` (diagnostics go to stderr, located in
/// `bufferName`) and returns a module holding only the recurrence
/// `recurrence` (empty: the file's only one), with its `dtype` and
/// `state_dtype` options set to `dtype` and `stateDtype` ("f32" or "bf16")
/// unless those are empty. The context must have the decay dialects registered.
llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
loadSpec(mlir::MLIRContext &context, llvm::StringRef source, llvm::StringRef bufferName,
         llvm::StringRef recurrence, llvm::StringRef dtype = "", llvm::StringRef stateDtype = "");
/// The same, reading `path`.
llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
loadSpecFile(mlir::MLIRContext &context, llvm::StringRef path, llvm::StringRef recurrence,
             llvm::StringRef dtype = "", llvm::StringRef stateDtype = "");
} // namespace decay

#endif
