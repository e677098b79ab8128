// The decay-lower-to-reference pass: a recurrence becomes the naive float64 token-by-token recurrence.
#include "decay/Conversion/Passes.h"
#include "decay/Dialect/Decay/IR/DecayDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/IRMapping.h"

#include "llvm/Support/Error.h"

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

/// An f32 literal of the spec as the decimal number it prints as, in f64:
/// `0.02 : f32` is 0.02, not the f32 value 0.0199999995529651641845703125.
double widenLiteral(const APFloat &value) {
  if (!value.isFinite())
    return value.convertToDouble();
  // The shortest decimal that reads back as the same f32 value.
  for (unsigned digits = 1; digits <= 9; ++digits) {
    SmallString<32> text;
    value.toString(text, digits, /*FormatMaxPadding=*/0);
    APFloat narrow(value.getSemantics()), wide(APFloat::IEEEdouble());
    if (errorToBool(narrow.convertFromString(text, APFloat::rmNearestTiesToEven).takeError()) ||
        narrow.compare(value) != APFloat::cmpEqual)
      continue;
    if (errorToBool(wide.convertFromString(text, APFloat::rmNearestTiesToEven).takeError()))
      break;
    return wide.convertToDouble();
  }
  return value.convertToDouble();
}

/// The memref arguments of the generated function, by role.
struct ReferenceArgs {
  Value q, k, v, h0, seqs;
  SmallVector<Value> inputs, params;
  Value normH0;
  SmallVector<Value> scanH0;
  Value o, ht, normHt;
  SmallVector<Value> scanHt;
};

/// Indices of the element being computed: sequence n, batch row b, token t,
/// head h, key channel c (null when the decay is not per channel).
struct ElementIndex {
  Value n, b, t, h, c;
};

/// Builds the body of one reference function.
class ReferenceBuilder {
public:
  ReferenceBuilder(RecurrenceOp spec, ImplicitLocOpBuilder &builder)
      : spec(spec), b(builder), f64(builder.getF64Type()) {}

  /// Creates `func.func @<name>_reference` in front of the spec.
  func::FuncOp build();

private:
  Value index(int64_t value) { return arith::ConstantIndexOp::create(b, value); }
  Value real(double value) { return arith::ConstantFloatOp::create(b, f64, APFloat(value)); }
  Value load(Value memref, ValueRange indices) { return memref::LoadOp::create(b, memref, indices); }
  void store(Value value, Value memref, ValueRange indices) {
    memref::StoreOp::create(b, value, memref, indices);
  }
  MemRefType dynamicF64(int64_t rank) {
    return MemRefType::get(SmallVector<int64_t>(rank, ShapedType::kDynamic), f64);
  }
  /// Emits `for i in [lb, ub)` with `body(i)` at the current insertion point.
  void loop(Value lb, Value ub, function_ref<void(Value)> body);
  /// Emits sum over i in [0, ub) of `term(i)` and returns it.
  Value sum(Value ub, function_ref<Value(Value)> term);

  /// Indices of a tensor declared with `dims` (letters of BTHK) at `at`.
  SmallVector<Value> indicesFor(StringRef dims, const ElementIndex &at);
  /// Indices of a scan state [N,H] or [N,H,K] at `at`.
  SmallVector<Value> scanIndices(const ElementIndex &at);

  Value softplus(Value x);
  Value logSigmoid(Value x);
  Value logAddExp(Value x, Value y);
  Value featureMap(Value x);

  /// Evaluates the spec's region in f64 at `at`; returns what it yields.
  SmallVector<Value> evaluateRegion(const ElementIndex &at);
  Value lowerRegionOp(Operation &op, IRMapping &mapping, const ElementIndex &at);
  /// Computes the log-decay into gBuf and, with a derived key, the key into kBuf.
  void computeDecayAndDerivedKey(const ElementIndex &at);
  /// Applies RoPE at position `pos` to the K-vector in `buf`.
  void applyRope(Value buf, Value pos);
  /// Copies the initial states of sequence n, head h into the final states.
  void initializeStates(const ElementIndex &at);
  /// Advances the recurrence by token t and writes o[b,t,h,:].
  void step(const ElementIndex &at, Value pos);

