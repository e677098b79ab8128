// The chunked forward kernel (MATH.md section 2): parallel over (sequence, head), sequential over chunks.
//
// Per chunk of C tokens, with G the inclusive cumsum of the log-decay inside
// the chunk and H the state entering it:
//   A_ts  = sum_c q_tc k_sc exp(G_tc - G_sc)        (s <= t; masked before exp)
//   o_t   = scale [ (q_t * exp(G_t))^T H + sum_{s<=t} A_ts v_s ]
//   H'    = diag(exp(G_last)) H + sum_s (k_s * exp(G_last - G_s)) v_s^T
// Every exponent is "later minus earlier" within one chunk (the exponent
// safety rule). The normalizer z is the same recurrence with v = 1.
#include "KernelBuilders.h"

#include "decay/Conversion/Passes.h"

using namespace mlir;
using namespace decay;

namespace {
class ChunkedForwardBuilder : RecurrenceEmitter {
public:
  ChunkedForwardBuilder(RecurrenceOp spec, int64_t chunkSize, ImplicitLocOpBuilder &b)
      : RecurrenceEmitter(spec, b, b.getF32Type()), chunkSize(chunkSize) {}
  func::FuncOp build();

private:
  /// Scratch of one (sequence, head) work item.
  struct Chunk {
    Value q, k, g, a, row; // [C,K], [C,K], [C,K] cumulative log-decay, [C,C], [V]
    Value first, length;   // first token of the chunk, number of tokens in it
  };
  /// Fills q, k (feature-mapped, rotated) and the cumulative log-decay of the chunk.
  void prepareChunk(const ElementIndex &at, Value start, const Chunk &chunk);
  /// Computes the masked decayed scores A of the chunk.
  void computeScores(const Chunk &chunk);
  /// Writes o for the chunk's tokens from the entering state and A.
  void computeOutputs(const ElementIndex &at, const Chunk &chunk);
  /// Advances the state (and z) over the chunk.
  void updateState(const ElementIndex &at, const Chunk &chunk);
  /// The log-decay cumulated from the chunk start to row `i`, channel `c`.
  Value cumulative(const Chunk &chunk, Value i, Value c) { return load(chunk.g, {i, c}); }

  int64_t chunkSize;
  Value q, k, v, h0, seqs, normH0, o, ht, normHt;
  SmallVector<Value> scanH0, scanHt;
};

void ChunkedForwardBuilder::prepareChunk(const ElementIndex &at, Value start, const Chunk &chunk) {
  Value zero = index(0);
  loop(zero, chunk.length, [&](Value i) {
    ElementIndex element = at;
    element.t = arith::AddIOp::create(b, chunk.first, i);
    // The previous row's cumulative log-decay (0 on the first row).
    Value previousRow = arith::SubIOp::create(b, arith::MaxSIOp::create(b, i, index(1)), index(1));
    Value isFirst = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, i, zero);
    auto accumulate = [&](Value c, Value g) {
      Value before = arith::SelectOp::create(b, isFirst, real(0.0), load(chunk.g, {previousRow, c}));
      store(add(before, g), chunk.g, {i, c});
    };
    auto scanHook = [&](const ElementIndex &e) {
      return [&, e](unsigned scan, Operation *op, Value x) {
        SmallVector<Value> where = scanIndices(e);
        Value prev = load(scanHt[scan], where);
        Value cur = isa<CumSumOp>(op) ? add(prev, x) : logAddExp(prev, x);
        store(cur, scanHt[scan], where);
        return ScanValues{prev, cur};
      };
    };
    if (spec.getGranularity() == Granularity::none) {
      loop(zero, keyDim, [&](Value c) { accumulate(c, real(0.0)); });
    } else if (spec.isPerChannel()) {
      loop(zero, keyDim, [&](Value c) {
        ElementIndex channel = element;
        channel.c = c;
        Block &block = spec.getBody().front();
        IRMapping mapping;
        mapSpecArguments(block, mapping, channel);
        SmallVector<Value> yielded = emitBlock(block, mapping, channel, scanHook(channel));
        accumulate(c, yielded[0]);
        if (yielded.size() == 2)
          store(yielded[1], chunk.k, {i, c});
      });
    } else {
      Block &block = spec.getBody().front();
      IRMapping mapping;
      mapSpecArguments(block, mapping, element);
      Value g = emitBlock(block, mapping, element, scanHook(element))[0];
      loop(zero, keyDim, [&](Value c) { accumulate(c, g); });
    }
    loop(zero, keyDim, [&](Value c) {
      store(featureMap(load(q, {at.b, element.t, at.h, c})), chunk.q, {i, c});
      if (!spec.hasDerivedKey())
        store(featureMap(load(k, {at.b, element.t, at.h, c})), chunk.k, {i, c});
    });
    if (spec.getRopeTheta()) {
      Value pos = arith::SubIOp::create(b, element.t, start);
      applyRope(chunk.q, i, pos, /*inverse=*/false);
      applyRope(chunk.k, i, pos, /*inverse=*/false);
    }
  });
}

