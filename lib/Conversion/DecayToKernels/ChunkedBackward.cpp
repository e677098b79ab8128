// The chunked backward kernel (MATH.md section 3): parallel over (sequence, group of heads), reverse over chunks.
//
// A forward sweep over the chunks recomputes q, k and the cumulative
// log-decay of every token and stores the state entering each chunk. As in
// the forward, a work item takes a group of adjacent heads, each chunk for
// every head in turn (their rows of a token are adjacent in memory). The
// reverse sweep then runs, per chunk, with dH the gradient of the state
// leaving it (dH = dht after the last chunk), every product a tiled matmul:
//   dA_ts = dnum_t . v_s (+ dden_t)                           (dnum V^T)
//   dq_t  = exp(G_t) (H dnum_t + z dden_t)                    (dnum H^T)
//           + sum_{s<t} dA_ts exp(G_t - G_s) k_s + dA_tt k_t  (D K)
//   dk_s  = exp(G_last - G_s) (dH v_s + dz)                   (V dH^T)
//           + sum_{t>s} dA_ts exp(G_t - G_s) q_t + dA_ss q_s  (D^T Q)
//   dv_s  = sum_{t>=s} A_ts dnum_t + dH^T (k_s exp(G_last - G_s))
//   dH   <- diag(exp(G_last)) dH + sum_t (q_t exp(G_t)) dnum_t^T
// with dnum = scale do (normalizer: do / den, dden = -(do . o) / den). A
// vector decay splits D K and D^T Q by secondary chunking, as the forward.
// H and dH are held transposed ([V, K]) so that every product above reads
// its right-hand side along contiguous rows (dv is formed as dv^T).
//
// The log-decay's gradient is computed per chunk and channel without
// cancellation across the sequence (G is chunk-local, so g_t reaches later
// chunks only through the state leaving its chunk):
//   dg_t = sum_{t'>=t} (q_t' dq*_t' - k_t' dk'_t') + sum_{s<t} k_s dkH_s + exp(G_last) <H, dH>
// where dq* is dq without its diagonal term, dk' the strict pair term of dk
// and dkH its state term: the pair terms that cancel are the chunk's own
// off-diagonal ones, of the size of the result.
#include "ChunkEmitter.h"
#include "KernelBuilders.h"
#include "TileTranspose.h"

using namespace mlir;
using namespace decay;

