// The step kernel (MATH.md section 4): state slots advanced in place token by token, parallel over (batch row, head); decoding is T = 1.
//
// Per batch row b with slot s = slots[b] and head h, for t = 0..T-1 at RoPE
// position positions[b] + t:
//   S[s,h] <- diag(exp(g_t)) S[s,h] + k_t v_t^T      o_t = scale S[s,h]^T q_t
// (with the normalizer z[s,h] <- diag(exp(g_t)) z + k_t and o_t = S^T q_t /
// (z . q_t + eps)). One sweep over the state's rows updates each row and adds
// its share of o_t, so a token reads and writes the state once: decoding is
// bound by that traffic.
#include "KernelBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

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
  /// Token `at.t`: the state sweep with the output's accumulation, then o.
  void advanceToken(const ElementIndex &at);

  Value q, k, v, slots, positions, state, normState, o;
  SmallVector<Value> scanStates;
  Value qBuf, kBuf, gBuf, outBuf; ///< per work item: [K], [K], [K], [V]
};

func::FuncOp StepBuilder::createStepFunction() {
  // q, k, v, slots, positions, inputs..., params..., state, [norm_state],
  // scan states..., o.
  auto indices = MemRefType::get({ShapedType::kDynamic}, b.getI64Type());
  SmallVector<Type> types = {tokenMemRef(4), tokenMemRef(4), tokenMemRef(4), indices, indices};
  for (Attribute dims : spec.getInputDims().getValue())
    types.push_back(tokenMemRef(cast<StringAttr>(dims).size()));
  for (Attribute dims : spec.getParamDims().getValue())
    types.push_back(dynamicMemRef(cast<StringAttr>(dims).size()));
  types.push_back(dynamicMemRef(4));
  if (spec.getNormalizer())
    types.push_back(dynamicMemRef(3));
  types.append(scans.size(), dynamicMemRef(spec.isPerChannel() ? 3 : 2));
  types.push_back(tokenMemRef(4));
  auto fn = func::FuncOp::create(b, (spec.getSymName() + "_step").str(), b.getFunctionType(types, {}));
  fn->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  auto next = entry->args_begin();
  auto take = [&] { return Value(*next++); };
  q = take(), k = take(), v = take(), slots = take(), positions = take();
  inputs.clear();
  params.clear();
  for (size_t i = 0; i < spec.getInputNames().size(); ++i)
    inputs.push_back(take());
  for (size_t i = 0; i < spec.getParamNames().size(); ++i)
    params.push_back(take());
  state = take();
  if (spec.getNormalizer())
    normState = take();
  for (size_t i = 0; i < scans.size(); ++i)
    scanStates.push_back(take());
  o = take();
  bindSizes(q, v);
  return fn;
}

void StepBuilder::advanceToken(const ElementIndex &at) {
  Value zero = index(0), slot = at.n, h = at.h;
  bool normalizer = spec.getNormalizer();
  loop(zero, valueDim, [&](Value j) { store(real(0.0), outBuf, j); });
  // One sweep over the state's rows: update row i and add q_i S[i, :] to o.
  auto rows = scf::ForOp::create(b, zero, keyDim, index(1), ValueRange{real(0.0)});
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(rows.getBody());
    Value i = rows.getInductionVar();
    Value decay = exp(load(gBuf, i));
    Value key = load(kBuf, i), query = load(qBuf, i);
    loop(zero, valueDim, [&](Value j) {
      Value updated = add(mul(decay, load(state, {slot, h, i, j})),
                          mul(key, load(v, {at.b, at.t, h, j})));
      store(updated, state, {slot, h, i, j});
      store(add(load(outBuf, j), mul(query, updated)), outBuf, j);
    });
    Value dot = rows.getRegionIterArgs()[0];
    if (normalizer) {
      Value z = add(mul(decay, load(normState, {slot, h, i})), key);
      store(z, normState, {slot, h, i});
      dot = add(dot, mul(z, query));
    }
    scf::YieldOp::create(b, dot);
  }
  Value factor = normalizer
                     ? div(real(1.0), add(rows.getResult(0), real(spec.getEffectiveEps())))
                     : scale;
  loop(zero, valueDim, [&](Value j) {
    store(mul(load(outBuf, j), factor), o, {at.b, at.t, h, j});
  });
}

void StepBuilder::advanceRow(Value row, Value h) {
  Value slot = arith::IndexCastOp::create(b, b.getIndexType(), load(slots, row));
  Value first = arith::IndexCastOp::create(b, b.getIndexType(), load(positions, row));
  qBuf = alloc(keyDim);
  kBuf = alloc(keyDim);
  gBuf = alloc(keyDim);
  outBuf = alloc(valueDim);
  Value tokens = memref::DimOp::create(b, q, 1);
  loop(index(0), tokens, [&](Value t) {
    ElementIndex at{slot, row, t, h, nullptr};
    prepareToken(at, arith::AddIOp::create(b, first, t), q, k, scanStates, qBuf, kBuf, gBuf);
    advanceToken(at);
  });
  for (Value buffer : {qBuf, kBuf, gBuf, outBuf})
    memref::DeallocOp::create(b, buffer);
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