void ChunkedForwardBuilder::computeScores(const Chunk &chunk) {
  Value zero = index(0);
  bool perChannel = spec.isPerChannel();
  loop(zero, chunk.length, [&](Value t) {
    Value through = arith::AddIOp::create(b, t, index(1));
    loop(zero, through, [&](Value s) {
      Value score = sum(keyDim, [&](Value c) {
        Value product = mul(load(chunk.q, {t, c}), load(chunk.k, {s, c}));
        if (!perChannel)
          return product;
        return mul(product, exp(sub(cumulative(chunk, t, c), cumulative(chunk, s, c))));
      });
      if (!perChannel)
        score = mul(score, exp(sub(cumulative(chunk, t, zero), cumulative(chunk, s, zero))));
      store(score, chunk.a, {t, s});
    });
  });
}

void ChunkedForwardBuilder::computeOutputs(const ElementIndex &at, const Chunk &chunk) {
  Value zero = index(0);
  bool normalizer = spec.getNormalizer();
  loop(zero, chunk.length, [&](Value t) {
    Value token = arith::AddIOp::create(b, chunk.first, t);
    loop(zero, valueDim, [&](Value j) { store(real(0.0), chunk.row, j); });
    // (q_t * exp(G_t))^T H
    loop(zero, keyDim, [&](Value c) {
      Value weight = mul(load(chunk.q, {t, c}), exp(cumulative(chunk, t, c)));
      loop(zero, valueDim, [&](Value j) {
        store(add(load(chunk.row, j), mul(weight, load(ht, {at.n, at.h, c, j}))), chunk.row, j);
      });
    });
    // + sum_{s<=t} A_ts v_s
    Value through = arith::AddIOp::create(b, t, index(1));
    loop(zero, through, [&](Value s) {
      Value weight = load(chunk.a, {t, s});
      Value source = arith::AddIOp::create(b, chunk.first, s);
      loop(zero, valueDim, [&](Value j) {
        store(add(load(chunk.row, j), mul(weight, load(v, {at.b, source, at.h, j}))), chunk.row, j);
      });
    });
    Value factor = scale;
    if (normalizer) {
      Value fromState = sum(keyDim, [&](Value c) {
        return mul(mul(load(chunk.q, {t, c}), exp(cumulative(chunk, t, c))), load(normHt, {at.n, at.h, c}));
      });
      Value fromChunk = sum(through, [&](Value s) { return load(chunk.a, {t, s}); });
      factor = div(real(1.0), add(add(fromState, fromChunk), real(spec.getEffectiveEps())));
    }
    loop(zero, valueDim, [&](Value j) { store(mul(load(chunk.row, j), factor), o, {at.b, token, at.h, j}); });
  });
}

void ChunkedForwardBuilder::updateState(const ElementIndex &at, const Chunk &chunk) {
  Value zero = index(0);
  Value last = arith::SubIOp::create(b, chunk.length, index(1));
  loop(zero, keyDim, [&](Value c) {
    Value decay = exp(cumulative(chunk, last, c));
    loop(zero, valueDim, [&](Value j) {
      store(mul(decay, load(ht, {at.n, at.h, c, j})), ht, {at.n, at.h, c, j});
    });
    if (spec.getNormalizer())
      store(mul(decay, load(normHt, {at.n, at.h, c})), normHt, {at.n, at.h, c});
  });
  loop(zero, chunk.length, [&](Value s) {
    Value source = arith::AddIOp::create(b, chunk.first, s);
    loop(zero, keyDim, [&](Value c) {
      Value weight = mul(load(chunk.k, {s, c}), exp(sub(cumulative(chunk, last, c), cumulative(chunk, s, c))));
      loop(zero, valueDim, [&](Value j) {
        Value old = load(ht, {at.n, at.h, c, j});
        store(add(old, mul(weight, load(v, {at.b, source, at.h, j}))), ht, {at.n, at.h, c, j});
      });
      if (spec.getNormalizer())
        store(add(load(normHt, {at.n, at.h, c}), weight), normHt, {at.n, at.h, c});
    });
  });
}