namespace {
class ChunkedBackwardBuilder : ChunkEmitter {
public:
  ChunkedBackwardBuilder(RecurrenceOp spec, AdjointOp adjoint, int64_t chunkSize,
                         const RegisterTiling &tiling, ImplicitLocOpBuilder &b, bool phaseLocations)
      : ChunkEmitter(spec, chunkSize, tiling, b, phaseLocations), adjoint(adjoint) {}
  func::FuncOp build();

private:
  /// Buffers of one (sequence, group of heads) work item: the current
  /// head's (bindHead) and those the heads share, chunk by chunk.
  struct Scratch {
    Chunk chunk;                   // q, k, g over the whole sequence of every head (headRows); the rest per chunk
    Value entering, enteringNorm;  // [heads * chunks, V, K'], [heads * chunks, K]: state entering each chunk (H^T; K' see runSequence)
    Value stateT, norm, dStateT, dNorm; // the head's H^T [V, K], z, dH^T [V, K], dz: states held transposed
    Value enteringRows;            // [K, V]: H of the chunk, for the normalizer's numerators
    Value dA, pairs, dnum, dden;   // [C, C], [C, C] (scalar decays: D), [C, V], [C]
    Value valuesT, dvT, kdT;       // [V, C]: V^T and dv^T; [K, C]: Kd^T
    Value dq, dkPairs, dkState;    // [C, K]: dq (diagonal term last), dk's pair and state terms
    Value blockTemp;               // [16, K]: a sub-block's matmul (vector decays only, as the next)
    Value decayedKeys;             // [C, K]: keys or queries decayed to a sub-block's edge
    Value decayIn, decayOut, qd;   // [C, K]: exp(G), exp(G_last - G), q exp(G)
    Value dg, carry, edge;         // f64 [C, K], [K], [K]: the parts of dg (see the top)
    SmallVector<Value> scanState;
    BackwardSinks sinks;
    Value streamingDv;             // i1: dv takes non-temporal vector stores (streamableRows)
    Value streamingDqDk;           // i1: dq and dk do (with keyGradientRowsDeferred)
  };
  /// What each head of the group keeps from chunk to chunk, with a leading
  /// dim of the group's heads; bindHead points the Scratch at one head's.
  struct HeadStates {
    Value stateT, norm, dStateT, dNorm; // [heads, V, K], [heads, K]
    SmallVector<Value> scanState, scanPrev, scanCarry, paramPartials; // [heads, K]; scanPrev [heads, rows, K]
  };
  /// Heads [firstHead, endHead) of sequence n.
  void runSequence(Value n, Value firstHead, Value endHead);
  /// Points `s` at head `head` (of the group) of `states`.
  void bindHead(Scratch &s, const HeadStates &states, Value head);
  /// `buffer`'s slice `i` along its leading dim, that dim dropped.
  Value slice(Value buffer, Value i);
  /// The head's initial states (h0, its normalizer and scans).
  void loadInitialStates(const ElementIndex &at, Scratch &s);
  /// Recomputes q, k, g of one chunk of one head and stores the state
  /// entering it in `slot` of s.entering.
  void sweepChunk(const ElementIndex &at, Value start, Value slot, Scratch &s);
  /// Stores the states entering the chunk in `slot` and advances them past it.
  void saveAndAdvanceState(const ElementIndex &at, Value slot, Scratch &s);
  /// The gradients of one chunk, given dState for the state leaving it;
  /// `slot` is where sweepChunk stored the state entering it.
  void chunkGradients(const ElementIndex &at, Value start, Value slot, Scratch &s);
  /// dnum and dden of every token of the chunk.
  void outputGradients(const ElementIndex &at, Value slot, Scratch &s);
  /// V^T, and dA = dnum V^T (+ dden).
  void scoreGradients(const ElementIndex &at, Scratch &s);
  /// exp(G), exp(G_last - G), Qd and Kd^T of the chunk.
  void decayFactors(Scratch &s);
  /// The state terms: dq = exp(G) (dnum H^T + dden z), dkState = exp(G_last - G) (V dH^T + dz).
  void stateGradients(Value slot, Scratch &s);
  /// The strict pair terms: dq += D K, dkPairs = D^T Q.
  void pairGradients(Scratch &s);
  /// pairGradients for a vector decay, by secondary chunking.
  void blockPairGradients(Scratch &s);
  void subBlockPairGradients(Scratch &s, const SubBlock &block);
  /// dest[t, c] += exp(G_tc - G_refc) blockTemp[t - first, c] over the
  /// sub-block's tokens t (exponent G_ref - G_t unless `later`); ref is a
  /// chunk-local token (runningDecay).
  void addDecayedBlock(Scratch &s, Value dest, const SubBlock &block, Value ref, bool later);
  /// dg's prefix sums of k dkState (a part of dg that does not depend on
  /// the token order of the reverse loop).
  void prefixSums(Scratch &s);
  /// dv; dH (dz) carried to the previous chunk; dg's state edge term
  /// exp(G_last) <H, dH> (with the dH leaving the chunk).
  void valueAndStateGradients(const ElementIndex &at, Value slot, Scratch &s);
  /// Token by token in reverse: dg, the diagonal terms, the parameterization.
  void finishChunk(const ElementIndex &at, Value start, Scratch &s);
  /// Prefetches the state entering the chunk (`slot` of s.entering, written
  /// past the caches by the forward sweep) into L2 as the chunk's gradients
  /// begin: stateGradients reads it after the scores' phases, and its rows
  /// are read a column block at a time, which the hardware prefetcher does
  /// not follow (mamba2's backward on an Intel Xeon: 0.191 -> 0.178 s).
  void prefetchEnteringState(Value slot, Scratch &s);
  /// Whether dq and dk of a chunk's tokens are its rows of s.dq and
  /// s.dkPairs as they are (identity feature map, no RoPE, no derived key):
  /// finishChunk then writes them after its token loop, row by row in token
  /// order, with streaming stores where they are aligned (writeRow).
  bool keyGradientRowsDeferred();
  /// Chunk `index` of the sequence [start, end), of the head whose rows of
  /// the whole-sequence buffers start at `headRow`.
  void locateChunk(Chunk &chunk, Value start, Value end, Value chunkIndex, Value headRow);

  AdjointOp adjoint;
  RecurrenceArgs args;
};

void ChunkedBackwardBuilder::locateChunk(Chunk &chunk, Value start, Value end, Value chunkIndex,
                                         Value headRow) {
  Value offset = arith::MulIOp::create(b, chunkIndex, index(chunkSize));
  chunk.base = arith::AddIOp::create(b, headRow, offset);
  chunk.first = arith::AddIOp::create(b, start, offset);
  chunk.length = arith::MinSIOp::create(b, index(chunkSize), arith::SubIOp::create(b, end, chunk.first));
}

Value ChunkedBackwardBuilder::slice(Value buffer, Value i) {
  auto type = cast<MemRefType>(buffer.getType());
  SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0)), sizes = {b.getIndexAttr(1)},
      strides(type.getRank(), b.getIndexAttr(1));
  offsets[0] = i;
  for (int64_t d = 1; d < type.getRank(); ++d)
    sizes.push_back(memref::DimOp::create(b, buffer, d).getResult());
  MemRefType viewType =
      memref::SubViewOp::inferRankReducedResultType(type.getShape().drop_front(), type, offsets, sizes, strides);
  return memref::SubViewOp::create(b, viewType, buffer, offsets, sizes, strides);
}

void ChunkedBackwardBuilder::bindHead(Scratch &s, const HeadStates &states, Value head) {
  s.stateT = slice(states.stateT, head);
  s.dStateT = slice(states.dStateT, head);
  s.norm = slice(states.norm, head);
  s.dNorm = slice(states.dNorm, head);
  auto slices = [&](ArrayRef<Value> buffers) {
    return llvm::map_to_vector(buffers, [&](Value buffer) { return slice(buffer, head); });
  };
  s.scanState = slices(states.scanState);
  s.sinks.scanPrev = slices(states.scanPrev);
  s.sinks.scanCarry = slices(states.scanCarry);
  s.sinks.paramPartials = slices(states.paramPartials);
}