  RecurrenceOp spec;
  ImplicitLocOpBuilder &b;
  FloatType f64;
  ReferenceArgs args;
  Value numHeads, keyDim, valueDim, scale;
  Value qBuf, kBuf, gBuf;
  SmallVector<Operation *> scans;
};

void ReferenceBuilder::loop(Value lb, Value ub, function_ref<void(Value)> body) {
  auto forOp = scf::ForOp::create(b, lb, ub, index(1));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forOp.getBody());
  body(forOp.getInductionVar());
}

Value ReferenceBuilder::sum(Value ub, function_ref<Value(Value)> term) {
  auto forOp = scf::ForOp::create(b, index(0), ub, index(1), ValueRange{real(0.0)});
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forOp.getBody());
  Value total = arith::AddFOp::create(b, forOp.getRegionIterArgs()[0], term(forOp.getInductionVar()));
  scf::YieldOp::create(b, total);
  return forOp.getResult(0);
}

SmallVector<Value> ReferenceBuilder::indicesFor(StringRef dims, const ElementIndex &at) {
  SmallVector<Value> indices;
  for (char dim : dims)
    indices.push_back(dim == 'B' ? at.b : dim == 'T' ? at.t : dim == 'H' ? at.h : at.c);
  return indices;
}

SmallVector<Value> ReferenceBuilder::scanIndices(const ElementIndex &at) {
  if (at.c)
    return {at.n, at.h, at.c};
  return {at.n, at.h};
}

Value ReferenceBuilder::softplus(Value x) {
  // max(x, 0) + log1p(exp(-|x|))
  Value tail = math::Log1pOp::create(b, math::ExpOp::create(b, arith::NegFOp::create(b, math::AbsFOp::create(b, x))));
  return arith::AddFOp::create(b, arith::MaximumFOp::create(b, x, real(0.0)), tail);
}

Value ReferenceBuilder::logSigmoid(Value x) {
  // min(x, 0) - log1p(exp(-|x|))
  Value tail = math::Log1pOp::create(b, math::ExpOp::create(b, arith::NegFOp::create(b, math::AbsFOp::create(b, x))));
  return arith::SubFOp::create(b, arith::MinimumFOp::create(b, x, real(0.0)), tail);
}

Value ReferenceBuilder::logAddExp(Value x, Value y) {
  // max + log1p(exp(-|x - y|)); max itself when it is infinite (inf - inf is NaN).
  Value hi = arith::MaximumFOp::create(b, x, y);
  Value gap = arith::NegFOp::create(b, math::AbsFOp::create(b, arith::SubFOp::create(b, x, y)));
  Value sum = arith::AddFOp::create(b, hi, math::Log1pOp::create(b, math::ExpOp::create(b, gap)));
  Value infinite = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, math::AbsFOp::create(b, hi),
                                         real(std::numeric_limits<double>::infinity()));
  return arith::SelectOp::create(b, infinite, hi, sum);
}

Value ReferenceBuilder::featureMap(Value x) {
  switch (spec.getEffectiveFeatureMap()) {
  case FeatureMap::identity:
    return x;
  case FeatureMap::elu1: {
    Value positive = arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, x, real(0.0));
    return arith::SelectOp::create(b, positive, arith::AddFOp::create(b, x, real(1.0)),
                                   math::ExpOp::create(b, x));
  }
  case FeatureMap::exp:
    return math::ExpOp::create(b, x);
  case FeatureMap::silu: {
    Value denominator = arith::AddFOp::create(b, real(1.0), math::ExpOp::create(b, arith::NegFOp::create(b, x)));
    return arith::DivFOp::create(b, x, denominator);
  }
  case FeatureMap::relu:
    return arith::MaximumFOp::create(b, x, real(0.0));
  }
  llvm_unreachable("unknown feature map");
}

