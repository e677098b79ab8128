// The chunk algorithm on the GPU, shared by the forward and backward chunk kernels: staging, scores, warp matmuls.
#ifndef DECAY_CONVERSION_DECAYTOGPU_GPUCHUNKEMITTER_H
#define DECAY_CONVERSION_DECAYTOGPU_GPUCHUNKEMITTER_H

#include "GpuKernelEmitter.h"
#include "WarpMma.h"

#include <memory>

namespace decay {

/// Warps per block of the chunk kernels, and their threads.
constexpr int64_t kWarps = 4, kThreads = 32 * kWarps;

/// Accumulator tiles of one warp: rows x columns tiles of 16 x 8.
struct Tiles {
  int64_t rows, columns;
  llvm::SmallVector<mlir::Value> acc; ///< row-major over (row tile, column tile)
};

/// A chunk kernel: one block of 4 warps per (sequence, head, value tile),
/// sequential over the sequence's chunks of 32 tokens, with the chunk's
/// prepared q, k, G, G_low (from the preparation kernel's workspace) and its
/// v columns staged in shared memory.
class GpuChunkEmitter : public GpuKernelEmitter {
protected:
  using GpuKernelEmitter::GpuKernelEmitter;

  /// Creates the kernel (see createKernel), carves q, k, G, G_low, v and A
  /// from shared memory and binds the block's (n, h, value tile), its
  /// sequence, the warp and its lane's mma fragments.
  void beginChunkKernel(llvm::StringRef name, bool backward, llvm::ArrayRef<WorkspaceBuffer> workspace);
  /// acc(rt, ct) += sum over k in [kBegin, kEnd) (steps of 8) of
  /// a(rt, r, k) bElement(ct, k, n), as one scf.for carrying the accumulators.
  void accumulate(Tiles &tiles, mlir::Value kBegin, mlir::Value kEnd,
                  llvm::function_ref<mlir::Value(int64_t rt, mlir::Value r, mlir::Value k)> a,
                  llvm::function_ref<mlir::Value(int64_t ct, mlir::Value k, mlir::Value n)> bElement);
  /// Zero accumulators for rows x columns tiles.
  Tiles zeroTiles(int64_t rows, int64_t columns);
  /// G_tc - G_sc from the staged decay (chunk-local rows; c ignored for scalar decays).
  mlir::Value exponent(mlir::Value t, mlir::Value s, mlir::Value c);
  /// G_tc from the chunk's first token.
  mlir::Value cumulative(mlir::Value t, mlir::Value c);
  mlir::Value decayColumn(mlir::Value c) { return spec.isPerChannel() ? c : index(0); }
  /// Stages the chunk [first, first + length): rows past its end hold q, k,
  /// v = 0 and the last token's G, so that they add nothing and every
  /// exponent stays finite. `perToken` adds more [B,T,H,width] tensors to
  /// stage the same way (0 past the end), as (source, shared buffer, column
  /// offset in the source).
  void stageChunk(mlir::Value first, mlir::Value length,
                  llvm::ArrayRef<std::tuple<mlir::Value, mlir::Value, mlir::Value>> perToken = {});
  /// A = (Q K^T) masked and decayed into `as`: warp w computes the 16 x 16
  /// block (w / 2, w % 2) (the sub-blocks of the secondary chunking).
  void scores();
  /// state[c, j] <- exp(G_last,c) state[c, j] + sum_s a(c, s) bElement(s, j)
  /// over the chunk's rows s, for a shared [K, tile + 4] `state`: warp w owns
  /// key rows [w K/4, (w + 1) K/4) and does `tilesPerPass` 8-column tiles at a
  /// time (fewer accumulators live at once). Reads only the warp's own rows.
  void advanceSharedState(mlir::Value state, mlir::Value last, int64_t tilesPerPass,
                          llvm::function_ref<mlir::Value(mlir::Value c, mlir::Value s)> a,
                          llvm::function_ref<mlir::Value(mlir::Value s, mlir::Value j)> bElement);
  /// The 16-row block and 16-column block of warp w in a 32 x 32 chunk matrix.
  mlir::Value rowBlockFirst();
  mlir::Value columnBlockFirst();
  /// Token `first + 8 tile + offset` (chunk-local).
  mlir::Value tokenOf(mlir::Value first, int64_t tile, mlir::Value offset);
  /// The workspace slot of chunk `chunkIndex` of the block's sequence:
  /// unique over all sequences, below B (ceil(T/C) + 2) + N.
  mlir::Value slotOf(mlir::Value chunkIndex);
  /// The first token and the token count of chunk `chunkIndex` of the sequence.
  std::pair<mlir::Value, mlir::Value> chunkAt(mlir::Value chunkIndex);
  /// The number of chunks of the block's sequence.
  mlir::Value chunkCount();
  /// Copies the block's value tile of a state [N, H, K, V] into a shared
  /// [K, tile + 4] buffer, or back with `toState`.
  void copyStateTile(mlir::Value state, mlir::Value shared, bool toState);

  RecurrenceArgs args;
  llvm::SmallVector<mlir::Value> ws; ///< the workspace buffers, in their order
  std::unique_ptr<WarpMma> mma;
  SequenceBounds sequence;
  mlir::Value warp, n, h, valueFirst;
  mlir::Value qs, ks, gs, gLows, vs, as; ///< shared memory
};

/// The workspace of the preparation: q', k', G, G_low per token.
llvm::SmallVector<WorkspaceBuffer> preparedRows(RecurrenceOp spec, const GpuShape &shape);

/// Builds `<name>_<entry>_prepare` (see buildGpuForward) with the forward or
/// backward signature. The backward's also stores each token's carried-in
/// scan values (the scan_prev_<i> buffers) and zeroes the buffers named in
/// `zeroed`.
void buildPrepareKernel(RecurrenceOp spec, const GpuShape &shape, bool backward,
                        llvm::ArrayRef<WorkspaceBuffer> workspace, llvm::ArrayRef<std::string> zeroed,
                        mlir::ImplicitLocOpBuilder &b);

/// Builds the chunk sweep over every sequence: the forward's
/// `<name>_forward_chunks` or, with `states`, the backward's
/// `<name>_backward_states` (see GpuForward.cpp). Returns its dynamic shared
/// memory in bytes.
int64_t buildChunkSweep(RecurrenceOp spec, const GpuShape &shape, bool states,
                        llvm::ArrayRef<WorkspaceBuffer> workspace, mlir::ImplicitLocOpBuilder &b);

/// Records a kernel's launch on its gpu.func for the package writer.
void recordLaunch(mlir::gpu::GPUFuncOp fn, llvm::ArrayRef<std::pair<llvm::StringRef, int64_t>> grid,
                  int64_t sharedBytes);

} // namespace decay

#endif
