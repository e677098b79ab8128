// The forward on the GPU (MATH.md section 2): a per-channel preparation kernel, then the chunk kernel on tensor cores.
//
// <name>_forward_prepare: one block per (sequence, head), one thread per key
// channel, walking the sequence's tokens in order. It evaluates the spec's
// region (scans included, carried per thread), the feature maps, the derived
// key and RoPE, and the cumulative log-decay G from each chunk's first token
// with its rounding error (TwoSum, as on the CPU), into the workspace:
// q', k' [B,T,H,K] and G, G_low [B,T,H,K] (vector decays) or [B,T,H,1].
//
// <name>_forward_chunks: one block of 4 warps per (sequence, head, value
// tile), sequential over the chunks of its sequence. Per chunk the tiles are
// staged in shared memory and
//   A = (Q K^T) masked and decayed       (vector decays: 16-token sub-blocks,
//                                         off-diagonal ones as matmuls with
//                                         both factors decayed to the row
//                                         block's first token, diagonal ones
//                                         elementwise)
//   O = (Q * exp(G)) H + A V             per 16-row tile and 32 value columns
//   H = exp(G_last) H + (K * exp(G_last - G))^T V
// with every matmul on tensor cores (WarpMma: tf32 mma.sync, 3xTF32).
#include "GpuKernelEmitter.h"
#include "WarpMma.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace decay;

namespace {
constexpr int64_t kWarps = 4, kThreads = 32 * kWarps;

/// The workspace of the forward: the prepared rows of every token.
SmallVector<WorkspaceBuffer> forwardWorkspace(RecurrenceOp spec, const GpuShape &shape) {
  int64_t decayRows = spec.isPerChannel() ? shape.keyDim : 1;
  return {{"q", shape.keyDim}, {"k", shape.keyDim}, {"g", decayRows}, {"g_low", decayRows}};
}

class PrepareKernelBuilder : GpuKernelEmitter {
public:
  using GpuKernelEmitter::GpuKernelEmitter;
  void build();
};

void PrepareKernelBuilder::build() {
  RecurrenceArgs args;
  SmallVector<Value> ws;
  createKernel((spec.getSymName() + "_forward_prepare").str(), /*backward=*/false, shape.keyDim,
               forwardWorkspace(spec, shape), args, ws);
  Value wq = ws[0], wk = ws[1], wg = ws[2], wgLow = ws[3];
  Value zero = index(0);
  Value c = threadIndex();
  Value item = blockIndex(gpu::Dimension::x);
  Value n = arith::DivUIOp::create(b, item, numHeads), h = arith::RemUIOp::create(b, item, numHeads);
  auto [batch, start, end] = loadSequence(args.seqs, n);
  bool perChannel = spec.isPerChannel();
  Value isFirstChannel = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, c, zero);
  auto scanWhere = [&]() -> SmallVector<Value> {
    return perChannel ? SmallVector<Value>{n, h, c} : SmallVector<Value>{n, h};
  };
  // Per-thread state: each scan's carried value, and G with its rounding error.
  auto scalarType = MemRefType::get({1}, b.getF32Type());
  SmallVector<Value> scanStates;
  for (Value initial : args.scanH0) {
    Value state = memref::AllocaOp::create(b, scalarType);
    store(load(initial, scanWhere()), state, zero);
    scanStates.push_back(state);
  }
  Value high = memref::AllocaOp::create(b, scalarType), low = memref::AllocaOp::create(b, scalarType);
  loop(start, end, [&](Value t) {
    Value local = arith::SubIOp::create(b, t, start);
    Value chunkStart = arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                             arith::RemUIOp::create(b, local, index(shape.chunkSize)), zero);
    when(chunkStart, [&] {
      store(real(0.0), high, zero);
      store(real(0.0), low, zero);
    });
    ElementIndex element{n, batch, t, h, perChannel ? c : Value()};
    SmallVector<Value> yielded;
    if (spec.getGranularity() != Granularity::none)
      yielded = evaluateRegion(element, [&](unsigned scan, Operation *op, Value x) {
        return advanceScan(op, scanStates[scan], zero, x);
      });
    Value g = yielded.empty() ? real(0.0) : yielded[0];
    // G += g, keeping the rounding error (Knuth's TwoSum).
    Value before = load(high, zero);
    Value total = add(before, g);
    Value gPart = sub(total, before);
    Value error = add(sub(before, sub(total, gPart)), sub(g, gPart));
    Value lowTotal = add(load(low, zero), error);
    store(total, high, zero);
    store(lowTotal, low, zero);
    auto storeDecay = [&] {
      Value column = perChannel ? c : zero;
      store(total, wg, {batch, t, h, column});
      store(lowTotal, wgLow, {batch, t, h, column});
    };
    if (perChannel)
      storeDecay();
    else
      when(isFirstChannel, storeDecay);
    store(featureMap(load(args.q, {batch, t, h, c})), wq, {batch, t, h, c});
    Value key = yielded.size() == 2 ? yielded[1] : featureMap(load(args.k, {batch, t, h, c}));
    store(key, wk, {batch, t, h, c});
    if (spec.getRopeTheta()) {
      barrier(); // the row's channels are all written
      RopeFrame frame = ropeFrame(local);
      when(lessThan(c, frame.half), [&] {
        rotatePair(wq, {batch, t, h}, frame, c, /*inverse=*/false);
        rotatePair(wk, {batch, t, h}, frame, c, /*inverse=*/false);
      });
    }
  });
  for (auto [state, final] : llvm::zip(scanStates, args.scanHt)) {
    Value from = state, to = final;
    when(perChannel ? arith::ConstantIntOp::create(b, 1, 1).getResult() : isFirstChannel,
         [&] { store(load(from, zero), to, scanWhere()); });
  }
}

