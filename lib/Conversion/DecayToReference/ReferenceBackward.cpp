// The backward reference function: exact float64 gradients of the token-by-token recurrence.
//
// Per sequence and head, a forward sweep stores what the reverse sweep needs
// (feature-mapped, rotated q and k, the log-decay, the scans' carried values,
// the output gradients of S and z and dq); the reverse sweep runs dS and dz
// back over the tokens, and uses MATH.md's identity
//   dL/dLambda_t = q_t * dq_t - k_t * dk_t (+ final-state term at the last token),
//   dg_t = sum_{r >= t} dL/dLambda_r,
// then pushes dg (and the derived key's gradient) through decay.adjoint.
#include "ReferenceBuilders.h"

#include "decay/Conversion/Passes.h"

using namespace mlir;
using namespace decay;

namespace {
class BackwardBuilder : RecurrenceEmitter {
public:
  BackwardBuilder(RecurrenceOp spec, AdjointOp adjoint, ImplicitLocOpBuilder &b)
      : RecurrenceEmitter(spec, b, b.getF64Type()), adjoint(adjoint) {}
  func::FuncOp build();

private:
  /// Per-sequence scratch buffers, rows indexed by token - start.
  struct Scratch {
    Value q, k, g, dq, dnum, dden;
    SmallVector<Value> scanPrev;
  };
  /// Runs the forward over the sequence at `at`, filling `scratch` and
  /// leaving the final S and z in sBuf and zBuf.
  void forwardSweep(const ElementIndex &at, Value start, Value end, const Scratch &scratch);
  /// Runs the reverse sweep, writing dq, dk, dv, the spec's gradients and the
  /// initial states' gradients.
  void reverseSweep(const ElementIndex &at, Value start, Value end, const Scratch &scratch);
  /// Evaluates the region at `element`, storing the scans' carried values in row `row`.
  SmallVector<Value> evaluateRecordingScans(const ElementIndex &element, Value row,
                                            const Scratch &scratch);
  /// Index of the scan-state row for a channel (0 for a scalar decay).
  Value channelOrZero(const ElementIndex &at) { return at.c ? at.c : index(0); }

