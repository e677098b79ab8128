// The chunked forward kernel (MATH.md section 2): parallel over (sequence, head), sequential over chunks.
//
// Per chunk of C tokens, with G the inclusive cumsum of the log-decay inside
// the chunk and H the state entering it:
//   A_ts  = sum_c q_tc k_sc exp(G_tc - G_sc)        (s <= t; masked before exp)
//   o_t   = scale [ (q_t * exp(G_t))^T H + sum_{s<=t} A_ts v_s ]
//   H'    = diag(exp(G_last)) H + sum_s (k_s * exp(G_last - G_s)) v_s^T
// Every exponent is "later minus earlier" within one chunk (the exponent
// safety rule). The normalizer z is the same recurrence with v = 1.
#include "ChunkEmitter.h"
#include "KernelBuilders.h"

using namespace mlir;
using namespace decay;

namespace {
class ChunkedForwardBuilder : ChunkEmitter {
public:
  using ChunkEmitter::ChunkEmitter;
  func::FuncOp build();

private:
  /// One (sequence, head) work item.
  void runSequence(Value n, Value h);

  RecurrenceArgs args;
};

void ChunkedForwardBuilder::runSequence(Value n, Value h) {
  Value zero = index(0), size = index(chunkSize);
  auto [batch, start, end] = loadSequence(args.seqs, n);
  ElementIndex at{n, batch, nullptr, h, nullptr};
  copyInitialStates(args, n, h);
  Chunk chunk;
  chunk.base = zero;
  allocateChunk(chunk, size);
  auto chunks = scf::ForOp::create(b, start, end, size);
  {
    OpBuilder::InsertionGuard inner(b);
    b.setInsertionPointToStart(chunks.getBody());
    chunk.first = chunks.getInductionVar();
    chunk.length = arith::MinSIOp::create(b, size, arith::SubIOp::create(b, end, chunk.first));
    prepareChunk(at, start, chunk, [&](const ElementIndex &e, unsigned scan, Operation *op, Value x) {
      return advanceScan(op, args.scanHt[scan], scanIndices(e), x);
    });
    computeScores(chunk);
    chunkNumerators(at, chunk, args.ht, {n, h});
    loop(zero, chunk.length, [&](Value t) {
      Value factor = spec.getNormalizer()
                         ? div(real(1.0), chunkDenominator(chunk, t, args.normHt, {n, h}))
                         : scale;
      Value token = arith::AddIOp::create(b, chunk.first, t);
      loop(zero, valueDim, [&](Value j) {
        store(mul(load(chunk.out, {t, j}), factor), args.o, {batch, token, h, j});
      });
    });
    advanceState(at, chunk, args.ht, {n, h}, args.normHt, {n, h});
  }
  releaseChunk(chunk);
}

func::FuncOp ChunkedForwardBuilder::build() {
  return buildKernel((spec.getSymName() + "_forward").str(), /*backward=*/false, args,
                     [&](Value n, Value h) { runSequence(n, h); });
}
} // namespace

func::FuncOp decay::buildChunkedForward(RecurrenceOp spec, int64_t chunkSize,
                                        ImplicitLocOpBuilder &b) {
  return ChunkedForwardBuilder(spec, chunkSize, b).build();
}