void ChunkedBackwardBuilder::loadInitialStates(const ElementIndex &at, Scratch &s) {
  Value n = at.n, h = at.h;
  loop(index(0), keyDim, [&](Value c) {
    loop(index(0), valueDim, [&](Value j) { store(load(args.h0, {n, h, c, j}), s.stateT, {j, c}); });
    if (spec.getNormalizer())
      store(load(args.normH0, {n, h, c}), s.norm, c);
    for (auto [initial, state] : llvm::zip(args.scanH0, s.scanState))
      store(load(initial, spec.isPerChannel() ? SmallVector<Value>{n, h, c} : SmallVector<Value>{n, h}),
            state, c);
  });
}

void ChunkedBackwardBuilder::sweepChunk(const ElementIndex &at, Value start, Value slot, Scratch &s) {
  Chunk &chunk = s.chunk;
  phase("sweep.prepareChunk", [&] {
    prepareChunk(at, start, chunk, [&](const ElementIndex &e, unsigned scan, Operation *op, Value x) {
      Value c = e.c ? e.c : index(0);
      ScanValues values = advanceScan(op, s.scanState[scan], c, x);
      store(values.prev, s.sinks.scanPrev[scan], {arith::SubIOp::create(b, e.t, start), c});
      return values;
    });
  });
  phase("sweep.advanceState", [&] { saveAndAdvanceState(at, slot, s); });
}

void ChunkedBackwardBuilder::saveAndAdvanceState(const ElementIndex &at, Value slot, Scratch &s) {
  Value zero = index(0);
  Chunk &chunk = s.chunk;
  if (spec.getNormalizer())
    loop(zero, keyDim, [&](Value c) { store(load(s.norm, c), s.enteringNorm, {slot, c}); });
  // The entering H^T saved as the update reads it, streamed past the caches:
  // the reverse sweep reads it back only after the whole forward sweep.
  advanceState(at, chunk, s.stateT, {}, s.norm, {}, /*transposed=*/true,
               [&](Value j, Value c, Value h) { storeStreaming(b, h, s.entering, {slot, j, c}); });
}

void ChunkedBackwardBuilder::outputGradients(const ElementIndex &at, Value slot, Scratch &s) {
  Value zero = index(0);
  Chunk &chunk = s.chunk;
  loop(zero, chunk.length, [&](Value t) {
    Value tt = arith::AddIOp::create(b, chunk.first, t);
    if (!spec.getNormalizer()) {
      loop(zero, valueDim, [&](Value j) {
        store(mul(scale, load(args.dout, {at.b, tt, at.h, j})), s.dnum, {t, j});
      });
      store(real(0.0), s.dden, t);
      return;
    }
    // o = num / den: dnum = do / den, dden = -(do . o) / den
    Value den = chunkDenominator(chunk, t, s.enteringNorm, {slot});
    Value doDotO = sum(valueDim, [&](Value j) {
      return mul(load(args.dout, {at.b, tt, at.h, j}), div(load(chunk.out, {t, j}), den));
    });
    loop(zero, valueDim, [&](Value j) {
      store(div(load(args.dout, {at.b, tt, at.h, j}), den), s.dnum, {t, j});
    });
    store(arith::NegFOp::create(b, div(doDotO, den)), s.dden, t);
  });
}

void ChunkedBackwardBuilder::scoreGradients(const ElementIndex &at, Scratch &s) {
  Value zero = index(0);
  Chunk &chunk = s.chunk;
  // dA = dnum V^T, against V transposed ([V, C]).
  // V^T straight from v's rows (the chunk's values are not staged, see
  // chunkGradients).
  MatrixView valuesIn{v, [&](Value src, Value j) -> SmallVector<Value> {
                        return {at.b, arith::AddIOp::create(b, chunk.first, src), at.h, j};
                      }};
  emitTranspose(b, tiling, rowMajor(s.valuesT), valuesIn, chunk.length, valueDim);
  emitTileMatmul(b, tiling, rowMajor(s.dA), [&](Value t, Value j) { return load(s.dnum, {t, j}); },
                 rowMajor(s.valuesT), chunk.length, chunk.length, valueDim, /*accumulate=*/false,
                 Triangle::LowerC);
  if (spec.getNormalizer())
    loop(zero, chunk.length, [&](Value t) {
      Value dden = load(s.dden, t);
      loop(zero, chunk.length, [&](Value src) { store(add(load(s.dA, {t, src}), dden), s.dA, {t, src}); });
    });
}

void ChunkedBackwardBuilder::decayFactors(Scratch &s) {
  Value zero = index(0);
  Chunk &chunk = s.chunk;
  Value last = arith::SubIOp::create(b, chunk.length, index(1));
  if (spec.isPerChannel()) {
    // Running products of the steps (see runningDecay): exp(G) forward,
    // exp(G_last - G) backward from the last token.
    runningDecay(chunk, zero, chunk.length, /*ref=*/nullptr, /*later=*/true, [&](Value t, Value c, Value in) {
      store(in, s.decayIn, {t, c});
      store(mul(load(chunk.q, {qkRow(chunk, t), c}), in), s.qd, {t, c});
    });
    runningDecay(chunk, zero, chunk.length, last, /*later=*/false, [&](Value t, Value c, Value out) {
      store(out, s.decayOut, {t, c});
      store(mul(load(chunk.k, {qkRow(chunk, t), c}), out), chunk.work, {t, c});
    });
  } else {
    loop(zero, chunk.length, [&](Value t) {
      Value qt = qkRow(chunk, t);
      Value in = exp(cumulative(chunk, t, zero));
      Value out = decayBetween(chunk, last, t, zero);
      loop(zero, keyDim, [&](Value c) {
        store(in, s.decayIn, {t, c});
        store(out, s.decayOut, {t, c});
        store(mul(load(chunk.q, {qt, c}), in), s.qd, {t, c});
        store(mul(load(chunk.k, {qt, c}), out), chunk.work, {t, c});
      });
    });
  }
  // Kd, formed in rows in the work buffer, transposed into Kd^T.
  emitTranspose(b, tiling, rowMajor(s.kdT), rowMajor(chunk.work), chunk.length, keyDim);
}

