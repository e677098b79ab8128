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
//
// The backward's <name>_backward_states is the same sweep storing the state
// (and normalizer) entering each chunk instead of the outputs.
#include "GpuChunkEmitter.h"

using namespace mlir;
using namespace decay;

namespace {
/// What a chunk sweep produces.
enum class Sweep {
  Outputs, ///< the forward: o, ht (and norm_ht)
  States   ///< the backward's recomputation: each chunk's entering state, and
           ///< with a normalizer den and the partial do . o of every token
};

class ChunkSweepBuilder : GpuChunkEmitter {
public:
  using GpuChunkEmitter::GpuChunkEmitter;
  /// Builds the kernel; returns its dynamic shared memory in bytes.
  int64_t build(Sweep sweep, ArrayRef<WorkspaceBuffer> buffers);

private:
  void denominators();
  /// The numerators (Q * exp(G)) H + A V of warp w's 16 rows and 32 value columns.
  Tiles numerators();
  Value outputColumn(int64_t ct, Value nn);
  void storeOutputs(const Tiles &out, Value chunkFirst, Value length);
  /// dot[t] += sum over the tile's columns of do_tj num_tj / den_t.
  void accumulateDots(const Tiles &out, Value chunkFirst, Value length);
  void storeEnteringState(Value chunkIndex);
  void advanceState(Value length);

  Value hs, zs, dens, dotParts; ///< shared memory
};

void ChunkSweepBuilder::denominators() {
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

Value ChunkSweepBuilder::outputColumn(int64_t ct, Value nn) {
  // Warp w: value columns 32 (w % 2) .. + 31 of the tile.
  Value columnFirst = arith::MulIOp::create(b, arith::RemUIOp::create(b, warp, index(2)), index(32));
  return arith::AddIOp::create(b, columnFirst, arith::AddIOp::create(b, index(8 * ct), nn));
}

Tiles ChunkSweepBuilder::numerators() {
  Value rowFirst = rowBlockFirst();
  Tiles out = zeroTiles(1, 4);
  accumulate(
      out, index(0), keyDim,
      [&](int64_t, Value r, Value c) {
        Value t = arith::AddIOp::create(b, rowFirst, r);
        return mul(load(qs, {t, c}), exp(cumulative(t, c)));
      },
      [&](int64_t ct, Value c, Value nn) { return load(hs, {c, outputColumn(ct, nn)}); });
  // A V up to the diagonal (A is zero above it).
  accumulate(
      out, index(0), arith::AddIOp::create(b, rowFirst, index(16)),
      [&](int64_t, Value r, Value s) { return load(as, {arith::AddIOp::create(b, rowFirst, r), s}); },
      [&](int64_t ct, Value s, Value nn) { return load(vs, {s, outputColumn(ct, nn)}); });
  return out;
}

void ChunkSweepBuilder::storeOutputs(const Tiles &out, Value chunkFirst, Value length) {
  Value rowFirst = rowBlockFirst();
  for (int64_t ct = 0; ct < out.columns; ++ct)
    for (int i = 0; i < 4; ++i) {
      Value t = arith::AddIOp::create(b, rowFirst, mma->row(i));
      Value j = outputColumn(ct, mma->column(i));
      when(lessThan(t, length), [&] {
        Value factor = spec.getNormalizer() ? div(real(1.0), load(dens, t)) : scale;
        Value token = arith::AddIOp::create(b, chunkFirst, t);
        store(mul(mma->element(out.acc[ct], i), factor), args.o,
              {sequence.batch, token, h, arith::AddIOp::create(b, valueFirst, j)});
      });
    }
}

void ChunkSweepBuilder::accumulateDots(const Tiles &out, Value chunkFirst, Value length) {
  Value rowFirst = rowBlockFirst();
  Value last = arith::SubIOp::create(b, length, index(1));
  // Each lane's share of its two rows (g, g + 8), over its 8 columns.
  SmallVector<Value> partial = {real(0.0), real(0.0)};
  for (int64_t ct = 0; ct < out.columns; ++ct)
    for (int i = 0; i < 4; ++i) {
      Value t = arith::AddIOp::create(b, rowFirst, mma->row(i));
      Value token = arith::AddIOp::create(b, chunkFirst, arith::MinSIOp::create(b, t, last));
      Value j = arith::AddIOp::create(b, valueFirst, outputColumn(ct, mma->column(i)));
      Value product = mul(load(args.dout, {sequence.batch, token, h, j}), mma->element(out.acc[ct], i));
      partial[i / 2] = add(partial[i / 2], product);
    }
  // The four lanes of a quad hold the same rows: sum them by shuffles.
  for (Value &value : partial)
    for (int32_t offset : {1, 2})
      value = add(value, gpu::ShuffleOp::create(b, value, offset, 32, gpu::ShuffleMode::XOR).getShuffleResult());
  Value lane = arith::RemUIOp::create(b, threadIndex(), index(32));
  Value half = arith::RemUIOp::create(b, warp, index(2));
  when(arith::CmpIOp::create(b, arith::CmpIPredicate::eq, arith::RemUIOp::create(b, lane, index(4)), index(0)),
       [&] {
         for (int r = 0; r < 2; ++r)
           store(partial[r], dotParts, {arith::AddIOp::create(b, rowFirst, mma->row(2 * r)), half});
       });
  barrier();
  // One addition per (token, value tile), the two halves in a fixed order.
  when(lessThan(threadIndex(), length), [&] {
    Value t = threadIndex();
    Value total = div(add(load(dotParts, {t, index(0)}), load(dotParts, {t, index(1)})), load(dens, t));
    Value token = arith::AddIOp::create(b, chunkFirst, t);
    memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addf, total, workspace("dot"),
                                ValueRange{sequence.batch, token, h, index(0)});
    when(arith::CmpIOp::create(b, arith::CmpIPredicate::eq, valueFirst, index(0)),
         [&] { store(load(dens, t), workspace("den"), {sequence.batch, token, h, index(0)}); });
  });
}

void ChunkSweepBuilder::storeEnteringState(Value chunkIndex) {
  Value slot = slotOf(chunkIndex);
  int64_t values = shape.valueTile;
  strided(index(0), index(shape.keyDim * values), kThreads, [&](Value i) {
    Value c = arith::DivUIOp::create(b, i, index(values)), j = arith::RemUIOp::create(b, i, index(values));
    Value row = arith::AddIOp::create(b, arith::MulIOp::create(b, c, valueDim), arith::AddIOp::create(b, valueFirst, j));
    store(load(hs, {c, j}), workspace("states"), {slot, h, row});
  });
  // The first tile also zeroes the chunk's edge terms, which the gradient
  // kernel adds into.
  when(arith::CmpIOp::create(b, arith::CmpIPredicate::eq, valueFirst, index(0)), [&] {
    strided(index(0), keyDim, kThreads, [&](Value c) {
      if (spec.getNormalizer())
        store(load(zs, c), workspace("norm_states"), {slot, h, c});
      store(real(0.0), workspace("edge"), {slot, h, c});
    });
  });
}

void ChunkSweepBuilder::advanceState(Value length) {
  // H <- exp(G_last) H + (K exp(G_last - G))^T V, every value tile at once.
  Value last = arith::SubIOp::create(b, length, index(1));
  advanceSharedState(
      hs, last, shape.valueTile / 8,
      [&](Value c, Value s) { return mul(load(ks, {s, c}), exp(exponent(last, s, c))); },
      [&](Value s, Value j) { return load(vs, {s, j}); });
  if (spec.getNormalizer())
    when(lessThan(threadIndex(), keyDim), [&] {
      Value c = threadIndex();
      Value added = sum(length, [&](Value s) { return mul(load(ks, {s, c}), exp(exponent(last, s, c))); });
      store(add(mul(exp(cumulative(last, c)), load(zs, c)), added), zs, c);
    });
}

int64_t ChunkSweepBuilder::build(Sweep sweep, ArrayRef<WorkspaceBuffer> buffers) {
  bool outputs = sweep == Sweep::Outputs;
  std::string name = (spec.getSymName() + (outputs ? "_forward_chunks" : "_backward_states")).str();
  beginChunkKernel(name, /*backward=*/!outputs, buffers);
  int64_t chunk = shape.chunkSize, keys = shape.keyDim, values = shape.valueTile;
  hs = sharedBuffer({keys, values + 4});
  if (spec.getNormalizer()) {
    zs = sharedBuffer({keys});
    dens = sharedBuffer({chunk});
    if (!outputs)
      dotParts = sharedBuffer({chunk, 2});
  }
  Value zero = index(0);
  // The state entering the sequence (h0 is an input of both entries).
  copyStateTile(args.h0, hs, /*toState=*/false);
  if (spec.getNormalizer())
    strided(zero, keyDim, kThreads, [&](Value c) { store(load(args.normH0, {n, h, c}), zs, c); });
  loop(zero, chunkCount(), [&](Value ci) {
    auto [first, count] = chunkAt(ci);
    barrier(); // the previous chunk's state is written
    stageChunk(first, count);
    if (!outputs)
      storeEnteringState(ci);
    barrier();
    if (outputs || spec.getNormalizer()) {
      scores();
      barrier();
      if (spec.getNormalizer()) {
        denominators();
        barrier();
      }
      Tiles out = numerators();
      if (outputs)
        storeOutputs(out, first, count);
      else
        accumulateDots(out, first, count);
    }
    barrier(); // every warp has read H
    advanceState(count);
  });
  if (outputs) {
    barrier();
    copyStateTile(args.ht, hs, /*toState=*/true);
    if (spec.getNormalizer())
      when(arith::CmpIOp::create(b, arith::CmpIPredicate::eq, valueFirst, zero), [&] {
        strided(zero, keyDim, kThreads, [&](Value c) { store(load(zs, c), args.normHt, {n, h, c}); });
      });
  }
  return sharedBytes();
}
} // namespace

