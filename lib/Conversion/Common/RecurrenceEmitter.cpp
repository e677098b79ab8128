// Shared pieces of the IR emitted for a recurrence (reference and kernels): loops, math, feature maps, RoPE, regions.
#include "decay/Conversion/RecurrenceEmitter.h"
#include "decay/Support/GradientStores.h"

#include "llvm/Support/Error.h"

#include <cmath>
#include <functional>
#include <iterator>
#include <limits>

using namespace mlir;
using namespace decay;

namespace {
/// An f32 literal of the spec as the decimal number it prints as, in ft:
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
} // namespace

RecurrenceEmitter::RecurrenceEmitter(RecurrenceOp spec, ImplicitLocOpBuilder &builder,
                                     FloatType floatType)
    : spec(spec), b(builder), ft(floatType),
      storageType(floatType.isF64() ? floatType : spec.getEffectiveDtype()),
      scans(spec.getScans()) {}

Value RecurrenceEmitter::index(int64_t value) { return arith::ConstantIndexOp::create(b, value); }
Value RecurrenceEmitter::real(double value) {
  return arith::ConstantOp::create(b, FloatAttr::get(ft, value));
}
Value RecurrenceEmitter::toReal(Value indexValue) {
  return arith::SIToFPOp::create(b, ft, arith::IndexCastOp::create(b, b.getI64Type(), indexValue));
}
Value RecurrenceEmitter::load(Value memref, ValueRange indices) {
  Value value = memref::LoadOp::create(b, memref, indices);
  auto stored = dyn_cast<FloatType>(value.getType());
  if (stored && stored.getWidth() < ft.getWidth())
    return arith::ExtFOp::create(b, ft, value);
  return value;
}
void RecurrenceEmitter::store(Value value, Value memref, ValueRange indices) {
  auto stored = dyn_cast<FloatType>(cast<MemRefType>(memref.getType()).getElementType());
  if (stored && stored.getWidth() < ft.getWidth() && value.getType() != stored)
    value = arith::TruncFOp::create(b, stored, value); // round to nearest even
  memref::StoreOp::create(b, value, memref, indices);
}
MemRefType RecurrenceEmitter::dynamicMemRef(int64_t rank) {
  return MemRefType::get(SmallVector<int64_t>(rank, ShapedType::kDynamic), ft);
}
MemRefType RecurrenceEmitter::tokenMemRef(int64_t rank) {
  return MemRefType::get(SmallVector<int64_t>(rank, ShapedType::kDynamic), storageType);
}
Value RecurrenceEmitter::alloc(ValueRange sizes, FloatType type) {
  auto memref = MemRefType::get(SmallVector<int64_t>(sizes.size(), ShapedType::kDynamic), type ? type : ft);
  return memref::AllocOp::create(b, memref, sizes);
}

void RecurrenceEmitter::loop(Value lb, Value ub, function_ref<void(Value)> body) {
  auto forOp = scf::ForOp::create(b, lb, ub, index(1));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forOp.getBody());
  body(forOp.getInductionVar());
}

void RecurrenceEmitter::reverseLoop(Value lb, Value ub, function_ref<void(Value)> body) {
  Value count = arith::SubIOp::create(b, ub, lb);
  loop(index(0), count, [&](Value r) {
    Value last = arith::SubIOp::create(b, ub, index(1));
    body(arith::SubIOp::create(b, last, r));
  });
}

Value RecurrenceEmitter::sum(Value ub, function_ref<Value(Value)> term) {
  return sum(index(0), ub, term);
}

Value RecurrenceEmitter::narrow(Value x) {
  return x.getType() == ft ? x : arith::TruncFOp::create(b, ft, x).getResult();
}

Value RecurrenceEmitter::widen(Value x) {
  return x.getType().isF64() ? x : arith::ExtFOp::create(b, b.getF64Type(), x).getResult();
}

