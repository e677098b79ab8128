// The decay-expand-bf16 pass: bf16 extensions and truncations of the kernels become integer arithmetic.
#include "decay/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace decay {
#define GEN_PASS_DEF_DECAYEXPANDBF16PASS
#include "decay/Conversion/Passes.h.inc"
} // namespace decay

using namespace mlir;

namespace {
struct DecayExpandBf16Pass : public decay::impl::DecayExpandBf16PassBase<DecayExpandBf16Pass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    arith::populateExpandBFloat16Patterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
