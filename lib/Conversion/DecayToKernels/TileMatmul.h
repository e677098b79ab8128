// A register-tiled f32 matrix multiply on memref views (8x32 tiles of AVX-512 vectors), for the chunk kernels.
#ifndef DECAY_CONVERSION_DECAYTOKERNELS_TILEMATMUL_H
#define DECAY_CONVERSION_DECAYTOKERNELS_TILEMATMUL_H

#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <functional>

namespace decay {

/// A matrix stored in a memref whose last dim is the matrix's column
/// (contiguous): element (row, col) lives at `indices(row, col)`.
struct MatrixView {
  mlir::Value memref;
  std::function<llvm::SmallVector<mlir::Value>(mlir::Value row, mlir::Value col)> indices;
};

/// Emits C[M,N] (+)= A[M,K] B[K,N] in f32: 8x32 register tiles of
/// vector<16xf32> accumulators over k, with B and C read along their
/// contiguous columns and A's elements, from `a(i, k)`, broadcast (so A may
/// have any layout, e.g. transposed). Rows and columns that do not fill a
/// tile are computed by narrower tiles and scalar loops.
void emitTileMatmul(mlir::ImplicitLocOpBuilder &b, const MatrixView &c,
                    llvm::function_ref<mlir::Value(mlir::Value i, mlir::Value k)> a,
                    const MatrixView &bMatrix, mlir::Value m, mlir::Value n, mlir::Value k,
                    bool accumulate);

} // namespace decay

#endif
