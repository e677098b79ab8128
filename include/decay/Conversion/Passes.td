// Conversion passes of decayc: lowerings of decay.recurrence to executable IR.
#ifndef DECAY_CONVERSION_PASSES_TD
#define DECAY_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def DecayLowerToReferencePass : Pass<"decay-lower-to-reference", "mlir::ModuleOp"> {
  let summary = "Lower each decay.recurrence to the naive float64 token-by-token recurrence";
  let description = [{
    Replaces every `decay.recurrence @name` with `func.func @name_reference`,
    the obviously-right float64 recurrence of MATH.md section 1 with every
    option of the spec (feature map, normalizer, derived key, scans and their
    carried state, RoPE, initial and final states, sequences for varlen). It
    is the oracle every kernel is tested against. The function takes
    (q, k, v, h0, seqs, inputs..., params..., [norm_h0], scan_h0...,
     o, ht, [norm_ht], scan_ht...) as float64 memrefs, except `seqs`
    (memref<?x3xi64>: batch row, first token, end token of each sequence).
    The spec's f32 region is evaluated in f64.

    With `backward=true` it also creates `func.func @name_reference_backward`,
    the exact float64 gradients (it needs the `decay.adjoint` made by
    decay-derive-gradients): (q, k, v, h0, seqs, inputs..., params...,
    [norm_h0], scan_h0..., do, dht, [dnorm_ht], dscan_ht..., dq, dk, dv, dh0,
    d_inputs..., d_params..., [dnorm_h0], dscan_h0...). The gradients of the
    inputs and params are accumulated: the caller zeroes them.
  }];
  let options = [
    Option<"backward", "backward", "bool", /*default=*/"false",
           "Also create the backward reference function">
  ];
  let dependentDialects = ["::mlir::func::FuncDialect", "::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect"];
}

def DecayExpandKernelsPass : Pass<"decay-expand-kernels", "mlir::ModuleOp"> {
  let summary = "Expand each decay.recurrence into its chunked f32 kernels";
  let description = [{
    Creates `func.func @name_forward` (and with `backward=true`
    `@name_backward`, which needs the `decay.adjoint` of decay-derive-gradients):
    the chunkwise-parallel algorithm of MATH.md sections 2 and 3 in f32 with
    f32 state, an `scf.parallel` over (sequence, head) and a sequential loop
    over chunks of `chunk-size` tokens (0: the spec's chunk_size hint, else 64).
    The signatures are those of decay-lower-to-reference, with f32 memrefs.
    The spec and adjoint ops are removed.
  }];
  let options = [
    Option<"chunkSize", "chunk-size", "int64_t", /*default=*/"0",
           "Tokens per chunk (0: the spec's chunk_size, else 64)">,
    Option<"backward", "backward", "bool", /*default=*/"false",
           "Also create the backward kernel">
  ];
  let dependentDialects = ["::mlir::func::FuncDialect", "::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect", "::mlir::vector::VectorDialect"];
}

#endif // DECAY_CONVERSION_PASSES_TD