void ChunkedBackwardBuilder::stateGradients(Value slot, Scratch &s) {
  Chunk &chunk = s.chunk;
  bool normalizer = spec.getNormalizer();
  // dq = exp(G) (dnum H^T + dden z), dkH = exp(G_last - G) (V dH^T + dz),
  // against the states held transposed; the normalizer's terms and the
  // decays applied to each tile of the products as it is stored.
  auto fromState = [&](Value t, Value c, Value product) {
    if (normalizer)
      product = add(product, mul(loadMatching(b, product, s.enteringNorm, {slot, c}),
                                 splatMatching(b, product, load(s.dden, t))));
    return mul(loadMatching(b, product, s.decayIn, {t, c}), product);
  };
  auto toState = [&](Value src, Value c, Value product) {
    if (normalizer)
      product = add(product, loadMatching(b, product, s.dNorm, {c}));
    return mul(loadMatching(b, product, s.decayOut, {src, c}), product);
  };
  MatrixView enteringT{s.entering, [slot](Value j, Value c) -> SmallVector<Value> { return {slot, j, c}; }};
  emitTileMatmul(b, tiling, rowMajor(s.dq), [&](Value t, Value j) { return load(s.dnum, {t, j}); },
                 enteringT, chunk.length, keyDim, valueDim, /*accumulate=*/false, Triangle::None,
                 MatmulFusion{{}, fromState});
  emitTileMatmul(b, tiling, rowMajor(s.dkState), [&](Value src, Value j) { return load(s.valuesT, {j, src}); },
                 rowMajor(s.dStateT), chunk.length, keyDim, valueDim, /*accumulate=*/false, Triangle::None,
                 MatmulFusion{{}, toState});
}

void ChunkedBackwardBuilder::pairGradients(Scratch &s) {
  Chunk &chunk = s.chunk;
  MatrixView keys = tokenRows(chunk, chunk.k), queries = tokenRows(chunk, chunk.q);
  if (!spec.isPerChannel()) {
    // D = dA * exp(G_t - G_s), strictly below the diagonal; dq += D K, dk' = D^T Q.
    Value zero = index(0);
    loop(zero, chunk.length, [&](Value t) {
      loop(zero, chunk.length, [&](Value src) { store(load(s.dA, {t, src}), s.pairs, {t, src}); });
    });
    applyScalarDecayMask(chunk, s.pairs, /*strict=*/true);
    emitTileMatmul(b, tiling, rowMajor(s.dq), [&](Value t, Value src) { return load(s.pairs, {t, src}); }, keys,
                   chunk.length, keyDim, chunk.length, /*accumulate=*/true, Triangle::LowerA);
    emitTileMatmul(b, tiling, rowMajor(s.dkPairs), [&](Value src, Value t) { return load(s.pairs, {t, src}); },
                   queries, chunk.length, keyDim, chunk.length, /*accumulate=*/false, Triangle::UpperA);
    return;
  }
  blockPairGradients(s);
}

void ChunkedBackwardBuilder::blockPairGradients(Scratch &s) {
  Value zero = index(0);
  Chunk &chunk = s.chunk;
  loop(zero, chunk.length, [&](Value t) {
    loop(zero, keyDim, [&](Value c) { store(real(0.0), s.dkPairs, {t, c}); });
  });
  forEachSubBlock(chunk, [&](const SubBlock &block) { subBlockPairGradients(s, block); });
}

