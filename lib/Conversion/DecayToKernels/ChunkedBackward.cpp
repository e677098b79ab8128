// The chunked backward kernel (MATH.md section 3): parallel over (sequence, head), reverse over chunks.
//
// A forward sweep over the chunks recomputes q, k and the cumulative
// log-decay of every token and stores the state entering each chunk. The
// reverse sweep then runs, per chunk, with dH the gradient of the state
// leaving it (dH = dht after the last chunk):
//   dA_ts = dnum_t . v_s (+ dden_t)                        (s <= t)
//   dq_t  = exp(G_t) (H dnum_t + z dden_t) + sum_{s<=t} dA_ts k_s exp(G_t - G_s)
//   dk_s  = sum_{t>=s} dA_ts q_t exp(G_t - G_s) + exp(G_last - G_s) (dH v_s + dz)
//   dv_s  = sum_{t>=s} A_ts dnum_t + dH^T (k_s exp(G_last - G_s))
//   dH   <- diag(exp(G_last)) dH + sum_t (q_t exp(G_t)) dnum_t^T
// with dnum = scale do (normalizer: do / den, dden = -(do . o) / den), and
// dg from the identity dLambda_t = q_t dq_t - k_t dk_t summed over later tokens.
#include "ChunkEmitter.h"
#include "KernelBuilders.h"

using namespace mlir;
using namespace decay;

namespace {
class ChunkedBackwardBuilder : ChunkEmitter {
public:
  ChunkedBackwardBuilder(RecurrenceOp spec, AdjointOp adjoint, int64_t chunkSize,
                         ImplicitLocOpBuilder &b)
      : ChunkEmitter(spec, chunkSize, b), adjoint(adjoint) {}
  func::FuncOp build();

private:
  /// Buffers of one (sequence, head) work item.
  struct Scratch {
    Chunk chunk;                   // q, k, g over the whole sequence; a per chunk
    Value entering, enteringNorm;  // [chunks, K, V], [chunks, K]: state entering each chunk
    Value state, norm, dState, dNorm;
    Value dA, dnum, dden, dq, dk;
    Value dqWide, dkWide; // [C, K] f64 copies of dq, dk for dLambda
    Value decayIn, decayOut, qd, kd; // [C, K]: exp(G), exp(G_last - G), q exp(G), k exp(G_last - G)
    SmallVector<Value> scanState;
    BackwardSinks sinks;
  };
  void runSequence(Value n, Value h);
  /// Recomputes q, k, g and the entering states, chunk by chunk.
  void forwardSweep(const ElementIndex &at, Value start, Value end, Scratch &s);
  /// The gradients of one chunk, given dState for the state leaving it.
  void chunkGradients(const ElementIndex &at, Value start, Value chunkIndex, Scratch &s);
  /// Chunk `index` of the sequence [start, end).
  void locateChunk(Chunk &chunk, Value start, Value end, Value chunkIndex);

