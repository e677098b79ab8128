// The chunk algorithm on the GPU, shared by the forward and backward chunk kernels: staging, scores, warp matmuls.
#include "GpuChunkEmitter.h"

#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

#include <limits>

using namespace mlir;
using namespace decay;

SmallVector<WorkspaceBuffer> decay::preparedRows(RecurrenceOp spec, const GpuShape &shape) {
  int64_t decayRows = spec.isPerChannel() ? shape.keyDim : 1;
  return {{"q", shape.keyDim}, {"k", shape.keyDim}, {"g", decayRows}, {"g_low", decayRows}};
}

void decay::recordLaunch(gpu::GPUFuncOp fn, ArrayRef<std::pair<StringRef, int64_t>> grid, int64_t sharedBytes) {
  Builder b(fn.getContext());
  SmallVector<Attribute> dims;
  for (auto [letters, divide] : grid)
    dims.push_back(b.getDictionaryAttr({b.getNamedAttr("dims", b.getStringAttr(letters)),
                                        b.getNamedAttr("divide", b.getI64IntegerAttr(divide))}));
  fn->setAttr("decay.grid", b.getArrayAttr(dims));
  fn->setAttr("decay.dynamic_shared_bytes", b.getI64IntegerAttr(sharedBytes));
}

namespace {
class PrepareKernelBuilder : GpuKernelEmitter {
public:
  using GpuKernelEmitter::GpuKernelEmitter;
  void build(bool backward, ArrayRef<WorkspaceBuffer> buffers, ArrayRef<std::string> zeroed);
};

void PrepareKernelBuilder::build(bool backward, ArrayRef<WorkspaceBuffer> buffers,
                                 ArrayRef<std::string> zeroed) {
  RecurrenceArgs args;
  SmallVector<Value> unused;
  std::string name = (spec.getSymName() + (backward ? "_backward_prepare" : "_forward_prepare")).str();
  createKernel(name, backward, shape.keyDim, buffers, args, unused);
  Value wq = workspace("q"), wk = workspace("k"), wg = workspace("g"), wgLow = workspace("g_low");
  Value zero = index(0);
  Value c = threadIndex();
  Value item = blockIndex(gpu::Dimension::x);
  Value n = arith::DivUIOp::create(b, item, numHeads), h = arith::RemUIOp::create(b, item, numHeads);
  auto [batch, start, end] = loadSequence(args.seqs, n);
  bool perChannel = spec.isPerChannel();
  Value isFirstChannel = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, c, zero);
  Value always = arith::ConstantIntOp::create(b, 1, 1);
  Value writer = perChannel ? always : isFirstChannel; // who stores per-token decay values
  Value column = perChannel ? c : zero;
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
        ScanValues values = advanceScan(op, scanStates[scan], zero, x);
        if (backward)
          when(writer, [&] {
            store(values.prev, workspace(("scan_prev_" + Twine(scan)).str()), {batch, t, h, column});
          });
        return values;
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
    when(writer, [&] {
      store(total, wg, {batch, t, h, column});
      store(lowTotal, wgLow, {batch, t, h, column});
    });
    store(featureMap(load(args.q, {batch, t, h, c})), wq, {batch, t, h, c});
    Value key = yielded.size() == 2 ? yielded[1] : featureMap(load(args.k, {batch, t, h, c}));
    store(key, wk, {batch, t, h, c});
    for (const std::string &zeroedName : zeroed) {
      const WorkspaceBuffer *buffer = llvm::find_if(buffers, [&](const WorkspaceBuffer &w) {
        return w.name == zeroedName;
      });
      Value target = workspace(zeroedName);
      if (buffer->rows == shape.keyDim)
        store(real(0.0), target, {batch, t, h, c});
      else
        when(isFirstChannel, [&] { store(real(0.0), target, {batch, t, h, zero}); });
    }
    if (spec.getRopeTheta()) {
      barrier(); // the row's channels are all written
      RopeFrame frame = ropeFrame(local);
      when(lessThan(c, frame.half), [&] {
        rotatePair(wq, {batch, t, h}, frame, c, /*inverse=*/false);
        rotatePair(wk, {batch, t, h}, frame, c, /*inverse=*/false);
      });
    }
  });
  if (!backward)
    for (auto [state, final] : llvm::zip(scanStates, args.scanHt)) {
      Value from = state, to = final;
      when(writer, [&] { store(load(from, zero), to, scanWhere()); });
    }
}
} // namespace

