// Builders of the float64 reference functions of a recurrence (forward and backward).
#ifndef DECAY_CONVERSION_DECAYTOREFERENCE_REFERENCEBUILDERS_H
#define DECAY_CONVERSION_DECAYTOREFERENCE_REFERENCEBUILDERS_H

#include "decay/Conversion/RecurrenceEmitter.h"

namespace decay {
/// Creates `func.func @<name>_reference`, the forward recurrence.
mlir::func::FuncOp buildForwardReference(RecurrenceOp spec, mlir::ImplicitLocOpBuilder &b);
/// Creates `func.func @<name>_reference_backward`; `adjoint` is the decay's
/// derivative (null for granularity none).
mlir::func::FuncOp buildBackwardReference(RecurrenceOp spec, AdjointOp adjoint,
                                          mlir::ImplicitLocOpBuilder &b);
} // namespace decay

#endif
