// libFuzzer target: any byte string given to the spec parser and verifier gives diagnostics, never a crash.
#include "decay/InitDecay.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mlir::DialectRegistry *registry = [] {
    auto *r = new mlir::DialectRegistry();
    decay::registerDecayDialects(*r);
    return r;
  }();
  mlir::MLIRContext context(*registry, mlir::MLIRContext::Threading::DISABLED);
  context.loadAllAvailableDialects();
  // Swallow diagnostics: the fuzzer only looks for crashes and memory errors.
  mlir::ScopedDiagnosticHandler quiet(&context, [](mlir::Diagnostic &) {
    return mlir::success();
  });
  std::string source(reinterpret_cast<const char *>(data), size);
  mlir::ParserConfig config(&context, /*verifyAfterParse=*/true);
  mlir::OwningOpRef<mlir::Operation *> op =
      mlir::parseSourceString(source, config, "fuzz-input");
  if (op)
    (void)mlir::verify(*op);
  return 0;
}
