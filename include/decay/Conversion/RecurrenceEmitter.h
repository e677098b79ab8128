// Shared pieces of the IR emitted for a recurrence (reference and kernels): loops, math, feature maps, RoPE, regions.
#ifndef DECAY_CONVERSION_RECURRENCEEMITTER_H
#define DECAY_CONVERSION_RECURRENCEEMITTER_H

#include "decay/Dialect/Decay/IR/DecayDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace decay {

/// Indices of the element being computed: sequence n, batch row b, token t,
/// head h, key channel c (null when not per channel).
struct ElementIndex {
  mlir::Value n, b, t, h, c;
};

/// What a scan op evaluates to at one element: the carried-in and new state.
struct ScanValues {
  mlir::Value prev, cur;
};
/// Evaluates scan number `scan` (op `op`) on input `x` at the current element.
using ScanHook = llvm::function_ref<ScanValues(unsigned scan, mlir::Operation *op, mlir::Value x)>;

/// The memref arguments of a forward or backward function of a recurrence
/// (the spec's own inputs and params are bound to the emitter).
struct RecurrenceArgs {
  mlir::Value q, k, v, h0, seqs, normH0;
  llvm::SmallVector<mlir::Value> scanH0;
  // Forward outputs.
  mlir::Value o, ht, normHt;
  llvm::SmallVector<mlir::Value> scanHt;
  // Backward inputs and outputs.
  mlir::Value dout, dht, dNormHt;
  llvm::SmallVector<mlir::Value> dScanHt;
  mlir::Value dq, dk, dv, dh0, dNormH0;
  llvm::SmallVector<mlir::Value> dInputs, dParams, dScanH0;
};

/// The memref arguments of a step function (decay::signatureOf, Entry::Step);
/// the spec's own inputs and params are bound to the emitter.
struct StepArgs {
  mlir::Value q, k, v, slots, positions; ///< slots, positions: [B] i64
  mlir::Value state, normState;          ///< [S,H,K,V], [S,H,K] (in place)
  llvm::SmallVector<mlir::Value> scanStates; ///< [S,H] or [S,H,K] (in place)
  mlir::Value o;
};

/// The values every pair of a RoPE rotation shares: K/2, log(theta), K and
/// the position in the float type.
struct RopeFrame {
  mlir::Value half, logTheta, keyDim, pos;
};

/// One row of the sequence table: batch row, first token, end token.
struct SequenceBounds {
  mlir::Value batch, start, end;
};

/// Where a backward writes its gradients, and the per-sequence state of its
/// reverse sweep that the token-level tail reads and updates.
struct BackwardSinks {
  AdjointOp adjoint;                           ///< null for granularity none
  mlir::Value q, k, dq, dk;                    ///< raw inputs and their gradients [B,T,H,K]
  llvm::SmallVector<mlir::Value> dInputs, dParams;
  llvm::SmallVector<mlir::Value> scanPrev;     ///< [rows, K]: each token's carried-in scan values
  llvm::SmallVector<mlir::Value> scanCarry;    ///< [K]: scan gradients flowing to earlier tokens
  mlir::Value dKeyBuf;                         ///< [K] scratch
  mlir::Value lambdaSum;                       ///< [K] f64: the token's dg per channel (a scalar decay's is their sum)
  /// Accumulate into gradients other work items share (params, inputs
  /// without an H dim) with atomic adds: set when work items run
  /// in parallel.
  bool atomicShared = false;
  /// When set, one [K] buffer per param: the work item's own share of that
  /// param's gradient, indexed by channel (0 for a param without K), added
  /// to the param's gradient once at the end by flushParamPartials.
  llvm::SmallVector<mlir::Value> paramPartials;
  /// When set, a [K] buffer of the float type: lambdaSum narrowed in a loop
  /// of its own, so that the adjoint's channel loop has no f64 (and LLVM
  /// vectorizes it at the full f32 width).
  mlir::Value dgNarrow;
};

