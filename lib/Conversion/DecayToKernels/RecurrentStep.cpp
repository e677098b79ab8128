// The step kernel (MATH.md section 4): state slots advanced in place token by token, parallel over (batch row, head); decoding is T = 1.
//
// Per batch row b with slot s = slots[b] and head h, for t = 0..T-1 at RoPE
// position positions[b] + t:
//   S[s,h] <- diag(exp(g_t)) S[s,h] + k_t v_t^T      o_t = scale S[s,h]^T q_t
// (with the normalizer z[s,h] <- diag(exp(g_t)) z + k_t and o_t = S^T q_t /
// (z . q_t + eps)). The state is swept once per token in tiles of value
// columns: each tile goes through every row, updated in place while its
// share of o_t accumulates in registers, so a token reads and writes the
// state once and nothing else: decoding is bound by that traffic.
#include "KernelBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace decay;

namespace {
class StepBuilder : RecurrenceEmitter {
public:
  StepBuilder(RecurrenceOp spec, ImplicitLocOpBuilder &b)
      : RecurrenceEmitter(spec, b, b.getF32Type()) {
    reassociateSums = true;
  }
  func::FuncOp build();

private:
  /// `func.func @<name>_step` with the step's signature (decay::signatureOf,
  /// Entry::Step), its arguments bound.
  func::FuncOp createStepFunction();
  /// Advances the slot of batch row `row`, head `h`, through the row's tokens.
  void advanceRow(Value row, Value h);
  /// Token `at.t`: the normalizer, then the state swept in column tiles,
  /// each tile's share of o accumulated in registers.
  void advanceToken(const ElementIndex &at);
  /// The factor of o: scale, or 1 / (z . q + eps) with z advanced in place.
  Value normalizedFactor(const ElementIndex &at);
  /// Columns [first, first + width) of the slot's state through every row,
  /// and those columns of o.
  void sweepColumns(const ElementIndex &at, Value first, int64_t width, Value factor);

  /// Value columns per tile: 4 AVX-512 vectors, then one.
  static constexpr int64_t kWideTile = 64, kNarrowTile = 16;

  Value q, k, v, slots, positions, state, normState, o;
  SmallVector<Value> scanStates;
  Value qBuf, kBuf, gBuf; ///< per work item: [K] each
};

func::FuncOp StepBuilder::createStepFunction() {
  auto fn = func::FuncOp::create(b, (spec.getSymName() + "_step").str(),
                                 b.getFunctionType(stepArgumentTypes(), {}));
  fn->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  StepArgs args;
  bindStepArguments(entry->getArguments(), args);
  q = args.q, k = args.k, v = args.v, slots = args.slots, positions = args.positions;
  state = args.state, normState = args.normState, scanStates = args.scanStates, o = args.o;
  bindSizes(q, v);
  return fn;
}

Value StepBuilder::normalizedFactor(const ElementIndex &at) {
  if (!spec.getNormalizer())
    return scale;
  // z <- diag(exp(g)) z + k; o = S^T q / (z . q + eps).
  Value dot = sum(keyDim, [&](Value i) {
    Value z = add(mul(load(gBuf, i), load(normState, {at.n, at.h, i})), load(kBuf, i));
    store(z, normState, {at.n, at.h, i});
    return mul(z, load(qBuf, i));
  });
  return div(real(1.0), add(dot, real(spec.getEffectiveEps())));
}

void StepBuilder::sweepColumns(const ElementIndex &at, Value first, int64_t width, Value factor) {
  // Columns [first, first + width) of the state, through every row i:
  //   S[i, cols] <- exp(g_i) S[i, cols] + k_i v[cols];  acc += q_i S[i, cols]
  // with the accumulator in registers; then o[cols] = factor acc.
  Value slot = at.n, h = at.h;
  auto vectorType = VectorType::get({width}, ft);
  auto loadColumns = [&](Value memref, ValueRange indices) -> Value {
    auto stored = cast<MemRefType>(memref.getType()).getElementType();
    Value value = vector::LoadOp::create(b, VectorType::get({width}, stored), memref, indices);
    return stored == ft ? value : arith::ExtFOp::create(b, vectorType, value).getResult();
  };
  auto storeColumns = [&](Value value, Value memref, ValueRange indices) {
    auto stored = cast<MemRefType>(memref.getType()).getElementType();
    if (stored != ft)
      value = arith::TruncFOp::create(b, VectorType::get({width}, stored), value);
    vector::StoreOp::create(b, value, memref, indices);
  };
  auto splat = [&](Value x) { return vector::BroadcastOp::create(b, vectorType, x).getResult(); };
  Value values = loadColumns(v, {at.b, at.t, h, first});
  Value zero = arith::ConstantOp::create(b, DenseElementsAttr::get(vectorType, 0.0f));
  auto rows = scf::ForOp::create(b, index(0), keyDim, index(1), ValueRange{zero});
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(rows.getBody());
    Value i = rows.getInductionVar();
    Value old = loadColumns(state, {slot, h, i, first});
    Value decayed = arith::MulFOp::create(b, splat(load(gBuf, i)), old);
    Value updated = vector::FMAOp::create(b, splat(load(kBuf, i)), values, decayed);
    storeColumns(updated, state, {slot, h, i, first});
    Value acc = vector::FMAOp::create(b, splat(load(qBuf, i)), updated,
                                      rows.getRegionIterArgs()[0]);
    scf::YieldOp::create(b, acc);
  }
  Value out = arith::MulFOp::create(b, rows.getResult(0), splat(factor));
  storeColumns(out, o, {at.b, at.t, h, first});
}