void ChunkedBackwardBuilder::subBlockPairGradients(Scratch &s, const SubBlock &block) {
  Value zero = index(0);
  Chunk &chunk = s.chunk;
  Value r = block.first, blockEnd = block.end, blockLength = block.length;
  Value blockLast = arith::SubIOp::create(b, blockEnd, index(1));
  MatrixView temp = rowMajor(s.blockTemp);
  MatrixView decayed = rowMajor(s.decayedKeys);
  // Inside the sub-block, pair by pair, the decay from src to t carried as a
  // product of steps exp(g) (each <= 1): per strip of channels, the decay
  // and src's dk' held in registers over the later tokens t.
  loop(r, blockEnd, [&](Value src) {
    Value ks = qkRow(chunk, src);
    forEachChannelStrip(keyDim, [&](Value c, Value like) {
      Value key = loadMatching(b, like, chunk.k, {ks, c});
      Value initial[] = {splatMatching(b, like, real(1.0)), loadMatching(b, like, s.dkPairs, {src, c})};
      auto later = scf::ForOp::create(b, arith::AddIOp::create(b, src, index(1)), blockEnd, index(1), initial);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(later.getBody());
        Value t = later.getInductionVar(), rt = row(chunk, t), qt = qkRow(chunk, t);
        Value carried = later.getRegionIterArgs()[0], dkPair = later.getRegionIterArgs()[1];
        Value decay = mul(carried, loadMatching(b, like, chunk.step, {rt, c}));
        Value factor = mul(splatMatching(b, like, load(s.dA, {t, src})), decay);
        storeMatching(b, add(loadMatching(b, like, s.dq, {t, c}), mul(factor, key)), s.dq, {t, c});
        Value nextPair = add(dkPair, mul(factor, loadMatching(b, like, chunk.q, {qt, c})));
        scf::YieldOp::create(b, ValueRange{decay, nextPair});
      }
      storeMatching(b, later.getResult(1), s.dkPairs, {src, c});
    });
  });
  // Earlier tokens s < r reach the sub-block's queries through the keys
  // decayed to r: dq_t += exp(G_t - G_r) * sum_s dA_ts (k_s exp(G_r - G_s)).
  decayRows(chunk, chunk.k, zero, r, r, s.decayedKeys, /*later=*/false);
  emitTileMatmul(b, tiling, temp, [&](Value i, Value src) { return load(s.dA, {arith::AddIOp::create(b, r, i), src}); },
                 decayed, blockLength, keyDim, r, /*accumulate=*/false);
  addDecayedBlock(s, s.dq, block, r, /*later=*/true);
  // Later tokens t > blockLast reach the sub-block's keys through the
  // queries decayed to blockLast:
  //   dk'_s += exp(G_last' - G_s) * sum_t dA_ts (q_t exp(G_t - G_last')).
  decayRows(chunk, chunk.q, blockEnd, chunk.length, blockLast, s.decayedKeys, /*later=*/true);
  Value laterCount = arith::SubIOp::create(b, chunk.length, blockEnd);
  emitTileMatmul(b, tiling, temp,
                 [&](Value i, Value u) {
                   return load(s.dA, {arith::AddIOp::create(b, blockEnd, u), arith::AddIOp::create(b, r, i)});
                 },
                 decayed, blockLength, keyDim, laterCount, /*accumulate=*/false);
  addDecayedBlock(s, s.dkPairs, block, blockLast, /*later=*/false);
}

void ChunkedBackwardBuilder::addDecayedBlock(Scratch &s, Value dest, const SubBlock &block, Value ref,
                                             bool later) {
  runningDecay(s.chunk, block.first, block.end, ref, later, [&](Value t, Value c, Value decay) {
    Value i = arith::SubIOp::create(b, t, block.first);
    store(add(load(dest, {t, c}), mul(decay, load(s.blockTemp, {i, c}))), dest, {t, c});
  });
}

void ChunkedBackwardBuilder::prefixSums(Scratch &s) {
  Value zero = index(0);
  Chunk &chunk = s.chunk;
  Value zeroWide = arith::ConstantOp::create(b, b.getF64FloatAttr(0.0));
  loop(zero, keyDim, [&](Value c) { store(zeroWide, s.carry, c); });
  // dg[t, c] = sum_{s<t} k_sc dkH_sc, forward (each prefix summed directly).
  loop(zero, chunk.length, [&](Value t) {
    Value kt = qkRow(chunk, t);
    loop(zero, keyDim, [&](Value c) {
      Value before = load(s.carry, c);
      store(before, s.dg, {t, c});
      store(add(before, widen(mul(load(chunk.k, {kt, c}), load(s.dkState, {t, c})))), s.carry, c);
    });
  });
  // The carry now starts finishChunk's sum over later tokens.
  loop(zero, keyDim, [&](Value c) { store(zeroWide, s.carry, c); });
}