/// Emits IR for one recurrence in a float type (f64 for the reference, f32
/// for kernels): the helpers every lowering of a recurrence uses.
class RecurrenceEmitter {
public:
  RecurrenceEmitter(RecurrenceOp spec, mlir::ImplicitLocOpBuilder &builder,
                    mlir::FloatType floatType);

  // Constants, memory and loops.
  mlir::Value index(int64_t value);
  mlir::Value real(double value);
  mlir::Value toReal(mlir::Value indexValue);
  /// Loads an element; one stored narrower than the float type (bf16) is
  /// extended to it.
  mlir::Value load(mlir::Value memref, mlir::ValueRange indices);
  /// Stores an element; into a memref narrower than the float type (bf16) the
  /// value is rounded to nearest even.
  void store(mlir::Value value, mlir::Value memref, mlir::ValueRange indices);
  mlir::MemRefType dynamicMemRef(int64_t rank);
  /// A memref of the storage type of per-token tensors.
  mlir::MemRefType tokenMemRef(int64_t rank);
  /// A buffer of `sizes`, of `type` (default: the float type).
  mlir::Value alloc(mlir::ValueRange sizes, mlir::FloatType type = {});
  /// Emits `for i in [lb, ub)` with `body(i)` at the current insertion point.
  void loop(mlir::Value lb, mlir::Value ub, llvm::function_ref<void(mlir::Value)> body);
  /// Emits `for i = ub-1 down to lb`.
  void reverseLoop(mlir::Value lb, mlir::Value ub, llvm::function_ref<void(mlir::Value)> body);
  /// Emits the sum over i in [0, ub) of `term(i)`.
  mlir::Value sum(mlir::Value ub, llvm::function_ref<mlir::Value(mlir::Value)> term);
  /// Emits the sum over i in [lb, ub) of `term(i)`, in `type` (default: the float type).
  mlir::Value sum(mlir::Value lb, mlir::Value ub, llvm::function_ref<mlir::Value(mlir::Value)> term,
                  mlir::FloatType type = {});
  /// `x` converted to the float type (x may be wider: an f64 accumulator).
  mlir::Value narrow(mlir::Value x);
  /// `x` converted to f64.
  mlir::Value widen(mlir::Value x);

  // Arithmetic in the emitter's float type.
  mlir::Value add(mlir::Value x, mlir::Value y);
  mlir::Value sub(mlir::Value x, mlir::Value y);
  mlir::Value mul(mlir::Value x, mlir::Value y);
  mlir::Value div(mlir::Value x, mlir::Value y);
  mlir::Value exp(mlir::Value x);
  /// log(1 + e) for e in [0, 1] (the tail of softplus and logaddexp).
  mlir::Value log1pOfSmall(mlir::Value e);
  mlir::Value softplus(mlir::Value x);
  mlir::Value logSigmoid(mlir::Value x);
  mlir::Value logAddExp(mlir::Value x, mlir::Value y);
  /// The spec's feature map phi(x) and its derivative phi'(x).
  mlir::Value featureMap(mlir::Value x);
  mlir::Value featureMapDerivative(mlir::Value x);
  /// Rotates the K-vector at `buf[prefix..., :]` by RoPE at position `pos`
  /// (by the inverse rotation when `inverse`, for the backward).
  void applyRope(mlir::Value buf, mlir::ValueRange prefix, mlir::Value pos, bool inverse);
  /// What every pair of a RoPE rotation at position `pos` shares.
  RopeFrame ropeFrame(mlir::Value pos);
  /// Rotates channels (i, i + K/2) of `buf[prefix..., :]`: one pair of applyRope.
  void rotatePair(mlir::Value buf, mlir::ValueRange prefix, const RopeFrame &frame, mlir::Value i,
                  bool inverse);

