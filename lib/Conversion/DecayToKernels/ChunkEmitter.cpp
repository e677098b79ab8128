// The chunk algorithm shared by the chunked forward and backward kernels (MATH.md sections 2 and 3).
#include "ChunkEmitter.h"
#include "TileTranspose.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace decay;

namespace {
/// `prefix` followed by `more`.
SmallVector<Value> concat(ValueRange prefix, std::initializer_list<Value> more) {
  SmallVector<Value> indices(prefix);
  indices.append(more.begin(), more.end());
  return indices;
}
} // namespace

func::FuncOp ChunkEmitter::buildParallelKernel(StringRef name, bool backward, RecurrenceArgs &args,
                                               function_ref<Value(Value)> columns,
                                               function_ref<void(Value, Value)> body) {
  OpBuilder::InsertionGuard guard(b);
  kernelName = name.str();
  func::FuncOp fn = createFunction(name, backward, args);
  q = args.q, k = args.k, v = args.v;
  Value zero = index(0), one = index(1);
  Value numSeqs = memref::DimOp::create(b, args.seqs, 0);
  Value numColumns = columns(numSeqs);
  auto parallel = scf::ParallelOp::create(b, ValueRange{zero, zero}, ValueRange{numSeqs, numColumns},
                                          ValueRange{one, one});
  {
    OpBuilder::InsertionGuard inner(b);
    b.setInsertionPointToStart(parallel.getBody());
    body(parallel.getInductionVars()[0], parallel.getInductionVars()[1]);
  }
  func::ReturnOp::create(b);
  return fn;
}

void ChunkEmitter::phase(StringRef name, function_ref<void()> body) {
  if (!phaseLocations) {
    body();
    return;
  }
  Location outer = b.getLoc();
  b.setLoc(FileLineColLoc::get(b.getContext(), kernelName + "." + name.str(), 1, 0));
  body();
  b.setLoc(outer);
}

Value ChunkEmitter::headsPerItem(Value numSeqs) {
  // clamp(sequences * heads / kMinWorkItems, 1, kMaxHeadsPerItem)
  Value one = index(1), minItems = index(kMinWorkItems), maxHeads = index(kMaxHeadsPerItem);
  Value pairs = arith::MulIOp::create(b, numSeqs, numHeads);
  Value share = arith::DivUIOp::create(b, pairs, minItems);
  return arith::MaxUIOp::create(b, one, arith::MinUIOp::create(b, share, maxHeads));
}

func::FuncOp ChunkEmitter::buildGroupedKernel(StringRef name, bool backward, RecurrenceArgs &args,
                                              function_ref<void(Value, Value, Value)> item) {
  Value perItem;
  return buildParallelKernel(
      name, backward, args,
      [&](Value numSeqs) {
        perItem = headsPerItem(numSeqs);
        return arith::CeilDivUIOp::create(b, numHeads, perItem).getResult();
      },
      [&](Value n, Value group) {
        Value first = arith::MulIOp::create(b, group, perItem);
        Value end = arith::MinUIOp::create(b, arith::AddIOp::create(b, first, perItem), numHeads);
        item(n, first, end);
      });
}

Value ChunkEmitter::row(const Chunk &chunk, Value i) { return arith::AddIOp::create(b, chunk.base, i); }

Value ChunkEmitter::qkRow(const Chunk &chunk, Value i) { return arith::AddIOp::create(b, chunk.qkBase, i); }

bool ChunkEmitter::queriesAndKeysAsGiven() {
  return spec.getEffectiveFeatureMap() == FeatureMap::identity && !spec.getRopeTheta() && !spec.hasDerivedKey();
}

bool ChunkEmitter::stagesQueriesAndKeys() {
  // A vector decay's sub-blocks re-read the chunk's rows of q and k many
  // times, and rows of one head are H * K apart in q and k (4 KiB at H = 8,
  // K = 128: one cache set for all of them), so copies pay for themselves
  // there (gla's backward on an Intel Xeon: 0.223 s staged, 0.235 s not);
  // a scalar decay's phases read each row a few times (mamba2's backward:
  // 0.178 s staged, 0.172 s not).
  return !queriesAndKeysAsGiven() || !storageType.isF32() || spec.isPerChannel();
}

