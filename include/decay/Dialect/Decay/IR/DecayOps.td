// Operations of the `decay` dialect: the recurrence spec and the ops of its region.
#ifndef DECAY_OPS_TD
#define DECAY_OPS_TD

include "decay/Dialect/Decay/IR/DecayDialect.td"
include "decay/Dialect/Decay/IR/DecayEnums.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/IR/OpBase.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"

def Decay_RecurrenceOp : Decay_Op<"recurrence", [
    Symbol, IsolatedFromAbove,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmBlockArgumentNames"]>]> {
  let summary = "One decay recurrence of linear attention, described declaratively";
  let description = [{
    Syntax:

    ```mlir
    decay.recurrence @mamba2 scalar
        inputs(%dt : [B, T, H]) params(%A_log : [H], %dt_bias : [H])
        attributes {dtype = bf16, chunk_size = 64} {
      ...                               // arith, math and decay ops on f32 scalars
      decay.yield %g : f32              // log-decay [, derived key]
    }
    ```

    The granularity is one of `none`, `constant_scalar`, `constant_vector`,
    `scalar`, `vector`. Inputs are per token (dims start with B, T); params have
    dims among H and K. The region is evaluated per element of the decay
    ((b,t,h) for scalar, (b,t,h,c) for vector, (h) or (h,c) for the constant
    granularities); each block argument is the declared tensor at that element.
    A `none` recurrence has no region (log-decay 0). Options (all optional):
    key_dim, value_dim, scale, feature_map, normalizer, eps, rope_theta, dtype,
    state_dtype, chunk_size. docs/semantics.md states what the recurrence
    computes.
  }];
  let arguments = (ins
    SymbolNameAttr:$sym_name,
    Decay_Granularity:$granularity,
    StrArrayAttr:$input_names,
    StrArrayAttr:$input_dims,
    StrArrayAttr:$param_names,
    StrArrayAttr:$param_dims,
    OptionalAttr<I64Attr>:$key_dim,
    OptionalAttr<I64Attr>:$value_dim,
    OptionalAttr<F64Attr>:$scale,
    OptionalAttr<StrAttr>:$feature_map,
    UnitAttr:$normalizer,
    OptionalAttr<F64Attr>:$eps,
    OptionalAttr<F64Attr>:$rope_theta,
    OptionalAttr<TypeAttr>:$dtype,
    OptionalAttr<TypeAttr>:$state_dtype,
    OptionalAttr<I64Attr>:$chunk_size
  );
  let regions = (region MaxSizedRegion<1>:$body);
  let hasCustomAssemblyFormat = 1;
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
  let extraClassDeclaration = [{
    /// The names of every option a spec may set in its `attributes` dictionary.
    static llvm::ArrayRef<llvm::StringLiteral> getOptionNames();
    /// True when the decay depends on the token (scalar or vector granularity).
    bool isPerToken();
    /// True when the decay differs per key channel (vector granularities).
    bool isPerChannel();
    /// True when the region yields a derived key.
    bool hasDerivedKey();
    /// The yield terminating the region, or null (granularity none).
    mlir::Operation *getYield();
    /// The scan ops of the region, in order.
    llvm::SmallVector<mlir::Operation *> getScans();
    /// The options with their defaults applied.
    double getEffectiveEps();
    FeatureMap getEffectiveFeatureMap();
    /// The element type the kernels store the per-token tensors in (the
    /// `dtype` option: f32, the default, or bf16); states and params are f32.
    mlir::FloatType getEffectiveDtype();
    /// Sets the `dtype` option from its name, "f32" or "bf16"; fails on any
    /// other name (and leaves the op unchanged).
    llvm::LogicalResult setDtypeByName(llvm::StringRef name);
    /// The element type the step kernels store the attention state S in
    /// (the `state_dtype` option: f32, the default, or bf16, read and
    /// written around f32 arithmetic); the normalizer's and scans' states
    /// and every forward and backward state stay f32.
    mlir::FloatType getEffectiveStateDtype();
    /// Sets the `state_dtype` option from its name, "f32" or "bf16"; fails
    /// on any other name (and leaves the op unchanged).
    llvm::LogicalResult setStateDtypeByName(llvm::StringRef name);
  }];
}