  AdjointOp adjoint;
  RecurrenceArgs args;
};

void ChunkedBackwardBuilder::locateChunk(Chunk &chunk, Value start, Value end, Value chunkIndex) {
  chunk.base = arith::MulIOp::create(b, chunkIndex, index(chunkSize));
  chunk.first = arith::AddIOp::create(b, start, chunk.base);
  chunk.length = arith::MinSIOp::create(b, index(chunkSize), arith::SubIOp::create(b, end, chunk.first));
}

void ChunkedBackwardBuilder::forwardSweep(const ElementIndex &at, Value start, Value end, Scratch &s) {
  Value zero = index(0);
  Value n = at.n, h = at.h;
  bool normalizer = spec.getNormalizer();
  loop(zero, keyDim, [&](Value c) {
    loop(zero, valueDim, [&](Value j) { store(load(args.h0, {n, h, c, j}), s.state, {c, j}); });
    if (normalizer)
      store(load(args.normH0, {n, h, c}), s.norm, c);
    for (auto [initial, state] : llvm::zip(args.scanH0, s.scanState))
      store(load(initial, spec.isPerChannel() ? SmallVector<Value>{n, h, c} : SmallVector<Value>{n, h}),
            state, c);
  });
  Value length = arith::SubIOp::create(b, end, start);
  Value numChunks = arith::CeilDivSIOp::create(b, length, index(chunkSize));
  loop(zero, numChunks, [&](Value ci) {
    Chunk chunk = s.chunk;
    locateChunk(chunk, start, end, ci);
    prepareChunk(at, start, chunk, [&](const ElementIndex &e, unsigned scan, Operation *op, Value x) {
      Value c = e.c ? e.c : index(0);
      ScanValues values = advanceScan(op, s.scanState[scan], c, x);
      store(values.prev, s.sinks.scanPrev[scan], {arith::SubIOp::create(b, e.t, start), c});
      return values;
    });
    loop(zero, keyDim, [&](Value c) {
      loop(zero, valueDim, [&](Value j) { store(load(s.state, {c, j}), s.entering, {ci, c, j}); });
      if (normalizer)
        store(load(s.norm, c), s.enteringNorm, {ci, c});
    });
    advanceState(at, chunk, s.state, {}, s.norm, {});
  });
}

void ChunkedBackwardBuilder::chunkGradients(const ElementIndex &at, Value start, Value ci,
                                            Scratch &s) {
  Value zero = index(0);
  FloatType f64 = b.getF64Type();
  bool normalizer = spec.getNormalizer();
  Chunk &chunk = s.chunk;
  Value last = arith::SubIOp::create(b, chunk.length, index(1));
  auto token = [&](Value t) { return arith::AddIOp::create(b, chunk.first, t).getResult(); };
  stageValues(at, chunk);
  computeScores(chunk);
  chunkNumerators(at, chunk, s.entering, {ci});
  // dnum and dden of every token of the chunk.
  loop(zero, chunk.length, [&](Value t) {
    Value tt = token(t);
    if (!normalizer) {
      loop(zero, valueDim, [&](Value j) {
        store(mul(scale, load(args.dout, {at.b, tt, at.h, j})), s.dnum, {t, j});
      });
      store(real(0.0), s.dden, t);
      return;
    }
    // o = num / den: dnum = do / den, dden = -(do . o) / den
    Value den = chunkDenominator(chunk, t, s.enteringNorm, {ci});
    Value doDotO = sum(valueDim, [&](Value j) {
      return mul(load(args.dout, {at.b, tt, at.h, j}), div(load(chunk.out, {t, j}), den));
    });
    loop(zero, valueDim, [&](Value j) {
      store(div(load(args.dout, {at.b, tt, at.h, j}), den), s.dnum, {t, j});
    });
    store(arith::NegFOp::create(b, div(doDotO, den)), s.dden, t);
  });
  // dA_ts = dnum_t . v_s + dden_t
  loop(zero, chunk.length, [&](Value t) {
    Value through = arith::AddIOp::create(b, t, index(1));
    loop(zero, through, [&](Value src) {
      Value ts = token(src);
      Value dot = sum(valueDim, [&](Value j) { return mul(load(s.dnum, {t, j}), load(args.v, {at.b, ts, at.h, j})); });
      store(add(dot, load(s.dden, t)), s.dA, {t, src});
    });
  });
  // Decay factors of the chunk, once: exp(G_t) and exp(G_last - G_t) per
  // (token, channel), and Qd = q exp(G), Kd = k exp(G_last - G).
  bool perChannel = spec.isPerChannel();
  loop(zero, chunk.length, [&](Value t) {
    Value rt = row(chunk, t);
    Value sharedIn = perChannel ? Value() : exp(cumulative(chunk, t, zero));
    Value sharedOut = perChannel ? Value() : decayBetween(chunk, last, t, zero);
    loop(zero, keyDim, [&](Value c) {
      Value in = perChannel ? exp(cumulative(chunk, t, c)) : sharedIn;
      Value out = perChannel ? decayBetween(chunk, last, t, c) : sharedOut;
      store(in, s.decayIn, {t, c});
      store(out, s.decayOut, {t, c});
      store(mul(load(chunk.q, {rt, c}), in), s.qd, {t, c});
      store(mul(load(chunk.k, {rt, c}), out), s.kd, {t, c});
    });
  });
  // The state's share, accumulated in f64 (dq and dk feed dLambda, where
  // q dq and k dk cancel):
  //   dq_t = exp(G_t) (H dnum_t + z dden_t),  dk_s = exp(G_last - G_s) (dH v_s + dz).
  loop(zero, chunk.length, [&](Value t) {
    Value tt = token(t);
    loop(zero, keyDim, [&](Value c) {
      Value fromState = sum(zero, valueDim, [&](Value j) {
        return widen(mul(load(s.dnum, {t, j}), load(s.entering, {ci, c, j})));
      }, f64);
      if (normalizer)
        fromState = add(fromState, widen(mul(load(s.dden, t), load(s.enteringNorm, {ci, c}))));
      store(mul(widen(load(s.decayIn, {t, c})), fromState), s.dqWide, {t, c});
      Value toState = sum(zero, valueDim, [&](Value j) {
        return widen(mul(load(args.v, {at.b, tt, at.h, j}), load(s.dState, {c, j})));
      }, f64);
      if (normalizer)
        toState = add(toState, widen(load(s.dNorm, c)));
      store(mul(widen(load(s.decayOut, {t, c})), toState), s.dkWide, {t, c});
    });
  });
  // The chunk's share, pair by pair with the channel innermost (contiguous):
  //   dq_t += sum_{s<=t} dA_ts k_s exp(G_t - G_s),  dk_s += sum_{t>=s} dA_ts q_t exp(G_t - G_s).
  loop(zero, chunk.length, [&](Value t) {
    Value rt = row(chunk, t);
    Value through = arith::AddIOp::create(b, t, index(1));
    loop(zero, through, [&](Value src) {
      Value rs = row(chunk, src);
      Value weight = load(s.dA, {t, src});
      Value shared = perChannel ? Value() : mul(weight, decayBetween(chunk, t, src, zero));
      loop(zero, keyDim, [&](Value c) {
        Value factor = perChannel ? mul(weight, decayBetween(chunk, t, src, c)) : shared;
        store(add(load(s.dqWide, {t, c}), widen(mul(factor, load(chunk.k, {rs, c})))), s.dqWide, {t, c});
        store(add(load(s.dkWide, {src, c}), widen(mul(factor, load(chunk.q, {rt, c})))), s.dkWide, {src, c});
      });
    });
  });
  loop(zero, chunk.length, [&](Value t) {
    loop(zero, keyDim, [&](Value c) {
      store(narrow(load(s.dqWide, {t, c})), s.dq, {t, c});
      store(narrow(load(s.dkWide, {t, c})), s.dk, {t, c});
    });
  });
  // dv = A^T dnum + Kd dH, in the chunk's output buffer, then into dv.
  MatrixView dvRows{chunk.out, [](Value src, Value j) -> SmallVector<Value> { return {src, j}; }};
  MatrixView dnumRows{s.dnum, [](Value t, Value j) -> SmallVector<Value> { return {t, j}; }};
  MatrixView dStateRows{s.dState, [](Value c, Value j) -> SmallVector<Value> { return {c, j}; }};
  emitTileMatmul(b, dvRows, [&](Value src, Value t) { return load(chunk.a, {t, src}); }, dnumRows,
                 chunk.length, valueDim, chunk.length, /*accumulate=*/false);
  emitTileMatmul(b, dvRows, [&](Value src, Value c) { return load(s.kd, {src, c}); }, dStateRows,
                 chunk.length, valueDim, keyDim, /*accumulate=*/true);
  loop(zero, chunk.length, [&](Value src) {
    Value ts = token(src);
    loop(zero, valueDim, [&](Value j) { store(load(chunk.out, {src, j}), args.dv, {at.b, ts, at.h, j}); });
  });
  // dH <- diag(exp(G_last)) dH + Qd^T dnum; dz likewise with dden.
  loop(zero, keyDim, [&](Value c) {
    Value decay = exp(cumulative(chunk, last, c));
    loop(zero, valueDim, [&](Value j) { store(mul(decay, load(s.dState, {c, j})), s.dState, {c, j}); });
    if (normalizer) {
      Value fromChunk = sum(chunk.length, [&](Value t) { return mul(load(s.qd, {t, c}), load(s.dden, t)); });
      store(add(mul(decay, load(s.dNorm, c)), fromChunk), s.dNorm, c);
    }
  });
  emitTileMatmul(b, dStateRows, [&](Value c, Value t) { return load(s.qd, {t, c}); }, dnumRows, keyDim,
                 valueDim, chunk.length, /*accumulate=*/true);
  // Token by token in reverse: dLambda into dg, then dq, dk and the
  // parameterization's gradients.
  reverseLoop(zero, chunk.length, [&](Value t) {
    Value rt = row(chunk, t);
    loop(zero, keyDim, [&](Value c) {
      // In f64, from dq and dk accumulated in f64: q dq and k dk share most
      // of their terms (exactly the same products), which then cancel exactly.
      Value dLambda = sub(mul(widen(load(chunk.q, {rt, c})), load(s.dqWide, {t, c})),
                          mul(widen(load(chunk.k, {rt, c})), load(s.dkWide, {t, c})));
      store(add(load(s.sinks.lambdaSum, c), dLambda), s.sinks.lambdaSum, c);
    });
    ElementIndex element = at;
    element.t = token(t);
    Value pos = arith::SubIOp::create(b, element.t, start);
    finishTokenBackward(s.sinks, element, pos, rt, s.dq, t, s.dk, t);
  });
}

void ChunkedBackwardBuilder::runSequence(Value n, Value h) {
  Value zero = index(0), size = index(chunkSize);
  bool normalizer = spec.getNormalizer();
  auto [batch, start, end] = loadSequence(args.seqs, n);
  ElementIndex at{n, batch, nullptr, h, nullptr};
  Value length = arith::SubIOp::create(b, end, start);
  Value numChunks = arith::CeilDivSIOp::create(b, length, size);

  Scratch s;
  s.chunk.q = alloc({length, keyDim});
  s.chunk.k = alloc({length, keyDim});
  s.chunk.g = alloc({length, keyDim});
  s.chunk.a = alloc({size, size});
  s.entering = alloc({numChunks, keyDim, valueDim});
  s.enteringNorm = alloc({numChunks, keyDim});
  s.state = alloc({keyDim, valueDim});
  s.dState = alloc({keyDim, valueDim});
  s.norm = alloc(keyDim);
  s.dNorm = alloc(keyDim);
  s.dA = alloc({size, size});
  s.dnum = alloc({size, valueDim});
  s.dden = alloc(size);
  s.dq = alloc({size, keyDim});
  s.dk = alloc({size, keyDim});
  Value side = arith::MaxUIOp::create(b, size, keyDim);
  s.chunk.work = alloc({side, side});
  s.chunk.out = alloc({size, valueDim});
  s.chunk.values = alloc({size, valueDim});
  s.chunk.sub = alloc({keyDim, index(kSubBlock)});
  s.chunk.decayedKeys = alloc({size, keyDim});
  auto allocWide = [&](ValueRange sizes) {
    return memref::AllocOp::create(b, MemRefType::get(SmallVector<int64_t>(sizes.size(), ShapedType::kDynamic),
                                                      b.getF64Type()),
                                   sizes)
        .getResult();
  };
  s.dqWide = allocWide({size, keyDim});
  s.decayIn = alloc({size, keyDim});
  s.decayOut = alloc({size, keyDim});
  s.qd = alloc({size, keyDim});
  s.kd = alloc({size, keyDim});
  s.dkWide = allocWide({size, keyDim});
  SmallVector<Value> scanPrev, scanCarry;
  for (size_t i = 0; i < scans.size(); ++i) {
    s.scanState.push_back(alloc(keyDim));
    scanPrev.push_back(alloc({length, keyDim}));
    scanCarry.push_back(alloc(keyDim));
  }
  s.sinks = BackwardSinks{adjoint, args.q, args.k, args.dq, args.dk, args.dInputs, args.dParams,
                          scanPrev, scanCarry, alloc(keyDim),
                          allocWide(keyDim),
                          /*atomicShared=*/true};

  forwardSweep(at, start, end, s);
  // dState = dht, dNorm = dnorm_ht; the final state's share of dLambda at the
  // last token starts the reverse cumsum: sum_j S_T dht + z_T dnorm_ht.
  loop(zero, keyDim, [&](Value c) {
    Value finalTerm = sum(zero, valueDim, [&](Value j) {
      Value d = load(args.dht, {n, h, c, j});
      store(d, s.dState, {c, j});
      return widen(mul(load(s.state, {c, j}), d));
    }, b.getF64Type());
    if (normalizer) {
      Value d = load(args.dNormHt, {n, h, c});
      store(d, s.dNorm, c);
      finalTerm = add(finalTerm, widen(mul(load(s.norm, c), d)));
    }
    store(finalTerm, s.sinks.lambdaSum, c);
    for (auto [final, carry] : llvm::zip(args.dScanHt, scanCarry))
      store(load(final, spec.isPerChannel() ? SmallVector<Value>{n, h, c} : SmallVector<Value>{n, h}),
            carry, c);
  });
  reverseLoop(zero, numChunks, [&](Value ci) {
    locateChunk(s.chunk, start, end, ci);
    chunkGradients(at, start, ci, s);
  });
  // Gradients of the initial states (a scalar decay's scans use channel 0).
  loop(zero, keyDim, [&](Value c) {
    loop(zero, valueDim, [&](Value j) { store(load(s.dState, {c, j}), args.dh0, {n, h, c, j}); });
    if (normalizer)
      store(load(s.dNorm, c), args.dNormH0, {n, h, c});
    if (spec.isPerChannel())
      for (auto [initial, carry] : llvm::zip(args.dScanH0, scanCarry))
        store(load(carry, c), initial, {n, h, c});
  });
  if (!spec.isPerChannel())
    for (auto [initial, carry] : llvm::zip(args.dScanH0, scanCarry))
      store(load(carry, zero), initial, {n, h});

  SmallVector<Value> buffers = {s.chunk.q, s.chunk.k, s.chunk.g, s.chunk.a, s.entering,
                                s.enteringNorm, s.state, s.dState, s.norm, s.dNorm, s.dA,
                                s.dnum, s.dden, s.dq, s.dk, s.dqWide, s.dkWide, s.decayIn,
                                s.decayOut, s.qd, s.kd, s.chunk.work,
                                s.chunk.out, s.chunk.values, s.chunk.sub, s.chunk.decayedKeys,
                                s.sinks.dKeyBuf,
                                s.sinks.lambdaSum};
  llvm::append_range(buffers, s.scanState);
  llvm::append_range(buffers, scanPrev);
  llvm::append_range(buffers, scanCarry);
  for (Value buffer : buffers)
    memref::DeallocOp::create(b, buffer);
}

func::FuncOp ChunkedBackwardBuilder::build() {
  return buildKernel((spec.getSymName() + "_backward").str(), /*backward=*/true, args,
                     [&](Value n, Value h) { runSequence(n, h); });
}
} // namespace

func::FuncOp decay::buildChunkedBackward(RecurrenceOp spec, AdjointOp adjoint, int64_t chunkSize,
                                         ImplicitLocOpBuilder &b) {
  return ChunkedBackwardBuilder(spec, adjoint, chunkSize, b).build();
}
