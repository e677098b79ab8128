// The backward on the GPU (MATH.md section 3): preparation, state recomputation, chunk gradients on tensor cores, and the per-token tail.
//
// Four launches share one workspace:
//   <name>_backward_prepare  q', k', G, G_low and each token's carried-in scan
//                            values; zeroes the gradient accumulators.
//   <name>_backward_states   the state (and normalizer) entering each chunk,
//                            and with a normalizer den_t and do_t . o_t.
//   <name>_backward_chunks   one block of 4 warps per (sequence, head, value
//                            tile), reverse over the chunks, with dH (dz) of
//                            the state leaving the chunk in shared memory:
//     dA  = dnum V^T (+ dden)                                  (strict pairs: D = dA exp(G_t - G_s))
//     dq* = exp(G) (dnum H^T + dden z) + D K                   -> workspace, added over value tiles
//     dkH = exp(G_last - G) (V dH^T + dz),  dk' = D^T Q        -> workspace, added over value tiles
//     dv  = A^T dnum + (K exp(G_last - G)) dH                  -> dv (this tile's columns)
//     edge_c = exp(G_last,c) (<H_c, dH_c> + z_c dz_c)          -> workspace per chunk
//     dH <- exp(G_last) dH + (Q exp(G))^T dnum                 (and dz)
//   every product on tensor cores; a vector decay's pair terms by secondary
//   chunking (off-diagonal sub-blocks as matmuls, diagonal ones elementwise).
//   With two value tiles the partial sums are added with atomics in a fixed
//   pair (0 + a + b), so the result does not depend on their order.
//   <name>_backward_finish   one thread per (sequence, head), reverse over
//                            the tokens as the CPU kernel's tail: dg from
//                            its direct parts, the diagonal terms, then
//                            RoPE, feature maps and the parameterization's
//                            adjoint (RecurrenceEmitter::finishTokenBackward).
#include "GpuChunkEmitter.h"

using namespace mlir;
using namespace decay;

namespace {
/// Key-column tiles per pass of dq* and dk' (a K = 64 warp half has 4).
constexpr int64_t kColumnTiles = 4;

/// The workspace of the backward.
SmallVector<WorkspaceBuffer> backwardWorkspace(RecurrenceOp spec, const GpuShape &shape) {
  SmallVector<WorkspaceBuffer> buffers = preparedRows(spec, shape);
  int64_t keys = shape.keyDim, decayRows = spec.isPerChannel() ? keys : 1;
  buffers.append({{"dq_star", keys}, {"dk_pair", keys}, {"dk_state", keys}, {"diag", 1}});
  if (spec.getNormalizer())
    buffers.append({{"den", 1}, {"dot", 1}});
  for (size_t i = 0; i < spec.getScans().size(); ++i)
    buffers.push_back({"scan_prev_" + std::to_string(i), decayRows});
  buffers.push_back({"states", keys * shape.valueDim, /*perSlot=*/true});
  if (spec.getNormalizer())
    buffers.push_back({"norm_states", keys, /*perSlot=*/true});
  buffers.push_back({"edge", keys, /*perSlot=*/true});
  return buffers;
}

/// The buffers the preparation zeroes: those the later launches add into.
SmallVector<std::string> accumulatedBuffers(RecurrenceOp spec) {
  SmallVector<std::string> names = {"dq_star", "dk_pair", "dk_state", "diag"};
  if (spec.getNormalizer())
    names.push_back("dot");
  return names;
}

class GradientKernelBuilder : GpuChunkEmitter {
public:
  using GpuChunkEmitter::GpuChunkEmitter;
  int64_t build(ArrayRef<WorkspaceBuffer> buffers);

private:
  /// dnum_tj (scale do, or do / den) and dden_t (-(do . o) / den).
  Value dnum(Value t, Value j);
  Value dden(Value t);
  /// D_ts = dA_ts exp(G_t - G_s) for s < t, else 0 (scalar decays).
  Value strictPairWeight(Value t, Value s);
  Value firstTile() { return arith::CmpIOp::create(b, arith::CmpIPredicate::eq, valueFirst, index(0)); }
  void stage(Value first, Value count, Value slot);
  void scoreGradients();
  /// The warp's 16 rows and K/2 key columns: the key column of tile ct.
  Value keyColumn(int64_t ct, Value nn);
  void queryGradients(Value first, Value count);
  void queryGradients(Value first, Value count, int64_t group);
  void keyGradients(Value first, Value count, Value last);
  void keyGradients(Value first, Value count, Value last, int64_t group);
  void valueGradients(Value first, Value count, Value last);
  void edge(Value slot, Value last);
  void advanceStateGradient(Value count, Value last);
  /// Adds `value` into the workspace buffer `name` at token `first + t` of the block.
  void addToWorkspace(StringRef name, Value first, Value t, Value column, Value value);

