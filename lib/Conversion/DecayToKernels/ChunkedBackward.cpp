// The chunked backward kernel (MATH.md section 3).
#include "KernelBuilders.h"

using namespace mlir;
using namespace decay;

func::FuncOp decay::buildChunkedBackward(RecurrenceOp spec, AdjointOp adjoint, int64_t chunkSize,
                                         ImplicitLocOpBuilder &b) {
  spec.emitOpError() << "the chunked backward kernel is not built yet";
  return nullptr;
}
