// The step kernel on the GPU (MATH.md section 4): state slots advanced in place token by token, one block per (batch row, head).
//
// <name>_step: one block of D threads (D = K = V of the module) per (batch
// row b, head h) with slot s = slots[b], walking the row's T tokens at RoPE
// positions positions[b] + t. Per token, thread c first prepares key channel
// c into shared memory: exp(g_c) (the spec's region, its scans carried in
// the thread's registers), the feature-mapped query and key (or the derived
// key), RoPE by pairs; with a normalizer it advances z_c and shares z_c q_c.
// Then thread j sweeps value column j of the slot's state through every key
// row i,
//   S[i, j] <- exp(g_i) S[i, j] + k_i v_j      o_j += q_i S[i, j]
// so the block reads and writes the [K, V] state once per token, each row
// as one coalesced line. The carried scan and normalizer values are written
// back to their slots after the last token.
#include "GpuChunkEmitter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace decay;

namespace {
class GpuStepBuilder : GpuKernelEmitter {
public:
  using GpuKernelEmitter::GpuKernelEmitter;
  /// Builds the kernel; returns its dynamic shared memory in bytes.
  int64_t build();

private:
  /// Thread c's key channel of token `at.t` into shared memory: exp(g_c), q'_c, k'_c.
  void prepareChannel(const ElementIndex &at);
  /// Rotates the shared q' and k' by RoPE at `pos` (threads c < K/2: pair (c, c + K/2)).
  void rotateShared(Value pos);
  /// The factor of o: scale, or 1 / (z . q' + eps) with thread c's z_c advanced.
  Value outputFactor();
  /// Thread j's value column through every key row of the slot's state, and o_j.
  void sweepColumn(const ElementIndex &at, Value factor);
  /// Writes the carried scan and normalizer values back to the slot.
  void storeCarried(Value slot, Value h);

  StepArgs args;
  Value c;                 ///< the thread: key channel and value column
  Value qs, ks, gs, zqs;   ///< shared [K]: q', k', exp(g), z q' (normalizer)
  SmallVector<Value> scanCarried; ///< per scan, the thread's carried value ([1])
  Value zCarried;                 ///< the thread's z_c ([1], normalizer)
};

void GpuStepBuilder::prepareChannel(const ElementIndex &at) {
  Value zero = index(0);
  // A scalar decay's region is evaluated by every thread alike (each with
  // its own copy of the carried scans), so that no value crosses threads.
  ElementIndex element = at;
  element.c = spec.isPerChannel() ? c : Value();
  SmallVector<Value> yielded;
  if (spec.getGranularity() != Granularity::none)
    yielded = evaluateRegion(element, [&](unsigned scan, Operation *op, Value x) {
      return advanceScan(op, scanCarried[scan], zero, x);
    });
  store(exp(yielded.empty() ? real(0.0) : yielded[0]), gs, c);
  store(featureMap(load(args.q, {at.b, at.t, at.h, c})), qs, c);
  Value key = yielded.size() == 2 ? yielded[1] : featureMap(load(args.k, {at.b, at.t, at.h, c}));
  store(key, ks, c);
}

void GpuStepBuilder::rotateShared(Value pos) {
  RopeFrame frame = ropeFrame(pos);
  when(lessThan(c, frame.half), [&] {
    rotatePair(qs, {}, frame, c, /*inverse=*/false);
    rotatePair(ks, {}, frame, c, /*inverse=*/false);
  });
}

Value GpuStepBuilder::outputFactor() {
  if (!spec.getNormalizer())
    return scale;
  // z_c <- exp(g_c) z_c + k'_c; every thread then sums z . q' alike.
  Value zero = index(0);
  Value z = add(mul(load(gs, c), load(zCarried, zero)), load(ks, c));
  store(z, zCarried, zero);
  store(mul(z, load(qs, c)), zqs, c);
  barrier();
  Value dot = sum(keyDim, [&](Value i) { return load(zqs, i); });
  return div(real(1.0), add(dot, real(spec.getEffectiveEps())));
}

void GpuStepBuilder::sweepColumn(const ElementIndex &at, Value factor) {
  Value j = c, slot = at.n, h = at.h;
  Value value = load(args.v, {at.b, at.t, h, j});
  auto rows = scf::ForOp::create(b, index(0), keyDim, index(1), ValueRange{real(0.0)});
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(rows.getBody());
    Value i = rows.getInductionVar();
    Value old = load(args.state, {slot, h, i, j});
    Value updated = add(mul(load(gs, i), old), mul(load(ks, i), value));
    store(updated, args.state, {slot, h, i, j});
    scf::YieldOp::create(b, add(rows.getRegionIterArgs()[0], mul(load(qs, i), updated)));
  }
  store(mul(rows.getResult(0), factor), args.o, {at.b, at.t, h, j});
}

