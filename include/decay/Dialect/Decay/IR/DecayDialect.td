// The `decay` dialect: declarative specs of linear-attention decay recurrences.
#ifndef DECAY_DIALECT_TD
#define DECAY_DIALECT_TD

include "mlir/IR/OpBase.td"

def Decay_Dialect : Dialect {
  let name = "decay";
  let cppNamespace = "::decay";
  let summary = "Decay recurrences of linear attention";
  let description = [{
    One `decay.recurrence` describes one recurrence S_t = D_t S_{t-1} + k_t v_t^T
    declaratively: the granularity of its decay, its per-token inputs and params,
    its options, and a region that computes the log-decay (and optionally a derived
    key) per element. Passes lower it to reference, chunked and step kernels.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
  let usePropertiesForAttributes = 0;
  let hasConstantMaterializer = 1;
}

class Decay_Op<string mnemonic, list<Trait> traits = []>
    : Op<Decay_Dialect, mnemonic, traits>;

#endif // DECAY_DIALECT_TD
