// decay-expand-kernels{phase-locations=true}: every phase of the chunked forward and backward is located at <kernel>.<phase>:1 (the line tables of `decayc compile --profile-phases` name the phases), the arith and math ops cloned from the spec's region keep the spec's locations, and without the option no op has a phase location.
// RUN: decay-opt %s --decay-derive-gradients '--decay-expand-kernels=backward=true phase-locations=true' --mlir-print-debuginfo --mlir-print-local-scope | FileCheck %s
// RUN: decay-opt %s --decay-derive-gradients '--decay-expand-kernels=backward=true' --mlir-print-debuginfo --mlir-print-local-scope | FileCheck %s --check-prefix=OFF

// The forward: q, k, G of the chunk; the scores (the earlier tokens' FMAs);
// the numerators; o; the state update.
// CHECK-LABEL: func.func @gated_forward(
// CHECK:         math.exp {{.*}} loc("gated_forward.prepareChunk":1:0)
// CHECK:         vector.fma {{.*}} loc("gated_forward.computeScores":1:0)
// CHECK:         vector.fma {{.*}} loc("gated_forward.chunkNumerators":1:0)
// CHECK:         memref.store {{.*}} loc("gated_forward.outputs":1:0)
// CHECK:         vector.fma {{.*}} loc("gated_forward.advanceState":1:0)
// CHECK:       func.func @gated_backward(
// The backward: the sweep (the logsigmoid expanded in the phase, the
// region's own arith ops at the spec's line: the divf of line 37 below),
// then each phase of a chunk's gradients in order.
// CHECK:         math.absf {{.*}} loc("gated_backward.sweep.prepareChunk":1:0)
// CHECK:         arith.divf {{.*}} loc("{{.*}}expand-kernels-phases.mlir":37:{{[0-9]+}})
// CHECK:         vector.store {{.*}} nontemporal = true{{.*}} loc("gated_backward.sweep.advanceState":1:0)
// CHECK:         vector.fma {{.*}} loc("gated_backward.computeScores":1:0)
// CHECK:         memref.store {{.*}} loc("gated_backward.outputGradients":1:0)
// CHECK:         vector.fma {{.*}} loc("gated_backward.scoreGradients":1:0)
// CHECK:         memref.store {{.*}} loc("gated_backward.decayFactors":1:0)
// CHECK:         vector.fma {{.*}} loc("gated_backward.stateGradients":1:0)
// CHECK:         vector.fma {{.*}} loc("gated_backward.pairGradients":1:0)
// CHECK:         memref.store {{.*}} loc("gated_backward.prefixSums":1:0)
// CHECK:         vector.fma {{.*}} loc("gated_backward.valueAndStateGradients":1:0)
// CHECK:         memref.store {{.*}} loc("gated_backward.finishChunk":1:0)
// CHECK:         return

// OFF-NOT: loc("gated_

decay.recurrence @gated vector
    inputs(%gk : [B, T, H, K]) {
  %ls = decay.logsigmoid %gk : f32
  %c16 = arith.constant 16.0 : f32
  %g = arith.divf %ls, %c16 : f32
  decay.yield %g : f32
}