  Value dos, das, hins, dhs, zins, dzs, dens, dots; ///< shared memory
};

Value GradientKernelBuilder::dnum(Value t, Value j) {
  Value gradient = load(dos, {t, j});
  return spec.getNormalizer() ? div(gradient, load(dens, t)) : mul(scale, gradient);
}

Value GradientKernelBuilder::dden(Value t) {
  return arith::NegFOp::create(b, div(load(dots, t), load(dens, t)));
}

Value GradientKernelBuilder::strictPairWeight(Value t, Value s) {
  Value earlier = lessThan(s, t);
  Value e = arith::SelectOp::create(b, earlier, exponent(t, s, Value()), real(0.0));
  return arith::SelectOp::create(b, earlier, mul(load(das, {t, s}), exp(e)), real(0.0));
}

void GradientKernelBuilder::addToWorkspace(StringRef name, Value first, Value t, Value column, Value value) {
  Value token = arith::AddIOp::create(b, first, t);
  memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addf, value, workspace(name),
                              ValueRange{sequence.batch, token, h, column});
}

void GradientKernelBuilder::stage(Value first, Value count, Value slot) {
  stageChunk(first, count, {{args.dout, dos, valueFirst}});
  int64_t values = shape.valueTile;
  strided(index(0), index(shape.keyDim * values), kThreads, [&](Value i) {
    Value c = arith::DivUIOp::create(b, i, index(values)), j = arith::RemUIOp::create(b, i, index(values));
    Value row = arith::AddIOp::create(b, arith::MulIOp::create(b, c, valueDim), arith::AddIOp::create(b, valueFirst, j));
    store(load(workspace("states"), {slot, h, row}), hins, {c, j});
  });
  if (!spec.getNormalizer())
    return;
  strided(index(0), keyDim, kThreads, [&](Value c) { store(load(workspace("norm_states"), {slot, h, c}), zins, c); });
  when(lessThan(threadIndex(), index(shape.chunkSize)), [&] {
    Value t = threadIndex();
    Value inside = lessThan(t, count);
    Value token = arith::AddIOp::create(b, first, arith::MinSIOp::create(b, t, arith::SubIOp::create(b, count, index(1))));
    Value at[] = {sequence.batch, token, h, index(0)};
    store(arith::SelectOp::create(b, inside, load(workspace("den"), at), real(1.0)), dens, t);
    store(arith::SelectOp::create(b, inside, load(workspace("dot"), at), real(0.0)), dots, t);
  });
}

void GradientKernelBuilder::scoreGradients() {
  // dA = dnum V^T over the tile's value columns, on and below the diagonal;
  // the first tile adds dden_t.
  Value rowBlock = arith::DivUIOp::create(b, warp, index(2));
  Value columnBlock = arith::RemUIOp::create(b, warp, index(2));
  Value rowFirst = rowBlockFirst(), columnFirst = columnBlockFirst();
  Tiles block = zeroTiles(1, 2);
  Value lower = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, columnBlock, rowBlock);
  auto storeBlock = [&](const Tiles &tiles, bool finish) {
    for (int64_t ct = 0; ct < tiles.columns; ++ct)
      for (int i = 0; i < 4; ++i) {
        Value t = arith::AddIOp::create(b, rowFirst, mma->row(i));
        Value s = tokenOf(columnFirst, ct, mma->column(i));
        Value value = mma->element(tiles.acc[ct], i);
        if (finish) {
          if (spec.getNormalizer())
            value = add(value, arith::SelectOp::create(b, firstTile(), dden(t), real(0.0)));
          Value causal = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, s, t);
          value = arith::SelectOp::create(b, causal, value, real(0.0));
        }
        store(value, das, {t, s});
      }
  };
  when(lower, [&] {
    Tiles products = block;
    accumulate(products, index(0), index(shape.valueTile),
               [&](int64_t, Value r, Value j) { return dnum(arith::AddIOp::create(b, rowFirst, r), j); },
               [&](int64_t ct, Value j, Value nn) { return load(vs, {tokenOf(columnFirst, ct, nn), j}); });
    storeBlock(products, /*finish=*/true);
  });
  when(arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, columnBlock, rowBlock),
       [&] { storeBlock(block, /*finish=*/false); });
}