  /// The dims of each argument of createFunction's signature, in its order:
  /// letters of B, T, H, K, V, N (the number of sequences); "N3" for `seqs`.
  llvm::SmallVector<std::string> argumentDims(bool backward);
  /// The argument types of that signature, from their dims (the verifier
  /// makes every spec input per token, dims B, T, ..., and no param).
  llvm::SmallVector<mlir::Type> argumentTypes(bool backward);
  /// Binds `args`, the spec's inputs and params to `values`, which follow
  /// createFunction's signature.
  void bindArguments(mlir::ValueRange values, bool backward, RecurrenceArgs &args);
  /// The dims of each argument of the step's signature (q, k, v, slots,
  /// positions, inputs..., params..., state, [norm_state], scan states...,
  /// o): letters of B, T, H, K, V, S (state slots); "B" for the i64 slots
  /// and positions.
  llvm::SmallVector<std::string> stepArgumentDims();
  /// The argument types of the step's signature, from their dims.
  llvm::SmallVector<mlir::Type> stepArgumentTypes();
  /// Binds `args`, the spec's inputs and params to `values`, which follow the
  /// step's signature.
  void bindStepArguments(mlir::ValueRange values, StepArgs &args);

  /// Creates `func.func @name` with the forward signature
  ///   (q, k, v, h0, seqs, inputs..., params..., [norm_h0], scan_h0...,
  ///    o, ht, [norm_ht], scan_ht...)
  /// or, with `backward`, the backward signature
  ///   (q, k, v, h0, seqs, inputs..., params..., [norm_h0], scan_h0...,
  ///    do, dht, [dnorm_ht], dscan_ht..., dq, dk, dv, dh0, d_inputs...,
  ///    d_params..., [dnorm_h0], dscan_h0...)
  /// in memrefs of the float type (seqs: memref<?x3xi64>; the per-token
  /// tensors, whose dims start with B, T, in `storageType`), binds `args`, the
  /// spec's inputs and params and the sizes, and leaves the builder at the
  /// start of the body (the caller guards its insertion point).
  ///
  /// When a bf16 gradient of a spec input receives several contributions
  /// (from every head, or every key channel), the function converts it to an
  /// f32 accumulator around a call to the private `<name>_body`, whose body
  /// the caller then builds: it is rounded to bf16 once, not at every addition.
  mlir::func::FuncOp createFunction(llvm::StringRef name, bool backward, RecurrenceArgs &args);
  /// Copies the initial states of sequence n, head h (h0, norm_h0,
  /// scan_<name>_h0) into the forward's final states, where a forward keeps
  /// its running state.
  void copyInitialStates(const RecurrenceArgs &args, mlir::Value n, mlir::Value h);
  /// Binds H, K, V and the scale from q [B,T,H,K] and v [B,T,H,V].
  void bindSizes(mlir::Value q, mlir::Value v);
  /// Indices of a tensor declared with `dims` (letters of BTHK) at `at`.
  llvm::SmallVector<mlir::Value> indicesFor(llvm::StringRef dims, const ElementIndex &at);
  /// Indices of a scan state [N,H] or [N,H,K] at `at`.
  llvm::SmallVector<mlir::Value> scanIndices(const ElementIndex &at);
  /// Maps the first block arguments of `block` to the spec's inputs and
  /// params loaded at `at`.
  void mapSpecArguments(mlir::Block &block, mlir::IRMapping &mapping, const ElementIndex &at);
  /// Loads row `n` of the sequence table `seqs` (memref<?x3xi64>) as indices.
  SequenceBounds loadSequence(mlir::Value seqs, mlir::Value n);
  /// Evaluates the spec's region at `at` (its inputs and params loaded there)
  /// and returns what it yields; scans are evaluated by `scan`.
  llvm::SmallVector<mlir::Value> evaluateRegion(const ElementIndex &at, ScanHook scan);
  /// Advances scan `op` on `x` with its carried state in `state[where...]`:
  /// loads prev, stores and returns cur (cumsum: prev + x; logcumsumexp:
  /// logaddexp(prev, x)).
  ScanValues advanceScan(mlir::Operation *op, mlir::Value state, mlir::ValueRange where,
                         mlir::Value x);
  /// What token `at.t` of a recurrence needs, into [K] buffers: the
  /// log-decay per key channel (`gBuf`; a scalar decay repeated), the
  /// feature-mapped query and key (the derived key as the region yields it),
  /// both rotated by RoPE at position `pos`. The spec's scans advance their
  /// carried state in `scanStates[scan][scanIndices(at)]`.
  void prepareToken(const ElementIndex &at, mlir::Value pos, mlir::Value q, mlir::Value k,
                    llvm::ArrayRef<mlir::Value> scanStates, mlir::Value qBuf, mlir::Value kBuf,
                    mlir::Value gBuf);
  /// Emits `block` (a spec region or an adjoint) in the float type at `at`, returning
  /// what it yields; scans are evaluated by `scan`.
  llvm::SmallVector<mlir::Value> emitBlock(mlir::Block &block, mlir::IRMapping &mapping,
                                           const ElementIndex &at, ScanHook scan);