Value ReferenceBuilder::lowerRegionOp(Operation &op, IRMapping &mapping,
                                      const ElementIndex &at) {
  auto operand = [&](unsigned i) { return mapping.lookup(op.getOperand(i)); };
  if (isa<SoftplusOp>(op))
    return softplus(operand(0));
  if (isa<LogSigmoidOp>(op))
    return logSigmoid(operand(0));
  if (isa<LogAddExpOp>(op))
    return logAddExp(operand(0), operand(1));
  if (isa<HeadIndexOp>(op))
    return arith::SIToFPOp::create(b, f64, arith::IndexCastOp::create(b, b.getI64Type(), at.h));
  if (isa<NumHeadsOp>(op))
    return arith::SIToFPOp::create(b, f64, arith::IndexCastOp::create(b, b.getI64Type(), numHeads));
  return nullptr;
}

SmallVector<Value> ReferenceBuilder::evaluateRegion(const ElementIndex &at) {
  Block &block = spec.getBody().front();
  IRMapping mapping;
  unsigned numInputs = spec.getInputNames().size();
  for (BlockArgument arg : block.getArguments()) {
    unsigned i = arg.getArgNumber();
    bool isInput = i < numInputs;
    Value memref = isInput ? args.inputs[i] : args.params[i - numInputs];
    auto dims = cast<StringAttr>(isInput ? spec.getInputDims()[i]
                                         : spec.getParamDims()[i - numInputs]);
    mapping.map(arg, load(memref, indicesFor(dims.getValue(), at)));
  }
  SmallVector<Value> yielded;
  for (Operation &op : block) {
    if (auto yield = dyn_cast<YieldOp>(op)) {
      for (Value value : yield.getValues())
        yielded.push_back(mapping.lookup(value));
      continue;
    }
    if (isa<CumSumOp, LogCumSumExpOp>(op)) {
      unsigned scanIndex = llvm::find(scans, &op) - scans.begin();
      SmallVector<Value> where = scanIndices(at);
      Value prev = load(args.scanHt[scanIndex], where);
      Value x = mapping.lookup(op.getOperand(0));
      Value cur = isa<CumSumOp>(op) ? Value(arith::AddFOp::create(b, prev, x))
                                    : logAddExp(prev, x);
      store(cur, args.scanHt[scanIndex], where);
      mapping.map(op.getResult(0), prev);
      mapping.map(op.getResult(1), cur);
      continue;
    }
    if (Value lowered = lowerRegionOp(op, mapping, at)) {
      mapping.map(op.getResult(0), lowered);
      continue;
    }
    // arith and math ops: the same op, with f32 retyped to f64.
    Operation *clone = b.clone(op, mapping);
    for (OpResult result : clone->getResults())
      if (result.getType().isF32())
        result.setType(f64);
    if (auto constant = dyn_cast<arith::ConstantOp>(clone))
      if (auto value = dyn_cast<FloatAttr>(constant.getValue()))
        constant.setValueAttr(FloatAttr::get(f64, widenLiteral(value.getValue())));
  }
  return yielded;
}

void ReferenceBuilder::computeDecayAndDerivedKey(const ElementIndex &at) {
  Value zero = index(0);
  if (spec.getGranularity() == Granularity::none) {
    loop(zero, keyDim, [&](Value c) { store(real(0.0), gBuf, c); });
    return;
  }
  if (spec.isPerChannel()) {
    loop(zero, keyDim, [&](Value c) {
      ElementIndex element = at;
      element.c = c;
      SmallVector<Value> yielded = evaluateRegion(element);
      store(yielded[0], gBuf, c);
      if (yielded.size() == 2)
        store(yielded[1], kBuf, c);
    });
    return;
  }
  Value g = evaluateRegion(at)[0];
  loop(zero, keyDim, [&](Value c) { store(g, gBuf, c); });
}

