// decay-expand-gpu-kernels: per head dim, a gpu.module with the forward's
// preparation kernel (one thread per key channel) and chunk kernel (4 warps,
// tensor cores), on raw device pointers, with their launches recorded.
// RUN: decay-opt %examples/mamba2.mlir --decay-expand-gpu-kernels='head-dims=64,128' | FileCheck %s --check-prefix=SCALAR
// RUN: decay-opt %examples/gla.mlir --decay-expand-gpu-kernels='head-dims=64' | FileCheck %s --check-prefix=VECTOR
// RUN: decay-opt %s --split-input-file --decay-expand-gpu-kernels='head-dims=64' -verify-diagnostics
// RUN: not decay-opt %examples/gla.mlir --decay-expand-gpu-kernels='chunk-size=64' 2>&1 | FileCheck %s --check-prefix=CHUNK
// RUN: decay-opt %examples/lightnet.mlir --decay-derive-gradients --decay-expand-gpu-kernels='head-dims=64 backward=true' | FileCheck %s --check-prefix=BACKWARD
// RUN: not decay-opt %examples/gla.mlir --decay-expand-gpu-kernels='head-dims=64 backward=true' 2>&1 | FileCheck %s --check-prefix=NO-ADJOINT

// The container module, one gpu.module per head dim, and the spec is gone.
// SCALAR: module attributes {gpu.container_module}
// SCALAR-NOT: decay.recurrence
// The workspace: q', k' per channel; G and its rounding error per token (a scalar decay).
// SCALAR: gpu.module @mamba2_forward_k64_v64 attributes {decay.chunk_size = 32 : i64, decay.entry = "forward", decay.key_dim = 64 : i64, decay.value_dim = 64 : i64, decay.workspace = [{name = "q", per_slot = false, rows = 64 : i64}, {name = "k", per_slot = false, rows = 64 : i64}, {name = "g", per_slot = false, rows = 1 : i64}, {name = "g_low", per_slot = false, rows = 1 : i64}]}
// mamba2's forward takes 10 tensors (q, k, v, h0, seqs, dt, A_log, dt_bias, o, ht), then the workspace, then B, T, H, N.
// SCALAR: gpu.func @mamba2_forward_prepare(%arg0: !llvm.ptr, {{(%arg[0-9]+: !llvm.ptr, )+}}%arg10: !llvm.ptr, %arg11: i64, %arg12: i64, %arg13: i64, %arg14: i64) kernel attributes {decay.dynamic_shared_bytes = 0 : i64, decay.grid = [{dims = "NH", divide = 1 : i64}, {dims = "", divide = 1 : i64}, {dims = "", divide = 1 : i64}], decay.threads = 64 : i64}
// Each pointer becomes a memref of its tensor's shape (sizes from B, T, H, N; K = V = 64).
// SCALAR: builtin.unrealized_conversion_cast %{{.*}} : !llvm.struct<(ptr, ptr, i64, array<4 x i64>, array<4 x i64>)> to memref<?x?x?x?xf32>
// SCALAR: gpu.thread_id x
// SCALAR: gpu.block_id x
// SCALAR: gpu.func @mamba2_forward_chunks({{.*}}) kernel attributes {decay.dynamic_shared_bytes = 48384 : i64, decay.grid = [{dims = "NH", divide = 1 : i64}, {dims = "V", divide = 64 : i64}, {dims = "", divide = 1 : i64}], decay.threads = 128 : i64}
// The chunk's tiles in dynamic shared memory: q, k (rows padded by 4), G, G_low, v, A, H.
// SCALAR: %[[SHARED:.*]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// SCALAR: memref.view %[[SHARED]][%c0{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<32x68xf32, #gpu.address_space<workgroup>>
// SCALAR: memref.view %[[SHARED]][%c8704{{.*}}][] : {{.*}} to memref<32x68xf32, #gpu.address_space<workgroup>>
// SCALAR: memref.view %[[SHARED]][%c17408{{.*}}][] : {{.*}} to memref<32x1xf32, #gpu.address_space<workgroup>>
// SCALAR: memref.view %[[SHARED]][%c17536{{.*}}][] : {{.*}} to memref<32x1xf32, #gpu.address_space<workgroup>>
// SCALAR: memref.view %[[SHARED]][%c17664{{.*}}][] : {{.*}} to memref<32x68xf32, #gpu.address_space<workgroup>>
// SCALAR: memref.view %[[SHARED]][%c26368{{.*}}][] : {{.*}} to memref<32x36xf32, #gpu.address_space<workgroup>>
// SCALAR: memref.view %[[SHARED]][%c30976{{.*}}][] : {{.*}} to memref<64x68xf32, #gpu.address_space<workgroup>>
// Chunks: stage (cp.async, zero-filled past the chunk's end for q, k, v;
// G repeats the last token's), barrier, scores, barrier, outputs, barrier, state.
// SCALAR: scf.for
// SCALAR: gpu.barrier
// SCALAR: %[[FILL:.*]] = arith.select %{{.*}}, %c4{{.*}}, %c0{{.*}} : index
// SCALAR: nvgpu.device_async_copy %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}], %{{.*}}[%{{.*}}, %{{.*}}], 4, %[[FILL]] : memref<?x?x?x?xf32> to memref<32x68xf32, #gpu.address_space<workgroup>>
// SCALAR: %[[GROUP:.*]] = nvgpu.device_async_create_group
// SCALAR-NEXT: nvgpu.device_async_wait %[[GROUP]] {numGroups = 0 : i32}
// SCALAR-NEXT: gpu.barrier
// The 3xTF32 split: hi keeps the top 19 bits (mask 0xffffe000), lo = x - hi.
// SCALAR: %[[MASK:.*]] = arith.constant -8192 : i32
// SCALAR: %[[BITS:.*]] = arith.bitcast %{{.*}} : f32 to i32
// SCALAR-NEXT: %[[HIBITS:.*]] = arith.andi %[[BITS]], %[[MASK]] : i32
// SCALAR-NEXT: %[[HI:.*]] = arith.bitcast %[[HIBITS]] : i32 to f32
// SCALAR-NEXT: arith.subf %{{.*}}, %[[HI]] : f32
// Three mma.sync per product: lo*hi, hi*lo, then hi*hi.
// SCALAR: %[[M1:.*]] = nvgpu.mma.sync(%{{.*}}, %{{.*}}, %{{.*}}) {mmaShape = [16, 8, 8], tf32Enabled} : (vector<4x1xf32>, vector<2x1xf32>, vector<2x2xf32>) -> vector<2x2xf32>
// SCALAR-NEXT: %[[M2:.*]] = nvgpu.mma.sync(%{{.*}}, %{{.*}}, %[[M1]]) {mmaShape = [16, 8, 8], tf32Enabled}
// SCALAR-NEXT: nvgpu.mma.sync(%{{.*}}, %{{.*}}, %[[M2]]) {mmaShape = [16, 8, 8], tf32Enabled}
// SCALAR: gpu.module @mamba2_forward_k128_v128
// SCALAR-SAME: decay.key_dim = 128 : i64

