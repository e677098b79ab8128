// decay-expand-kernels{vector-bits=256}: register tiles for AVX2's 16 registers of 8 f32 (6 rows x 2 vectors, 12 accumulators; 8x8 transposes as shuffles), the default 512 for comparison, the CPU pipeline down to LLVM, and the error for another width.
// RUN: decay-opt %examples/mamba2.mlir --decay-derive-gradients '--decay-expand-kernels=backward=true vector-bits=256' | FileCheck %s --implicit-check-not='vector<16x16xf32>'
// RUN: decay-opt %examples/gla.mlir --decay-derive-gradients '--decay-expand-kernels=backward=true vector-bits=256' | FileCheck %s --check-prefix=GLA --implicit-check-not='vector<16x16xf32>'
// RUN: decay-opt %examples/mamba2.mlir --decay-derive-gradients --decay-expand-kernels=backward=true | FileCheck %s --check-prefix=WIDE
// RUN: decay-opt %examples/gla.mlir --decay-derive-gradients '--decay-expand-kernels=backward=true vector-bits=256' --decay-cpu-kernels-to-llvm | FileCheck %s --check-prefix=LLVM
// RUN: not decay-opt %examples/mamba2.mlir --decay-expand-kernels=vector-bits=128 2>&1 | FileCheck %s --check-prefix=ERR

// The forward's transposes: blocks of 8 rows of 8 lanes, 24 shuffles (8
// interleaving single lanes, 8 interleaving pairs, 8 swapping the 128-bit halves).
// CHECK-LABEL: func.func @mamba2_forward(
// CHECK:         vector.shuffle %{{.*}}, %{{.*}} [0, 8, 1, 9, 4, 12, 5, 13] : vector<8xf32>, vector<8xf32>
// CHECK-NEXT:    vector.shuffle %{{.*}}, %{{.*}} [2, 10, 3, 11, 6, 14, 7, 15] : vector<8xf32>, vector<8xf32>
// CHECK-COUNT-6: vector.shuffle
// CHECK-NEXT:    vector.shuffle %{{.*}}, %{{.*}} [0, 1, 8, 9, 4, 5, 12, 13] : vector<8xf32>, vector<8xf32>
// CHECK-NEXT:    vector.shuffle %{{.*}}, %{{.*}} [2, 3, 10, 11, 6, 7, 14, 15] : vector<8xf32>, vector<8xf32>
// CHECK-COUNT-6: vector.shuffle
// CHECK-NEXT:    vector.shuffle %{{.*}}, %{{.*}} [0, 1, 2, 3, 8, 9, 10, 11] : vector<8xf32>, vector<8xf32>
// CHECK-NEXT:    vector.shuffle %{{.*}}, %{{.*}} [4, 5, 6, 7, 12, 13, 14, 15] : vector<8xf32>, vector<8xf32>
// CHECK-COUNT-6: vector.shuffle
// CHECK-NOT:     vector.shuffle
// CHECK:         vector.store
// Full tiles of 6 rows by 16 columns: 12 vector<8xf32> accumulators, two
// vectors of B's row and one broadcast of A's element per step.
// CHECK:         scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c6{{.*}} {
// CHECK:           scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c16{{.*}} {
// CHECK:             %{{.*}}:12 = scf.for %{{.*}} iter_args({{.*}}) -> ({{(vector<8xf32>, ){11}vector<8xf32>}}) {
// CHECK-NEXT:          vector.load %{{.*}} : memref<?x?xf32>, vector<8xf32>
// CHECK-NEXT:          vector.load %{{.*}} : memref<?x?xf32>, vector<8xf32>
// CHECK-COUNT-12:      vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<8xf32>
// CHECK-NEXT:          scf.yield
// Rows left over: tiles of 4 rows (8 accumulators), then of one row (2).
// CHECK:             %{{.*}}:8 = scf.for %{{.*}} -> ({{(vector<8xf32>, ){7}vector<8xf32>}}) {
// CHECK:             %{{.*}}:2 = scf.for %{{.*}} -> (vector<8xf32>, vector<8xf32>) {
// The backward's products take the same tiles.
// CHECK-LABEL: func.func @mamba2_backward(
// CHECK:         %{{.*}}:12 = scf.for %{{.*}} -> ({{(vector<8xf32>, ){11}vector<8xf32>}}) {
// CHECK-NOT:     -> ({{(vector<16xf32>, ){15}vector<16xf32>}})
// CHECK:       }

// GLA's sub-blocks keep their 16 tokens; its matmuls take the AVX2 tiles.
// The earlier pairs go 8 rows of the sub-block per pass (8 accumulators
// against a vector of the transposed keys), the second pass only where the
// sub-block reaches row 8; the pairs inside a sub-block go one by one (no
// unrolled whole-block branch: its 16 sums would not fit in 16 registers).
// GLA-LABEL: func.func @gla_forward(
// GLA:         %{{.*}}:8 = scf.for %{{.*}} -> ({{(vector<8xf32>, ){7}vector<8xf32>}}) {
// GLA-NEXT:      vector.load %{{.*}} : memref<?x?xf32>, vector<8xf32>
// GLA:         %[[ROW8:.*]] = arith.constant 8 : index
// GLA-NEXT:    %[[SECOND:.*]] = arith.cmpi ult, %[[ROW8]], %{{.*}} : index
// GLA-NEXT:    scf.if %[[SECOND]] {
// GLA:           %{{.*}}:8 = scf.for %{{.*}} -> ({{(vector<8xf32>, ){7}vector<8xf32>}}) {
// GLA-NOT:     vector.reduction
// GLA:         %{{.*}}:12 = scf.for %{{.*}} -> ({{(vector<8xf32>, ){11}vector<8xf32>}}) {
// GLA-LABEL: func.func @gla_backward(
// GLA:         %{{.*}}:12 = scf.for %{{.*}} -> ({{(vector<8xf32>, ){11}vector<8xf32>}}) {

// The default width is AVX-512's: 12 x 2 vectors of 16 lanes.
// WIDE-LABEL: func.func @mamba2_forward(
// WIDE:         vector.shuffle %{{.*}}, %{{.*}} [0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29] : vector<16xf32>, vector<16xf32>
// WIDE:         %{{.*}}:24 = scf.for %{{.*}} -> ({{(vector<16xf32>, ){23}vector<16xf32>}}) {

// LLVM-LABEL: llvm.func @gla_forward(
// LLVM:         llvm.intr.fmuladd({{.*}}) : (vector<8xf32>, vector<8xf32>, vector<8xf32>) -> vector<8xf32>
// LLVM-LABEL: llvm.func @gla_backward(

// ERR: error: decay-expand-kernels: vector-bits must be 512 (AVX-512) or 256 (AVX2), got 128