def Decay_AdjointOp : Decay_Op<"adjoint", [IsolatedFromAbove,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmBlockArgumentNames"]>]> {
  let summary = "The reverse-mode derivative of a recurrence's decay region";
  let description = [{
    Derived by `decay-derive-gradients` from `decay.recurrence @name`, and
    evaluated per element like the recurrence's region. Its arguments are the
    recurrence's inputs and params, the value each scan carries in (`prev`),
    the gradient of the log-decay, the gradient of the derived key (when the
    recurrence derives one) and, per scan, the gradient arriving at the scan's
    `cur` from later tokens. It yields the gradients of the inputs, of the
    params, and per scan the gradient to carry to the previous token.

    ```mlir
    decay.adjoint @mamba2 {
    ^bb0(%dt: f32, %A_log: f32, %dt_bias: f32, %d_g: f32):
      ...
      decay.yield %d_dt, %d_A_log, %d_dt_bias : f32, f32, f32
    }
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$recurrence);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = "$recurrence attr-dict-with-keyword $body";
  let hasRegionVerifier = 1;
}

def Decay_YieldOp : Decay_Op<"yield", [Pure, Terminator, ReturnLike,
    ParentOneOf<["RecurrenceOp", "AdjointOp"]>]> {
  let summary = "Yields the log-decay and optionally a derived key (or, in an adjoint, the gradients)";
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

class Decay_UnaryMathOp<string mnemonic, string summaryText>
    : Decay_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = summaryText;
  let arguments = (ins AnyFloat:$x);
  let results = (outs AnyFloat:$result);
  let assemblyFormat = "$x attr-dict `:` type($x)";
  let hasFolder = 1;
}

def Decay_SoftplusOp : Decay_UnaryMathOp<"softplus",
    "log(1 + exp(x)), computed without overflow">;
def Decay_LogSigmoidOp : Decay_UnaryMathOp<"logsigmoid",
    "log(sigmoid(x)) = -softplus(-x)">;

def Decay_LogAddExpOp : Decay_Op<"logaddexp", [Pure, Commutative,
    SameOperandsAndResultType]> {
  let summary = "log(exp(a) + exp(b)), computed without overflow";
  let arguments = (ins AnyFloat:$lhs, AnyFloat:$rhs);
  let results = (outs AnyFloat:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($lhs)";
  let hasFolder = 1;
}

def Decay_HeadIndexOp : Decay_Op<"head_index", [Pure]> {
  let summary = "The index h of the current head (0-based), as a float";
  let results = (outs AnyFloat:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
}

def Decay_NumHeadsOp : Decay_Op<"num_heads", [Pure]> {
  let summary = "The number of heads H, as a float";
  let results = (outs AnyFloat:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
}

class Decay_ScanOp<string mnemonic, string summaryText>
    : Decay_Op<mnemonic, [AllTypesMatch<["x", "prev", "cur"]>]> {
  let summary = summaryText;
  let description = [{
    A scan over the tokens of each sequence, per head (scalar granularity) or
    per head and key channel (vector granularity). `prev` is the carried state
    before this token (the init value at a sequence's first token, or the
    state restored from `scan_<name>_h0`), `cur` the state after it. The state
    is part of the recurrence's state: it is written to `scan_<name>_ht`.
  }];
  let arguments = (ins StrAttr:$name, AnyFloat:$x, F64Attr:$init);
  let results = (outs AnyFloat:$prev, AnyFloat:$cur);
  let assemblyFormat = "$name $x `init` $init attr-dict `:` type($x)";
  let hasVerifier = 1;
}

def Decay_CumSumOp : Decay_ScanOp<"cumsum",
    "Running sum over time: cur = prev + x">;
def Decay_LogCumSumExpOp : Decay_ScanOp<"logcumsumexp",
    "Running log-sum-exp over time: cur = logaddexp(prev, x)">;

#endif // DECAY_OPS_TD
