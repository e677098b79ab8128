// Transposes f32 matrices between memref views in 16x16 register blocks, for the chunk kernels.
#ifndef DECAY_CONVERSION_DECAYTOKERNELS_TILETRANSPOSE_H
#define DECAY_CONVERSION_DECAYTOKERNELS_TILETRANSPOSE_H

#include "TileMatmul.h"

namespace decay {

/// Emits dest[j, i] = source[i, j] for i < rows, j < cols, in f32 (a bf16
/// view is widened when read, rounded to nearest even when written). Blocks of
/// 16 x 16 are loaded as 16 row vectors, transposed in registers
/// (vector.transpose, which the CPU pipeline lowers to 16x16 shuffles) and
/// stored as 16 row vectors; the rows and columns left over are copied one
/// element at a time. Both views' rows must be contiguous.
void emitTranspose(mlir::ImplicitLocOpBuilder &b, const MatrixView &dest, const MatrixView &source,
                   mlir::Value rows, mlir::Value cols);

} // namespace decay

#endif
