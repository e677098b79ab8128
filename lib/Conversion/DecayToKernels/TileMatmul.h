// A register-tiled f32 matrix multiply on memref views (tiles sized to the target's vector registers), for the chunk kernels.
#ifndef DECAY_CONVERSION_DECAYTOKERNELS_TILEMATMUL_H
#define DECAY_CONVERSION_DECAYTOKERNELS_TILEMATMUL_H

#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <functional>
#include <optional>

namespace decay {

/// The register blocking of the chunk kernels' matmuls and transposes, by
/// the width of the target's vector registers.
struct RegisterTiling {
  int64_t lanes;       ///< f32 lanes of one vector register
  int64_t tileRows;    ///< rows of a matmul's register tile
  int64_t tileVectors; ///< vectors per tile row (tileRows * tileVectors accumulators)

  /// 512 (AVX-512, 32 registers): 12 x 2 vectors of 16 lanes, 24
  /// accumulators (each row of B loaded serves 12 rows of A: the chunked
  /// backwards 1.5-1.8% faster than with 8 x 2 on an Intel Xeon, the
  /// forwards unchanged; 64 rows are taken as 60 + 4, 16 as 12 + 4). 256
  /// (AVX2, 16 registers): 6 x 2 vectors of 8 lanes, 12 accumulators. Both
  /// leave registers for B's row and A's broadcast. None for any other width.
  static std::optional<RegisterTiling> forVectorBits(int64_t vectorBits);
  /// Columns of one tile.
  int64_t tileColumns() const { return lanes * tileVectors; }
};

/// A matrix stored in a memref whose last dim is the matrix's column
/// (contiguous): element (row, col) lives at `indices(row, col)`.
struct MatrixView {
  mlir::Value memref;
  std::function<llvm::SmallVector<mlir::Value>(mlir::Value row, mlir::Value col)> indices;
};

/// Which part of a product the chunk's triangular matrices need.
enum class Triangle {
  None,   ///< every entry of C, the full reduction
  LowerA, ///< A[i, k] = 0 for k > i: row i reduces over k <= i only
  UpperA, ///< A[i, k] = 0 for k < i: row i reduces over k >= i only
  LowerB, ///< B[k, j] = 0 for j > k: column j reduces over k >= j only
  LowerC, ///< only C[i, j] for j <= i is needed; the rest is left unwritten
};

/// Elementwise work fused into a matmul's reads and writes of C, on C's row
/// `i` from column `j`: `c` (or `acc`) is a vector of the row (`lanes` f32),
/// or an f32 where the columns do not fill a vector (loadMatching reads the
/// operands of the same shape). Each element of C is read and written once.
struct MatmulFusion {
  /// With `accumulate`: what the product is added to, from C's value `c`.
  llvm::function_ref<mlir::Value(mlir::Value i, mlir::Value j, mlir::Value c)> onLoad;
  /// What is stored for the result `acc` (C's initial value plus the product).
  llvm::function_ref<mlir::Value(mlir::Value i, mlir::Value j, mlir::Value acc)> onStore;
};

/// Reads `memref` at `indices` in the shape of `like`: a vector load of as
/// many lanes along the last index when `like` is a vector, else one element.
mlir::Value loadMatching(mlir::ImplicitLocOpBuilder &b, mlir::Value like, mlir::Value memref,
                         mlir::ValueRange indices);
/// Writes `value` (a vector or one element) to `memref` at `indices`.
void storeMatching(mlir::ImplicitLocOpBuilder &b, mlir::Value value, mlir::Value memref,
                   mlir::ValueRange indices);
/// Writes `value` like storeMatching, a vector with a non-temporal store
/// (past the caches, without reading the line first) aligned to its size:
/// for buffers written once and read back much later. The caller
/// guarantees the alignment (a vector's address a multiple of its bytes).
void storeStreaming(mlir::ImplicitLocOpBuilder &b, mlir::Value value, mlir::Value memref,
                    mlir::ValueRange indices);
/// Whether every row of `memref` (contiguous rows along its last dim)
/// starts at an address aligned to a vector of `lanes` elements, so that
/// storeStreaming may write it: its first element (the aligned pointer plus
/// the offset) is aligned and its rows are a whole number of vectors. An
/// i1, evaluated when the kernel runs.
mlir::Value rowsAlignedToVectors(mlir::ImplicitLocOpBuilder &b, mlir::Value memref, int64_t lanes);
/// Emits `body(true)` where `streaming` (an i1 from rowsAlignedToVectors)
/// holds and `body(false)` elsewhere, in an scf.if; only `body(false)` when
/// `streaming` is null.
void emitStreamingChoice(mlir::ImplicitLocOpBuilder &b, mlir::Value streaming,
                         llvm::function_ref<void(bool stream)> body);
/// Makes the calling thread's non-temporal stores visible before its later
/// stores (x86's sfence): non-temporal stores are weakly ordered, and other
/// threads read what a work item wrote once it is done.
void fenceStreamingStores(mlir::ImplicitLocOpBuilder &b);
/// `scalar` broadcast to the shape of `like` (itself when `like` is a scalar).
mlir::Value splatMatching(mlir::ImplicitLocOpBuilder &b, mlir::Value like, mlir::Value scalar);

/// x rounded down to a multiple of `multiple` (x >= 0): where full tiles end.
mlir::Value floorToMultiple(mlir::ImplicitLocOpBuilder &b, mlir::Value x, int64_t multiple);

/// Emits C[M,N] (+)= A[M,K] B[K,N] in f32: register tiles of `tiling`
/// (tileRows x tileVectors vector accumulators) over k, with B and C read
/// along their contiguous columns and A's elements, from `a(i, k)`,
/// broadcast (so A may have any layout, e.g. transposed). Rows that do not
/// fill a tile are computed by tiles of 4 rows, then of one row; columns
/// that do not fill a tile by scalar loops. `triangle` skips
/// the work that a triangular A or C makes unnecessary (whole tiles, or the
/// zero part of a row tile's reduction). `fusion` applies elementwise work
/// on C as its tiles are loaded and stored.
void emitTileMatmul(mlir::ImplicitLocOpBuilder &b, const RegisterTiling &tiling, const MatrixView &c,
                    llvm::function_ref<mlir::Value(mlir::Value i, mlir::Value k)> a,
                    const MatrixView &bMatrix, mlir::Value m, mlir::Value n, mlir::Value k,
                    bool accumulate, Triangle triangle = Triangle::None, MatmulFusion fusion = {});

} // namespace decay

#endif