Value RecurrenceEmitter::sum(Value lb, Value ub, function_ref<Value(Value)> term, FloatType type) {
  type = type ? type : ft;
  Value zero = arith::ConstantOp::create(b, FloatAttr::get(type, 0.0));
  auto forOp = scf::ForOp::create(b, lb, ub, index(1), ValueRange{zero});
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forOp.getBody());
  auto flags = reassociateSums ? arith::FastMathFlags::reassoc | arith::FastMathFlags::contract
                               : arith::FastMathFlags::none;
  Value total = arith::AddFOp::create(b, forOp.getRegionIterArgs()[0], term(forOp.getInductionVar()), flags);
  scf::YieldOp::create(b, total);
  return forOp.getResult(0);
}

Value RecurrenceEmitter::add(Value x, Value y) { return arith::AddFOp::create(b, x, y); }
Value RecurrenceEmitter::sub(Value x, Value y) { return arith::SubFOp::create(b, x, y); }
Value RecurrenceEmitter::mul(Value x, Value y) { return arith::MulFOp::create(b, x, y); }
Value RecurrenceEmitter::div(Value x, Value y) { return arith::DivFOp::create(b, x, y); }
Value RecurrenceEmitter::exp(Value x) { return math::ExpOp::create(b, x); }

Value RecurrenceEmitter::log1pOfSmall(Value e) {
  // f64 (the reference): exact log1p. f32 (kernels): plain arithmetic that
  // LLVM vectorizes, specialized to e in [0, 1] (no range reduction, no
  // special cases, no division): log1p(e) = e P(e), P the Chebyshev
  // interpolant of degree 9 of log1p(e) / e on [0, 1] (f32 coefficients),
  // by Horner's rule, each step a multiply-add that LLVM may fuse (FMA where
  // the CPU has it; a libm fma call would not vectorize). P's own relative
  // error is below 2e-8; evaluated in f32, log1p's is below 1.4e-7 (about 2
  // ulp), also for tiny e.
  if (ft.isF64())
    return math::Log1pOp::create(b, e);
  static constexpr float kCoefficients[] = {1.0f,          -0.499998927f, 0.333297104f, -0.249516159f,
                                            0.196632743f,  -0.152696669f, 0.105436236f, -0.0563736111f,
                                            0.0195425265f, -0.00317605701f};
  Value poly = real(kCoefficients[std::size(kCoefficients) - 1]);
  auto contract = arith::FastMathFlags::contract;
  for (int i = std::size(kCoefficients) - 2; i >= 0; --i)
    poly = arith::AddFOp::create(b, arith::MulFOp::create(b, poly, e, contract), real(kCoefficients[i]), contract);
  return mul(e, poly);
}

Value RecurrenceEmitter::softplus(Value x) {
  // max(x, 0) + log1p(exp(-|x|))
  Value tail = log1pOfSmall(exp(arith::NegFOp::create(b, math::AbsFOp::create(b, x))));
  return add(arith::MaximumFOp::create(b, x, real(0.0)), tail);
}

Value RecurrenceEmitter::logSigmoid(Value x) {
  // min(x, 0) - log1p(exp(-|x|))
  Value tail = log1pOfSmall(exp(arith::NegFOp::create(b, math::AbsFOp::create(b, x))));
  return sub(arith::MinimumFOp::create(b, x, real(0.0)), tail);
}

Value RecurrenceEmitter::logAddExp(Value x, Value y) {
  // max + log1p(exp(-|x - y|)); max itself when it is infinite (inf - inf is NaN).
  Value hi = arith::MaximumFOp::create(b, x, y);
  Value gap = arith::NegFOp::create(b, math::AbsFOp::create(b, sub(x, y)));
  Value total = add(hi, log1pOfSmall(exp(gap)));
  Value infinite = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, math::AbsFOp::create(b, hi),
                                         real(std::numeric_limits<double>::infinity()));
  return arith::SelectOp::create(b, infinite, hi, total);
}

