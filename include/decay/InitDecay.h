// One registration of decayc's dialects and passes, shared by every tool and test.
#ifndef DECAY_INITDECAY_H
#define DECAY_INITDECAY_H

namespace mlir {
class DialectRegistry;
}

namespace decay {
/// Registers the decay dialect and every dialect its specs and lowerings use.
void registerDecayDialects(mlir::DialectRegistry &registry);
/// Registers decayc's passes and pipelines with MLIR's global pass registry.
void registerDecayPasses();
} // namespace decay

#endif