void decay::buildPrepareKernel(RecurrenceOp spec, const GpuShape &shape, bool backward,
                               ArrayRef<WorkspaceBuffer> workspace, ArrayRef<std::string> zeroed,
                               ImplicitLocOpBuilder &b) {
  PrepareKernelBuilder(spec, shape, b).build(backward, workspace, zeroed);
}

void GpuChunkEmitter::beginChunkKernel(StringRef name, bool backward, ArrayRef<WorkspaceBuffer> workspace) {
  createKernel(name, backward, kThreads, workspace, args, ws);
  int64_t chunk = shape.chunkSize, keys = shape.keyDim, values = shape.valueTile;
  int64_t decayRows = spec.isPerChannel() ? keys : 1;
  // Rows padded by 4 floats: the lanes of a fragment load hit distinct banks.
  qs = sharedBuffer({chunk, keys + 4});
  ks = sharedBuffer({chunk, keys + 4});
  gs = sharedBuffer({chunk, decayRows == 1 ? 1 : decayRows + 4});
  gLows = sharedBuffer({chunk, decayRows == 1 ? 1 : decayRows + 4});
  vs = sharedBuffer({chunk, values + 4});
  as = sharedBuffer({chunk, chunk + 4});
  Value thread = threadIndex();
  warp = arith::DivUIOp::create(b, thread, index(32));
  mma = std::make_unique<WarpMma>(b, arith::RemUIOp::create(b, thread, index(32)));
  Value item = blockIndex(gpu::Dimension::x);
  n = arith::DivUIOp::create(b, item, numHeads);
  h = arith::RemUIOp::create(b, item, numHeads);
  valueFirst = arith::MulIOp::create(b, blockIndex(gpu::Dimension::y), index(values));
  sequence = loadSequence(args.seqs, n);
}

Value GpuChunkEmitter::exponent(Value t, Value s, Value c) {
  Value column = decayColumn(c);
  return add(sub(load(gs, {t, column}), load(gs, {s, column})),
             sub(load(gLows, {t, column}), load(gLows, {s, column})));
}

Value GpuChunkEmitter::cumulative(Value t, Value c) {
  Value column = decayColumn(c);
  return add(load(gs, {t, column}), load(gLows, {t, column}));
}

Tiles GpuChunkEmitter::zeroTiles(int64_t rows, int64_t columns) {
  return Tiles{rows, columns, SmallVector<Value>(rows * columns, mma->zero())};
}