int64_t decay::buildChunkSweep(RecurrenceOp spec, const GpuShape &shape, bool states,
                               ArrayRef<WorkspaceBuffer> workspace, ImplicitLocOpBuilder &b) {
  return ChunkSweepBuilder(spec, shape, b).build(states ? Sweep::States : Sweep::Outputs, workspace);
}

SmallVector<WorkspaceBuffer> decay::buildGpuForward(RecurrenceOp spec, const GpuShape &shape,
                                                    gpu::GPUModuleOp module) {
  SmallVector<WorkspaceBuffer> workspace = preparedRows(spec, shape);
  ImplicitLocOpBuilder b(spec.getLoc(), module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  {
    OpBuilder::InsertionGuard guard(b);
    buildPrepareKernel(spec, shape, /*backward=*/false, workspace, {}, b);
  }
  recordLaunch(cast<gpu::GPUFuncOp>(&module.getBody()->back()), {{"NH", 1}, {"", 1}, {"", 1}}, 0);
  int64_t shared;
  {
    OpBuilder::InsertionGuard guard(b);
    shared = buildChunkSweep(spec, shape, /*states=*/false, workspace, b);
  }
  recordLaunch(cast<gpu::GPUFuncOp>(&module.getBody()->back()), {{"NH", 1}, {"V", shape.valueTile}, {"", 1}},
               shared);
  return workspace;
}