/// Accumulator tiles of one warp: rows x columns tiles of 16 x 8.
struct Tiles {
  int64_t rows, columns;
  SmallVector<Value> acc; ///< row-major over (row tile, column tile)
};

class ChunkKernelBuilder : GpuKernelEmitter {
public:
  using GpuKernelEmitter::GpuKernelEmitter;
  int64_t build();

private:
  /// acc(rt, ct) += sum over k in [kBegin, kEnd) (steps of 8) of
  /// a(rt, r, k) bElement(ct, k, n), as one scf.for carrying the accumulators.
  void accumulate(Tiles &tiles, Value kBegin, Value kEnd,
                  function_ref<Value(int64_t rt, Value r, Value k)> a,
                  function_ref<Value(int64_t ct, Value k, Value n)> bElement);
  /// G_tc - G_sc from the staged decay (chunk-local rows; c ignored for scalar decays).
  Value exponent(Value t, Value s, Value c);
  /// G_tc from the chunk's first token.
  Value cumulative(Value t, Value c);
  Value decayColumn(Value c) { return spec.isPerChannel() ? c : index(0); }
  void stageChunk(Value chunkFirst, Value length);
  void scores();
  void denominators();
  void outputs(Value chunkFirst, Value length);
  void advanceState(Value length);

  RecurrenceArgs args;
  SmallVector<Value> ws;
  std::unique_ptr<WarpMma> mma;
  Value warp, n, h, batch, valueFirst;
  Value qs, ks, gs, gLows, vs, as, hs, zs, dens; ///< shared memory
};

Value ChunkKernelBuilder::exponent(Value t, Value s, Value c) {
  Value column = decayColumn(c);
  return add(sub(load(gs, {t, column}), load(gs, {s, column})),
             sub(load(gLows, {t, column}), load(gLows, {s, column})));
}

Value ChunkKernelBuilder::cumulative(Value t, Value c) {
  Value column = decayColumn(c);
  return add(load(gs, {t, column}), load(gLows, {t, column}));
}

void ChunkKernelBuilder::accumulate(Tiles &tiles, Value kBegin, Value kEnd,
                                    function_ref<Value(int64_t, Value, Value)> a,
                                    function_ref<Value(int64_t, Value, Value)> bElement) {
  auto steps = scf::ForOp::create(b, kBegin, kEnd, index(8), tiles.acc);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(steps.getBody());
    Value k0 = steps.getInductionVar();
    auto at = [&](Value k) { return arith::AddIOp::create(b, k0, k).getResult(); };
    SmallVector<Fragment> bFragments;
    for (int64_t ct = 0; ct < tiles.columns; ++ct)
      bFragments.push_back(mma->loadB([&](Value k, Value nn) { return bElement(ct, at(k), nn); }));
    SmallVector<Value> next;
    for (int64_t rt = 0; rt < tiles.rows; ++rt) {
      Fragment aFragment = mma->loadA([&](Value r, Value k) { return a(rt, r, at(k)); });
      for (int64_t ct = 0; ct < tiles.columns; ++ct)
        next.push_back(mma->multiplyAccumulate(steps.getRegionIterArgs()[rt * tiles.columns + ct],
                                               aFragment, bFragments[ct]));
    }
    scf::YieldOp::create(b, next);
  }
  tiles.acc.assign(steps.getResults().begin(), steps.getResults().end());
}