void ChunkEmitter::bindQueryKeyRows(Chunk &chunk, Value batch, Value h) {
  if (stagesQueriesAndKeys()) {
    chunk.qkBase = chunk.base;
    return;
  }
  chunk.qkBase = chunk.first;
  auto rowsOf = [&](Value tensor) -> Value {
    auto type = cast<MemRefType>(tensor.getType());
    SmallVector<OpFoldResult> offsets = {batch, b.getIndexAttr(0), h, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), memref::DimOp::create(b, tensor, 1).getResult(),
                                       b.getIndexAttr(1), memref::DimOp::create(b, tensor, 3).getResult()};
    SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
    auto viewType = memref::SubViewOp::inferRankReducedResultType({ShapedType::kDynamic, ShapedType::kDynamic},
                                                                  type, offsets, sizes, strides);
    return memref::SubViewOp::create(b, cast<MemRefType>(viewType), tensor, offsets, sizes, strides);
  };
  chunk.q = rowsOf(q);
  chunk.k = rowsOf(k);
}

Value ChunkEmitter::decayChannel(Value c) { return spec.isPerChannel() ? c : index(0); }

Value ChunkEmitter::cumulative(const Chunk &chunk, Value t, Value c) {
  Value r = row(chunk, t);
  c = decayChannel(c);
  return add(load(chunk.g, {r, c}), load(chunk.gLow, {r, c}));
}

Value ChunkEmitter::exponentBetweenRows(const Chunk &chunk, Value rt, Value rs, Value c) {
  c = decayChannel(c);
  return add(sub(load(chunk.g, {rt, c}), load(chunk.g, {rs, c})),
             sub(load(chunk.gLow, {rt, c}), load(chunk.gLow, {rs, c})));
}

Value ChunkEmitter::decayBetween(const Chunk &chunk, Value t, Value s, Value c) {
  return exp(exponentBetweenRows(chunk, row(chunk, t), row(chunk, s), c));
}

void ChunkEmitter::allocateChunk(Chunk &chunk, Value rows) {
  Value size = index(chunkSize);
  if (stagesQueriesAndKeys()) {
    chunk.q = alloc({rows, keyDim});
    chunk.k = alloc({rows, keyDim});
  }
  // A scalar (or no) decay's G is the same in every channel: one column.
  Value decayColumns = spec.isPerChannel() ? keyDim : index(1);
  chunk.g = alloc({rows, decayColumns});
  chunk.gLow = alloc({rows, decayColumns});
  chunk.step = alloc({rows, keyDim});
  chunk.carried = alloc(keyDim);
  chunk.product = alloc(keyDim);
  chunk.runningHigh = alloc(keyDim);
  chunk.runningLow = alloc(keyDim);
  chunk.a = alloc({size, size});
  Value side = arith::MaxUIOp::create(b, size, keyDim);
  chunk.work = alloc({side, side});
  chunk.out = alloc({size, valueDim});
  chunk.values = alloc({size, valueDim});
  if (!spec.isPerChannel())
    return;
  chunk.sub = alloc({keyDim, index(kSubBlock)});
  chunk.keysT = alloc({keyDim, size});
}

void ChunkEmitter::releaseChunk(const Chunk &chunk) {
  if (stagesQueriesAndKeys())
    for (Value buffer : {chunk.q, chunk.k})
      memref::DeallocOp::create(b, buffer);
  for (Value buffer : {chunk.g, chunk.gLow, chunk.step, chunk.carried, chunk.product,
                       chunk.runningHigh, chunk.runningLow, chunk.a,
                       chunk.work, chunk.out, chunk.values})
    memref::DeallocOp::create(b, buffer);
  if (spec.isPerChannel())
    for (Value buffer : {chunk.sub, chunk.keysT})
      memref::DeallocOp::create(b, buffer);
}

SmallVector<ChunkEmitter::StreamedTensor> ChunkEmitter::streamedInputs() {
  SmallVector<StreamedTensor> tensors;
  for (auto [tensor, dims] : llvm::zip(inputs, spec.getInputDims().getValue()))
    tensors.push_back({tensor, cast<StringAttr>(dims).getValue()});
  return tensors;
}

void ChunkEmitter::prefetchLines(Value memref, function_ref<SmallVector<Value>(Value)> indicesAt, Value width,
                                 bool write, int64_t localityHint) {
  auto type = cast<MemRefType>(memref.getType());
  int64_t lineElements = std::max<int64_t>(1, 64 / (type.getElementTypeBitWidth() / 8));
  auto lines = scf::ForOp::create(b, index(0), width, index(lineElements));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(lines.getBody());
  memref::PrefetchOp::create(b, memref, indicesAt(lines.getInductionVar()), write, localityHint,
                             /*isDataCache=*/true);
}