void ReferenceBuilder::applyRope(Value buf, Value pos) {
  // Rotate-half: (x_i, x_{i+K/2}) rotated by pos * theta^(-2i/K).
  Value half = arith::DivUIOp::create(b, keyDim, index(2));
  Value logTheta = real(std::log(spec.getRopeTheta()->convertToDouble()));
  Value keyDimF = arith::SIToFPOp::create(b, f64, arith::IndexCastOp::create(b, b.getI64Type(), keyDim));
  Value posF = arith::SIToFPOp::create(b, f64, arith::IndexCastOp::create(b, b.getI64Type(), pos));
  loop(index(0), half, [&](Value i) {
    Value iF = arith::SIToFPOp::create(b, f64, arith::IndexCastOp::create(b, b.getI64Type(), i));
    Value exponent = arith::DivFOp::create(b, arith::MulFOp::create(b, real(-2.0), iF), keyDimF);
    Value freq = math::ExpOp::create(b, arith::MulFOp::create(b, exponent, logTheta));
    Value angle = arith::MulFOp::create(b, posF, freq);
    Value cos = math::CosOp::create(b, angle), sin = math::SinOp::create(b, angle);
    Value j = arith::AddIOp::create(b, i, half);
    Value x1 = load(buf, i), x2 = load(buf, j);
    store(arith::SubFOp::create(b, arith::MulFOp::create(b, x1, cos), arith::MulFOp::create(b, x2, sin)), buf, i);
    store(arith::AddFOp::create(b, arith::MulFOp::create(b, x1, sin), arith::MulFOp::create(b, x2, cos)), buf, j);
  });
}

void ReferenceBuilder::initializeStates(const ElementIndex &at) {
  Value zero = index(0);
  loop(zero, keyDim, [&](Value i) {
    loop(zero, valueDim, [&](Value j) {
      store(load(args.h0, {at.n, at.h, i, j}), args.ht, {at.n, at.h, i, j});
    });
    if (spec.getNormalizer())
      store(load(args.normH0, {at.n, at.h, i}), args.normHt, {at.n, at.h, i});
  });
  for (auto [h0, ht] : llvm::zip(args.scanH0, args.scanHt)) {
    if (!spec.isPerChannel()) {
      store(load(h0, {at.n, at.h}), ht, {at.n, at.h});
      continue;
    }
    loop(zero, keyDim, [&](Value c) { store(load(h0, {at.n, at.h, c}), ht, {at.n, at.h, c}); });
  }
}

void ReferenceBuilder::step(const ElementIndex &at, Value pos) {
  Value zero = index(0);
  computeDecayAndDerivedKey(at);
  bool derivedKey = spec.hasDerivedKey();
  loop(zero, keyDim, [&](Value c) {
    store(featureMap(load(args.q, {at.b, at.t, at.h, c})), qBuf, c);
    if (!derivedKey)
      store(featureMap(load(args.k, {at.b, at.t, at.h, c})), kBuf, c);
  });
  if (spec.getRopeTheta()) {
    applyRope(qBuf, pos);
    applyRope(kBuf, pos);
  }
  // S <- diag(exp(g)) S + k v^T, and z <- diag(exp(g)) z + k.
  loop(zero, keyDim, [&](Value i) {
    Value decay = math::ExpOp::create(b, load(gBuf, i));
    Value key = load(kBuf, i);
    loop(zero, valueDim, [&](Value j) {
      Value old = load(args.ht, {at.n, at.h, i, j});
      Value update = arith::MulFOp::create(b, key, load(args.v, {at.b, at.t, at.h, j}));
      store(arith::AddFOp::create(b, arith::MulFOp::create(b, decay, old), update), args.ht, {at.n, at.h, i, j});
    });
    if (spec.getNormalizer()) {
      Value old = load(args.normHt, {at.n, at.h, i});
      store(arith::AddFOp::create(b, arith::MulFOp::create(b, decay, old), key), args.normHt, {at.n, at.h, i});
    }
  });
  // o = scale S^T q, or S^T q / (z . q + eps) with the normalizer.
  Value factor = scale;
  if (spec.getNormalizer()) {
    Value dot = sum(keyDim, [&](Value i) {
      return arith::MulFOp::create(b, load(args.normHt, {at.n, at.h, i}), load(qBuf, i));
    });
    Value denominator = arith::AddFOp::create(b, dot, real(spec.getEffectiveEps()));
    factor = arith::DivFOp::create(b, real(1.0), denominator);
  }
  loop(zero, valueDim, [&](Value j) {
    Value dot = sum(keyDim, [&](Value i) {
      return arith::MulFOp::create(b, load(args.ht, {at.n, at.h, i, j}), load(qBuf, i));
    });
    store(arith::MulFOp::create(b, dot, factor), args.o, {at.b, at.t, at.h, j});
  });
}

