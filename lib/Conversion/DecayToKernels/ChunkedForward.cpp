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

#include "mlir/Dialect/Vector/IR/VectorOps.h"

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
  /// chunk: with non-temporal stores where streamingOutputs holds.
  void storeOutputs(const ElementIndex &at, const Chunk &chunk);
  /// o[b, token, h, :] = factor * out[t, :] with plain (vectorized) stores.
  void storeOutputRow(const ElementIndex &at, const Chunk &chunk, Value t, Value token, Value factor);
  /// The same with aligned non-temporal vector stores (o is written once and
  /// read by the caller, after the kernel: no cache line of it is fetched).
  void streamOutputRow(const ElementIndex &at, const Chunk &chunk, Value t, Value token, Value factor);

  RecurrenceArgs args;
  /// Whether o's rows take aligned f32 vectors (rowsAlignedToVectors; null for bf16 o).
  Value streamingOutputs;
};

void ChunkedForwardBuilder::runChunk(const ElementIndex &at, Value start, Chunk &chunk) {
  Value n = at.n, h = at.h;
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
    if (!streamingOutputs) {
      storeOutputRow(at, chunk, t, token, factor);
      return;
    }
    auto choice = scf::IfOp::create(b, streamingOutputs, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(choice.thenBlock());
    streamOutputRow(at, chunk, t, token, factor);
    b.setInsertionPointToStart(choice.elseBlock());
    storeOutputRow(at, chunk, t, token, factor);
  });
}

void ChunkedForwardBuilder::storeOutputRow(const ElementIndex &at, const Chunk &chunk, Value t, Value token,
                                           Value factor) {
  loop(index(0), valueDim, [&](Value j) {
    store(mul(load(chunk.out, {t, j}), factor), args.o, {at.b, token, at.h, j});
  });
}

void ChunkedForwardBuilder::streamOutputRow(const ElementIndex &at, const Chunk &chunk, Value t, Value token,
                                            Value factor) {
  auto vectorType = VectorType::get({tiling.lanes}, b.getF32Type());
  Value scaling = vector::BroadcastOp::create(b, vectorType, factor);
  auto columns = scf::ForOp::create(b, index(0), valueDim, index(tiling.lanes));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(columns.getBody());
  Value j = columns.getInductionVar();
  Value numerator = vector::LoadOp::create(b, vectorType, chunk.out, ValueRange{t, j});
  storeStreaming(b, mul(numerator, scaling), args.o, {at.b, token, at.h, j});
}

void ChunkedForwardBuilder::runSequence(Value n, Value firstHead, Value endHead) {
  Value zero = index(0), size = index(chunkSize);
  SequenceBounds sequence = loadSequence(args.seqs, n);
  Value batch = sequence.batch, start = sequence.start, end = sequence.end;
  loop(firstHead, endHead, [&](Value h) { copyInitialStates(args, n, h); });
  bool f32Outputs = cast<MemRefType>(args.o.getType()).getElementType().isF32();
  streamingOutputs = f32Outputs ? rowsAlignedToVectors(b, args.o, tiling.lanes) : Value();
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