Value RecurrenceEmitter::featureMap(Value x) {
  switch (spec.getEffectiveFeatureMap()) {
  case FeatureMap::identity:
    return x;
  case FeatureMap::elu1: {
    Value positive = arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, x, real(0.0));
    return arith::SelectOp::create(b, positive, add(x, real(1.0)), exp(x));
  }
  case FeatureMap::exp:
    return exp(x);
  case FeatureMap::silu:
    return div(x, add(real(1.0), exp(arith::NegFOp::create(b, x))));
  case FeatureMap::relu:
    return arith::MaximumFOp::create(b, x, real(0.0));
  }
  llvm_unreachable("unknown feature map");
}

Value RecurrenceEmitter::featureMapDerivative(Value x) {
  switch (spec.getEffectiveFeatureMap()) {
  case FeatureMap::identity:
    return real(1.0);
  case FeatureMap::elu1: {
    Value positive = arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, x, real(0.0));
    return arith::SelectOp::create(b, positive, real(1.0), exp(x));
  }
  case FeatureMap::exp:
    return exp(x);
  case FeatureMap::silu: {
    // s + x s (1 - s), s = sigmoid(x)
    Value s = div(real(1.0), add(real(1.0), exp(arith::NegFOp::create(b, x))));
    return add(s, mul(mul(x, s), sub(real(1.0), s)));
  }
  case FeatureMap::relu: {
    Value positive = arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, x, real(0.0));
    return arith::SelectOp::create(b, positive, real(1.0), real(0.0));
  }
  }
  llvm_unreachable("unknown feature map");
}

RopeFrame RecurrenceEmitter::ropeFrame(Value pos) {
  RopeFrame frame;
  frame.half = arith::DivUIOp::create(b, keyDim, index(2));
  frame.logTheta = real(std::log(spec.getRopeTheta()->convertToDouble()));
  frame.keyDim = toReal(keyDim);
  frame.pos = toReal(pos);
  return frame;
}

void RecurrenceEmitter::prepareToken(const ElementIndex &at, Value pos, Value q, Value k,
                                     ArrayRef<Value> scanStates, Value qBuf, Value kBuf,
                                     Value gBuf) {
  Value zero = index(0);
  auto evaluate = [&](const ElementIndex &element) {
    return evaluateRegion(element, [&](unsigned scan, Operation *op, Value x) {
      return advanceScan(op, scanStates[scan], scanIndices(element), x);
    });
  };
  if (spec.getGranularity() == Granularity::none) {
    loop(zero, keyDim, [&](Value c) { store(real(0.0), gBuf, c); });
  } else if (spec.isPerChannel()) {
    loop(zero, keyDim, [&](Value c) {
      ElementIndex element = at;
      element.c = c;
      SmallVector<Value> yielded = evaluate(element);
      store(yielded[0], gBuf, c);
      if (yielded.size() == 2)
        store(yielded[1], kBuf, c);
    });
  } else {
    Value g = evaluate(at)[0];
    loop(zero, keyDim, [&](Value c) { store(g, gBuf, c); });
  }
  bool derivedKey = spec.hasDerivedKey();
  loop(zero, keyDim, [&](Value c) {
    store(featureMap(load(q, {at.b, at.t, at.h, c})), qBuf, c);
    if (!derivedKey)
      store(featureMap(load(k, {at.b, at.t, at.h, c})), kBuf, c);
  });
  if (spec.getRopeTheta()) {
    applyRope(qBuf, {}, pos, /*inverse=*/false);
    applyRope(kBuf, {}, pos, /*inverse=*/false);
  }
}

void RecurrenceEmitter::applyRope(Value buf, ValueRange prefix, Value pos, bool inverse) {
  // Rotate-half: (x_i, x_{i+K/2}) rotated by pos * theta^(-2i/K).
  RopeFrame frame = ropeFrame(pos);
  loop(index(0), frame.half, [&](Value i) { rotatePair(buf, prefix, frame, i, inverse); });
}