void ChunkKernelBuilder::stageChunk(Value chunkFirst, Value length) {
  int64_t chunk = shape.chunkSize, keys = shape.keyDim, values = shape.valueTile;
  Value last = arith::SubIOp::create(b, length, index(1));
  // Rows past the chunk's end: q, k, v are 0 and G repeats the last token's,
  // so that they add nothing and every exponent stays finite.
  auto rowOf = [&](Value i, int64_t width) {
    Value r = arith::DivUIOp::create(b, i, index(width));
    Value inside = lessThan(r, length);
    Value token = arith::AddIOp::create(b, chunkFirst, arith::MinSIOp::create(b, r, last));
    return std::make_tuple(r, arith::RemUIOp::create(b, i, index(width)).getResult(), inside, token);
  };
  strided(index(0), index(chunk * keys), kThreads, [&](Value i) {
    auto [r, c, inside, token] = rowOf(i, keys);
    store(arith::SelectOp::create(b, inside, load(ws[0], {batch, token, h, c}), real(0.0)), qs, {r, c});
    store(arith::SelectOp::create(b, inside, load(ws[1], {batch, token, h, c}), real(0.0)), ks, {r, c});
  });
  int64_t decayRows = spec.isPerChannel() ? keys : 1;
  strided(index(0), index(chunk * decayRows), kThreads, [&](Value i) {
    auto [r, c, inside, token] = rowOf(i, decayRows);
    store(load(ws[2], {batch, token, h, c}), gs, {r, c});
    store(load(ws[3], {batch, token, h, c}), gLows, {r, c});
  });
  strided(index(0), index(chunk * values), kThreads, [&](Value i) {
    auto [r, j, inside, token] = rowOf(i, values);
    Value column = arith::AddIOp::create(b, valueFirst, j);
    store(arith::SelectOp::create(b, inside, load(args.v, {batch, token, h, column}), real(0.0)), vs, {r, j});
  });
}