void ChunkEmitter::prefetchRows(ArrayRef<StreamedTensor> tensors, Value batch, Value token, Value h) {
  for (const StreamedTensor &tensor : tensors) {
    StringRef dims = tensor.dims;
    bool hasChannelDim = dims.back() == 'K' || dims.back() == 'V';
    Value width = hasChannelDim ? memref::DimOp::create(b, tensor.memref, dims.size() - 1).getResult() : index(1);
    auto indicesAt = [&](Value line) {
      SmallVector<Value> indices;
      for (char dim : dims)
        indices.push_back(dim == 'B' ? batch : dim == 'T' ? token : dim == 'H' ? h : line);
      return indices;
    };
    prefetchLines(tensor.memref, indicesAt, width, tensor.write, /*localityHint=*/3);
  }
}

void ChunkEmitter::stageValues(const ElementIndex &at, const Chunk &chunk) {
  Value zero = index(0);
  loop(zero, chunk.length, [&](Value s) {
    Value token = arith::AddIOp::create(b, chunk.first, s);
    loop(zero, valueDim, [&](Value j) { store(load(v, {at.b, token, at.h, j}), chunk.values, {s, j}); });
  });
}

void ChunkEmitter::prepareChunk(
    const ElementIndex &at, Value start, const Chunk &chunk,
    function_ref<ScanValues(const ElementIndex &, unsigned, Operation *, Value)> scan) {
  Value zero = index(0);
  // G_t = G_{t-1} + g_t, carried per channel in running (high, low) pairs
  // from 0 at the chunk's first token: the rounding error of each addition
  // (Knuth's TwoSum) is kept in gLow, so that differences of large
  // cumulative sums stay exact. The loops touch each channel once (no
  // reads of other rows), so that LLVM vectorizes them without alias checks.
  loop(zero, keyDim, [&](Value c) {
    store(real(0.0), chunk.runningHigh, c);
    store(real(0.0), chunk.runningLow, c);
  });
  // The rows of the chunk's tokens kPrefetchTokens ahead (within the chunk).
  Value lastToken = arith::SubIOp::create(b, arith::AddIOp::create(b, chunk.first, chunk.length), index(1));
  SmallVector<StreamedTensor> streamed = streamedInputs();
  streamed.append({{q, "BTHK"}, {v, "BTHV"}});
  if (!spec.hasDerivedKey())
    streamed.push_back({k, "BTHK"});
  loop(zero, chunk.length, [&](Value i) {
    ElementIndex element = at;
    element.t = arith::AddIOp::create(b, chunk.first, i);
    Value r = row(chunk, i), rq = qkRow(chunk, i);
    prefetchRows(streamed, at.b,
                 arith::MinUIOp::create(b, arith::AddIOp::create(b, element.t, index(kPrefetchTokens)), lastToken),
                 at.h);
    auto accumulate = [&](Value c, Value g) {
      Value before = load(chunk.runningHigh, c);
      Value total = add(before, g);
      Value gPart = sub(total, before);
      Value error = add(sub(before, sub(total, gPart)), sub(g, gPart));
      Value low = add(load(chunk.runningLow, c), error);
      store(total, chunk.g, {r, c});
      store(total, chunk.runningHigh, c);
      store(low, chunk.gLow, {r, c});
      store(low, chunk.runningLow, c);
    };
    auto evaluate = [&](const ElementIndex &e) {
      return evaluateRegion(e, [&](unsigned s, Operation *op, Value x) { return scan(e, s, op, x); });
    };
    if (spec.getGranularity() == Granularity::none) {
      accumulate(zero, real(0.0));
    } else if (spec.isPerChannel()) {
      // The region per channel, its g parked in the step row; then G and exp(g).
      loop(zero, keyDim, [&](Value c) {
        ElementIndex channel = element;
        channel.c = c;
        SmallVector<Value> yielded = evaluate(channel);
        store(yielded[0], chunk.step, {r, c});
        if (yielded.size() == 2)
          store(yielded[1], chunk.k, {rq, c});
      });
      loop(zero, keyDim, [&](Value c) {
        Value g = load(chunk.step, {r, c});
        accumulate(c, g);
        store(exp(g), chunk.step, {r, c});
      });
    } else {
      accumulate(zero, evaluate(element)[0]);
    }
    if (!stagesQueriesAndKeys())
      return; // chunk.q and chunk.k are q's and k's own rows
    loop(zero, keyDim, [&](Value c) {
      store(featureMap(load(q, {at.b, element.t, at.h, c})), chunk.q, {rq, c});
      if (!spec.hasDerivedKey())
        store(featureMap(load(k, {at.b, element.t, at.h, c})), chunk.k, {rq, c});
    });
    if (spec.getRopeTheta()) {
      Value pos = arith::SubIOp::create(b, element.t, start);
      applyRope(chunk.q, rq, pos, /*inverse=*/false);
      applyRope(chunk.k, rq, pos, /*inverse=*/false);
    }
  });
  stageValues(at, chunk);
}