Value GradientKernelBuilder::keyColumn(int64_t ct, Value nn) {
  Value half = arith::MulIOp::create(b, arith::RemUIOp::create(b, warp, index(2)), index(shape.keyDim / 2));
  return arith::AddIOp::create(b, half, arith::AddIOp::create(b, index(8 * ct), nn));
}

void GradientKernelBuilder::queryGradients(Value first, Value count) {
  for (int64_t group = 0; group < shape.keyDim / 16 / kColumnTiles; ++group)
    queryGradients(first, count, group);
}

void GradientKernelBuilder::queryGradients(Value first, Value count, int64_t group) {
  // Warp w: rows t of 16 (w / 2) .. + 15, key columns of half w % 2, in
  // groups of kColumnTiles tiles (two sets of accumulators fit in registers).
  Value rowFirst = rowBlockFirst();
  int64_t columnTiles = kColumnTiles;
  auto keyColumn = [&](int64_t ct, Value nn) { return this->keyColumn(group * kColumnTiles + ct, nn); };
  auto tokenAt = [&](Value r) { return arith::AddIOp::create(b, rowFirst, r).getResult(); };
  Tiles fromState = zeroTiles(1, columnTiles);
  accumulate(fromState, index(0), index(shape.valueTile),
             [&](int64_t, Value r, Value j) { return dnum(tokenAt(r), j); },
             [&](int64_t ct, Value j, Value nn) { return load(hins, {keyColumn(ct, nn), j}); });
  Tiles pairs = zeroTiles(1, columnTiles);
  bool perChannel = spec.isPerChannel();
  if (!perChannel) {
    // D K with D_ts = dA_ts exp(G_t - G_s) for s < t.
    accumulate(
        pairs, index(0), arith::AddIOp::create(b, rowFirst, index(16)),
        [&](int64_t, Value r, Value s) { return strictPairWeight(tokenAt(r), s); },
        [&](int64_t ct, Value s, Value nn) { return load(ks, {s, keyColumn(ct, nn)}); });
  } else {
    // Earlier sub-blocks: exp(G_t - G_r) sum_s dA_ts (k_s exp(G_r - G_s)), r the block's first token.
    accumulate(
        pairs, index(0), rowFirst, [&](int64_t, Value r, Value s) { return load(das, {tokenAt(r), s}); },
        [&](int64_t ct, Value s, Value nn) {
          Value c = keyColumn(ct, nn);
          return mul(load(ks, {s, c}), exp(exponent(rowFirst, s, c)));
        });
  }
  for (int64_t ct = 0; ct < columnTiles; ++ct)
    for (int i = 0; i < 4; ++i) {
      Value t = tokenAt(mma->row(i));
      Value c = keyColumn(ct, mma->column(i));
      Value state = mma->element(fromState.acc[ct], i);
      if (spec.getNormalizer())
        state = add(state, arith::SelectOp::create(b, firstTile(), mul(load(zins, c), dden(t)), real(0.0)));
      Value pair = mma->element(pairs.acc[ct], i);
      if (perChannel) {
        pair = mul(pair, exp(exponent(t, rowFirst, c)));
        // The sub-block itself, s in [r, t): elementwise.
        pair = add(pair, sum(rowFirst, t, [&](Value s) {
                     return mul(mul(load(das, {t, s}), load(ks, {s, c})), exp(exponent(t, s, c)));
                   }));
      }
      Value total = add(mul(exp(cumulative(t, c)), state), pair);
      when(lessThan(t, count), [&] { addToWorkspace("dq_star", first, t, c, total); });
    }
}

