// decay-opt: MLIR's opt driver with the decay dialect and decayc's passes, for lit tests.
#include "decay/Codegen/GPU/GpuPackage.h"
#include "decay/InitDecay.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::registerTransformsPasses();
  decay::registerDecayPasses();
  mlir::DialectRegistry registry;
  decay::registerDecayDialects(registry);
  decay::registerGpuCodegen(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "decay-opt: the decay dialect's opt tool\n", registry));
}
