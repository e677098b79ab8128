// decay-expand-gpu-kernels{step}: the step's gpu.module, one block of K
// threads per (batch row, head): each thread prepares its key channel into
// shared memory, then sweeps its value column of the slot's state in place.
// RUN: decay-opt %examples/lightnet.mlir --decay-expand-gpu-kernels='head-dims=64 step=true' | FileCheck %s --check-prefix=VECTOR
// RUN: decay-opt %s --decay-expand-gpu-kernels='head-dims=64 step=true' | FileCheck %s --check-prefix=SCALAR
// RUN: decay-opt %examples/lightnet.mlir --decay-expand-gpu-kernels='head-dims=64' | FileCheck %s --check-prefix=NO-STEP

// NO-STEP-NOT: gpu.module @lightnet_step

// No workspace; lightnet's step takes 9 tensors (q, k, v, slots, positions,
// the gate, state, scan_z_state, o), then B, T, H, S.
// VECTOR: gpu.module @lightnet_step_k64_v64 attributes {decay.chunk_size = 32 : i64, decay.entry = "step", decay.key_dim = 64 : i64, decay.value_dim = 64 : i64, decay.workspace = []}
// VECTOR: gpu.func @lightnet_step(%arg0: !llvm.ptr, {{(%arg[0-9]+: !llvm.ptr, )+}}%arg8: !llvm.ptr, %arg9: i64, %arg10: i64, %arg11: i64, %arg12: i64) kernel attributes {decay.dynamic_shared_bytes = 768 : i64, decay.grid = [{dims = "BH", divide = 1 : i64}, {dims = "", divide = 1 : i64}, {dims = "", divide = 1 : i64}], decay.threads = 64 : i64}
// Slots and positions are i64 vectors; the state is [S, H, K, V] (S from %arg12).
// VECTOR: to memref<?xi64>
// VECTOR: to memref<?xi64>
// VECTOR: llvm.insertvalue %arg12, %{{.*}}[3, 0] : !llvm.struct<(ptr, ptr, i64, array<4 x i64>, array<4 x i64>)>
// VECTOR: %[[STATE:.*]] = builtin.unrealized_conversion_cast %{{.*}} to memref<?x?x?x?xf32>
// VECTOR: llvm.insertvalue %arg12, %{{.*}}[3, 0] : !llvm.struct<(ptr, ptr, i64, array<3 x i64>, array<3 x i64>)>
// VECTOR: %[[SCAN:.*]] = builtin.unrealized_conversion_cast %{{.*}} to memref<?x?x?xf32>
// Shared q', k', exp(g).
// VECTOR: %[[Q:.*]] = memref.view %{{.*}}[%c0][] : {{.*}} to memref<64xf32, #gpu.address_space<workgroup>>
// VECTOR: %[[K:.*]] = memref.view %{{.*}}[%c256][] : {{.*}} to memref<64xf32, #gpu.address_space<workgroup>>
// VECTOR: %[[G:.*]] = memref.view %{{.*}}[%c512][] : {{.*}} to memref<64xf32, #gpu.address_space<workgroup>>
// VECTOR: %[[T:.*]] = gpu.thread_id x
// VECTOR: %[[ITEM:.*]] = gpu.block_id x
// VECTOR: %[[ROW:.*]] = arith.divui %[[ITEM]]
// VECTOR: %[[HEAD:.*]] = arith.remui %[[ITEM]]
// The row's slot, and the thread's carried scan value from it.
// VECTOR: %[[SLOT64:.*]] = memref.load %{{.*}}[%[[ROW]]] : memref<?xi64>
// VECTOR: %[[SLOT:.*]] = arith.index_cast %[[SLOT64]] : i64 to index
// VECTOR: %[[CARRIED:.*]] = memref.alloca() : memref<1xf32>
// VECTOR: memref.load %[[SCAN]][%[[SLOT]], %[[HEAD]], %[[T]]]
// The tokens: the thread's channel prepared (logcumsumexp carried in registers), then a barrier.
// VECTOR: scf.for
// VECTOR: memref.load %[[CARRIED]]
// VECTOR: memref.store %{{.*}}, %[[CARRIED]]
// VECTOR: memref.store %{{.*}}, %[[G]][%[[T]]]
// VECTOR: memref.store %{{.*}}, %[[Q]][%[[T]]]
// VECTOR: memref.store %{{.*}}, %[[K]][%[[T]]]
// VECTOR-NEXT: gpu.barrier
// The thread's value column through the 64 key rows, updated in place, o accumulated.
// VECTOR: scf.for %[[I:.*]] = %{{.*}} to %c64 step %{{.*}} iter_args
// VECTOR: %[[OLD:.*]] = memref.load %[[STATE]][%[[SLOT]], %[[HEAD]], %[[I]], %[[T]]]
// VECTOR: memref.load %[[G]][%[[I]]]
// VECTOR: memref.store %{{.*}}, %[[STATE]][%[[SLOT]], %[[HEAD]], %[[I]], %[[T]]]
// VECTOR: memref.load %[[Q]][%[[I]]]
// VECTOR: scf.yield
// VECTOR: gpu.barrier
// After the last token the carried scan value goes back to the slot (every thread: per channel).
// VECTOR: scf.if %true
// VECTOR: memref.store %{{.*}}, %[[SCAN]][%[[SLOT]], %[[HEAD]], %[[T]]]
// VECTOR: gpu.return

// A scalar decay with a scan, RoPE and the normalizer: every thread
// evaluates the shared region alike; pairs rotate after a barrier; z . q'
// is summed after another; thread 0 stores the scan.
// SCALAR: gpu.func @opt_step
// SCALAR-DAG: %[[Q:.*]] = memref.view %{{.*}}[%c0][]
// SCALAR-DAG: %[[ZQ:.*]] = memref.view %{{.*}}[%c768][]
// SCALAR: %[[T:.*]] = gpu.thread_id x
// SCALAR: scf.for
// SCALAR: gpu.barrier
// SCALAR: scf.if
// SCALAR: math.cos
// SCALAR: memref.store %{{.*}}, %[[Q]][%[[T]]]
// SCALAR: gpu.barrier
// SCALAR: memref.store %{{.*}}, %[[ZQ]][%[[T]]]
// SCALAR-NEXT: gpu.barrier
// SCALAR: scf.for {{.*}} iter_args
// SCALAR: memref.load %[[ZQ]]
// SCALAR: scf.for {{.*}} iter_args
// SCALAR: gpu.barrier
// SCALAR: %[[FIRST:.*]] = arith.cmpi eq, %[[T]], %{{.*}} : index
// SCALAR: scf.if %[[FIRST]]
// SCALAR: gpu.return
decay.recurrence @opt scalar inputs(%dt : [B, T, H])
    attributes {rope_theta = 500.0, normalizer} {
  %prev, %c = decay.cumsum "c" %dt init 0.0 : f32
  %g = arith.subf %prev, %c : f32
  decay.yield %g : f32
}