void RecurrenceEmitter::rotatePair(Value buf, ValueRange prefix, const RopeFrame &frame, Value i,
                                   bool inverse) {
  Value exponent = div(mul(real(-2.0), toReal(i)), frame.keyDim);
  Value freq = exp(mul(exponent, frame.logTheta));
  Value angle = mul(frame.pos, freq);
  Value cos = math::CosOp::create(b, angle), sin = math::SinOp::create(b, angle);
  if (inverse)
    sin = arith::NegFOp::create(b, sin);
  Value j = arith::AddIOp::create(b, i, frame.half);
  SmallVector<Value> at1(prefix), at2(prefix);
  at1.push_back(i), at2.push_back(j);
  Value x1 = load(buf, at1), x2 = load(buf, at2);
  store(sub(mul(x1, cos), mul(x2, sin)), buf, at1);
  store(add(mul(x1, sin), mul(x2, cos)), buf, at2);
}

SmallVector<std::string> RecurrenceEmitter::argumentDims(bool backward) {
  SmallVector<std::string> specDims, stateDims;
  for (Attribute dims : spec.getInputDims().getValue())
    specDims.push_back(cast<StringAttr>(dims).str());
  for (Attribute dims : spec.getParamDims().getValue())
    specDims.push_back(cast<StringAttr>(dims).str());
  if (spec.getNormalizer())
    stateDims.push_back("NHK");
  stateDims.append(scans.size(), spec.isPerChannel() ? "NHK" : "NH");
  SmallVector<std::string> dims = {"BTHK", "BTHK", "BTHV", "NHKV", "N3"};
  llvm::append_range(dims, specDims);
  llvm::append_range(dims, stateDims);
  dims.append({"BTHV", "NHKV"}); // o, ht or do, dht
  llvm::append_range(dims, stateDims);
  if (backward) {
    dims.append({"BTHK", "BTHK", "BTHV", "NHKV"}); // dq, dk, dv, dh0
    llvm::append_range(dims, specDims);
    llvm::append_range(dims, stateDims);
  }
  return dims;
}

SmallVector<Type> RecurrenceEmitter::argumentTypes(bool backward) {
  // The sequence table is i64; per-token tensors (dims B, T, ...: q, k, v,
  // o, do, the spec's inputs and their gradients) are in the storage type;
  // states and params in the float type.
  SmallVector<Type> types;
  for (StringRef dims : argumentDims(backward)) {
    if (dims == "N3")
      types.push_back(MemRefType::get({ShapedType::kDynamic, 3}, b.getI64Type()));
    else if (dims.starts_with("BT"))
      types.push_back(tokenMemRef(dims.size()));
    else
      types.push_back(dynamicMemRef(dims.size()));
  }
  return types;
}

void RecurrenceEmitter::bindArguments(ValueRange values, bool backward, RecurrenceArgs &args) {
  args = RecurrenceArgs();
  inputs.clear();
  params.clear();
  auto next = values.begin();
  auto take = [&] { return Value(*next++); };
  auto takeStates = [&](Value &norm, SmallVector<Value> &scanStates) {
    if (spec.getNormalizer())
      norm = take();
    for (size_t i = 0; i < scans.size(); ++i)
      scanStates.push_back(take());
  };
  auto takeSpecTensors = [&](SmallVector<Value> &in, SmallVector<Value> &par) {
    for (size_t i = 0; i < spec.getInputNames().size(); ++i)
      in.push_back(take());
    for (size_t i = 0; i < spec.getParamNames().size(); ++i)
      par.push_back(take());
  };
  args.q = take(), args.k = take(), args.v = take(), args.h0 = take(), args.seqs = take();
  takeSpecTensors(inputs, params);
  takeStates(args.normH0, args.scanH0);
  if (backward) {
    args.dout = take(), args.dht = take();
    takeStates(args.dNormHt, args.dScanHt);
    args.dq = take(), args.dk = take(), args.dv = take(), args.dh0 = take();
    takeSpecTensors(args.dInputs, args.dParams);
    takeStates(args.dNormH0, args.dScanH0);
  } else {
    args.o = take(), args.ht = take();
    takeStates(args.normHt, args.scanHt);
  }
}