func::FuncOp ReferenceBuilder::build() {
  spec.walk([&](Operation *op) {
    if (isa<CumSumOp, LogCumSumExpOp>(op))
      scans.push_back(op);
  });
  // Signature: (q, k, v, h0, seqs, inputs..., params..., [norm_h0], scan_h0...,
  //             o, ht, [norm_ht], scan_ht...).
  SmallVector<Type> types(4, dynamicF64(4));
  types.push_back(MemRefType::get({ShapedType::kDynamic, 3}, b.getI64Type()));
  for (Attribute dims : spec.getInputDims())
    types.push_back(dynamicF64(cast<StringAttr>(dims).size()));
  for (Attribute dims : spec.getParamDims())
    types.push_back(dynamicF64(cast<StringAttr>(dims).size()));
  int64_t scanRank = spec.isPerChannel() ? 3 : 2;
  auto appendStates = [&] {
    if (spec.getNormalizer())
      types.push_back(dynamicF64(3));
    types.append(scans.size(), dynamicF64(scanRank));
  };
  appendStates();
  types.append(2, dynamicF64(4));
  appendStates();

  auto fn = func::FuncOp::create(b, referenceFunctionName(spec.getSymName()),
                                 b.getFunctionType(types, {}));
  fn->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  Block *entry = fn.addEntryBlock();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(entry);

  auto next = entry->args_begin();
  auto take = [&] { return Value(*next++); };
  auto takeStates = [&](Value &norm, SmallVector<Value> &scanStates) {
    if (spec.getNormalizer())
      norm = take();
    for (size_t i = 0; i < scans.size(); ++i)
      scanStates.push_back(take());
  };
  args.q = take(), args.k = take(), args.v = take(), args.h0 = take(), args.seqs = take();
  for (size_t i = 0; i < spec.getInputNames().size(); ++i)
    args.inputs.push_back(take());
  for (size_t i = 0; i < spec.getParamNames().size(); ++i)
    args.params.push_back(take());
  takeStates(args.normH0, args.scanH0);
  args.o = take(), args.ht = take();
  takeStates(args.normHt, args.scanHt);

  numHeads = memref::DimOp::create(b, args.q, 2);
  keyDim = memref::DimOp::create(b, args.q, 3);
  valueDim = memref::DimOp::create(b, args.v, 3);
  if (auto fixed = spec.getScale())
    scale = real(fixed->convertToDouble());
  else {
    Value k = arith::SIToFPOp::create(b, f64, arith::IndexCastOp::create(b, b.getI64Type(), keyDim));
    scale = arith::DivFOp::create(b, real(1.0), math::SqrtOp::create(b, k));
  }
  MemRefType vectorType = dynamicF64(1);
  qBuf = memref::AllocOp::create(b, vectorType, ValueRange{keyDim});
  kBuf = memref::AllocOp::create(b, vectorType, ValueRange{keyDim});
  gBuf = memref::AllocOp::create(b, vectorType, ValueRange{keyDim});

  Value numSeqs = memref::DimOp::create(b, args.seqs, 0);
  loop(index(0), numSeqs, [&](Value n) {
    auto field = [&](int64_t i) {
      return arith::IndexCastOp::create(b, b.getIndexType(), load(args.seqs, {n, index(i)})).getResult();
    };
    Value batch = field(0), start = field(1), end = field(2);
    loop(index(0), numHeads, [&](Value h) {
      ElementIndex at{n, batch, nullptr, h, nullptr};
      initializeStates(at);
      loop(start, end, [&](Value t) {
        at.t = t;
        step(at, arith::SubIOp::create(b, t, start));
      });
    });
  });
  for (Value buffer : {qBuf, kBuf, gBuf})
    memref::DeallocOp::create(b, buffer);
  func::ReturnOp::create(b);
  return fn;
}

struct DecayLowerToReferencePass
    : public decay::impl::DecayLowerToReferencePassBase<DecayLowerToReferencePass> {
  void runOnOperation() override {
    SmallVector<RecurrenceOp> specs(getOperation().getOps<RecurrenceOp>());
    for (RecurrenceOp spec : specs) {
      ImplicitLocOpBuilder builder(spec.getLoc(), spec);
      ReferenceBuilder(spec, builder).build();
      spec.erase();
    }
  }
};
} // namespace
