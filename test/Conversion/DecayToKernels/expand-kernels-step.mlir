// decay-expand-kernels{step}: the step kernel @<name>_step. LightNet's:
// q, k, v, slots, positions, the gate f, the state slots [S,H,K,V], its
// scan's slots [S,H,K] and o; parallel over (batch row, head), each row's
// buffers in an alloca scope, its slot read at slots[row]; per token the
// state swept in tiles of 64, 16 and 1 value columns, each row updated in
// place (vector.fma) while the tile's o accumulates, then o stored.
// RUN: decay-opt %examples/lightnet.mlir --decay-expand-kernels=step=true | FileCheck %s
// Without the option there is no step kernel.
// RUN: decay-opt %examples/lightnet.mlir --decay-expand-kernels | FileCheck %s --check-prefix=NO-STEP

// CHECK-LABEL: func.func @lightnet_step(
// CHECK-SAME: %[[Q:[^:]+]]: memref<?x?x?x?xf32>, %{{[^:]+}}: memref<?x?x?x?xf32>, %[[V:[^:]+]]: memref<?x?x?x?xf32>, %[[SLOTS:[^:]+]]: memref<?xi64>, %[[POS:[^:]+]]: memref<?xi64>, %{{[^:]+}}: memref<?x?x?x?xf32>, %[[STATE:[^:]+]]: memref<?x?x?x?xf32>, %[[SCAN:[^:]+]]: memref<?x?x?xf32>, %[[O:[^:]+]]: memref<?x?x?x?xf32>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK: scf.parallel (%[[ROW:[^,]+]], %[[H:[^)]+]])
// CHECK: memref.alloca_scope
// CHECK: memref.load %[[SLOTS]][%[[ROW]]] : memref<?xi64>
// CHECK: memref.load %[[POS]][%[[ROW]]] : memref<?xi64>
// The scan advances in its slot.
// CHECK: memref.store %{{.*}}, %[[SCAN]][
// Tiles of 64 columns: v once, then every row of the slot's state.
// CHECK: vector.load %[[V]][{{.*}}] : memref<?x?x?x?xf32>, vector<64xf32>
// CHECK: scf.for
// CHECK: %[[OLD:.*]] = vector.load %[[STATE]][{{.*}}] : memref<?x?x?x?xf32>, vector<64xf32>
// CHECK: %[[NEW:.*]] = vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<64xf32>
// CHECK: vector.store %[[NEW]], %[[STATE]][{{.*}}] : memref<?x?x?x?xf32>, vector<64xf32>
// CHECK: vector.fma %{{.*}}, %[[NEW]], %{{.*}} : vector<64xf32>
// CHECK: vector.store %{{.*}}, %[[O]][{{.*}}] : memref<?x?x?x?xf32>, vector<64xf32>
// Then tiles of 16 and single columns.
// CHECK: vector.store %{{.*}}, %[[O]][{{.*}}] : memref<?x?x?x?xf32>, vector<16xf32>
// CHECK: vector.store %{{.*}}, %[[O]][{{.*}}] : memref<?x?x?x?xf32>, vector<1xf32>

// NO-STEP-NOT: @lightnet_step