SmallVector<std::string> RecurrenceEmitter::stepArgumentDims() {
  SmallVector<std::string> dims = {"BTHK", "BTHK", "BTHV", "B", "B"};
  for (Attribute specDims : spec.getInputDims().getValue())
    dims.push_back(cast<StringAttr>(specDims).str());
  for (Attribute specDims : spec.getParamDims().getValue())
    dims.push_back(cast<StringAttr>(specDims).str());
  dims.push_back("SHKV");
  if (spec.getNormalizer())
    dims.push_back("SHK");
  dims.append(scans.size(), spec.isPerChannel() ? "SHK" : "SH");
  dims.push_back("BTHV");
  return dims;
}

SmallVector<Type> RecurrenceEmitter::stepArgumentTypes() {
  // Slots and positions are i64; per-token tensors in the storage type; the
  // attention state in the spec's state storage type; params and the other
  // states in the float type.
  SmallVector<Type> types;
  for (StringRef dims : stepArgumentDims()) {
    if (dims == "B")
      types.push_back(MemRefType::get({ShapedType::kDynamic}, b.getI64Type()));
    else if (dims == "SHKV")
      types.push_back(MemRefType::get(SmallVector<int64_t>(4, ShapedType::kDynamic),
                                      spec.getEffectiveStateDtype()));
    else if (dims.starts_with("BT"))
      types.push_back(tokenMemRef(dims.size()));
    else
      types.push_back(dynamicMemRef(dims.size()));
  }
  return types;
}

void RecurrenceEmitter::bindStepArguments(ValueRange values, StepArgs &args) {
  args = StepArgs();
  inputs.clear();
  params.clear();
  auto next = values.begin();
  auto take = [&] { return Value(*next++); };
  args.q = take(), args.k = take(), args.v = take(), args.slots = take(), args.positions = take();
  for (size_t i = 0; i < spec.getInputNames().size(); ++i)
    inputs.push_back(take());
  for (size_t i = 0; i < spec.getParamNames().size(); ++i)
    params.push_back(take());
  args.state = take();
  if (spec.getNormalizer())
    args.normState = take();
  for (size_t i = 0; i < scans.size(); ++i)
    args.scanStates.push_back(take());
  args.o = take();
}

bool RecurrenceEmitter::isSharedInputGradient(unsigned i) {
  StringRef dims = cast<StringAttr>(spec.getInputDims()[i]).getValue();
  return !dims.contains('H') || (spec.isPerChannel() && !dims.contains('K'));
}

SmallVector<Value> RecurrenceEmitter::sizesOf(Value memref) {
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < cast<MemRefType>(memref.getType()).getRank(); ++d)
    sizes.push_back(memref::DimOp::create(b, memref, d));
  return sizes;
}

void RecurrenceEmitter::copyElements(Value from, Value to) {
  SmallVector<Value> sizes = sizesOf(from), indices;
  std::function<void()> nest = [&] {
    if (indices.size() == sizes.size())
      return store(load(from, indices), to, indices);
    loop(index(0), sizes[indices.size()], [&](Value i) {
      indices.push_back(i);
      nest();
      indices.pop_back();
    });
  };
  nest();
}

func::FuncOp RecurrenceEmitter::wrapSharedGradients(func::FuncOp abi, const RecurrenceArgs &args) {
  if (storageType == ft)
    return nullptr;
  SmallVector<unsigned> shared;
  for (unsigned i = 0; i < args.dInputs.size(); ++i)
    if (isSharedInputGradient(i))
      shared.push_back(i);
  if (shared.empty())
    return nullptr;
  std::string bodyName = (abi.getSymName() + "_body").str();
  SmallVector<Value> callArgs(abi.getArguments());
  SmallVector<Type> bodyTypes(abi.getArgumentTypes());
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&abi.getBody().front());
    SmallVector<std::pair<Value, Value>> accumulators; // (bf16 gradient, f32 accumulator)
    for (unsigned i : shared) {
      Value gradient = args.dInputs[i], accumulator = alloc(sizesOf(gradient));
      copyElements(gradient, accumulator); // the caller's (zero) gradient, widened
      unsigned position = cast<BlockArgument>(gradient).getArgNumber();
      callArgs[position] = accumulator;
      bodyTypes[position] = accumulator.getType();
      accumulators.emplace_back(gradient, accumulator);
    }
    func::CallOp::create(b, bodyName, TypeRange{}, callArgs);
    for (auto [gradient, accumulator] : accumulators) {
      copyElements(accumulator, gradient); // rounded to bf16 once
      memref::DeallocOp::create(b, accumulator);
    }
    func::ReturnOp::create(b);
  }
  auto body = func::FuncOp::create(b, bodyName, b.getFunctionType(bodyTypes, {}));
  body.setPrivate();
  return body;
}