void ChunkedBackwardBuilder::valueAndStateGradients(const ElementIndex &at, Value slot, Scratch &s) {
  Value zero = index(0);
  Chunk &chunk = s.chunk;
  Value last = arith::SubIOp::create(b, chunk.length, index(1));
  // dv^T = dnum^T A + dH^T Kd^T (dH held transposed), then into dv.
  MatrixView dvRows = rowMajor(s.dvT);
  emitTileMatmul(b, tiling, dvRows, [&](Value j, Value t) { return load(s.dnum, {t, j}); }, rowMajor(chunk.a),
                 valueDim, chunk.length, chunk.length, /*accumulate=*/false, Triangle::LowerB);
  emitTileMatmul(b, tiling, dvRows, [&](Value j, Value c) { return load(s.dStateT, {j, c}); }, rowMajor(s.kdT),
                 valueDim, chunk.length, keyDim, /*accumulate=*/true);
  MatrixView dvOut{args.dv, [&](Value src, Value j) -> SmallVector<Value> {
                     return {at.b, arith::AddIOp::create(b, chunk.first, src), at.h, j};
                   }};
  emitTranspose(b, tiling, dvOut, dvRows, valueDim, chunk.length, s.streamingDv);
  // dH^T <- dH^T diag(exp(G_last)) + dnum^T Qd; dz likewise with dden. The
  // edge term edge_c = exp(G_last,c) (sum_j H_cj dH_cj + z_c dz_c) is summed
  // in f64 from the dH^T (dz) leaving the chunk, before they move on: z dz
  // first, then each tile of H^T dH^T as the dH update loads dH^T.
  loop(zero, keyDim, [&](Value c) {
    Value decay = load(s.decayIn, {last, c});
    store(decay, chunk.carried, c);
    Value edge = arith::ConstantOp::create(b, b.getF64FloatAttr(0.0));
    if (spec.getNormalizer()) {
      edge = widen(mul(load(s.enteringNorm, {slot, c}), load(s.dNorm, c)));
      Value fromChunk = sum(chunk.length, [&](Value t) { return mul(load(s.qd, {t, c}), load(s.dden, t)); });
      store(add(mul(decay, load(s.dNorm, c)), fromChunk), s.dNorm, c);
    }
    store(edge, s.edge, c);
  });
  auto decayed = [&](Value j, Value c, Value dState) {
    Value product = mul(loadMatching(b, dState, s.entering, {slot, j, c}), dState);
    auto vector = dyn_cast<VectorType>(product.getType());
    Type wide = vector ? Type(VectorType::get(vector.getShape(), b.getF64Type())) : Type(b.getF64Type());
    Value widened = arith::ExtFOp::create(b, wide, product);
    storeMatching(b, add(loadMatching(b, widened, s.edge, {c}), widened), s.edge, {c});
    return mul(loadMatching(b, dState, chunk.carried, {c}), dState);
  };
  emitTileMatmul(b, tiling, rowMajor(s.dStateT), [&](Value j, Value t) { return load(s.dnum, {t, j}); },
                 rowMajor(s.qd), valueDim, keyDim, chunk.length, /*accumulate=*/true, Triangle::None,
                 MatmulFusion{decayed, {}});
  loop(zero, keyDim, [&](Value c) { store(mul(widen(load(chunk.carried, c)), load(s.edge, c)), s.edge, c); });
}

void ChunkedBackwardBuilder::finishChunk(const ElementIndex &at, Value start, Scratch &s) {
  Value zero = index(0);
  Chunk &chunk = s.chunk;
  // Token by token in reverse: dg, the diagonal terms of dq and dk, then the
  // parameterization's gradients.
  // The rows this loop reads and writes for the token kPrefetchTokens
  // earlier (in the sequence: the loop walks backward into earlier chunks).
  SmallVector<StreamedTensor> streamed = streamedInputs();
  bool deferred = keyGradientRowsDeferred();
  if (!deferred) // deferred rows are written whole, after the loop, past the caches
    streamed.push_back({args.dq, "BTHK", true});
  if (!deferred && !spec.hasDerivedKey()) // a derived key's gradient feeds the adjoint instead
    streamed.push_back({args.dk, "BTHK", true});
  for (auto [gradient, dims] : llvm::zip(args.dInputs, spec.getInputDims().getValue()))
    streamed.push_back({gradient, cast<StringAttr>(dims).getValue(), true});
  reverseLoop(zero, chunk.length, [&](Value t) {
    Value rt = qkRow(chunk, t);
    Value token = arith::AddIOp::create(b, chunk.first, t);
    Value floor = arith::AddIOp::create(b, start, index(kPrefetchTokens));
    Value earlier = arith::SubIOp::create(b, arith::MaxUIOp::create(b, token, floor), index(kPrefetchTokens));
    prefetchRows(streamed, at.b, earlier, at.h);
    Value diagonal = load(s.dA, {t, t});
    loop(zero, keyDim, [&](Value c) {
      Value qc = load(chunk.q, {rt, c}), kc = load(chunk.k, {rt, c});
      Value dqNoDiagonal = load(s.dq, {t, c}), dkPair = load(s.dkPairs, {t, c});
      Value later = add(load(s.carry, c), sub(mul(widen(qc), widen(dqNoDiagonal)), mul(widen(kc), widen(dkPair))));
      store(later, s.carry, c);
      store(add(add(later, load(s.dg, {t, c})), load(s.edge, c)), s.sinks.lambdaSum, c);
      store(add(dqNoDiagonal, mul(diagonal, kc)), s.dq, {t, c});
      store(add(add(dkPair, load(s.dkState, {t, c})), mul(diagonal, qc)), s.dkPairs, {t, c});
    });
    ElementIndex element = at;
    element.t = arith::AddIOp::create(b, chunk.first, t);
    Value pos = arith::SubIOp::create(b, element.t, start);
    // The scans' carried-in values are stored per head by position (sweepChunk).
    if (deferred)
      finishDecayBackward(s.sinks, element, /*scanRow=*/pos);
    else
      finishTokenBackward(s.sinks, element, pos, /*scanRow=*/pos, s.dq, t, s.dkPairs, t);
  });
  if (deferred)
    loop(zero, chunk.length, [&](Value t) {
      Value token = arith::AddIOp::create(b, chunk.first, t);
      writeRow(s.dq, t, args.dq, {at.b, token, at.h}, keyDim, /*factor=*/{}, s.streamingDqDk);
      writeRow(s.dkPairs, t, args.dk, {at.b, token, at.h}, keyDim, /*factor=*/{}, s.streamingDqDk);
    });
}

bool ChunkedBackwardBuilder::keyGradientRowsDeferred() { return queriesAndKeysAsGiven(); }

