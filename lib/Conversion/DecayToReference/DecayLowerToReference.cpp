// The decay-lower-to-reference pass: a recurrence becomes the naive float64 token-by-token recurrence.
#include "ReferenceBuilders.h"

#include "decay/Conversion/Passes.h"

namespace decay {
#define GEN_PASS_DEF_DECAYLOWERTOREFERENCEPASS
#include "decay/Conversion/Passes.h.inc"
} // namespace decay

using namespace mlir;
using namespace decay;

std::string decay::referenceFunctionName(llvm::StringRef specName) {
  return (specName + "_reference").str();
}

namespace {
struct DecayLowerToReferencePass
    : public decay::impl::DecayLowerToReferencePassBase<DecayLowerToReferencePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    llvm::StringMap<AdjointOp> adjoints;
    for (AdjointOp adjoint : module.getOps<AdjointOp>())
      adjoints[adjoint.getRecurrence()] = adjoint;
    SmallVector<RecurrenceOp> specs(module.getOps<RecurrenceOp>());
    for (RecurrenceOp spec : specs) {
      ImplicitLocOpBuilder builder(spec.getLoc(), spec);
      buildForwardReference(spec, builder);
      if (!backward)
        continue;
      AdjointOp adjoint = adjoints.lookup(spec.getSymName());
      if (!adjoint && spec.getGranularity() != Granularity::none) {
        spec.emitOpError() << "has no decay.adjoint: run decay-derive-gradients before "
                              "decay-lower-to-reference{backward=true}";
        return signalPassFailure();
      }
      buildBackwardReference(spec, adjoint, builder);
    }
    for (auto &entry : adjoints)
      entry.second.erase();
    for (RecurrenceOp spec : specs)
      spec.erase();
  }
};
} // namespace
