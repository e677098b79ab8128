// The chunk algorithm shared by the chunked forward and backward kernels (MATH.md sections 2 and 3).
#include "ChunkEmitter.h"

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

Value ChunkEmitter::row(const Chunk &chunk, Value i) { return arith::AddIOp::create(b, chunk.base, i); }

Value ChunkEmitter::cumulative(const Chunk &chunk, Value t, Value c) {
  return load(chunk.g, {row(chunk, t), c});
}

Value ChunkEmitter::decayBetween(const Chunk &chunk, Value t, Value s, Value c) {
  return exp(sub(cumulative(chunk, t, c), cumulative(chunk, s, c)));
}

void ChunkEmitter::prepareChunk(
    const ElementIndex &at, Value start, const Chunk &chunk,
    function_ref<ScanValues(const ElementIndex &, unsigned, Operation *, Value)> scan) {
  Value zero = index(0);
  loop(zero, chunk.length, [&](Value i) {
    ElementIndex element = at;
    element.t = arith::AddIOp::create(b, chunk.first, i);
    Value r = row(chunk, i);
    // The previous row's cumulative log-decay (0 on the chunk's first row).
    Value previousRow = arith::SubIOp::create(b, arith::MaxSIOp::create(b, r, index(1)), index(1));
    Value isFirst = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, i, zero);
    auto accumulate = [&](Value c, Value g) {
      Value before = arith::SelectOp::create(b, isFirst, real(0.0), load(chunk.g, {previousRow, c}));
      store(add(before, g), chunk.g, {r, c});
    };
    auto evaluate = [&](const ElementIndex &e) {
      Block &block = spec.getBody().front();
      IRMapping mapping;
      mapSpecArguments(block, mapping, e);
      return emitBlock(block, mapping, e, [&](unsigned s, Operation *op, Value x) {
        return scan(e, s, op, x);
      });
    };
    if (spec.getGranularity() == Granularity::none) {
      loop(zero, keyDim, [&](Value c) { accumulate(c, real(0.0)); });
    } else if (spec.isPerChannel()) {
      loop(zero, keyDim, [&](Value c) {
        ElementIndex channel = element;
        channel.c = c;
        SmallVector<Value> yielded = evaluate(channel);
        accumulate(c, yielded[0]);
        if (yielded.size() == 2)
          store(yielded[1], chunk.k, {r, c});
      });
    } else {
      Value g = evaluate(element)[0];
      loop(zero, keyDim, [&](Value c) { accumulate(c, g); });
    }
    loop(zero, keyDim, [&](Value c) {
      store(featureMap(load(q, {at.b, element.t, at.h, c})), chunk.q, {r, c});
      if (!spec.hasDerivedKey())
        store(featureMap(load(k, {at.b, element.t, at.h, c})), chunk.k, {r, c});
    });
    if (spec.getRopeTheta()) {
      Value pos = arith::SubIOp::create(b, element.t, start);
      applyRope(chunk.q, r, pos, /*inverse=*/false);
      applyRope(chunk.k, r, pos, /*inverse=*/false);
    }
  });
}

void ChunkEmitter::computeScores(const Chunk &chunk) {
  Value zero = index(0);
  bool perChannel = spec.isPerChannel();
  loop(zero, chunk.length, [&](Value t) {
    Value through = arith::AddIOp::create(b, t, index(1));
    Value rt = row(chunk, t);
    loop(zero, through, [&](Value s) {
      Value rs = row(chunk, s);
      Value score = sum(keyDim, [&](Value c) {
        Value product = mul(load(chunk.q, {rt, c}), load(chunk.k, {rs, c}));
        return perChannel ? mul(product, decayBetween(chunk, t, s, c)) : product;
      });
      if (!perChannel)
        score = mul(score, decayBetween(chunk, t, s, zero));
      store(score, chunk.a, {t, s});
    });
  });
}

Value ChunkEmitter::chunkNumerator(const ElementIndex &at, const Chunk &chunk, Value t, Value state,
                                   ValueRange statePrefix, Value norm, ValueRange normPrefix,
                                   Value out) {
  Value zero = index(0);
  Value rt = row(chunk, t);
  loop(zero, valueDim, [&](Value j) { store(real(0.0), out, j); });
  // (q_t * exp(G_t))^T H
  loop(zero, keyDim, [&](Value c) {
    Value weight = mul(load(chunk.q, {rt, c}), exp(cumulative(chunk, t, c)));
    loop(zero, valueDim, [&](Value j) {
      store(add(load(out, j), mul(weight, load(state, concat(statePrefix, {c, j})))), out, j);
    });
  });
  // + sum_{s<=t} A_ts v_s
  Value through = arith::AddIOp::create(b, t, index(1));
  loop(zero, through, [&](Value s) {
    Value weight = load(chunk.a, {t, s});
    Value source = arith::AddIOp::create(b, chunk.first, s);
    loop(zero, valueDim, [&](Value j) {
      store(add(load(out, j), mul(weight, load(v, {at.b, source, at.h, j}))), out, j);
    });
  });
  if (!spec.getNormalizer())
    return nullptr;
  Value fromState = sum(keyDim, [&](Value c) {
    return mul(mul(load(chunk.q, {rt, c}), exp(cumulative(chunk, t, c))),
               load(norm, concat(normPrefix, {c})));
  });
  Value fromChunk = sum(through, [&](Value s) { return load(chunk.a, {t, s}); });
  return add(add(fromState, fromChunk), real(spec.getEffectiveEps()));
}

void ChunkEmitter::advanceState(const ElementIndex &at, const Chunk &chunk, Value state,
                                ValueRange statePrefix, Value norm, ValueRange normPrefix) {
  Value zero = index(0);
  Value last = arith::SubIOp::create(b, chunk.length, index(1));
  loop(zero, keyDim, [&](Value c) {
    Value decay = exp(cumulative(chunk, last, c));
    loop(zero, valueDim, [&](Value j) {
      SmallVector<Value> where = concat(statePrefix, {c, j});
      store(mul(decay, load(state, where)), state, where);
    });
    if (spec.getNormalizer()) {
      SmallVector<Value> where = concat(normPrefix, {c});
      store(mul(decay, load(norm, where)), norm, where);
    }
  });
  loop(zero, chunk.length, [&](Value s) {
    Value source = arith::AddIOp::create(b, chunk.first, s);
    loop(zero, keyDim, [&](Value c) {
      Value weight = mul(load(chunk.k, {row(chunk, s), c}), decayBetween(chunk, last, s, c));
      loop(zero, valueDim, [&](Value j) {
        SmallVector<Value> where = concat(statePrefix, {c, j});
        store(add(load(state, where), mul(weight, load(v, {at.b, source, at.h, j}))), state, where);
      });
      if (spec.getNormalizer()) {
        SmallVector<Value> where = concat(normPrefix, {c});
        store(add(load(norm, where), weight), norm, where);
      }
    });
  });
}