void ChunkKernelBuilder::scores() {
  // Warp w computes the 16 x 16 block (w / 2, w % 2) of A; with a chunk of
  // 32 tokens these are the sub-blocks of the secondary chunking.
  Value rowBlock = arith::DivUIOp::create(b, warp, index(2));
  Value columnBlock = arith::RemUIOp::create(b, warp, index(2));
  Value rowFirst = arith::MulIOp::create(b, rowBlock, index(16));
  Value columnFirst = arith::MulIOp::create(b, columnBlock, index(16));
  auto tokenOf = [&](Value first, int64_t tile, Value offset) {
    return arith::AddIOp::create(b, first, arith::AddIOp::create(b, index(8 * tile), offset)).getResult();
  };
  auto storeBlock = [&](const Tiles &tiles, function_ref<Value(Value t, Value s, Value value)> finish) {
    for (int64_t ct = 0; ct < tiles.columns; ++ct)
      for (int i = 0; i < 4; ++i) {
        Value t = arith::AddIOp::create(b, rowFirst, mma->row(i));
        Value s = tokenOf(columnFirst, ct, mma->column(i));
        store(finish(t, s, mma->element(tiles.acc[ct], i)), as, {t, s});
      }
  };
  Tiles block{1, 2, {mma->zero(), mma->zero()}};
  Value below = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, columnBlock, rowBlock);
  Value diagonal = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, columnBlock, rowBlock);
  Value minusInfinity = real(-std::numeric_limits<double>::infinity());
  if (!spec.isPerChannel()) {
    // Q K^T, then masked and decayed by exp(G_t - G_s) in registers.
    when(arith::OrIOp::create(b, below, diagonal), [&] {
      Tiles qk = block;
      accumulate(qk, index(0), keyDim,
                 [&](int64_t, Value r, Value k) { return load(qs, {arith::AddIOp::create(b, rowFirst, r), k}); },
                 [&](int64_t ct, Value k, Value nn) { return load(ks, {tokenOf(columnFirst, ct, nn), k}); });
      storeBlock(qk, [&](Value t, Value s, Value value) {
        Value causal = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, s, t);
        Value e = arith::SelectOp::create(b, causal, exponent(t, s, Value()), minusInfinity);
        return arith::SelectOp::create(b, causal, mul(value, exp(e)), real(0.0)).getResult();
      });
    });
  } else {
    // Below the diagonal: (q_t exp(G_t - G_r)) (k_s exp(G_r - G_s))^T with r
    // the row block's first token; both exponents are <= 0.
    when(below, [&] {
      Tiles off = block;
      accumulate(
          off, index(0), keyDim,
          [&](int64_t, Value r, Value c) {
            Value t = arith::AddIOp::create(b, rowFirst, r);
            return mul(load(qs, {t, c}), exp(exponent(t, rowFirst, c)));
          },
          [&](int64_t ct, Value c, Value nn) {
            Value s = tokenOf(columnFirst, ct, nn);
            return mul(load(ks, {s, c}), exp(exponent(rowFirst, s, c)));
          });
      storeBlock(off, [](Value, Value, Value value) { return value; });
    });
    // On the diagonal: sum_c q_tc k_sc exp(G_tc - G_sc), elementwise.
    when(diagonal, [&] {
      Tiles elementwise = block;
      for (int64_t ct = 0; ct < 2; ++ct)
        for (int i = 0; i < 4; ++i) {
          Value t = arith::AddIOp::create(b, rowFirst, mma->row(i));
          Value s = tokenOf(columnFirst, ct, mma->column(i));
          Value causal = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, s, t);
          Value score = sum(keyDim, [&](Value c) {
            Value e = arith::MinimumFOp::create(b, exponent(t, s, c), real(0.0));
            return mul(mul(load(qs, {t, c}), load(ks, {s, c})), exp(e));
          });
          elementwise.acc[ct] = mma->withElement(
              elementwise.acc[ct], i, arith::SelectOp::create(b, causal, score, real(0.0)));
        }
      storeBlock(elementwise, [](Value, Value, Value value) { return value; });
    });
  }
  when(arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, columnBlock, rowBlock),
       [&] { storeBlock(block, [](Value, Value, Value value) { return value; }); });
}

void ChunkKernelBuilder::denominators() {
  // den_t = (q_t * exp(G_t)) . z + sum_{s<=t} A_ts + eps, before z advances.
  when(lessThan(threadIndex(), index(shape.chunkSize)), [&] {
    Value t = threadIndex();
    Value fromState = sum(keyDim, [&](Value c) {
      return mul(mul(load(qs, {t, c}), exp(cumulative(t, c))), load(zs, c));
    });
    Value fromChunk = sum(arith::AddIOp::create(b, t, index(1)), [&](Value s) { return load(as, {t, s}); });
    store(add(add(fromState, fromChunk), real(spec.getEffectiveEps())), dens, t);
  });
}

void ChunkKernelBuilder::outputs(Value chunkFirst, Value length) {
  // Warp w: rows 16 (w / 2) .. + 15, value columns 32 (w % 2) .. + 31.
  Value rowFirst = arith::MulIOp::create(b, arith::DivUIOp::create(b, warp, index(2)), index(16));
  Value columnFirst = arith::MulIOp::create(b, arith::RemUIOp::create(b, warp, index(2)), index(32));
  auto columnOf = [&](int64_t ct, Value nn) {
    return arith::AddIOp::create(b, columnFirst, arith::AddIOp::create(b, index(8 * ct), nn)).getResult();
  };
  Tiles out{1, 4, SmallVector<Value>(4, mma->zero())};
  accumulate(
      out, index(0), keyDim,
      [&](int64_t, Value r, Value c) {
        Value t = arith::AddIOp::create(b, rowFirst, r);
        return mul(load(qs, {t, c}), exp(cumulative(t, c)));
      },
      [&](int64_t ct, Value c, Value nn) { return load(hs, {c, columnOf(ct, nn)}); });
  // A V up to the diagonal (A is zero above it).
  accumulate(
      out, index(0), arith::AddIOp::create(b, rowFirst, index(16)),
      [&](int64_t, Value r, Value s) { return load(as, {arith::AddIOp::create(b, rowFirst, r), s}); },
      [&](int64_t ct, Value s, Value nn) { return load(vs, {s, columnOf(ct, nn)}); });
  for (int64_t ct = 0; ct < out.columns; ++ct)
    for (int i = 0; i < 4; ++i) {
      Value t = arith::AddIOp::create(b, rowFirst, mma->row(i));
      Value j = columnOf(ct, mma->column(i));
      when(lessThan(t, length), [&] {
        Value factor = spec.getNormalizer() ? div(real(1.0), load(dens, t)) : scale;
        Value token = arith::AddIOp::create(b, chunkFirst, t);
        store(mul(mma->element(out.acc[ct], i), factor), args.o,
              {batch, token, h, arith::AddIOp::create(b, valueFirst, j)});
      });
    }
}