func::FuncOp RecurrenceEmitter::createFunction(StringRef name, bool backward,
                                               RecurrenceArgs &args) {
  auto fn = func::FuncOp::create(b, name, b.getFunctionType(argumentTypes(backward), {}));
  fn->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  Block *entry = fn.addEntryBlock();
  bindArguments(entry->getArguments(), backward, args);
  if (func::FuncOp body = wrapSharedGradients(fn, args)) {
    entry = body.addEntryBlock();
    bindArguments(entry->getArguments(), backward, args);
  }
  b.setInsertionPointToStart(entry);
  bindSizes(args.q, args.v);
  return fn;
}

void RecurrenceEmitter::copyInitialStates(const RecurrenceArgs &args, Value n, Value h) {
  Value zero = index(0);
  loop(zero, keyDim, [&](Value i) {
    loop(zero, valueDim, [&](Value j) { store(load(args.h0, {n, h, i, j}), args.ht, {n, h, i, j}); });
    if (spec.getNormalizer())
      store(load(args.normH0, {n, h, i}), args.normHt, {n, h, i});
  });
  for (auto [initial, final] : llvm::zip(args.scanH0, args.scanHt)) {
    if (!spec.isPerChannel()) {
      store(load(initial, {n, h}), final, {n, h});
      continue;
    }
    Value from = initial, to = final;
    loop(zero, keyDim, [&](Value c) { store(load(from, {n, h, c}), to, {n, h, c}); });
  }
}

void RecurrenceEmitter::bindSizes(Value q, Value v) {
  numHeads = memref::DimOp::create(b, q, 2);
  keyDim = memref::DimOp::create(b, q, 3);
  valueDim = memref::DimOp::create(b, v, 3);
  if (auto fixed = spec.getScale())
    scale = real(fixed->convertToDouble());
  else {
    Value k = toReal(keyDim);
    Value one = real(1.0);
    scale = div(one, math::SqrtOp::create(b, k));
  }
}

SmallVector<Value> RecurrenceEmitter::indicesFor(StringRef dims, const ElementIndex &at) {
  SmallVector<Value> indices;
  for (char dim : dims)
    indices.push_back(dim == 'B' ? at.b : dim == 'T' ? at.t : dim == 'H' ? at.h : at.c);
  return indices;
}

SmallVector<Value> RecurrenceEmitter::scanIndices(const ElementIndex &at) {
  if (at.c)
    return {at.n, at.h, at.c};
  return {at.n, at.h};
}

void RecurrenceEmitter::mapSpecArguments(Block &block, IRMapping &mapping, const ElementIndex &at) {
  unsigned numInputs = inputs.size();
  for (unsigned i = 0; i < numInputs + params.size(); ++i) {
    bool isInput = i < numInputs;
    Value memref = isInput ? inputs[i] : params[i - numInputs];
    auto dims = cast<StringAttr>(isInput ? spec.getInputDims()[i]
                                         : spec.getParamDims()[i - numInputs]);
    mapping.map(block.getArgument(i), load(memref, indicesFor(dims.getValue(), at)));
  }
}

SequenceBounds RecurrenceEmitter::loadSequence(Value seqs, Value n) {
  auto field = [&](int64_t i) {
    return arith::IndexCastOp::create(b, b.getIndexType(), load(seqs, {n, index(i)})).getResult();
  };
  Value batch = field(0), start = field(1), end = field(2);
  return {batch, start, end};
}

SmallVector<Value> RecurrenceEmitter::evaluateRegion(const ElementIndex &at, ScanHook scan) {
  Block &block = spec.getBody().front();
  IRMapping mapping;
  mapSpecArguments(block, mapping, at);
  return emitBlock(block, mapping, at, scan);
}