void GpuChunkEmitter::accumulate(Tiles &tiles, Value kBegin, Value kEnd,
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

void GpuChunkEmitter::stageChunk(Value chunkFirst, Value length,
                                 ArrayRef<std::tuple<Value, Value, Value>> perToken) {
  int64_t chunk = shape.chunkSize, keys = shape.keyDim;
  Value last = arith::SubIOp::create(b, length, index(1));
  Value batch = sequence.batch;
  // Row r of the chunk reads token first + min(r, last): rows past the end
  // copy the last token's G (q, k, v are zero-filled there instead).
  auto tokenOfRow = [&](Value r) {
    return arith::AddIOp::create(b, chunkFirst, arith::MinSIOp::create(b, r, last)).getResult();
  };
  // f32 rows go global -> shared with cp.async, `lanes` elements (4 bytes
  // each) per copy, zero-filled past the chunk's end unless `repeatLast`.
  auto copyAsync = [&](Value from, Value to, Value columnFirst, int64_t width, bool repeatLast) {
    int64_t lanes = width % 4 == 0 ? 4 : 1;
    strided(index(0), index(chunk * width / lanes), kThreads, [&](Value i) {
      Value r = arith::DivUIOp::create(b, i, index(width / lanes));
      Value c = arith::MulIOp::create(b, arith::RemUIOp::create(b, i, index(width / lanes)), index(lanes));
      Value column = arith::AddIOp::create(b, columnFirst, c);
      Value sourceElements =
          repeatLast ? Value()
                     : arith::SelectOp::create(b, lessThan(r, length), index(lanes), index(0)).getResult();
      nvgpu::DeviceAsyncCopyOp::create(b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), to,
                                       ValueRange{r, c}, from, ValueRange{batch, tokenOfRow(r), h, column},
                                       b.getIndexAttr(lanes), sourceElements, UnitAttr());
    });
  };
  // Rows of other element types (bf16) are widened by plain loads.
  auto copyWidening = [&](Value from, Value to, Value columnFirst, int64_t width) {
    strided(index(0), index(chunk * width), kThreads, [&](Value i) {
      Value r = arith::DivUIOp::create(b, i, index(width));
      Value j = arith::RemUIOp::create(b, i, index(width));
      Value value = load(from, {batch, tokenOfRow(r), h, arith::AddIOp::create(b, columnFirst, j)});
      store(arith::SelectOp::create(b, lessThan(r, length), value, real(0.0)), to, {r, j});
    });
  };
  Value zero = index(0);
  int64_t decayRows = spec.isPerChannel() ? keys : 1;
  copyAsync(workspace("q"), qs, zero, keys, /*repeatLast=*/false);
  copyAsync(workspace("k"), ks, zero, keys, /*repeatLast=*/false);
  copyAsync(workspace("g"), gs, zero, decayRows, /*repeatLast=*/true);
  copyAsync(workspace("g_low"), gLows, zero, decayRows, /*repeatLast=*/true);
  SmallVector<std::tuple<Value, Value, Value>> tiles = {{args.v, vs, valueFirst}};
  llvm::append_range(tiles, perToken);
  for (auto [source, target, columnFirst] : tiles) {
    int64_t width = cast<MemRefType>(target.getType()).getDimSize(1) - 4;
    if (cast<MemRefType>(source.getType()).getElementType().isF32())
      copyAsync(source, target, columnFirst, width, /*repeatLast=*/false);
    else
      copyWidening(source, target, columnFirst, width);
  }
  // Commit this thread's copies as one group and wait for it; the barrier
  // that follows makes every thread's copies visible to the block.
  Value group = nvgpu::DeviceAsyncCreateGroupOp::create(b, nvgpu::DeviceAsyncTokenType::get(b.getContext()),
                                                        ValueRange{});
  nvgpu::DeviceAsyncWaitOp::create(b, group, b.getI32IntegerAttr(0));
}

Value GpuChunkEmitter::rowBlockFirst() {
  return arith::MulIOp::create(b, arith::DivUIOp::create(b, warp, index(2)), index(16));
}

Value GpuChunkEmitter::columnBlockFirst() {
  return arith::MulIOp::create(b, arith::RemUIOp::create(b, warp, index(2)), index(16));
}

Value GpuChunkEmitter::tokenOf(Value first, int64_t tile, Value offset) {
  return arith::AddIOp::create(b, first, arith::AddIOp::create(b, index(8 * tile), offset)).getResult();
}

Value GpuChunkEmitter::slotOf(Value chunkIndex) {
  // n + batch (ceil(T / C) + 1) + floor(start / C) + i: distinct for the
  // chunks of batch rows (start 0, n = batch) and of varlen sequences (batch 0).
  Value chunk = index(shape.chunkSize);
  Value chunksPerRow = arith::CeilDivSIOp::create(b, sizeT, chunk);
  Value rowBase = arith::MulIOp::create(b, sequence.batch, arith::AddIOp::create(b, chunksPerRow, index(1)));
  Value startChunks = arith::DivUIOp::create(b, sequence.start, chunk);
  return arith::AddIOp::create(
      b, arith::AddIOp::create(b, n, rowBase), arith::AddIOp::create(b, startChunks, chunkIndex));
}

std::pair<Value, Value> GpuChunkEmitter::chunkAt(Value chunkIndex) {
  Value first = arith::AddIOp::create(b, sequence.start, arith::MulIOp::create(b, chunkIndex, index(shape.chunkSize)));
  Value count = arith::MinSIOp::create(b, index(shape.chunkSize), arith::SubIOp::create(b, sequence.end, first));
  return {first, count};
}

Value GpuChunkEmitter::chunkCount() {
  Value length = arith::SubIOp::create(b, sequence.end, sequence.start);
  return arith::CeilDivSIOp::create(b, length, index(shape.chunkSize));
}