void StepBuilder::advanceToken(const ElementIndex &at) {
  Value zero = index(0);
  // The decay factors (gBuf holds exp(g) from here on): once per channel, or
  // once for a decay shared by every channel.
  if (spec.isPerChannel()) {
    loop(zero, keyDim, [&](Value i) { store(exp(load(gBuf, i)), gBuf, i); });
  } else {
    Value decay = exp(load(gBuf, zero));
    loop(zero, keyDim, [&](Value i) { store(decay, gBuf, i); });
  }
  Value factor = normalizedFactor(at);
  // Columns in tiles of 64, then 16, then one at a time.
  Value done = zero;
  for (int64_t width : {kWideTile, kNarrowTile, int64_t(1)}) {
    Value tiles = arith::DivUIOp::create(b, arith::SubIOp::create(b, valueDim, done), index(width));
    Value end = arith::AddIOp::create(b, done, arith::MulIOp::create(b, tiles, index(width)));
    auto columns = scf::ForOp::create(b, done, end, index(width));
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(columns.getBody());
      sweepColumns(at, columns.getInductionVar(), width, factor);
    }
    done = end;
  }
}

void StepBuilder::advanceRow(Value row, Value h) {
  // The row's buffers live on the stack for the row only (a heap
  // allocation per row costs a decoding step of few rows its lock traffic).
  auto scope = memref::AllocaScopeOp::create(b, TypeRange{});
  Block *body = b.createBlock(&scope.getBodyRegion());
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(body);
  Value slot = arith::IndexCastOp::create(b, b.getIndexType(), load(slots, row));
  Value first = arith::IndexCastOp::create(b, b.getIndexType(), load(positions, row));
  auto stackBuffer = [&](Value size) {
    return memref::AllocaOp::create(b, dynamicMemRef(1), ValueRange{size}).getResult();
  };
  qBuf = stackBuffer(keyDim);
  kBuf = stackBuffer(keyDim);
  gBuf = stackBuffer(keyDim);
  Value tokens = memref::DimOp::create(b, q, 1);
  loop(index(0), tokens, [&](Value t) {
    ElementIndex at{slot, row, t, h, nullptr};
    prepareToken(at, arith::AddIOp::create(b, first, t), q, k, scanStates, qBuf, kBuf, gBuf);
    advanceToken(at);
  });
  memref::AllocaScopeReturnOp::create(b, ValueRange{});
}

func::FuncOp StepBuilder::build() {
  OpBuilder::InsertionGuard guard(b);
  func::FuncOp fn = createStepFunction();
  Value zero = index(0), one = index(1);
  Value rows = memref::DimOp::create(b, q, 0);
  auto parallel = scf::ParallelOp::create(b, ValueRange{zero, zero}, ValueRange{rows, numHeads},
                                          ValueRange{one, one});
  {
    OpBuilder::InsertionGuard body(b);
    b.setInsertionPointToStart(parallel.getBody());
    advanceRow(parallel.getInductionVars()[0], parallel.getInductionVars()[1]);
  }
  func::ReturnOp::create(b);
  return fn;
}
} // namespace

func::FuncOp decay::buildRecurrentStep(RecurrenceOp spec, ImplicitLocOpBuilder &b) {
  return StepBuilder(spec, b).build();
}
