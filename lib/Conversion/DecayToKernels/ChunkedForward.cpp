// The chunked forward kernel (MATH.md section 2): parallel over (sequence, group of heads), sequential over chunks.
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
  /// One work item: heads [firstHead, endHead) of sequence n, chunk by
  /// chunk, each chunk for every head of the group in turn.
  void runSequence(Value n, Value firstHead, Value endHead);
  /// One chunk of one head: its outputs, and the state carried to the next chunk.
  void runChunk(const ElementIndex &at, Value start, Chunk &chunk);
  /// o = scale * num (with the normalizer: num / den) of every token of the
  /// chunk: with non-temporal stores where streamingOutputs holds (o is
  /// written once and read by the caller: no cache line of it is fetched).
  void storeOutputs(const ElementIndex &at, const Chunk &chunk);

  RecurrenceArgs args;
  /// Whether o takes writeRow's streaming stores (streamableRows).
  Value streamingOutputs;
};

void ChunkedForwardBuilder::runChunk(const ElementIndex &at, Value start, Chunk &chunk) {
  Value n = at.n, h = at.h;
  bindQueryKeyRows(chunk, at.b, h);
  phase("prepareChunk", [&] {
    prepareChunk(at, start, chunk, [&](const ElementIndex &e, unsigned scan, Operation *op, Value x) {
      return advanceScan(op, args.scanHt[scan], scanIndices(e), x);
    });
  });
  phase("computeScores", [&] { computeScores(chunk); });
  phase("chunkNumerators", [&] { chunkNumerators(at, chunk, args.ht, {n, h}); });
  phase("outputs", [&] { storeOutputs(at, chunk); });
  phase("advanceState", [&] { advanceState(at, chunk, args.ht, {n, h}, args.normHt, {n, h}); });
}

void ChunkedForwardBuilder::storeOutputs(const ElementIndex &at, const Chunk &chunk) {
  Value zero = index(0);
  Value n = at.n, h = at.h;
  loop(zero, chunk.length, [&](Value t) {
    Value factor = spec.getNormalizer()
                       ? div(real(1.0), chunkDenominator(chunk, t, args.normHt, {n, h}))
                       : scale;
    Value token = arith::AddIOp::create(b, chunk.first, t);
    writeRow(chunk.out, t, args.o, {at.b, token, h}, valueDim, factor, streamingOutputs);
  });
}

void ChunkedForwardBuilder::runSequence(Value n, Value firstHead, Value endHead) {
  Value zero = index(0), size = index(chunkSize);
  SequenceBounds sequence = loadSequence(args.seqs, n);
  Value batch = sequence.batch, start = sequence.start, end = sequence.end;
  loop(firstHead, endHead, [&](Value h) { copyInitialStates(args, n, h); });
  streamingOutputs = streamableRows(args.o);
  Chunk chunk;
  chunk.base = zero;
  allocateChunk(chunk, size);
  auto chunks = scf::ForOp::create(b, start, end, size);
  {
    OpBuilder::InsertionGuard inner(b);
    b.setInsertionPointToStart(chunks.getBody());
    chunk.first = chunks.getInductionVar();
    chunk.length = arith::MinSIOp::create(b, size, arith::SubIOp::create(b, end, chunk.first));
    loop(firstHead, endHead, [&](Value h) { runChunk(ElementIndex{n, batch, nullptr, h, nullptr}, start, chunk); });
  }
  releaseChunk(chunk);
  if (streamingOutputs)
    fenceStreamingStores(b);
}

func::FuncOp ChunkedForwardBuilder::build() {
  return buildGroupedKernel((spec.getSymName() + "_forward").str(), /*backward=*/false, args,
                            [&](Value n, Value first, Value end) { runSequence(n, first, end); });
}
} // namespace

func::FuncOp decay::buildChunkedForward(RecurrenceOp spec, int64_t chunkSize,
                                        const RegisterTiling &tiling, ImplicitLocOpBuilder &b,
                                        bool phaseLocations) {
  return ChunkedForwardBuilder(spec, chunkSize, tiling, b, phaseLocations).build();
}
