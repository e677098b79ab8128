// Transformations of the decay dialect.
#ifndef DECAY_TRANSFORMS_PASSES_TD
#define DECAY_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def DecayDeriveGradientsPass : Pass<"decay-derive-gradients", "mlir::ModuleOp"> {
  let summary = "Derive the reverse-mode adjoint of every recurrence's decay region";
  let description = [{
    For each `decay.recurrence @name` with a decay, adds `decay.adjoint @name`:
    the region's forward computation (scans replaced by their update from the
    carried-in value) followed by the reverse sweep of every operation, from
    the gradients of the log-decay and derived key to the gradients of the
    inputs, the params and the carried scan states. An operation without an
    adjoint rule is reported at its location.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
}

#endif // DECAY_TRANSFORMS_PASSES_TD
