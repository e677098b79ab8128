// Builders of the chunked kernels of a recurrence (MATH.md sections 2 and 3), in f32 on memrefs.
#ifndef DECAY_CONVERSION_DECAYTOKERNELS_KERNELBUILDERS_H
#define DECAY_CONVERSION_DECAYTOKERNELS_KERNELBUILDERS_H

#include "TileMatmul.h"
#include "decay/Conversion/RecurrenceEmitter.h"

namespace decay {
/// Creates `func.func @<name>_forward`, the chunked forward kernel, with the
/// reference forward's signature in f32, its matmuls blocked by `tiling`;
/// with `phaseLocations`, each phase at `<name>_forward.<phase>`:1.
mlir::func::FuncOp buildChunkedForward(RecurrenceOp spec, int64_t chunkSize,
                                       const RegisterTiling &tiling, mlir::ImplicitLocOpBuilder &b,
                                       bool phaseLocations = false);
/// Creates `func.func @<name>_backward`, the chunked backward kernel, with the
/// reference backward's signature in f32, its matmuls blocked by `tiling`;
/// with `phaseLocations`, each phase at `<name>_backward.<phase>`:1.
mlir::func::FuncOp buildChunkedBackward(RecurrenceOp spec, AdjointOp adjoint, int64_t chunkSize,
                                        const RegisterTiling &tiling, mlir::ImplicitLocOpBuilder &b,
                                        bool phaseLocations = false);
/// Creates `func.func @<name>_step`, the recurrent step kernel: state slots
/// advanced in place through each batch row's tokens (decay::signatureOf,
/// Entry::Step).
mlir::func::FuncOp buildRecurrentStep(RecurrenceOp spec, mlir::ImplicitLocOpBuilder &b);
} // namespace decay

#endif