void ChunkKernelBuilder::advanceState(Value length) {
  // Warp w owns key rows [w K/4, (w + 1) K/4) of H and every value column.
  int64_t rowTiles = shape.keyDim / kWarps / 16, columnTiles = shape.valueTile / 8;
  Value keyFirst = arith::MulIOp::create(b, warp, index(shape.keyDim / kWarps));
  Value last = arith::SubIOp::create(b, length, index(1));
  auto keyOf = [&](int64_t rt, Value r) {
    return arith::AddIOp::create(b, keyFirst, arith::AddIOp::create(b, index(16 * rt), r)).getResult();
  };
  auto columnOf = [&](int64_t ct, Value nn) {
    return arith::AddIOp::create(b, index(8 * ct), nn).getResult();
  };
  Tiles state{rowTiles, columnTiles, {}};
  for (int64_t rt = 0; rt < rowTiles; ++rt)
    for (int64_t ct = 0; ct < columnTiles; ++ct) {
      Value acc = mma->zero();
      for (int i = 0; i < 4; ++i) {
        Value c = keyOf(rt, mma->row(i));
        Value decayed = mul(exp(cumulative(last, c)), load(hs, {c, columnOf(ct, mma->column(i))}));
        acc = mma->withElement(acc, i, decayed);
      }
      state.acc.push_back(acc);
    }
  accumulate(
      state, index(0), index(shape.chunkSize),
      [&](int64_t rt, Value r, Value s) {
        Value c = keyOf(rt, r);
        return mul(load(ks, {s, c}), exp(exponent(last, s, c)));
      },
      [&](int64_t ct, Value s, Value nn) { return load(vs, {s, columnOf(ct, nn)}); });
  for (int64_t rt = 0; rt < rowTiles; ++rt)
    for (int64_t ct = 0; ct < columnTiles; ++ct)
      for (int i = 0; i < 4; ++i)
        store(mma->element(state.acc[rt * columnTiles + ct], i), hs,
              {keyOf(rt, mma->row(i)), columnOf(ct, mma->column(i))});
  if (spec.getNormalizer())
    when(lessThan(threadIndex(), keyDim), [&] {
      Value c = threadIndex();
      Value added = sum(length, [&](Value s) { return mul(load(ks, {s, c}), exp(exponent(last, s, c))); });
      store(add(mul(exp(cumulative(last, c)), load(zs, c)), added), zs, c);
    });
}