Value ChunkEmitter::streamableRows(Value memref) {
  if (!cast<MemRefType>(memref.getType()).getElementType().isF32())
    return nullptr;
  return rowsAlignedToVectors(b, memref, tiling.lanes);
}

void ChunkEmitter::writeRow(Value source, Value t, Value dest, ValueRange destPrefix, Value width,
                            Value factor, Value streaming) {
  auto at = [&](Value j) { return concat(destPrefix, {j}); };
  emitStreamingChoice(b, streaming, [&](bool stream) {
    if (!stream) {
      loop(index(0), width, [&](Value j) {
        Value x = load(source, {t, j});
        store(factor ? mul(x, factor) : x, dest, at(j));
      });
      return;
    }
    auto vectorType = VectorType::get({tiling.lanes}, b.getF32Type());
    Value scaling = factor ? vector::BroadcastOp::create(b, vectorType, factor).getResult() : Value();
    auto columns = scf::ForOp::create(b, index(0), width, index(tiling.lanes));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(columns.getBody());
    Value j = columns.getInductionVar();
    Value x = vector::LoadOp::create(b, vectorType, source, ValueRange{t, j});
    storeStreaming(b, scaling ? mul(x, scaling) : x, dest, at(j));
  });
}

MatrixView ChunkEmitter::rowMajor(Value buffer) {
  return {buffer, [](Value i, Value j) -> SmallVector<Value> { return {i, j}; }};
}

MatrixView ChunkEmitter::tokenRows(const Chunk &chunk, Value buffer) {
  return {buffer, [this, base = chunk.qkBase](Value i, Value c) -> SmallVector<Value> {
            return {arith::AddIOp::create(b, base, i), c};
          }};
}

MatrixView ChunkEmitter::valueRows(const Chunk &chunk) { return rowMajor(chunk.values); }

void ChunkEmitter::decayRows(const Chunk &chunk, Value source, Value from, Value to, Value ref,
                             Value dest, bool later) {
  runningDecay(chunk, from, to, ref, later, [&](Value i, Value c, Value decay) {
    store(mul(load(source, {qkRow(chunk, i), c}), decay), dest, {arith::SubIOp::create(b, i, from), c});
  });
}

void ChunkEmitter::runningDecay(const Chunk &chunk, Value from, Value to, Value ref, bool later,
                                function_ref<void(Value, Value, Value)> use) {
  Value zero = index(0), one = index(1);
  auto multiplyStep = [&](Value u) {
    Value ru = row(chunk, u);
    loop(zero, keyDim, [&](Value c) { store(mul(load(chunk.product, c), load(chunk.step, {ru, c})), chunk.product, c); });
  };
  loop(zero, keyDim, [&](Value c) { store(real(1.0), chunk.product, c); });
  // Token i's decay is its neighbour's (nearer ref) times one step, unless i
  // is ref itself (decay 1); the steps between ref and the range come first.
  auto visit = [&](Value i, Value applies, Value stepRow) {
    loop(zero, keyDim, [&](Value c) {
      Value factor = arith::SelectOp::create(b, applies, load(chunk.step, {stepRow, c}), real(1.0));
      Value decay = mul(load(chunk.product, c), factor);
      store(decay, chunk.product, c);
      use(i, c, decay);
    });
  };
  if (later) {
    // exp(G_i - G_ref) = prod of the steps of tokens ref+1 .. i.
    loop(ref ? arith::AddIOp::create(b, ref, one).getResult() : zero, from, multiplyStep);
    loop(from, to, [&](Value i) {
      Value applies = ref ? arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, i, ref).getResult()
                          : arith::ConstantIntOp::create(b, 1, 1).getResult();
      visit(i, applies, row(chunk, i));
    });
    return;
  }
  // exp(G_ref - G_i) = prod of the steps of tokens i+1 .. ref.
  loop(arith::AddIOp::create(b, to, one), arith::AddIOp::create(b, ref, one), multiplyStep);
  reverseLoop(from, to, [&](Value i) {
    Value applies = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, i, ref);
    // At i = ref the step is not applied; its row stays within the chunk.
    Value next = arith::MinUIOp::create(b, arith::AddIOp::create(b, i, one), ref);
    visit(i, applies, row(chunk, next));
  });
}

void ChunkEmitter::computeScores(const Chunk &chunk) {
  // A is written for t, s < length, zero above the diagonal: the matmuls
  // that read it stop at the chunk's length.
  if (spec.isPerChannel()) {
    // Secondary chunking (MATH.md section 2) in sub-blocks of kSubBlock tokens.
    // For a sub-block starting at token r and every earlier token s:
    //   A_ts = sum_c (q_tc exp(G_tc - G_rc)) (k_sc exp(G_rc - G_sc)),
    // both factors <= 1: a register-tiled product of the sub-block's decayed
    // queries and the earlier keys decayed to r (earlierScores); inside the
    // sub-block the scores are computed pair by pair, the decay a running
    // product (exp(G_t - G_s) may not be split there).
    forEachSubBlock(chunk, [&](const SubBlock &block) { subBlockScores(chunk, block); });
    return;
  }
  scalarScores(chunk);
}