ScanValues RecurrenceEmitter::advanceScan(Operation *op, Value state, ValueRange where, Value x) {
  Value prev = load(state, where);
  Value cur = isa<CumSumOp>(op) ? add(prev, x) : logAddExp(prev, x);
  store(cur, state, where);
  return {prev, cur};
}

SmallVector<Value> RecurrenceEmitter::emitBlock(Block &block, IRMapping &mapping, const ElementIndex &at,
                                      ScanHook scan) {
  SmallVector<Value> yielded;
  for (Operation &op : block) {
    auto operand = [&](unsigned i) { return mapping.lookup(op.getOperand(i)); };
    Value lowered;
    if (auto yield = dyn_cast<YieldOp>(op)) {
      for (Value value : yield.getValues())
        yielded.push_back(mapping.lookup(value));
      continue;
    }
    if (isa<CumSumOp, LogCumSumExpOp>(op)) {
      ScanValues values = scan(llvm::find(scans, &op) - scans.begin(), &op, operand(0));
      mapping.map(op.getResult(0), values.prev);
      mapping.map(op.getResult(1), values.cur);
      continue;
    }
    if (isa<SoftplusOp>(op))
      lowered = softplus(operand(0));
    else if (isa<LogSigmoidOp>(op))
      lowered = logSigmoid(operand(0));
    else if (isa<LogAddExpOp>(op))
      lowered = logAddExp(operand(0), operand(1));
    else if (isa<HeadIndexOp>(op))
      lowered = toReal(at.h);
    else if (isa<NumHeadsOp>(op))
      lowered = toReal(numHeads);
    if (lowered) {
      mapping.map(op.getResult(0), lowered);
      continue;
    }
    // arith and math ops: the same op, with f32 retyped to ft.
    Operation *clone = b.clone(op, mapping);
    for (OpResult result : clone->getResults())
      if (result.getType().isF32())
        result.setType(ft);
    if (auto constant = dyn_cast<arith::ConstantOp>(clone))
      if (auto value = dyn_cast<FloatAttr>(constant.getValue()))
        constant.setValueAttr(FloatAttr::get(
            ft, ft.isF32() ? value.getValueAsDouble() : widenLiteral(value.getValue())));
  }
  return yielded;
}

void RecurrenceEmitter::accumulateAdjoint(const BackwardSinks &sinks, const ElementIndex &element,
                                          Value scanRow, Value dg, Value dKey) {
  AdjointOp adjoint = sinks.adjoint;
  Block &block = adjoint.getBody().front();
  IRMapping mapping;
  mapSpecArguments(block, mapping, element);
  unsigned next = inputs.size() + params.size();
  Value c = element.c ? element.c : index(0);
  for (Value prev : sinks.scanPrev)
    mapping.map(block.getArgument(next++), load(prev, {scanRow, c}));
  mapping.map(block.getArgument(next++), dg);
  if (spec.hasDerivedKey())
    mapping.map(block.getArgument(next++), dKey);
  for (Value carry : sinks.scanCarry)
    mapping.map(block.getArgument(next++), load(carry, c));
  SmallVector<Value> gradients = emitBlock(block, mapping, element, [](unsigned, Operation *, Value) {
    llvm_unreachable("an adjoint has no scans");
    return ScanValues{};
  });
  unsigned numInputs = inputs.size();
  for (unsigned i = 0; i < numInputs + params.size(); ++i) {
    bool isInput = i < numInputs;
    Value target = isInput ? sinks.dInputs[i] : sinks.dParams[i - numInputs];
    auto dims = cast<StringAttr>(isInput ? spec.getInputDims()[i] : spec.getParamDims()[i - numInputs]);
    SmallVector<Value> where = indicesFor(dims.getValue(), element);
    if (!isInput && !sinks.paramPartials.empty()) {
      Value partial = sinks.paramPartials[i - numInputs];
      Value slot = dims.getValue().contains('K') ? c : index(0);
      store(add(load(partial, slot), gradients[i]), partial, slot);
      continue;
    }
    bool shared = !isInput || !dims.getValue().contains('H');
    // An input indexed by every index of the evaluation (B, T, H, and K
    // when per channel) gets exactly one contribution: a plain store.
    bool once = isInput && inputGradientStoredOnce(dims.getValue(), bool(element.c));
    if (sinks.atomicShared && shared)
      memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addf, gradients[i], target, where);
    else if (once)
      store(gradients[i], target, where);
    else
      store(add(load(target, where), gradients[i]), target, where);
  }
  for (auto [i, carry] : llvm::enumerate(sinks.scanCarry))
    store(gradients[numInputs + params.size() + i], carry, c);
}

