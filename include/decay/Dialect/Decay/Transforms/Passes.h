// Declarations of the decay dialect's transformation passes.
#ifndef DECAY_DIALECT_DECAY_TRANSFORMS_PASSES_H
#define DECAY_DIALECT_DECAY_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"

namespace decay {
#define GEN_PASS_DECL
#include "decay/Dialect/Decay/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "decay/Dialect/Decay/Transforms/Passes.h.inc"
} // namespace decay

#endif