void ChunkEmitter::forEachChannelStrip(Value count, function_ref<void(Value, Value)> body) {
  forEachChannelStripCarrying(
      count, [](Value) { return SmallVector<Value>(); },
      [&](Value c, Value like, ValueRange) {
        body(c, like);
        return SmallVector<Value>();
      });
}

ChunkEmitter::StripResults ChunkEmitter::forEachChannelStripCarrying(
    Value count, function_ref<SmallVector<Value>(Value)> initial,
    function_ref<SmallVector<Value>(Value, Value, ValueRange)> body) {
  auto lanes = VectorType::get({tiling.lanes}, b.getF32Type());
  Value full = floorToMultiple(b, count, tiling.lanes);
  auto strip = [&](Value from, Value to, int64_t step, Value like) {
    auto strips = scf::ForOp::create(b, from, to, index(step), initial(like));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(strips.getBody());
    SmallVector<Value> next = body(strips.getInductionVar(), like, strips.getRegionIterArgs());
    if (!next.empty())
      scf::YieldOp::create(b, next);
    return SmallVector<Value>(strips.getResults());
  };
  StripResults results;
  results.vectors = strip(index(0), full, tiling.lanes, arith::ConstantOp::create(b, DenseElementsAttr::get(lanes, 0.0f)));
  results.scalars = strip(full, count, 1, real(0.0));
  return results;
}

void ChunkEmitter::forEachSubBlock(const Chunk &chunk, function_ref<void(const SubBlock &)> body) {
  auto blocks = scf::ForOp::create(b, index(0), chunk.length, index(kSubBlock));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(blocks.getBody());
  Value first = blocks.getInductionVar();
  Value end = arith::MinSIOp::create(b, arith::AddIOp::create(b, first, index(kSubBlock)), chunk.length);
  body(SubBlock{first, end, arith::SubIOp::create(b, end, first)});
}

void ChunkEmitter::subBlockScores(const Chunk &chunk, const SubBlock &block) {
  Value r = block.first, blockEnd = block.end, blockLength = block.length;
  // Earlier tokens: k_sc exp(G_rc - G_sc), transposed (keysT's columns s < r).
  carryKeysToSubBlock(chunk, r);
  // The sub-block's queries, transposed: sub[c, i] = q_tc exp(G_tc - G_rc),
  // t = r + i, decayed row by row in the work buffer (contiguous, so the
  // products vectorize), then transposed.
  decayRows(chunk, chunk.q, r, blockEnd, r, chunk.work, /*later=*/true);
  emitTranspose(b, tiling, rowMajor(chunk.sub), rowMajor(chunk.work), blockLength, keyDim);
  earlierScores(chunk, block);
  // Inside the sub-block: a whole sub-block with every pair's sums in
  // registers where they fit (32 vector registers), else pair by pair.
  if (tiling.lanes < kSubBlock) {
    pairScores(chunk, block);
  } else {
    Value whole = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, blockLength, index(kSubBlock));
    auto ifOp = scf::IfOp::create(b, whole, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    wholeBlockPairScores(chunk, r);
    b.setInsertionPointToStart(ifOp.elseBlock());
    pairScores(chunk, block);
  }
  // Zero above the diagonal.
  loop(r, blockEnd, [&](Value t) {
    loop(arith::AddIOp::create(b, t, index(1)), chunk.length, [&](Value src) { store(real(0.0), chunk.a, {t, src}); });
  });
}