int64_t ChunkKernelBuilder::build() {
  SmallVector<WorkspaceBuffer> workspace = forwardWorkspace(spec, shape);
  createKernel((spec.getSymName() + "_forward_chunks").str(), /*backward=*/false, kThreads, workspace,
               args, ws);
  int64_t chunk = shape.chunkSize, keys = shape.keyDim, values = shape.valueTile;
  int64_t decayRows = spec.isPerChannel() ? keys : 1;
  // Rows padded by 4 floats: the lanes of a fragment load hit distinct banks.
  qs = sharedBuffer({chunk, keys + 4});
  ks = sharedBuffer({chunk, keys + 4});
  gs = sharedBuffer({chunk, decayRows == 1 ? 1 : decayRows + 4});
  gLows = sharedBuffer({chunk, decayRows == 1 ? 1 : decayRows + 4});
  vs = sharedBuffer({chunk, values + 4});
  as = sharedBuffer({chunk, chunk + 4});
  hs = sharedBuffer({keys, values + 4});
  if (spec.getNormalizer()) {
    zs = sharedBuffer({keys});
    dens = sharedBuffer({chunk});
  }
  Value thread = threadIndex();
  warp = arith::DivUIOp::create(b, thread, index(32));
  mma = std::make_unique<WarpMma>(b, arith::RemUIOp::create(b, thread, index(32)));
  Value item = blockIndex(gpu::Dimension::x);
  n = arith::DivUIOp::create(b, item, numHeads);
  h = arith::RemUIOp::create(b, item, numHeads);
  valueFirst = arith::MulIOp::create(b, blockIndex(gpu::Dimension::y), index(values));
  auto sequence = loadSequence(args.seqs, n);
  batch = sequence.batch;
  Value zero = index(0);
  strided(zero, index(keys * values), kThreads, [&](Value i) {
    Value c = arith::DivUIOp::create(b, i, index(values)), j = arith::RemUIOp::create(b, i, index(values));
    store(load(args.h0, {n, h, c, arith::AddIOp::create(b, valueFirst, j)}), hs, {c, j});
  });
  if (spec.getNormalizer())
    strided(zero, keyDim, kThreads, [&](Value c) { store(load(args.normH0, {n, h, c}), zs, c); });
  auto chunks = scf::ForOp::create(b, sequence.start, sequence.end, index(chunk));
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(chunks.getBody());
    Value first = chunks.getInductionVar();
    Value length = arith::MinSIOp::create(b, index(chunk), arith::SubIOp::create(b, sequence.end, first));
    barrier(); // the previous chunk's state is written
    stageChunk(first, length);
    barrier();
    scores();
    barrier();
    if (spec.getNormalizer()) {
      denominators();
      barrier();
    }
    outputs(first, length);
    barrier(); // every warp has read H
    advanceState(length);
  }
  barrier();
  strided(zero, index(keys * values), kThreads, [&](Value i) {
    Value c = arith::DivUIOp::create(b, i, index(values)), j = arith::RemUIOp::create(b, i, index(values));
    store(load(hs, {c, j}), args.ht, {n, h, c, arith::AddIOp::create(b, valueFirst, j)});
  });
  if (spec.getNormalizer()) {
    Value firstTile = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, valueFirst, zero);
    when(firstTile, [&] {
      strided(zero, keyDim, kThreads, [&](Value c) { store(load(zs, c), args.normHt, {n, h, c}); });
    });
  }
  return sharedBytes();
}

/// The launch of a kernel, recorded on its gpu.func for the package writer.
void recordLaunch(gpu::GPUFuncOp fn, ArrayRef<std::pair<StringRef, int64_t>> grid, int64_t sharedBytes) {
  Builder b(fn.getContext());
  SmallVector<Attribute> dims;
  for (auto [letters, divide] : grid)
    dims.push_back(b.getDictionaryAttr({b.getNamedAttr("dims", b.getStringAttr(letters)),
                                        b.getNamedAttr("divide", b.getI64IntegerAttr(divide))}));
  fn->setAttr("decay.grid", b.getArrayAttr(dims));
  fn->setAttr("decay.dynamic_shared_bytes", b.getI64IntegerAttr(sharedBytes));
}
} // namespace

SmallVector<WorkspaceBuffer> decay::buildGpuForward(RecurrenceOp spec, const GpuShape &shape,
                                                    gpu::GPUModuleOp module) {
  ImplicitLocOpBuilder b(spec.getLoc(), module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  {
    OpBuilder::InsertionGuard guard(b);
    PrepareKernelBuilder(spec, shape, b).build();
  }
  auto prepare = cast<gpu::GPUFuncOp>(&module.getBody()->back());
  recordLaunch(prepare, {{"NH", 1}, {"", 1}, {"", 1}}, 0);
  b.setInsertionPointToEnd(module.getBody());
  int64_t shared;
  {
    OpBuilder::InsertionGuard guard(b);
    shared = ChunkKernelBuilder(spec, shape, b).build();
  }
  auto chunks = cast<gpu::GPUFuncOp>(&module.getBody()->back());
  recordLaunch(chunks, {{"NH", 1}, {"V", shape.valueTile}, {"", 1}}, shared);
  return forwardWorkspace(spec, shape);
}