func::FuncOp ChunkedForwardBuilder::build() {
  SmallVector<Type> types(4, dynamicMemRef(4));
  types.push_back(MemRefType::get({ShapedType::kDynamic, 3}, b.getI64Type()));
  for (Attribute dims : llvm::concat<const Attribute>(spec.getInputDims().getValue(),
                                                      spec.getParamDims().getValue()))
    types.push_back(dynamicMemRef(cast<StringAttr>(dims).size()));
  auto appendStates = [&] {
    if (spec.getNormalizer())
      types.push_back(dynamicMemRef(3));
    types.append(scans.size(), dynamicMemRef(spec.isPerChannel() ? 3 : 2));
  };
  appendStates();
  types.append(2, dynamicMemRef(4));
  appendStates();

  auto fn = func::FuncOp::create(b, (spec.getSymName() + "_forward").str(),
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
  q = take(), k = take(), v = take(), h0 = take(), seqs = take();
  for (size_t i = 0; i < spec.getInputNames().size(); ++i)
    inputs.push_back(take());
  for (size_t i = 0; i < spec.getParamNames().size(); ++i)
    params.push_back(take());
  takeStates(normH0, scanH0);
  o = take(), ht = take();
  takeStates(normHt, scanHt);
  bindSizes(q, v);

  Value zero = index(0), one = index(1), size = index(chunkSize);
  Value numSeqs = memref::DimOp::create(b, seqs, 0);
  // One work item per (sequence, head), in parallel.
  auto parallel = scf::ParallelOp::create(b, ValueRange{zero, zero}, ValueRange{numSeqs, numHeads},
                                          ValueRange{one, one});
  {
        OpBuilder::InsertionGuard body(b);
        b.setInsertionPointToStart(parallel.getBody());
        Value n = parallel.getInductionVars()[0], h = parallel.getInductionVars()[1];
        auto field = [&](int64_t i) {
          return arith::IndexCastOp::create(b, b.getIndexType(), load(seqs, {n, index(i)})).getResult();
        };
        Value batch = field(0), start = field(1), end = field(2);
        ElementIndex at{n, batch, nullptr, h, nullptr};
        // The state lives in ht (and norm_ht, scan_<name>_ht) from h0 on.
        loop(zero, keyDim, [&](Value c) {
          loop(zero, valueDim, [&](Value j) { store(load(h0, {n, h, c, j}), ht, {n, h, c, j}); });
          if (spec.getNormalizer())
            store(load(normH0, {n, h, c}), normHt, {n, h, c});
        });
        for (auto [initial, final] : llvm::zip(scanH0, scanHt)) {
          if (!spec.isPerChannel()) {
            store(load(initial, {n, h}), final, {n, h});
            continue;
          }
          Value from = initial, to = final;
          loop(zero, keyDim, [&](Value c) { store(load(from, {n, h, c}), to, {n, h, c}); });
        }
        Chunk chunk;
        chunk.q = alloc({size, keyDim});
        chunk.k = alloc({size, keyDim});
        chunk.g = alloc({size, keyDim});
        chunk.a = alloc({size, size});
        chunk.row = alloc(valueDim);
        auto chunks = scf::ForOp::create(b, start, end, size);
        {
          OpBuilder::InsertionGuard inner(b);
          b.setInsertionPointToStart(chunks.getBody());
          chunk.first = chunks.getInductionVar();
          chunk.length = arith::MinSIOp::create(b, size, arith::SubIOp::create(b, end, chunk.first));
          prepareChunk(at, start, chunk);
          computeScores(chunk);
          computeOutputs(at, chunk);
          updateState(at, chunk);
        }
        for (Value buffer : {chunk.q, chunk.k, chunk.g, chunk.a, chunk.row})
          memref::DeallocOp::create(b, buffer);
  }
  func::ReturnOp::create(b);
  return fn;
}
} // namespace

func::FuncOp decay::buildChunkedForward(RecurrenceOp spec, int64_t chunkSize,
                                        ImplicitLocOpBuilder &b) {
  return ChunkedForwardBuilder(spec, chunkSize, b).build();
}