void ChunkEmitter::carryKeysToSubBlock(const Chunk &chunk, Value r) {
  // keysT's columns s < r - kSubBlock hold the keys decayed to r - kSubBlock:
  // one sub-block further, times exp(G_r - G_{r - kSubBlock}) (<= 1). The
  // previous sub-block's keys are decayed to r and transposed in after them.
  Value zero = index(0);
  auto after = scf::IfOp::create(b, arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, r, zero));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(after.thenBlock());
  Value previous = arith::SubIOp::create(b, r, index(kSubBlock));
  Value rowNow = row(chunk, r), rowBefore = row(chunk, previous);
  auto lanes = VectorType::get({tiling.lanes}, b.getF32Type());
  // The factors first, in a loop of their own (LLVM vectorizes its exps).
  loop(zero, keyDim, [&](Value c) { store(exp(exponentBetweenRows(chunk, rowNow, rowBefore, c)), chunk.carried, c); });
  loop(zero, keyDim, [&](Value c) {
    Value factor = vector::BroadcastOp::create(b, lanes, load(chunk.carried, c));
    // previous is a multiple of kSubBlock, so of the lanes.
    auto columns = scf::ForOp::create(b, zero, previous, index(tiling.lanes));
    OpBuilder::InsertionGuard inner(b);
    b.setInsertionPointToStart(columns.getBody());
    Value s = columns.getInductionVar();
    Value keys = vector::LoadOp::create(b, lanes, chunk.keysT, ValueRange{c, s});
    vector::StoreOp::create(b, mul(keys, factor), chunk.keysT, ValueRange{c, s});
  });
  decayRows(chunk, chunk.k, previous, r, r, chunk.work, /*later=*/false);
  MatrixView columnsFromPrevious{chunk.keysT, [&, previous](Value c, Value i) {
                                   return SmallVector<Value>{c, arith::AddIOp::create(b, previous, i)};
                                 }};
  emitTranspose(b, tiling, columnsFromPrevious, rowMajor(chunk.work), index(kSubBlock), keyDim);
}

void ChunkEmitter::earlierScores(const Chunk &chunk, const SubBlock &block) {
  // A[r + i, s] = sum_c sub[c, i] keysT[c, s] for s < r: a vector of earlier
  // tokens (keysT's row c) against each row i of the sub-block (broadcast),
  // `rows` rows per pass, their accumulators taking half the vector
  // registers (AVX-512: 16 of 32, all 16 rows; AVX2: 8 of 16).
  Value zero = index(0), r = block.first;
  const int64_t rows = tiling.lanes >= kSubBlock ? kSubBlock : kSubBlock / 2;
  auto lanes = VectorType::get({tiling.lanes}, b.getF32Type());
  Value zeros = arith::ConstantOp::create(b, DenseElementsAttr::get(lanes, 0.0f));
  auto tiles = scf::ForOp::create(b, zero, r, index(tiling.lanes));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(tiles.getBody());
  Value s = tiles.getInductionVar();
  for (int64_t first = 0; first < kSubBlock; first += rows) {
    // A pass after the first only where the sub-block reaches its rows.
    OpBuilder::InsertionGuard pass(b);
    if (first > 0) {
      Value reached = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, index(first), block.length);
      b.setInsertionPointToStart(scf::IfOp::create(b, reached).thenBlock());
    }
    auto channels = scf::ForOp::create(b, zero, keyDim, index(1), SmallVector<Value>(rows, zeros));
    {
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(channels.getBody());
      Value c = channels.getInductionVar();
      Value keys = vector::LoadOp::create(b, lanes, chunk.keysT, ValueRange{c, s});
      SmallVector<Value> sums;
      for (int64_t i = 0; i < rows; ++i) {
        Value query = vector::BroadcastOp::create(b, lanes, load(chunk.sub, {c, index(first + i)}));
        sums.push_back(vector::FMAOp::create(b, query, keys, channels.getRegionIterArgs()[i]));
      }
      scf::YieldOp::create(b, sums);
    }
    // Rows past a short sub-block's end are left unwritten.
    for (int64_t i = 0; i < rows; ++i) {
      Value inBlock = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, index(first + i), block.length);
      auto write = scf::IfOp::create(b, inBlock);
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(write.thenBlock());
      vector::StoreOp::create(b, channels.getResult(i), chunk.a,
                              ValueRange{arith::AddIOp::create(b, r, index(first + i)), s});
    }
  }
}

void ChunkEmitter::pairScores(const Chunk &chunk, const SubBlock &block) {
  // Key by key: the key decayed to token t is the key decayed to t - 1 times
  // exp(g_t) (every factor <= 1), so that a score costs a multiply per
  // channel rather than an exponential.
  Value zero = index(0);
  loop(block.first, block.end, [&](Value src) {
    Value rs = qkRow(chunk, src);
    loop(zero, keyDim, [&](Value c) { store(load(chunk.k, {rs, c}), chunk.carried, c); });
    loop(src, block.end, [&](Value t) {
      Value rt = row(chunk, t), qt = qkRow(chunk, t);
      // One pass over the channels: the key decayed one more step (not at
      // t = src), then its product with the query.
      Value later = arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, t, src);
      Value score = sum(keyDim, [&](Value c) {
        Value factor = arith::SelectOp::create(b, later, load(chunk.step, {rt, c}), real(1.0));
        Value decayed = mul(load(chunk.carried, c), factor);
        store(decayed, chunk.carried, c);
        return mul(load(chunk.q, {qt, c}), decayed);
      });
      store(score, chunk.a, {t, src});
    });
  });
}