  AdjointOp adjoint;
  BackwardSinks sinks;
  Value q, k, v, h0, seqs, normH0, dout, dht, dNormHt, dq, dk, dv, dh0, dNormH0;
  SmallVector<Value> scanH0, dScanHt, dInputs, dParams, dScanH0;
  Value sBuf, zBuf, dsBuf, dzBuf, lambdaSum, dkBuf, dKeyBuf, numBuf;
  SmallVector<Value> scanState, scanCarry;
};

SmallVector<Value> BackwardBuilder::evaluateRecordingScans(const ElementIndex &element, Value row,
                                                           const Scratch &scratch) {
  return evaluateRegion(element, [&](unsigned scan, Operation *op, Value x) {
    Value c = channelOrZero(element);
    ScanValues values = advanceScan(op, scanState[scan], c, x);
    store(values.prev, scratch.scanPrev[scan], {row, c});
    return values;
  });
}

void BackwardBuilder::forwardSweep(const ElementIndex &at, Value start, Value end,
                                   const Scratch &scratch) {
  Value zero = index(0);
  bool normalizer = spec.getNormalizer();
  loop(zero, keyDim, [&](Value i) {
    loop(zero, valueDim, [&](Value j) { store(load(h0, {at.n, at.h, i, j}), sBuf, {i, j}); });
    if (normalizer)
      store(load(normH0, {at.n, at.h, i}), zBuf, i);
    for (auto [initial, state] : llvm::zip(scanH0, scanState))
      store(load(initial, spec.isPerChannel() ? SmallVector<Value>{at.n, at.h, i}
                                              : SmallVector<Value>{at.n, at.h}),
            state, i);
  });
  loop(start, end, [&](Value t) {
    ElementIndex element = at;
    element.t = t;
    Value row = arith::SubIOp::create(b, t, start);
    // Log-decay and derived key.
    if (spec.getGranularity() == Granularity::none) {
      loop(zero, keyDim, [&](Value c) { store(real(0.0), scratch.g, {row, c}); });
    } else if (spec.isPerChannel()) {
      loop(zero, keyDim, [&](Value c) {
        element.c = c;
        SmallVector<Value> yielded = evaluateRecordingScans(element, row, scratch);
        store(yielded[0], scratch.g, {row, c});
        if (yielded.size() == 2)
          store(yielded[1], scratch.k, {row, c});
      });
      element.c = nullptr;
    } else {
      Value g = evaluateRecordingScans(element, row, scratch)[0];
      loop(zero, keyDim, [&](Value c) { store(g, scratch.g, {row, c}); });
    }
    // Feature map and RoPE.
    loop(zero, keyDim, [&](Value c) {
      store(featureMap(load(q, {at.b, t, at.h, c})), scratch.q, {row, c});
      if (!spec.hasDerivedKey())
        store(featureMap(load(k, {at.b, t, at.h, c})), scratch.k, {row, c});
    });
    if (spec.getRopeTheta()) {
      applyRope(scratch.q, row, row, /*inverse=*/false);
      applyRope(scratch.k, row, row, /*inverse=*/false);
    }
    // S <- diag(exp(g)) S + k v^T, z <- diag(exp(g)) z + k.
    loop(zero, keyDim, [&](Value i) {
      Value decay = exp(load(scratch.g, {row, i}));
      Value key = load(scratch.k, {row, i});
      loop(zero, valueDim, [&](Value j) {
        store(add(mul(decay, load(sBuf, {i, j})), mul(key, load(v, {at.b, t, at.h, j}))), sBuf, {i, j});
      });
      if (normalizer)
        store(add(mul(decay, load(zBuf, i)), key), zBuf, i);
    });
    // Gradients of num = S^T q and den = z . q + eps from do.
    loop(zero, valueDim, [&](Value j) {
      store(sum(keyDim, [&](Value i) { return mul(load(sBuf, {i, j}), load(scratch.q, {row, i})); }),
            numBuf, j);
    });
    if (normalizer) {
      Value den = add(sum(keyDim, [&](Value i) { return mul(load(zBuf, i), load(scratch.q, {row, i})); }),
                      real(spec.getEffectiveEps()));
      // o = num / den; dnum = do / den; dden = -(do . o) / den
      Value doDotO = sum(valueDim, [&](Value j) {
        return mul(load(dout, {at.b, t, at.h, j}), div(load(numBuf, j), den));
      });
      loop(zero, valueDim, [&](Value j) {
        store(div(load(dout, {at.b, t, at.h, j}), den), scratch.dnum, {row, j});
      });
      store(arith::NegFOp::create(b, div(doDotO, den)), scratch.dden, row);
    } else {
      loop(zero, valueDim, [&](Value j) {
        store(mul(scale, load(dout, {at.b, t, at.h, j})), scratch.dnum, {row, j});
      });
      store(real(0.0), scratch.dden, row);
    }
    // dq' = S dnum + z dden
    loop(zero, keyDim, [&](Value i) {
      Value fromS = sum(valueDim, [&](Value j) { return mul(load(sBuf, {i, j}), load(scratch.dnum, {row, j})); });
      Value total = normalizer ? add(fromS, mul(load(zBuf, i), load(scratch.dden, row))) : fromS;
      store(total, scratch.dq, {row, i});
    });
  });
}

void BackwardBuilder::reverseSweep(const ElementIndex &at, Value start, Value end,
                                   const Scratch &scratch) {
  Value zero = index(0);
  bool normalizer = spec.getNormalizer();
  // dS = dht, dz = dnorm_ht; the final state's share of dLambda at the last
  // token enters the reverse cumsum first: sum_j S_T dht + z_T dnorm_ht.
  loop(zero, keyDim, [&](Value i) {
    Value finalTerm = sum(valueDim, [&](Value j) {
      Value d = load(dht, {at.n, at.h, i, j});
      store(d, dsBuf, {i, j});
      return mul(load(sBuf, {i, j}), d);
    });
    if (normalizer) {
      Value d = load(dNormHt, {at.n, at.h, i});
      store(d, dzBuf, i);
      finalTerm = add(finalTerm, mul(load(zBuf, i), d));
    }
    store(finalTerm, lambdaSum, i);
    for (auto [final, carry] : llvm::zip(dScanHt, scanCarry))
      store(load(final, spec.isPerChannel() ? SmallVector<Value>{at.n, at.h, i}
                                            : SmallVector<Value>{at.n, at.h}),
            carry, i);
  });
  reverseLoop(start, end, [&](Value t) {
    Value row = arith::SubIOp::create(b, t, start);
    // dS += q' dnum^T, dz += q' dden
    loop(zero, keyDim, [&](Value i) {
      Value qi = load(scratch.q, {row, i});
      loop(zero, valueDim, [&](Value j) {
        store(add(load(dsBuf, {i, j}), mul(qi, load(scratch.dnum, {row, j}))), dsBuf, {i, j});
      });
      if (normalizer)
        store(add(load(dzBuf, i), mul(qi, load(scratch.dden, row))), dzBuf, i);
    });
    // dk' = dS v + dz;  dv = dS^T k'
    loop(zero, keyDim, [&](Value i) {
      Value fromS = sum(valueDim, [&](Value j) { return mul(load(dsBuf, {i, j}), load(v, {at.b, t, at.h, j})); });
      store(normalizer ? add(fromS, load(dzBuf, i)) : fromS, dkBuf, i);
    });
    loop(zero, valueDim, [&](Value j) {
      store(sum(keyDim, [&](Value i) { return mul(load(dsBuf, {i, j}), load(scratch.k, {row, i})); }),
            dv, {at.b, t, at.h, j});
    });
    // dLambda_t = q' dq' - k' dk', accumulated in reverse: dg_t = lambdaSum.
    // Then dS, dz go back through the decay of token t.
    loop(zero, keyDim, [&](Value i) {
      Value dLambda = sub(mul(load(scratch.q, {row, i}), load(scratch.dq, {row, i})),
                          mul(load(scratch.k, {row, i}), load(dkBuf, i)));
      store(add(load(lambdaSum, i), dLambda), lambdaSum, i);
      Value decay = exp(load(scratch.g, {row, i}));
      loop(zero, valueDim, [&](Value j) { store(mul(decay, load(dsBuf, {i, j})), dsBuf, {i, j}); });
      if (normalizer)
        store(mul(decay, load(dzBuf, i)), dzBuf, i);
    });
    ElementIndex element = at;
    element.t = t;
    finishTokenBackward(sinks, element, row, row, scratch.dq, row, dkBuf, {});
  });
  // Gradients of the initial states.
  loop(zero, keyDim, [&](Value i) {
    loop(zero, valueDim, [&](Value j) { store(load(dsBuf, {i, j}), dh0, {at.n, at.h, i, j}); });
    if (normalizer)
      store(load(dzBuf, i), dNormH0, {at.n, at.h, i});
    if (spec.isPerChannel())
      for (auto [initial, carry] : llvm::zip(dScanH0, scanCarry))
        store(load(carry, i), initial, {at.n, at.h, i});
  });
  // A scalar decay's scans carry one value per head, in channel 0.
  if (!spec.isPerChannel())
    for (auto [initial, carry] : llvm::zip(dScanH0, scanCarry))
      store(load(carry, zero), initial, {at.n, at.h});
}

func::FuncOp BackwardBuilder::build() {
  OpBuilder::InsertionGuard guard(b);
  RecurrenceArgs args;
  func::FuncOp fn =
      createFunction(referenceFunctionName(spec.getSymName()) + "_backward", true, args);
  q = args.q, k = args.k, v = args.v, h0 = args.h0, seqs = args.seqs, normH0 = args.normH0;
  scanH0 = args.scanH0;
  dout = args.dout, dht = args.dht, dNormHt = args.dNormHt, dScanHt = args.dScanHt;
  dq = args.dq, dk = args.dk, dv = args.dv, dh0 = args.dh0, dNormH0 = args.dNormH0;
  dInputs = args.dInputs, dParams = args.dParams, dScanH0 = args.dScanH0;
  sBuf = alloc({keyDim, valueDim});
  dsBuf = alloc({keyDim, valueDim});
  zBuf = alloc(keyDim);
  dzBuf = alloc(keyDim);
  lambdaSum = alloc(keyDim);
  dkBuf = alloc(keyDim);
  dKeyBuf = alloc(keyDim);
  numBuf = alloc(valueDim);
  for (size_t i = 0; i < scans.size(); ++i) {
    scanState.push_back(alloc(keyDim));
    scanCarry.push_back(alloc(keyDim));
  }
  sinks = BackwardSinks{adjoint, q, k, dq, dk, dInputs, dParams, {}, scanCarry, dKeyBuf, lambdaSum};
  SmallVector<Value> buffers = {sBuf, dsBuf, zBuf, dzBuf, lambdaSum, dkBuf, dKeyBuf, numBuf};
  llvm::append_range(buffers, scanState);
  llvm::append_range(buffers, scanCarry);

  Value numSeqs = memref::DimOp::create(b, seqs, 0);
  loop(index(0), numSeqs, [&](Value n) {
    auto [batch, start, end] = loadSequence(seqs, n);
    Value length = arith::SubIOp::create(b, end, start);
    Scratch scratch;
    scratch.q = alloc({length, keyDim});
    scratch.k = alloc({length, keyDim});
    scratch.g = alloc({length, keyDim});
    scratch.dq = alloc({length, keyDim});
    scratch.dnum = alloc({length, valueDim});
    scratch.dden = alloc(length);
    for (size_t i = 0; i < scans.size(); ++i)
      scratch.scanPrev.push_back(alloc({length, keyDim}));
    sinks.scanPrev = scratch.scanPrev;
    loop(index(0), numHeads, [&](Value h) {
      ElementIndex at{n, batch, nullptr, h, nullptr};
      forwardSweep(at, start, end, scratch);
      reverseSweep(at, start, end, scratch);
    });
    SmallVector<Value> perSequence = {scratch.q, scratch.k, scratch.g, scratch.dq, scratch.dnum, scratch.dden};
    llvm::append_range(perSequence, scratch.scanPrev);
    for (Value buffer : perSequence)
      memref::DeallocOp::create(b, buffer);
  });
  for (Value buffer : buffers)
    memref::DeallocOp::create(b, buffer);
  func::ReturnOp::create(b);
  return fn;
}
} // namespace

func::FuncOp decay::buildBackwardReference(RecurrenceOp spec, AdjointOp adjoint,
                                                      ImplicitLocOpBuilder &b) {
  return BackwardBuilder(spec, adjoint, b).build();
}
