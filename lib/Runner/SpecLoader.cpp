// Parsing a spec file: diagnostics with locations, and the choice of one recurrence.
#include "decay/Runner/SpecLoader.h"

#include "decay/Dialect/Decay/IR/DecayDialect.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
using namespace decay;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}
} // namespace

llvm::Expected<OwningOpRef<ModuleOp>> decay::loadSpec(MLIRContext &context, llvm::StringRef source,
                                                      llvm::StringRef bufferName,
                                                      llvm::StringRef recurrence,
                                                      llvm::StringRef dtype,
                                                      llvm::StringRef stateDtype) {
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(source, bufferName),
                               llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return makeError("'" + bufferName + "' is not a valid spec (see the diagnostics above)");

  SmallVector<RecurrenceOp> specs(module->getOps<RecurrenceOp>());
  RecurrenceOp chosen;
  for (RecurrenceOp spec : specs)
    if (recurrence.empty() ? specs.size() == 1 : spec.getSymName() == recurrence)
      chosen = spec;
  if (!chosen) {
    std::string names;
    for (RecurrenceOp spec : specs)
      names += (names.empty() ? "@" : ", @") + spec.getSymName().str();
    if (specs.empty())
      return makeError("'" + bufferName + "' holds no decay.recurrence");
    if (recurrence.empty())
      return makeError("'" + bufferName + "' holds several recurrences (" + names +
                       "): choose one with --recurrence");
    return makeError("'" + bufferName + "' has no recurrence @" + recurrence + " (it has " +
                     names + ")");
  }
  for (RecurrenceOp spec : specs)
    if (spec != chosen)
      spec.erase();
  if (!dtype.empty() && failed(chosen.setDtypeByName(dtype)))
    return makeError("dtype must be f32 or bf16, got '" + dtype + "'");
  if (!stateDtype.empty() && failed(chosen.setStateDtypeByName(stateDtype)))
    return makeError("state dtype must be f32 or bf16, got '" + stateDtype + "'");
  return module;
}

llvm::Expected<OwningOpRef<ModuleOp>> decay::loadSpecFile(MLIRContext &context, llvm::StringRef path,
                                                          llvm::StringRef recurrence,
                                                          llvm::StringRef dtype,
                                                          llvm::StringRef stateDtype) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> file = openInputFile(path, &error);
  if (!file)
    return makeError("cannot read spec '" + path + "': " + error);
  return loadSpec(context, file->getBuffer(), path, recurrence, dtype, stateDtype);
}