void ChunkedBackwardBuilder::prefetchEnteringState(Value slot, Scratch &s) {
  Value rowLength = memref::DimOp::create(b, s.entering, 2);
  loop(index(0), valueDim, [&](Value j) {
    prefetchLines(s.entering, [&](Value c) { return SmallVector<Value>{slot, j, c}; }, rowLength,
                  /*write=*/false, /*localityHint=*/2);
  });
}

void ChunkedBackwardBuilder::chunkGradients(const ElementIndex &at, Value start, Value slot, Scratch &s) {
  phase("prefetchEnteringState", [&] { prefetchEnteringState(slot, s); });
  phase("computeScores", [&] { computeScores(s.chunk); });
  if (spec.getNormalizer())
    phase("numerators", [&] {
      // The numerators read the chunk's rows of v staged.
      stageValues(at, s.chunk);
      // The numerators need H's rows: the entering H^T transposed back.
      Value zero = index(0);
      loop(zero, keyDim, [&](Value c) {
        loop(zero, valueDim, [&](Value j) { store(load(s.entering, {slot, j, c}), s.enteringRows, {c, j}); });
      });
      chunkNumerators(at, s.chunk, s.enteringRows, {});
    });
  phase("outputGradients", [&] { outputGradients(at, slot, s); });
  phase("scoreGradients", [&] { scoreGradients(at, s); });
  phase("decayFactors", [&] { decayFactors(s); });
  phase("stateGradients", [&] { stateGradients(slot, s); });
  phase("pairGradients", [&] { pairGradients(s); });
  phase("prefixSums", [&] { prefixSums(s); });
  phase("valueAndStateGradients", [&] { valueAndStateGradients(at, slot, s); });
  phase("finishChunk", [&] { finishChunk(at, start, s); });
}

