// The forward reference function: the naive float64 recurrence of MATH.md section 1, token by token.
#include "ReferenceBuilders.h"

#include "decay/Conversion/Passes.h"

using namespace mlir;
using namespace decay;

namespace {
/// Builds `func.func @<name>_reference`. Signature: (q, k, v, h0, seqs,
/// inputs..., params..., [norm_h0], scan_h0..., o, ht, [norm_ht], scan_ht...).
class ForwardBuilder : RecurrenceEmitter {
public:
  ForwardBuilder(RecurrenceOp spec, ImplicitLocOpBuilder &b)
      : RecurrenceEmitter(spec, b, b.getF64Type()) {}
  func::FuncOp build();

private:
  /// Advances the recurrence by token t and writes o[b,t,h,:].
  void step(const ElementIndex &at, Value pos);

  Value q, k, v, h0, seqs, normH0, o, ht, normHt;
  SmallVector<Value> scanH0, scanHt;
  Value qBuf, kBuf, gBuf;
};

void ForwardBuilder::step(const ElementIndex &at, Value pos) {
  Value zero = index(0);
  prepareToken(at, pos, q, k, scanHt, qBuf, kBuf, gBuf);
  // S <- diag(exp(g)) S + k v^T, and z <- diag(exp(g)) z + k.
  loop(zero, keyDim, [&](Value i) {
    Value decay = exp(load(gBuf, i));
    Value key = load(kBuf, i);
    loop(zero, valueDim, [&](Value j) {
      Value old = load(ht, {at.n, at.h, i, j});
      Value update = mul(key, load(v, {at.b, at.t, at.h, j}));
      store(add(mul(decay, old), update), ht, {at.n, at.h, i, j});
    });
    if (spec.getNormalizer()) {
      Value old = load(normHt, {at.n, at.h, i});
      store(add(mul(decay, old), key), normHt, {at.n, at.h, i});
    }
  });
  // o = scale S^T q, or S^T q / (z . q + eps) with the normalizer.
  Value factor = scale;
  if (spec.getNormalizer()) {
    Value dot = sum(keyDim, [&](Value i) {
      return mul(load(normHt, {at.n, at.h, i}), load(qBuf, i));
    });
    Value denominator = add(dot, real(spec.getEffectiveEps()));
    factor = div(real(1.0), denominator);
  }
  loop(zero, valueDim, [&](Value j) {
    Value dot = sum(keyDim, [&](Value i) { return mul(load(ht, {at.n, at.h, i, j}), load(qBuf, i)); });
    store(mul(dot, factor), o, {at.b, at.t, at.h, j});
  });
}

func::FuncOp ForwardBuilder::build() {
  OpBuilder::InsertionGuard guard(b);
  RecurrenceArgs args;
  func::FuncOp fn = createFunction(referenceFunctionName(spec.getSymName()), false, args);
  q = args.q, k = args.k, v = args.v, h0 = args.h0, seqs = args.seqs, normH0 = args.normH0;
  o = args.o, ht = args.ht, normHt = args.normHt;
  scanH0 = args.scanH0, scanHt = args.scanHt;
  qBuf = alloc(keyDim);
  kBuf = alloc(keyDim);
  gBuf = alloc(keyDim);

  Value numSeqs = memref::DimOp::create(b, seqs, 0);
  loop(index(0), numSeqs, [&](Value n) {
    auto [batch, start, end] = loadSequence(seqs, n);
    loop(index(0), numHeads, [&](Value h) {
      ElementIndex at{n, batch, nullptr, h, nullptr};
      copyInitialStates(args, n, h);
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
} // namespace

func::FuncOp decay::buildForwardReference(RecurrenceOp spec, ImplicitLocOpBuilder &b) {
  return ForwardBuilder(spec, b).build();
}