  /// Finishes token `at.t` of a reverse sweep, once `sinks.lambdaSum` holds
  /// its dg: from the gradients of the rotated, feature-mapped query and key
  /// (`dqBuf[dqPrefix..., :]`, `dkBuf[dkPrefix..., :]`, overwritten) writes dq
  /// and dk (or the derived key's gradient) and accumulates the gradients of
  /// the parameterization through the adjoint. `scanRow` indexes the token's
  /// row of `sinks.scanPrev`; `pos` is its position in its sequence.
  void finishTokenBackward(const BackwardSinks &sinks, const ElementIndex &at, mlir::Value pos,
                           mlir::Value scanRow, mlir::Value dqBuf, mlir::ValueRange dqPrefix,
                           mlir::Value dkBuf, mlir::ValueRange dkPrefix);
  /// finishTokenBackward's second half, for a caller that writes dq and dk
  /// itself: the gradients of the parameterization of token `at.t` through
  /// the adjoint, from `sinks.lambdaSum` (and a derived key's gradient from
  /// `sinks.dKeyBuf`, as the first half leaves it).
  void finishDecayBackward(const BackwardSinks &sinks, const ElementIndex &at, mlir::Value scanRow);
  /// Adds the work item's param partials (BackwardSinks::paramPartials) to
  /// the params' gradients at head `h`, atomically, and zeroes them.
  void flushParamPartials(const BackwardSinks &sinks, mlir::Value h);

  RecurrenceOp spec;
  mlir::ImplicitLocOpBuilder &b;
  mlir::FloatType ft; ///< the float type of the emitted arithmetic
  /// The element type of the per-token tensors (q, k, v, o, do, dq, dk, dv,
  /// the spec's inputs and their gradients): the spec's dtype in kernels (f32
  /// or bf16), the float type in the f64 reference, which ignores dtype.
  mlir::FloatType storageType;
  llvm::SmallVector<mlir::Operation *> scans;
  llvm::SmallVector<mlir::Value> inputs, params; // memrefs of the spec's tensors
  mlir::Value numHeads, keyDim, valueDim, scale;
  /// Let sums be reassociated (and vectorized) by LLVM: kernels set it, the
  /// reference keeps the exact left-to-right order.
  bool reassociateSums = false;

private:
  /// Whether the gradient of spec input `i` receives several contributions
  /// (its dims lack H, or K in a per-channel decay).
  bool isSharedInputGradient(unsigned i);
  /// Fills the ABI function `abi` (bound in `args`): converts the shared bf16
  /// input gradients to f32 accumulators, calls `<name>_body` and rounds them
  /// back. Returns the body function, empty, or null when nothing is shared.
  mlir::func::FuncOp wrapSharedGradients(mlir::func::FuncOp abi, const RecurrenceArgs &args);
  /// The sizes of every dim of `memref`.
  llvm::SmallVector<mlir::Value> sizesOf(mlir::Value memref);
  /// Emits loops copying every element of `from` into `to` (same shape),
  /// converting through load and store.
  void copyElements(mlir::Value from, mlir::Value to);

  /// Evaluates the adjoint at `element` and accumulates its gradients.
  void accumulateAdjoint(const BackwardSinks &sinks, const ElementIndex &element,
                         mlir::Value scanRow, mlir::Value dg, mlir::Value dKey);
};

} // namespace decay

#endif