// A vector decay keeps G per channel and has the secondary chunking's
// diagonal blocks elementwise (exp of G_t - G_s clamped at 0).
// VECTOR: gpu.module @gla_forward_k64_v64 attributes {{{.*}}decay.workspace = [{name = "q", per_slot = false, rows = 64 : i64}, {name = "k", per_slot = false, rows = 64 : i64}, {name = "g", per_slot = false, rows = 64 : i64}, {name = "g_low", per_slot = false, rows = 64 : i64}]}
// VECTOR: gpu.func @gla_forward_prepare
// VECTOR: gpu.func @gla_forward_chunks
// VECTOR-SAME: decay.dynamic_shared_bytes = 65536 : i64
// VECTOR: memref.view {{.*}} to memref<32x68xf32, #gpu.address_space<workgroup>>
// VECTOR: memref.view {{.*}} to memref<32x68xf32, #gpu.address_space<workgroup>>
// VECTOR: memref.view {{.*}} to memref<32x68xf32, #gpu.address_space<workgroup>>
// VECTOR: memref.view {{.*}} to memref<32x68xf32, #gpu.address_space<workgroup>>
// VECTOR: nvgpu.mma.sync
// VECTOR: arith.minimumf %{{.*}}, %cst{{.*}} : f32

// The backward: four launches over one workspace, which adds the per-token
// gradient parts, the carried-in scan values and, per chunk slot, the
// entering states and the edge terms of dg.
// BACKWARD: gpu.module @lightnet_forward_k64_v64
// BACKWARD: gpu.module @lightnet_backward_k64_v64 attributes {decay.chunk_size = 32 : i64, decay.entry = "backward", decay.key_dim = 64 : i64, decay.value_dim = 64 : i64, decay.workspace = [{name = "q", {{.*}}}, {name = "k", {{.*}}}, {name = "g", {{.*}}}, {name = "g_low", {{.*}}}, {name = "dq_star", per_slot = false, rows = 64 : i64}, {name = "dk_pair", per_slot = false, rows = 64 : i64}, {name = "dk_state", per_slot = false, rows = 64 : i64}, {name = "diag", per_slot = false, rows = 1 : i64}, {name = "scan_prev_0", per_slot = false, rows = 64 : i64}, {name = "states", per_slot = true, rows = 4096 : i64}, {name = "edge", per_slot = true, rows = 64 : i64}]}
// BACKWARD: gpu.func @lightnet_backward_prepare({{.*}}) kernel attributes {{{.*}}decay.threads = 64 : i64}
// BACKWARD: gpu.func @lightnet_backward_states({{.*}}) kernel attributes {{{.*}}decay.threads = 128 : i64}
// BACKWARD: gpu.func @lightnet_backward_chunks({{.*}}) kernel attributes {{{.*}}decay.threads = 128 : i64}
// BACKWARD: nvgpu.mma.sync
// BACKWARD: memref.atomic_rmw addf
// BACKWARD: gpu.func @lightnet_backward_finish({{.*}}) kernel attributes {decay.dynamic_shared_bytes = 0 : i64, decay.grid = [{dims = "NH", divide = 1 : i64}, {dims = "", divide = 1 : i64}, {dims = "", divide = 1 : i64}], decay.threads = 1 : i64}
// BACKWARD-NOT: decay.adjoint
// NO-ADJOINT: error: 'decay.recurrence' op has no decay.adjoint: run decay-derive-gradients before decay-expand-gpu-kernels{backward=true}

// CHUNK: error: decay-expand-gpu-kernels: chunk-size must be 32 (two 16-token sub-blocks per chunk), got 64

// -----

// expected-error @below {{'decay.recurrence' op cannot be compiled for the GPU: the spec fixes K = 32}}
decay.recurrence @fixed scalar inputs(%dt : [B, T, H]) attributes {key_dim = 32} {
  decay.yield %dt : f32
}