void ChunkedBackwardBuilder::runSequence(Value n, Value firstHead, Value endHead) {
  Value zero = index(0), size = index(chunkSize);
  bool normalizer = spec.getNormalizer();
  SequenceBounds sequence = loadSequence(args.seqs, n);
  Value batch = sequence.batch, start = sequence.start, end = sequence.end;
  Value heads = arith::SubIOp::create(b, endHead, firstHead);
  Value length = arith::SubIOp::create(b, end, start);
  Value numChunks = arith::CeilDivSIOp::create(b, length, size);

  Scratch s;
  // The whole-sequence rows of q, k, g: head after head (headRow below).
  allocateChunk(s.chunk, arith::MulIOp::create(b, heads, length));
  FloatType f64 = b.getF64Type();
  Value slots = arith::MulIOp::create(b, heads, numChunks);
  // The entering states' rows padded to whole vectors, the buffer aligned to
  // them: every vector the sweep stores is aligned (storeStreaming).
  int64_t vectorBytes = tiling.lanes * 4;
  Value paddedKey = arith::MulIOp::create(
      b, arith::CeilDivUIOp::create(b, keyDim, index(tiling.lanes)), index(tiling.lanes));
  s.entering = memref::AllocOp::create(b, dynamicMemRef(3), ValueRange{slots, valueDim, paddedKey},
                                       b.getI64IntegerAttr(vectorBytes));
  s.enteringNorm = alloc({slots, keyDim});
  HeadStates states;
  states.stateT = alloc({heads, valueDim, keyDim});
  states.dStateT = alloc({heads, valueDim, keyDim});
  states.norm = alloc({heads, keyDim});
  states.dNorm = alloc({heads, keyDim});
  for (size_t i = 0; i < scans.size(); ++i) {
    states.scanState.push_back(alloc({heads, keyDim}));
    states.scanPrev.push_back(alloc({heads, length, keyDim}));
    states.scanCarry.push_back(alloc({heads, keyDim}));
  }
  // Each head's share of each param's gradient, summed locally and added to
  // the shared gradient once at the end (not once per token and channel).
  for (size_t i = 0; i < params.size(); ++i) {
    Value partial = alloc({heads, keyDim});
    loop(zero, heads, [&](Value head) {
      loop(zero, keyDim, [&](Value c) { store(real(0.0), partial, {head, c}); });
    });
    states.paramPartials.push_back(partial);
  }
  s.enteringRows = alloc({keyDim, valueDim});
  s.dA = alloc({size, size});
  s.pairs = alloc({size, size});
  s.dnum = alloc({size, valueDim});
  s.dden = alloc(size);
  s.valuesT = alloc({valueDim, size});
  s.dvT = alloc({valueDim, size});
  s.kdT = alloc({keyDim, size});
  s.dq = alloc({size, keyDim});
  s.dkPairs = alloc({size, keyDim});
  s.dkState = alloc({size, keyDim});
  if (spec.isPerChannel()) {
    s.blockTemp = alloc({index(kSubBlock), keyDim});
    s.decayedKeys = alloc({size, keyDim});
  }
  s.decayIn = alloc({size, keyDim});
  s.decayOut = alloc({size, keyDim});
  s.qd = alloc({size, keyDim});
  s.dg = alloc({size, keyDim}, f64);
  s.carry = alloc(keyDim, f64);
  s.edge = alloc(keyDim, f64);
  s.streamingDv = streamableRows(args.dv);
  if (keyGradientRowsDeferred()) {
    Value dq = streamableRows(args.dq), dk = streamableRows(args.dk);
    if (dq && dk)
      s.streamingDqDk = arith::AndIOp::create(b, dq, dk);
  }
  s.sinks = BackwardSinks{adjoint, args.q, args.k, args.dq, args.dk, args.dInputs, args.dParams,
                          /*scanPrev=*/{}, /*scanCarry=*/{}, alloc(keyDim),
                          alloc(keyDim, f64),
                          /*atomicShared=*/true, /*paramPartials=*/{}, /*dgNarrow=*/alloc(keyDim)};

  // body(head, at) for every head of the group in turn, `s` bound to it.
  auto forEachHead = [&](function_ref<void(Value, const ElementIndex &)> body) {
    loop(zero, heads, [&](Value head) {
      bindHead(s, states, head);
      body(head, ElementIndex{n, batch, nullptr, arith::AddIOp::create(b, firstHead, head), nullptr});
    });
  };
  // body(at, slot) for chunk ci of every head in turn, s.chunk located in
  // the head's rows (head * length on) and slot its entering state's.
  auto forEachHeadsChunk = [&](Value ci, function_ref<void(const ElementIndex &, Value)> body) {
    forEachHead([&](Value head, const ElementIndex &at) {
      locateChunk(s.chunk, start, end, ci, arith::MulIOp::create(b, head, length));
      bindQueryKeyRows(s.chunk, batch, at.h);
      body(at, arith::AddIOp::create(b, arith::MulIOp::create(b, head, numChunks), ci));
    });
  };

  forEachHead([&](Value, const ElementIndex &at) { loadInitialStates(at, s); });
  loop(zero, numChunks, [&](Value ci) {
    forEachHeadsChunk(ci, [&](const ElementIndex &at, Value slot) { sweepChunk(at, start, slot, s); });
  });
  // dState = dht, dNorm = dnorm_ht: the gradients of the state leaving the last chunk.
  forEachHead([&](Value, const ElementIndex &at) {
    Value h = at.h;
    loop(zero, keyDim, [&](Value c) {
      loop(zero, valueDim, [&](Value j) { store(load(args.dht, {n, h, c, j}), s.dStateT, {j, c}); });
      if (normalizer)
        store(load(args.dNormHt, {n, h, c}), s.dNorm, c);
      for (auto [final, carry] : llvm::zip(args.dScanHt, s.sinks.scanCarry))
        store(load(final, spec.isPerChannel() ? SmallVector<Value>{n, h, c} : SmallVector<Value>{n, h}),
              carry, c);
    });
  });
  reverseLoop(zero, numChunks, [&](Value ci) {
    forEachHeadsChunk(ci, [&](const ElementIndex &at, Value slot) { chunkGradients(at, start, slot, s); });
  });
  forEachHead([&](Value, const ElementIndex &at) {
    Value h = at.h;
    flushParamPartials(s.sinks, h);
    // Gradients of the initial states (a scalar decay's scans use channel 0).
    loop(zero, keyDim, [&](Value c) {
      loop(zero, valueDim, [&](Value j) { store(load(s.dStateT, {j, c}), args.dh0, {n, h, c, j}); });
      if (normalizer)
        store(load(s.dNorm, c), args.dNormH0, {n, h, c});
      if (spec.isPerChannel())
        for (auto [initial, carry] : llvm::zip(args.dScanH0, s.sinks.scanCarry))
          store(load(carry, c), initial, {n, h, c});
    });
    if (!spec.isPerChannel())
      for (auto [initial, carry] : llvm::zip(args.dScanH0, s.sinks.scanCarry))
        store(load(carry, zero), initial, {n, h});
  });

  releaseChunk(s.chunk);
  SmallVector<Value> buffers = {s.entering, s.enteringNorm, states.stateT, states.dStateT, states.norm,
                                states.dNorm, s.enteringRows, s.dA, s.pairs, s.dnum, s.dden, s.valuesT,
                                s.dvT, s.kdT, s.dq, s.dkPairs, s.dkState, s.decayIn,
                                s.decayOut, s.qd, s.dg, s.carry, s.edge, s.sinks.dKeyBuf,
                                s.sinks.lambdaSum, s.sinks.dgNarrow};
  for (ArrayRef<Value> perHead : {ArrayRef<Value>(states.scanState), ArrayRef<Value>(states.scanPrev),
                                  ArrayRef<Value>(states.scanCarry), ArrayRef<Value>(states.paramPartials)})
    llvm::append_range(buffers, perHead);
  if (spec.isPerChannel())
    buffers.append({s.blockTemp, s.decayedKeys});
  for (Value buffer : buffers)
    memref::DeallocOp::create(b, buffer);
  if (s.streamingDv || s.streamingDqDk)
    fenceStreamingStores(b);
}

func::FuncOp ChunkedBackwardBuilder::build() {
  return buildGroupedKernel((spec.getSymName() + "_backward").str(), /*backward=*/true, args,
                            [&](Value n, Value first, Value end) { runSequence(n, first, end); });
}
} // namespace

func::FuncOp decay::buildChunkedBackward(RecurrenceOp spec, AdjointOp adjoint, int64_t chunkSize,
                                         const RegisterTiling &tiling, ImplicitLocOpBuilder &b,
                                         bool phaseLocations) {
  return ChunkedBackwardBuilder(spec, adjoint, chunkSize, tiling, b, phaseLocations).build();
}