void GpuStepBuilder::storeCarried(Value slot, Value h) {
  Value zero = index(0);
  // A scalar decay's scans are the same in every thread: thread 0 stores them.
  Value writer = spec.isPerChannel() ? arith::ConstantIntOp::create(b, 1, 1).getResult()
                                     : arith::CmpIOp::create(b, arith::CmpIPredicate::eq, c, zero).getResult();
  for (auto [carried, state] : llvm::zip(scanCarried, args.scanStates)) {
    Value from = carried, to = state;
    SmallVector<Value> where = spec.isPerChannel() ? SmallVector<Value>{slot, h, c} : SmallVector<Value>{slot, h};
    when(writer, [&] { store(load(from, zero), to, where); });
  }
  if (spec.getNormalizer())
    store(load(zCarried, zero), args.normState, {slot, h, c});
}

int64_t GpuStepBuilder::build() {
  createStepKernel((spec.getSymName() + "_step").str(), shape.keyDim, args);
  int64_t keys = shape.keyDim;
  qs = sharedBuffer({keys});
  ks = sharedBuffer({keys});
  gs = sharedBuffer({keys});
  if (spec.getNormalizer())
    zqs = sharedBuffer({keys});
  Value zero = index(0);
  c = threadIndex();
  Value item = blockIndex(gpu::Dimension::x);
  Value row = arith::DivUIOp::create(b, item, numHeads), h = arith::RemUIOp::create(b, item, numHeads);
  auto toIndex = [&](Value x) { return arith::IndexCastOp::create(b, b.getIndexType(), x).getResult(); };
  Value slot = toIndex(load(args.slots, row));
  Value firstPosition = toIndex(load(args.positions, row));
  // The carried values, in the thread's registers while it walks the tokens.
  auto scalarType = MemRefType::get({1}, b.getF32Type());
  scanCarried.clear();
  for (Value state : args.scanStates) {
    Value carried = memref::AllocaOp::create(b, scalarType);
    SmallVector<Value> where = spec.isPerChannel() ? SmallVector<Value>{slot, h, c} : SmallVector<Value>{slot, h};
    store(load(state, where), carried, zero);
    scanCarried.push_back(carried);
  }
  if (spec.getNormalizer()) {
    zCarried = memref::AllocaOp::create(b, scalarType);
    store(load(args.normState, {slot, h, c}), zCarried, zero);
  }
  loop(zero, sizeT, [&](Value t) {
    ElementIndex at{slot, row, t, h, nullptr};
    prepareChannel(at);
    if (spec.getRopeTheta()) {
      barrier(); // every channel is written before pairs rotate
      rotateShared(arith::AddIOp::create(b, firstPosition, t));
    }
    barrier(); // the token's channels are ready
    Value factor = outputFactor();
    sweepColumn(at, factor);
    barrier(); // every thread has read the token's channels
  });
  storeCarried(slot, h);
  return sharedBytes();
}
} // namespace

SmallVector<WorkspaceBuffer> decay::buildGpuStep(RecurrenceOp spec, const GpuShape &shape,
                                                 gpu::GPUModuleOp module) {
  ImplicitLocOpBuilder b(spec.getLoc(), module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  int64_t shared;
  {
    OpBuilder::InsertionGuard guard(b);
    shared = GpuStepBuilder(spec, shape, b).build();
  }
  auto kernel = cast<gpu::GPUFuncOp>(&module.getBody()->back());
  recordLaunch(kernel, {{"BH", 1}, {"", 1}, {"", 1}}, shared);
  return {};
}