void ChunkEmitter::wholeBlockPairScores(const Chunk &chunk, Value r) {
  // For each key (unrolled), per strip of channels: the key decayed step by
  // step to each later token of the sub-block (as pairScores), each pair's
  // partial sum in its own register; the sums are reduced once at the end.
  auto flags = arith::FastMathFlags::reassoc | arith::FastMathFlags::contract;
  for (int64_t source = 0; source < kSubBlock; ++source) {
    Value src = arith::AddIOp::create(b, r, index(source));
    SmallVector<Value> tokens, rows, qkRows;
    for (int64_t t = source; t < kSubBlock; ++t) {
      tokens.push_back(arith::AddIOp::create(b, r, index(t)));
      rows.push_back(row(chunk, tokens.back()));
      qkRows.push_back(qkRow(chunk, tokens.back()));
    }
    // Each pair's sum over the channels, per strip (the strip's zeros, `like`, to start).
    StripResults sums = forEachChannelStripCarrying(
        keyDim, [&](Value like) { return SmallVector<Value>(tokens.size(), like); },
        [&](Value c, Value like, ValueRange partial) {
          Value decayed = loadMatching(b, like, chunk.k, {qkRow(chunk, src), c});
          SmallVector<Value> next;
          for (size_t u = 0; u < tokens.size(); ++u) {
            if (u > 0)
              decayed = mul(decayed, loadMatching(b, like, chunk.step, {rows[u], c}));
            Value query = loadMatching(b, like, chunk.q, {qkRows[u], c});
            next.push_back(math::FmaOp::create(b, query, decayed, partial[u]));
          }
          return next;
        });
    for (size_t u = 0; u < tokens.size(); ++u) {
      Value total = vector::ReductionOp::create(b, vector::CombiningKind::ADD, sums.vectors[u], sums.scalars[u], flags);
      store(total, chunk.a, {tokens[u], src});
    }
  }
}

void ChunkEmitter::scalarScores(const Chunk &chunk) {
  // Scalar decay: A = (Q K^T) * exp(G_t - G_s), masked; Q K^T as a matmul
  // against K transposed into the work buffer ([K, C]).
  MatrixView keysT = rowMajor(chunk.work);
  emitTranspose(b, tiling, keysT, tokenRows(chunk, chunk.k), chunk.length, keyDim);
  emitTileMatmul(b, tiling, rowMajor(chunk.a), [&](Value t, Value c) { return load(chunk.q, {qkRow(chunk, t), c}); }, keysT,
                 chunk.length, chunk.length, keyDim, /*accumulate=*/false, Triangle::LowerC);
  applyScalarDecayMask(chunk, chunk.a, /*strict=*/false);
}

void ChunkEmitter::applyScalarDecayMask(const Chunk &chunk, Value matrix, bool strict) {
  Value zero = index(0), one = index(1);
  // Mask before exponentiating: above the diagonal the exponent is -inf. The
  // scalar decay's G and its low part (channel 0) are gathered into rows 0
  // and 1 of the work buffer first, so the loop reads them contiguously.
  loop(zero, chunk.length, [&](Value s) {
    Value rs = row(chunk, s);
    store(load(chunk.g, {rs, zero}), chunk.work, {zero, s});
    store(load(chunk.gLow, {rs, zero}), chunk.work, {one, s});
  });
  Value minusInfinity = real(-std::numeric_limits<double>::infinity());
  auto kept = strict ? arith::CmpIPredicate::ult : arith::CmpIPredicate::ule;
  loop(zero, chunk.length, [&](Value t) {
    Value gt = load(chunk.work, {zero, t}), lowT = load(chunk.work, {one, t});
    loop(zero, chunk.length, [&](Value s) {
      Value causal = arith::CmpIOp::create(b, kept, s, t);
      Value difference = add(sub(gt, load(chunk.work, {zero, s})), sub(lowT, load(chunk.work, {one, s})));
      Value exponent = arith::SelectOp::create(b, causal, difference, minusInfinity);
      // Above the diagonal the matrix may hold anything (the tiled matmuls
      // skip it): select 0 rather than multiply by exp(-inf).
      Value decayed = mul(load(matrix, {t, s}), exp(exponent));
      store(arith::SelectOp::create(b, causal, decayed, real(0.0)), matrix, {t, s});
    });
  });
}