void GradientKernelBuilder::keyGradients(Value first, Value count, Value last) {
  for (int64_t group = 0; group < shape.keyDim / 16 / kColumnTiles; ++group)
    keyGradients(first, count, last, group);
  // The diagonal of dA (the first tile's includes dden).
  when(lessThan(threadIndex(), count), [&] {
    Value t = threadIndex();
    addToWorkspace("diag", first, t, index(0), load(das, {t, t}));
  });
}

void GradientKernelBuilder::keyGradients(Value first, Value count, Value last, int64_t group) {
  // Warp w: rows s of 16 (w / 2) .. + 15, key columns of half w % 2, in groups.
  Value rowFirst = rowBlockFirst();
  int64_t columnTiles = kColumnTiles;
  auto keyColumn = [&](int64_t ct, Value nn) { return this->keyColumn(group * kColumnTiles + ct, nn); };
  auto tokenAt = [&](Value r) { return arith::AddIOp::create(b, rowFirst, r).getResult(); };
  Tiles fromState = zeroTiles(1, columnTiles);
  accumulate(fromState, index(0), index(shape.valueTile),
             [&](int64_t, Value r, Value j) { return load(vs, {tokenAt(r), j}); },
             [&](int64_t ct, Value j, Value nn) { return load(dhs, {keyColumn(ct, nn), j}); });
  Tiles pairs = zeroTiles(1, columnTiles);
  bool perChannel = spec.isPerChannel();
  Value blockLast = arith::AddIOp::create(b, rowFirst, index(15));
  Value laterFirst = arith::AddIOp::create(b, rowFirst, index(16));
  if (!perChannel) {
    // D^T Q: sum over t > s of dA_ts exp(G_t - G_s) q_t.
    accumulate(
        pairs, rowFirst, index(shape.chunkSize),
        [&](int64_t, Value r, Value t) { return strictPairWeight(t, tokenAt(r)); },
        [&](int64_t ct, Value t, Value nn) { return load(qs, {t, keyColumn(ct, nn)}); });
  } else {
    // Later sub-blocks: exp(G_L - G_s) sum_t dA_ts (q_t exp(G_t - G_L)), L the block's last token.
    accumulate(
        pairs, laterFirst, index(shape.chunkSize),
        [&](int64_t, Value r, Value t) { return load(das, {t, tokenAt(r)}); },
        [&](int64_t ct, Value t, Value nn) {
          Value c = keyColumn(ct, nn);
          return mul(load(qs, {t, c}), exp(exponent(t, blockLast, c)));
        });
  }
  for (int64_t ct = 0; ct < columnTiles; ++ct)
    for (int i = 0; i < 4; ++i) {
      Value s = tokenAt(mma->row(i));
      Value c = keyColumn(ct, mma->column(i));
      Value state = mma->element(fromState.acc[ct], i);
      if (spec.getNormalizer())
        state = add(state, arith::SelectOp::create(b, firstTile(), load(dzs, c), real(0.0)));
      Value pair = mma->element(pairs.acc[ct], i);
      if (perChannel) {
        pair = mul(pair, exp(exponent(blockLast, s, c)));
        // The sub-block itself, t in (s, L]: elementwise.
        pair = add(pair, sum(arith::AddIOp::create(b, s, index(1)), laterFirst, [&](Value t) {
                     return mul(mul(load(das, {t, s}), load(qs, {t, c})), exp(exponent(t, s, c)));
                   }));
      }
      Value stateTerm = mul(exp(exponent(last, s, c)), state);
      when(lessThan(s, count), [&] {
        addToWorkspace("dk_state", first, s, c, stateTerm);
        addToWorkspace("dk_pair", first, s, c, pair);
      });
    }
}

