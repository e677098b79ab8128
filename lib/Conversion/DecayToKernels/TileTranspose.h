// Transposes f32 matrices between memref views in square register blocks (one vector register per row), for the chunk kernels.
#ifndef DECAY_CONVERSION_DECAYTOKERNELS_TILETRANSPOSE_H
#define DECAY_CONVERSION_DECAYTOKERNELS_TILETRANSPOSE_H

#include "TileMatmul.h"

namespace decay {

/// Emits dest[j, i] = source[i, j] for i < rows, j < cols, in f32 (a bf16
/// view is widened when read, rounded to nearest even when written). Blocks of
/// L x L (L = tiling.lanes, one vector register per row: 16 for AVX-512, 8
/// for AVX2) are loaded as L row vectors, transposed in registers by x86's
/// shuffle network (vector.shuffle: 4L shuffles at L = 16, 3L at 8) and
/// stored as L row vectors; the rows and columns left over are copied one element
/// at a time. Both views' rows must be contiguous. With `streaming` (an i1,
/// see rowsAlignedToVectors; f32 dest only), the blocks' rows are written
/// with non-temporal stores where it holds: for a destination written once
/// and read after the kernel.
void emitTranspose(mlir::ImplicitLocOpBuilder &b, const RegisterTiling &tiling, const MatrixView &dest,
                   const MatrixView &source, mlir::Value rows, mlir::Value cols,
                   mlir::Value streaming = {});

} // namespace decay

#endif