void RecurrenceEmitter::flushParamPartials(const BackwardSinks &sinks, Value h) {
  Value zero = index(0);
  for (auto [i, partial] : llvm::enumerate(sinks.paramPartials)) {
    StringRef dims = cast<StringAttr>(spec.getParamDims()[i]).getValue();
    Value count = dims.contains('K') ? keyDim : index(1);
    loop(zero, count, [&](Value c) {
      ElementIndex at{nullptr, nullptr, nullptr, h, c};
      memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addf, load(partial, c), sinks.dParams[i],
                                  indicesFor(dims, at));
      store(real(0.0), partial, c);
    });
  }
}

void RecurrenceEmitter::finishTokenBackward(const BackwardSinks &sinks, const ElementIndex &at,
                                            Value pos, Value scanRow, Value dqBuf,
                                            ValueRange dqPrefix, Value dkBuf, ValueRange dkPrefix) {
  Value zero = index(0);
  bool derivedKey = spec.hasDerivedKey();
  auto row = [](ValueRange prefix, Value c) {
    SmallVector<Value> indices(prefix);
    indices.push_back(c);
    return indices;
  };
  // Back through RoPE and the feature maps to dq, dk (or the derived key).
  if (spec.getRopeTheta()) {
    applyRope(dqBuf, dqPrefix, pos, /*inverse=*/true);
    applyRope(dkBuf, dkPrefix, pos, /*inverse=*/true);
  }
  loop(zero, keyDim, [&](Value c) {
    Value qRaw = load(sinks.q, {at.b, at.t, at.h, c});
    store(mul(load(dqBuf, row(dqPrefix, c)), featureMapDerivative(qRaw)), sinks.dq,
          {at.b, at.t, at.h, c});
    if (derivedKey) {
      store(load(dkBuf, row(dkPrefix, c)), sinks.dKeyBuf, c);
    } else {
      Value kRaw = load(sinks.k, {at.b, at.t, at.h, c});
      store(mul(load(dkBuf, row(dkPrefix, c)), featureMapDerivative(kRaw)), sinks.dk,
            {at.b, at.t, at.h, c});
    }
  });
  finishDecayBackward(sinks, at, scanRow);
}

void RecurrenceEmitter::finishDecayBackward(const BackwardSinks &sinks, const ElementIndex &at,
                                            Value scanRow) {
  Value zero = index(0);
  bool derivedKey = spec.hasDerivedKey();
  // Through the decay's parameterization.
  if (spec.getGranularity() == Granularity::none)
    return;
  if (spec.isPerChannel()) {
    if (sinks.dgNarrow)
      loop(zero, keyDim, [&](Value c) { store(narrow(load(sinks.lambdaSum, c)), sinks.dgNarrow, c); });
    loop(zero, keyDim, [&](Value c) {
      ElementIndex element = at;
      element.c = c;
      Value dg = sinks.dgNarrow ? load(sinks.dgNarrow, c) : narrow(load(sinks.lambdaSum, c));
      accumulateAdjoint(sinks, element, scanRow, dg, derivedKey ? load(sinks.dKeyBuf, c) : Value());
    });
    return;
  }
  Value dg = sum(zero, keyDim, [&](Value c) { return widen(load(sinks.lambdaSum, c)); },
                 b.getF64Type());
  accumulateAdjoint(sinks, at, scanRow, narrow(dg), Value());
}