void GradientKernelBuilder::valueGradients(Value first, Value count, Value last) {
  // Warp w: rows s of 16 (w / 2) .. + 15, value columns 32 (w % 2) .. + 31.
  Value rowFirst = rowBlockFirst();
  Value columnFirst = arith::MulIOp::create(b, arith::RemUIOp::create(b, warp, index(2)), index(32));
  auto tokenAt = [&](Value r) { return arith::AddIOp::create(b, rowFirst, r).getResult(); };
  auto columnOf = [&](int64_t ct, Value nn) {
    return arith::AddIOp::create(b, columnFirst, arith::AddIOp::create(b, index(8 * ct), nn)).getResult();
  };
  Tiles dv = zeroTiles(1, 4);
  // A^T dnum: A_ts is zero for t < s, so t starts at the row block.
  accumulate(dv, rowFirst, index(shape.chunkSize),
             [&](int64_t, Value r, Value t) { return load(as, {t, tokenAt(r)}); },
             [&](int64_t ct, Value t, Value nn) { return dnum(t, columnOf(ct, nn)); });
  accumulate(
      dv, index(0), keyDim,
      [&](int64_t, Value r, Value c) {
        Value s = tokenAt(r);
        return mul(load(ks, {s, c}), exp(exponent(last, s, c)));
      },
      [&](int64_t ct, Value c, Value nn) { return load(dhs, {c, columnOf(ct, nn)}); });
  for (int64_t ct = 0; ct < dv.columns; ++ct)
    for (int i = 0; i < 4; ++i) {
      Value s = tokenAt(mma->row(i));
      Value j = arith::AddIOp::create(b, valueFirst, columnOf(ct, mma->column(i)));
      when(lessThan(s, count), [&] {
        store(mma->element(dv.acc[ct], i), args.dv, {sequence.batch, arith::AddIOp::create(b, first, s), h, j});
      });
    }
}

void GradientKernelBuilder::edge(Value slot, Value last) {
  // exp(G_last,c) (sum_j H_cj dH_cj + z_c dz_c), this tile's share.
  when(lessThan(threadIndex(), keyDim), [&] {
    Value c = threadIndex();
    Value inner = sum(index(shape.valueTile), [&](Value j) { return mul(load(hins, {c, j}), load(dhs, {c, j})); });
    if (spec.getNormalizer())
      inner = add(inner, arith::SelectOp::create(b, firstTile(), mul(load(zins, c), load(dzs, c)), real(0.0)));
    memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addf, mul(exp(cumulative(last, c)), inner),
                                workspace("edge"), ValueRange{slot, h, c});
  });
}

void GradientKernelBuilder::advanceStateGradient(Value count, Value last) {
  // dH <- exp(G_last) dH + (Q exp(G))^T dnum, kColumnTiles tiles at a time (registers).
  advanceSharedState(
      dhs, last, kColumnTiles,
      [&](Value c, Value t) { return mul(load(qs, {t, c}), exp(cumulative(t, c))); },
      [&](Value t, Value j) { return dnum(t, j); });
  if (spec.getNormalizer())
    when(lessThan(threadIndex(), keyDim), [&] {
      Value c = threadIndex();
      Value added = sum(count, [&](Value t) { return mul(mul(load(qs, {t, c}), exp(cumulative(t, c))), dden(t)); });
      store(add(mul(exp(cumulative(last, c)), load(dzs, c)), added), dzs, c);
    });
}