void ChunkEmitter::chunkNumerators(const ElementIndex &at, const Chunk &chunk, Value state,
                                   ValueRange statePrefix) {
  Value zero = index(0);
  // out = (Q * exp(G)) H + A V
  if (spec.isPerChannel()) {
    decayRows(chunk, chunk.q, zero, chunk.length, /*ref=*/nullptr, chunk.work, /*later=*/true);
  } else {
    loop(zero, chunk.length, [&](Value t) {
      Value decay = exp(cumulative(chunk, t, zero));
      loop(zero, keyDim, [&](Value c) { store(mul(load(chunk.q, {qkRow(chunk, t), c}), decay), chunk.work, {t, c}); });
    });
  }
  SmallVector<Value> prefix(statePrefix);
  MatrixView out = rowMajor(chunk.out);
  MatrixView stateRows{state, [prefix](Value c, Value j) {
                         SmallVector<Value> indices(prefix);
                         indices.append({c, j});
                         return indices;
                       }};
  emitTileMatmul(b, tiling, out, [&](Value t, Value c) { return load(chunk.work, {t, c}); }, stateRows,
                 chunk.length, valueDim, keyDim, /*accumulate=*/false);
  emitTileMatmul(b, tiling, out, [&](Value t, Value s) { return load(chunk.a, {t, s}); },
                 valueRows(chunk), chunk.length, valueDim, chunk.length, /*accumulate=*/true,
                 Triangle::LowerA);
}

Value ChunkEmitter::chunkDenominator(const Chunk &chunk, Value t, Value norm, ValueRange normPrefix) {
  Value through = arith::AddIOp::create(b, t, index(1));
  Value fromState = sum(keyDim, [&](Value c) {
    return mul(mul(load(chunk.q, {qkRow(chunk, t), c}), exp(cumulative(chunk, t, c))),
               load(norm, concat(normPrefix, {c})));
  });
  Value fromChunk = sum(through, [&](Value s) { return load(chunk.a, {t, s}); });
  return add(add(fromState, fromChunk), real(spec.getEffectiveEps()));
}

void ChunkEmitter::advanceState(const ElementIndex &at, const Chunk &chunk, Value state,
                                ValueRange statePrefix, Value norm, ValueRange normPrefix,
                                bool transposed, function_ref<void(Value, Value, Value)> saveState) {
  Value zero = index(0);
  Value last = arith::SubIOp::create(b, chunk.length, index(1));
  // The decays diag(exp(G_last)) gathered per channel; z decayed.
  loop(zero, keyDim, [&](Value c) {
    Value decay = exp(cumulative(chunk, last, c));
    store(decay, chunk.carried, c);
    if (spec.getNormalizer()) {
      SmallVector<Value> where = concat(normPrefix, {c});
      store(mul(decay, load(norm, where)), norm, where);
    }
  });
  // Kd = K * exp(G_last - G) in the work buffer; H <- diag(exp(G_last)) H +
  // Kd^T V (H^T <- H^T diag(exp(G_last)) + V^T Kd), H's decay applied to
  // each tile as the product loads it; z += sum_s Kd_s.
  if (spec.isPerChannel()) {
    decayRows(chunk, chunk.k, zero, chunk.length, last, chunk.work, /*later=*/false);
  } else {
    loop(zero, chunk.length, [&](Value s) {
      Value decay = decayBetween(chunk, last, s, zero);
      loop(zero, keyDim, [&](Value c) { store(mul(load(chunk.k, {qkRow(chunk, s), c}), decay), chunk.work, {s, c}); });
    });
  }
  SmallVector<Value> prefix(statePrefix);
  MatrixView stateRows{state, [prefix](Value i, Value j) {
                         SmallVector<Value> indices(prefix);
                         indices.append({i, j});
                         return indices;
                       }};
  auto decayed = [&](Value i, Value j, Value h) {
    if (saveState)
      saveState(i, j, h);
    Value decay = transposed ? loadMatching(b, h, chunk.carried, {j}) : splatMatching(b, h, load(chunk.carried, i));
    return mul(decay, h);
  };
  if (transposed) {
    emitTileMatmul(b, tiling, stateRows, [&](Value j, Value s) { return load(chunk.values, {s, j}); },
                   rowMajor(chunk.work), valueDim, keyDim, chunk.length, /*accumulate=*/true, Triangle::None,
                   MatmulFusion{decayed, {}});
  } else {
    emitTileMatmul(b, tiling, stateRows, [&](Value c, Value s) { return load(chunk.work, {s, c}); },
                   valueRows(chunk), keyDim, valueDim, chunk.length, /*accumulate=*/true, Triangle::None,
                   MatmulFusion{decayed, {}});
  }
  if (spec.getNormalizer())
    loop(zero, keyDim, [&](Value c) {
      SmallVector<Value> where = concat(normPrefix, {c});
      store(add(load(norm, where), sum(chunk.length, [&](Value s) { return load(chunk.work, {s, c}); })),
            norm, where);
    });
}
