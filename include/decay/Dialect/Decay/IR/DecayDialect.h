// Declarations of the `decay` dialect, its enums and its operations.
#ifndef DECAY_DIALECT_DECAY_IR_DECAYDIALECT_H
#define DECAY_DIALECT_DECAY_IR_DECAYDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "decay/Dialect/Decay/IR/DecayDialect.h.inc"
#include "decay/Dialect/Decay/IR/DecayEnums.h.inc"

#define GET_OP_CLASSES
#include "decay/Dialect/Decay/IR/DecayOps.h.inc"


#endif
