// The chunk algorithm shared by the chunked forward and backward kernels (MATH.md sections 2 and 3).
#ifndef DECAY_CONVERSION_DECAYTOKERNELS_CHUNKEMITTER_H
#define DECAY_CONVERSION_DECAYTOKERNELS_CHUNKEMITTER_H

#include "TileMatmul.h"
#include "decay/Conversion/RecurrenceEmitter.h"

namespace decay {

/// The tokens of one chunk and where their per-token rows live.
struct Chunk {
  mlir::Value first;  ///< first token of the chunk (index into T)
  mlir::Value length; ///< tokens in the chunk (<= chunk size)
  mlir::Value base;   ///< row of the chunk's first token in g, gLow, step
  mlir::Value qkBase; ///< row of the chunk's first token in q, k (see bindQueryKeyRows)
  mlir::Value q, k;   ///< [rows, K]: feature-mapped, rotated query and key (staged, or the inputs' rows)
  mlir::Value g;      ///< [rows, K] ([rows, 1] unless per channel): log-decay cumulated from the chunk's first token
  mlir::Value gLow;   ///< like g: the rounding error of g (g + gLow is the exact f32 sum)
  mlir::Value step;   ///< [rows, K]: exp(g_t), the decay of one step (vector decays)
  mlir::Value carried; ///< [K] scratch: a key (or factor) decayed step by step
  mlir::Value product; ///< [K] scratch: the running product of runningDecay
  mlir::Value runningHigh, runningLow; ///< [K]: G and its rounding error so far (prepareChunk)
  mlir::Value a;      ///< [C, C]: masked decayed scores (0 above the diagonal)
  mlir::Value work;   ///< [C, K] scratch: decayed q or k, and transposed k
  mlir::Value out;    ///< [C, V]: the numerators of the chunk's outputs
  mlir::Value values; ///< [C, V]: the chunk's rows of v, staged contiguously
  mlir::Value sub;    ///< [K, 16]: a sub-block's queries, transposed (vector decays only, as the next)
  mlir::Value keysT;  ///< [K, C]: keysT[c, s] = k_sc exp(G_rc - G_sc), s earlier than the sub-block at r (computeScores)
};

/// Tokens per sub-block of the secondary chunking of vector decays.
constexpr int64_t kSubBlock = 16;

/// Heads that one work item of a grouped kernel may take in turn, chunk by
/// chunk: a token's rows of adjacent heads are adjacent in q, k, v and the
/// spec's inputs ([B, T, H, D]), so that an item reads them together instead
/// of one row per page (rows of one head are H * D elements apart).
constexpr int64_t kMaxHeadsPerItem = 4;
/// How many tokens ahead the chunk kernels prefetch the rows they stream.
constexpr int64_t kPrefetchTokens = 8;
/// Grouped kernels keep at least this many work items where there are that
/// many (sequence, head) pairs, so that every thread has work.
constexpr int64_t kMinWorkItems = 8;

/// One sub-block of a chunk: tokens [first, end), chunk-local.
struct SubBlock {
  mlir::Value first, end, length;
};

/// Emits the steps of the chunk algorithm in f32. Derived builders bind the
/// function arguments (q, k, v and the spec's tensors) before using it.
class ChunkEmitter : public RecurrenceEmitter {
public:
  ChunkEmitter(RecurrenceOp spec, int64_t chunkSize, const RegisterTiling &tiling,
               mlir::ImplicitLocOpBuilder &b, bool phaseLocations = false)
      : RecurrenceEmitter(spec, b, b.getF32Type()), chunkSize(chunkSize), tiling(tiling),
        phaseLocations(phaseLocations) {
    reassociateSums = true;
  }

protected:
  /// Emits `body`, a phase of the kernel being built: with phase locations
  /// on, its ops at `<kernel>.<name>`:1 (decay-expand-kernels{phase-locations}).
  void phase(llvm::StringRef name, llvm::function_ref<void()> body);
  /// Creates the kernel `name` with the forward (or backward) signature,
  /// binds `args` and q, k, v, and emits `body(n, j)` in an scf.parallel over
  /// sequences n and j < columns(number of sequences).
  mlir::func::FuncOp buildParallelKernel(llvm::StringRef name, bool backward, RecurrenceArgs &args,
                                         llvm::function_ref<mlir::Value(mlir::Value)> columns,
                                         llvm::function_ref<void(mlir::Value n, mlir::Value j)> body);
  /// Heads per work item of a grouped kernel: clamp(sequences * heads /
  /// kMinWorkItems, 1, kMaxHeadsPerItem).
  mlir::Value headsPerItem(mlir::Value numSeqs);
  /// Creates the kernel `name` (see buildParallelKernel) with work items of
  /// (sequence, group of heads), the kernels' one unit of parallel work:
  /// `item(n, first, end)` handles heads [first, end) of sequence n. Groups
  /// have up to kMaxHeadsPerItem heads, as many as leave at least
  /// kMinWorkItems items (see headsPerItem).
  mlir::func::FuncOp buildGroupedKernel(
      llvm::StringRef name, bool backward, RecurrenceArgs &args,
      llvm::function_ref<void(mlir::Value n, mlir::Value first, mlir::Value end)> item);
  /// Fills the chunk's rows of q, k (feature-mapped, rotated at their position
  /// from `start`), the cumulative log-decay and the staged values; scans are
  /// evaluated by `scan` at each token in order.
  void prepareChunk(const ElementIndex &at, mlir::Value start, const Chunk &chunk,
                    llvm::function_ref<ScanValues(const ElementIndex &, unsigned, mlir::Operation *,
                                                  mlir::Value)>
                        scan);
  /// Allocates the per-chunk buffers of `chunk` (q, k, g, gLow with `rows`
  /// rows) and `releaseChunk` frees them.
  void allocateChunk(Chunk &chunk, mlir::Value rows);
  void releaseChunk(const Chunk &chunk);
  /// A per-token tensor ([B, T, ...], dims in letters of BTHKV) whose rows a
  /// kernel prefetches, for reading or for writing.
  struct StreamedTensor {
    mlir::Value memref;
    llvm::StringRef dims;
    bool write = false;
  };
  /// Prefetches every cache line of token `token`'s row (batch row `batch`,
  /// head `h`) of each of `tensors`. Rows of one head are H * D elements apart
  /// (a page at H * D = 1024 f32), which the hardware prefetcher does not
  /// follow: the kernels prefetch kPrefetchTokens tokens ahead.
  /// Prefetches every cache line of elements [0, width) of one row of
  /// `memref`, element j at `indicesAt(j)`, into the cache level of
  /// `localityHint` (3: L1, 2: L2).
  void prefetchLines(mlir::Value memref, llvm::function_ref<llvm::SmallVector<mlir::Value>(mlir::Value)> indicesAt,
                     mlir::Value width, bool write, int64_t localityHint);
  void prefetchRows(llvm::ArrayRef<StreamedTensor> tensors, mlir::Value batch, mlir::Value token,
                    mlir::Value h);
  /// The spec's per-token inputs (dims starting with B, T), for reading.
  llvm::SmallVector<StreamedTensor> streamedInputs();
  /// Copies the chunk's rows of v into `chunk.values` (prepareChunk does).
  void stageValues(const ElementIndex &at, const Chunk &chunk);
  /// Row `i` of the chunk in its g, gLow and step buffers.
  mlir::Value row(const Chunk &chunk, mlir::Value i);
  /// Row `i` of the chunk in chunk.q and chunk.k.
  mlir::Value qkRow(const Chunk &chunk, mlir::Value i);
  /// Whether the feature-mapped, rotated queries and keys are q and k as
  /// given: identity feature map, no RoPE, no derived key.
  bool queriesAndKeysAsGiven();
  /// Whether the chunk's queries and keys are copies (feature-mapped,
  /// rotated, widened from bf16, a derived key, or a vector decay's, which
  /// its sub-blocks re-read): otherwise chunk.q and chunk.k are views of the
  /// rows of q and k themselves, and prepareChunk copies nothing.
  bool stagesQueriesAndKeys();
  /// Sets chunk.qkBase once chunk.base and chunk.first are set, and, where
  /// the queries and keys are not staged, points chunk.q and chunk.k at the
  /// [T, K] rows of head `h` of batch row `batch` in q and k.
  void bindQueryKeyRows(Chunk &chunk, mlir::Value batch, mlir::Value h);
  /// The column of g and gLow that holds channel `c`'s decay (0 unless per channel).
  mlir::Value decayChannel(mlir::Value c);
  /// G_tc of the chunk (t a chunk-local index).
  mlir::Value cumulative(const Chunk &chunk, mlir::Value t, mlir::Value c);
  /// G_tc - G_sc for rows `rt`, `rs` of the chunk's buffers, as (g_t - g_s) +
  /// (gLow_t - gLow_s): exact to f32 rounding of the difference even where
  /// |G| is large (strong decay), which g_t - g_s alone is not.
  mlir::Value exponentBetweenRows(const Chunk &chunk, mlir::Value rt, mlir::Value rs, mlir::Value c);
  /// exp(G_tc - G_sc), s <= t: the decay from token s to token t.
  mlir::Value decayBetween(const Chunk &chunk, mlir::Value t, mlir::Value s, mlir::Value c);
  /// A_ts = sum_c q_tc k_sc exp(G_tc - G_sc) for s <= t.
  void computeScores(const Chunk &chunk);
  /// dest[i - from, c] = source[row i, c] * exp(G_ic - G_refc) for the chunk's
  /// tokens i in [from, to): rows decayed to (`later`: from) the token `ref`.
  /// The exponent is always later minus earlier (<= 0). Vector decays only
  /// (see runningDecay).
  void decayRows(const Chunk &chunk, mlir::Value source, mlir::Value from, mlir::Value to,
                 mlir::Value ref, mlir::Value dest, bool later);
  /// Vector decays: calls `use(i, c, decay)` for the chunk's tokens i in
  /// [from, to) and every channel c, with decay = exp(G_ic - G_refc) when
  /// `later` (ref <= from; a null ref is the start of the chunk, G = 0), else
  /// exp(G_refc - G_ic) (ref >= to - 1). The decay is a running product of
  /// the steps exp(g) (chunk.step), each <= 1, so that no exponential is
  /// evaluated: a product underflows only where the decay itself is below
  /// f32's range. Tokens are visited away from ref (reverse order unless
  /// `later`).
  void runningDecay(const Chunk &chunk, mlir::Value from, mlir::Value to, mlir::Value ref, bool later,
                    llvm::function_ref<void(mlir::Value i, mlir::Value c, mlir::Value decay)> use);
  /// computeScores for one sub-block of a vector decay (secondary chunking).
  void subBlockScores(const Chunk &chunk, const SubBlock &block);
  /// Before the sub-block at r: keysT's columns s < r set to the earlier
  /// keys decayed to r, from their values for the sub-block before.
  void carryKeysToSubBlock(const Chunk &chunk, mlir::Value r);
  /// subBlockScores' pairs of a query in the sub-block and an earlier key:
  /// A[r + i, s] = sum_c sub[c, i] keysT[c, s], s < r.
  void earlierScores(const Chunk &chunk, const SubBlock &block);
  /// subBlockScores' pairs inside the sub-block (s <= t, both in it), pair
  /// by pair: any length.
  void pairScores(const Chunk &chunk, const SubBlock &block);
  /// pairScores for a whole sub-block (kSubBlock tokens from r): unrolled,
  /// every pair's sum over the channels in a register of its own.
  void wholeBlockPairScores(const Chunk &chunk, mlir::Value r);
  /// computeScores for a scalar decay: a tiled Q K^T, then the decay mask.
  void scalarScores(const Chunk &chunk);
  /// Emits `body(c, like)` over the channels [0, count): `c` steps by a
  /// vector register's lanes while they fill one (`like` a vector of them),
  /// then by one (`like` an f32), so that the body keeps per-channel values
  /// in registers across an inner loop (loadMatching, splatMatching).
  void forEachChannelStrip(mlir::Value count, llvm::function_ref<void(mlir::Value c, mlir::Value like)> body);
  /// The results of forEachChannelStripCarrying's two loops.
  struct StripResults {
    llvm::SmallVector<mlir::Value> vectors, scalars;
  };
  /// forEachChannelStrip with values carried from strip to strip: each of
  /// the two loops starts from `initial(like)`, and `body(c, like, carried)`
  /// returns the values for the next strip; the loops' final values are
  /// returned (the vector strips' and the leftover channels').
  StripResults forEachChannelStripCarrying(
      mlir::Value count, llvm::function_ref<llvm::SmallVector<mlir::Value>(mlir::Value like)> initial,
      llvm::function_ref<llvm::SmallVector<mlir::Value>(mlir::Value c, mlir::Value like, mlir::ValueRange carried)>
          body);
  /// Emits `body` for every sub-block of the chunk, in order.
  void forEachSubBlock(const Chunk &chunk, llvm::function_ref<void(const SubBlock &)> body);
  /// Scalar decays: matrix[t, s] *= exp(G_t - G_s) for s <= t (s < t when
  /// `strict`), and 0 elsewhere; matrix is [C, C], rows and columns chunk-local.
  void applyScalarDecayMask(const Chunk &chunk, mlir::Value matrix, bool strict);
  /// out[t, :] = num_t = (q_t * exp(G_t))^T H + sum_{s<=t} A_ts v_s for every
  /// token t of the chunk (H at `state[statePrefix..., :, :]`).
  void chunkNumerators(const ElementIndex &at, const Chunk &chunk, mlir::Value state,
                       mlir::ValueRange statePrefix);
  /// With the normalizer: den_t = (q_t * exp(G_t)) . z + sum_{s<=t} A_ts + eps.
  mlir::Value chunkDenominator(const Chunk &chunk, mlir::Value t, mlir::Value norm,
                               mlir::ValueRange normPrefix);
  /// H <- diag(exp(G_last)) H + sum_s (k_s * exp(G_last - G_s)) v_s^T, and z
  /// likewise with v = 1.
  /// With `transposed`, the state is held as H^T (`state[statePrefix..., j, c]`).
  /// `saveState(i, j, h)` is given each tile of the state as the update
  /// reads it (before the decay): row i of the state from column j, as a
  /// vector or one element (see MatmulFusion).
  void advanceState(const ElementIndex &at, const Chunk &chunk, mlir::Value state,
                    mlir::ValueRange statePrefix, mlir::Value norm, mlir::ValueRange normPrefix,
                    bool transposed = false,
                    llvm::function_ref<void(mlir::Value i, mlir::Value j, mlir::Value h)> saveState = {});
  /// Where `memref` (a result with f32 rows) may take writeRow's streaming
  /// stores: rowsAlignedToVectors at the target's vector width; null for a
  /// bf16 result.
  mlir::Value streamableRows(mlir::Value memref);
  /// dest[destPrefix..., j] = factor * source[t, j] for j < width (no
  /// factor: a copy), rounded to dest's type: with aligned non-temporal
  /// vector stores where `streaming` holds (an i1 from rowsAlignedToVectors,
  /// dest f32; null: never), else element by element. For rows of the
  /// results (o, dq, dk), written once and read after the kernel.
  void writeRow(mlir::Value source, mlir::Value t, mlir::Value dest, mlir::ValueRange destPrefix,
                mlir::Value width, mlir::Value factor, mlir::Value streaming);
  /// A row-major [rows, cols] buffer as a matmul or transpose operand.
  static MatrixView rowMajor(mlir::Value buffer);
  /// The chunk's tokens' rows of chunk.q or chunk.k: row i is the buffer's
  /// qkRow(chunk, i).
  MatrixView tokenRows(const Chunk &chunk, mlir::Value buffer);
  /// The chunk's rows of v (row s is v[b, first + s, h, :]), as staged in
  /// `chunk.values` by prepareChunk: contiguous, where v's rows are H * V apart
  /// (4 KiB at H = 8, V = 128: the same cache set for every row).
  MatrixView valueRows(const Chunk &chunk);

  int64_t chunkSize;
  RegisterTiling tiling; ///< the matmuls' and transposes' register blocking
  bool phaseLocations;   ///< see phase()
  std::string kernelName; ///< the kernel being built (buildParallelKernel)
  mlir::Value q, k, v; ///< the function's q, k, v memrefs
};

} // namespace decay

#endif