int64_t GradientKernelBuilder::build(ArrayRef<WorkspaceBuffer> buffers) {
  beginChunkKernel((spec.getSymName() + "_backward_chunks").str(), /*backward=*/true, buffers);
  int64_t chunk = shape.chunkSize, keys = shape.keyDim, values = shape.valueTile;
  dos = sharedBuffer({chunk, values + 4});
  das = sharedBuffer({chunk, chunk + 4});
  hins = sharedBuffer({keys, values + 4});
  dhs = sharedBuffer({keys, values + 4});
  if (spec.getNormalizer()) {
    zins = sharedBuffer({keys});
    dzs = sharedBuffer({keys});
    dens = sharedBuffer({chunk});
    dots = sharedBuffer({chunk});
  }
  Value zero = index(0);
  copyStateTile(args.dht, dhs, /*toState=*/false);
  if (spec.getNormalizer())
    strided(zero, keyDim, kThreads, [&](Value c) { store(load(args.dNormHt, {n, h, c}), dzs, c); });
  reverseLoop(zero, chunkCount(), [&](Value ci) {
    auto [first, count] = chunkAt(ci);
    Value last = arith::SubIOp::create(b, count, index(1));
    Value slot = slotOf(ci);
    barrier(); // the later chunk's dH is written
    stage(first, count, slot);
    barrier();
    scores();
    scoreGradients();
    barrier();
    queryGradients(first, count);
    keyGradients(first, count, last);
    valueGradients(first, count, last);
    edge(slot, last);
    barrier(); // every warp has read dH
    advanceStateGradient(count, last);
  });
  barrier();
  copyStateTile(args.dh0, dhs, /*toState=*/true);
  if (spec.getNormalizer())
    when(firstTile(), [&] {
      strided(zero, keyDim, kThreads, [&](Value c) { store(load(dzs, c), args.dNormH0, {n, h, c}); });
    });
  return sharedBytes();
}

class FinishKernelBuilder : GpuChunkEmitter {
public:
  using GpuChunkEmitter::GpuChunkEmitter;
  void build(AdjointOp adjoint, ArrayRef<WorkspaceBuffer> buffers);
};

void FinishKernelBuilder::build(AdjointOp adjoint, ArrayRef<WorkspaceBuffer> buffers) {
  createKernel((spec.getSymName() + "_backward_finish").str(), /*backward=*/true, 1, buffers, args, ws);
  Value zero = index(0);
  Value item = blockIndex(gpu::Dimension::x);
  n = arith::DivUIOp::create(b, item, numHeads);
  h = arith::RemUIOp::create(b, item, numHeads);
  sequence = loadSequence(args.seqs, n);
  Value batch = sequence.batch;
  bool perChannel = spec.isPerChannel();
  FloatType f64 = b.getF64Type();
  auto local = [&](FloatType type) {
    return memref::AllocaOp::create(b, MemRefType::get({shape.keyDim}, type)).getResult();
  };
  // The token's rows of [B, T, H, X] workspace buffers as [T, X] views.
  auto rowsOf = [&](Value buffer) {
    auto type = cast<MemRefType>(buffer.getType());
    SmallVector<OpFoldResult> offsets = {batch, b.getIndexAttr(0), h, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), sizeT, b.getIndexAttr(1),
                                       memref::DimOp::create(b, buffer, 3).getResult()};
    SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
    auto reduced = memref::SubViewOp::inferRankReducedResultType({ShapedType::kDynamic, ShapedType::kDynamic},
                                                                 type, offsets, sizes, strides);
    return memref::SubViewOp::create(b, cast<MemRefType>(reduced), buffer, offsets, sizes, strides).getResult();
  };
  SmallVector<Value> scanPrev, scanCarry;
  for (size_t i = 0; i < scans.size(); ++i) {
    scanPrev.push_back(rowsOf(workspace("scan_prev_" + std::to_string(i))));
    scanCarry.push_back(local(b.getF32Type()));
  }
  BackwardSinks sinks{adjoint, args.q, args.k, args.dq, args.dk, args.dInputs, args.dParams, scanPrev,
                      scanCarry, local(b.getF32Type()), local(f64), /*atomicShared=*/true, {}};
  for (size_t i = 0; i < params.size(); ++i) {
    Value partial = local(b.getF32Type());
    loop(zero, keyDim, [&](Value c) { store(real(0.0), partial, c); });
    sinks.paramPartials.push_back(partial);
  }
  loop(zero, keyDim, [&](Value c) {
    for (auto [final, carry] : llvm::zip(args.dScanHt, scanCarry))
      store(load(final, perChannel ? SmallVector<Value>{n, h, c} : SmallVector<Value>{n, h}), carry, c);
  });
  Value carry = local(f64), prefix = local(f64), edgeTerm = local(f64);
  Value wq = workspace("q"), wk = workspace("k"), dqStar = workspace("dq_star"), dkPair = workspace("dk_pair"),
        dkState = workspace("dk_state"), diag = workspace("diag");
  Value zeroWide = arith::ConstantOp::create(b, b.getF64FloatAttr(0.0));
  reverseLoop(zero, chunkCount(), [&](Value ci) {
    auto [first, count] = chunkAt(ci);
    Value slot = slotOf(ci);
    // dg_t = sum_{t'>=t} (q dq* - k dk') + sum_{s<t} k dkH + edge; the
    // prefix starts as the whole chunk's sum and loses token t before t.
    loop(zero, keyDim, [&](Value c) {
      store(zeroWide, carry, c);
      store(widen(load(workspace("edge"), {slot, h, c})), edgeTerm, c);
      store(sum(zero, count,
                [&](Value s) {
                  Value token = arith::AddIOp::create(b, first, s);
                  return widen(mul(load(wk, {batch, token, h, c}), load(dkState, {batch, token, h, c})));
                },
                f64),
            prefix, c);
    });
    reverseLoop(zero, count, [&](Value t) {
      Value token = arith::AddIOp::create(b, first, t);
      Value diagonal = load(diag, {batch, token, h, zero});
      loop(zero, keyDim, [&](Value c) {
        SmallVector<Value> at = {batch, token, h, c};
        Value qc = load(wq, at), kc = load(wk, at);
        Value dq = load(dqStar, at), dkp = load(dkPair, at), dks = load(dkState, at);
        Value before = sub(load(prefix, c), widen(mul(kc, dks)));
        store(before, prefix, c);
        Value later = add(load(carry, c), sub(mul(widen(qc), widen(dq)), mul(widen(kc), widen(dkp))));
        store(later, carry, c);
        store(add(add(later, before), load(edgeTerm, c)), sinks.lambdaSum, c);
        store(add(dq, mul(diagonal, kc)), dqStar, at);
        store(add(add(dkp, dks), mul(diagonal, qc)), dkPair, at);
      });
      ElementIndex element{n, batch, token, h, nullptr};
      Value pos = arith::SubIOp::create(b, token, sequence.start);
      finishTokenBackward(sinks, element, pos, token, dqStar, {batch, token, h}, dkPair, {batch, token, h});
    });
  });
  flushParamPartials(sinks, h);
  loop(zero, keyDim, [&](Value c) {
    if (perChannel)
      for (auto [initial, carried] : llvm::zip(args.dScanH0, scanCarry))
        store(load(carried, c), initial, {n, h, c});
  });
  if (!perChannel)
    for (auto [initial, carried] : llvm::zip(args.dScanH0, scanCarry))
      store(load(carried, zero), initial, {n, h});
}
} // namespace