void GpuChunkEmitter::copyStateTile(Value state, Value shared, bool toState) {
  int64_t values = shape.valueTile;
  strided(index(0), index(shape.keyDim * values), kThreads, [&](Value i) {
    Value c = arith::DivUIOp::create(b, i, index(values)), j = arith::RemUIOp::create(b, i, index(values));
    SmallVector<Value> global = {n, h, c, arith::AddIOp::create(b, valueFirst, j)};
    if (toState)
      store(load(shared, {c, j}), state, global);
    else
      store(load(state, global), shared, {c, j});
  });
}

void GpuChunkEmitter::advanceSharedState(Value state, Value last, int64_t tilesPerPass,
                                         function_ref<Value(Value, Value)> a,
                                         function_ref<Value(Value, Value)> bElement) {
  int64_t rowTiles = shape.keyDim / kWarps / 16;
  Value keyFirst = arith::MulIOp::create(b, warp, index(shape.keyDim / kWarps));
  auto keyOf = [&](int64_t rt, Value r) {
    return arith::AddIOp::create(b, keyFirst, arith::AddIOp::create(b, index(16 * rt), r)).getResult();
  };
  for (int64_t pass = 0; pass < shape.valueTile / 8 / tilesPerPass; ++pass) {
    auto columnOf = [&](int64_t ct, Value nn) {
      return arith::AddIOp::create(b, index(8 * (pass * tilesPerPass + ct)), nn).getResult();
    };
    Tiles tiles{rowTiles, tilesPerPass, {}};
    for (int64_t rt = 0; rt < rowTiles; ++rt)
      for (int64_t ct = 0; ct < tilesPerPass; ++ct) {
        Value acc = mma->zero();
        for (int i = 0; i < 4; ++i) {
          Value c = keyOf(rt, mma->row(i));
          Value decayed = mul(exp(cumulative(last, c)), load(state, {c, columnOf(ct, mma->column(i))}));
          acc = mma->withElement(acc, i, decayed);
        }
        tiles.acc.push_back(acc);
      }
    accumulate(
        tiles, index(0), index(shape.chunkSize),
        [&](int64_t rt, Value r, Value s) { return a(keyOf(rt, r), s); },
        [&](int64_t ct, Value s, Value nn) { return bElement(s, columnOf(ct, nn)); });
    for (int64_t rt = 0; rt < rowTiles; ++rt)
      for (int64_t ct = 0; ct < tilesPerPass; ++ct)
        for (int i = 0; i < 4; ++i)
          store(mma->element(tiles.acc[rt * tilesPerPass + ct], i), state,
                {keyOf(rt, mma->row(i)), columnOf(ct, mma->column(i))});
  }
}

void GpuChunkEmitter::scores() {
  Value rowBlock = arith::DivUIOp::create(b, warp, index(2));
  Value columnBlock = arith::RemUIOp::create(b, warp, index(2));
  Value rowFirst = rowBlockFirst(), columnFirst = columnBlockFirst();
  auto storeBlock = [&](const Tiles &tiles, function_ref<Value(Value t, Value s, Value value)> finish) {
    for (int64_t ct = 0; ct < tiles.columns; ++ct)
      for (int i = 0; i < 4; ++i) {
        Value t = arith::AddIOp::create(b, rowFirst, mma->row(i));
        Value s = tokenOf(columnFirst, ct, mma->column(i));
        store(finish(t, s, mma->element(tiles.acc[ct], i)), as, {t, s});
      }
  };
  Tiles block = zeroTiles(1, 2);
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
      storeBlock(block, [&](Value t, Value s, Value) {
        Value causal = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, s, t);
        Value score = sum(keyDim, [&](Value c) {
          Value e = arith::MinimumFOp::create(b, exponent(t, s, c), real(0.0));
          return mul(mul(load(qs, {t, c}), load(ks, {s, c})), exp(e));
        });
        return arith::SelectOp::create(b, causal, score, real(0.0)).getResult();
      });
    });
  }
  when(arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, columnBlock, rowBlock),
       [&] { storeBlock(block, [](Value, Value, Value value) { return value; }); });
}