SmallVector<WorkspaceBuffer> decay::buildGpuBackward(RecurrenceOp spec, AdjointOp adjoint, const GpuShape &shape,
                                                     gpu::GPUModuleOp module) {
  SmallVector<WorkspaceBuffer> workspace = backwardWorkspace(spec, shape);
  ImplicitLocOpBuilder b(spec.getLoc(), module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  auto added = [&]() { return cast<gpu::GPUFuncOp>(&module.getBody()->back()); };
  {
    OpBuilder::InsertionGuard guard(b);
    buildPrepareKernel(spec, shape, /*backward=*/true, workspace, accumulatedBuffers(spec), b);
  }
  recordLaunch(added(), {{"NH", 1}, {"", 1}, {"", 1}}, 0);
  int64_t shared;
  {
    OpBuilder::InsertionGuard guard(b);
    shared = buildChunkSweep(spec, shape, /*states=*/true, workspace, b);
  }
  recordLaunch(added(), {{"NH", 1}, {"V", shape.valueTile}, {"", 1}}, shared);
  {
    OpBuilder::InsertionGuard guard(b);
    shared = GradientKernelBuilder(spec, shape, b).build(workspace);
  }
  recordLaunch(added(), {{"NH", 1}, {"V", shape.valueTile}, {"", 1}}, shared);
  {
    OpBuilder::InsertionGuard guard(b);
    FinishKernelBuilder(spec, shape, b).build(adjoint, workspace);
  }
  recordLaunch(added(), {{"NH", 1}, {"", 1}, {"", 1}}, 0);
  return workspace;
}
