// decay-gpu-kernels-to-nvvm: the GPU kernels in the LLVM and NVVM dialects,
// the IR the NVPTX back end (and the SIMT emulation) takes: thread and block
// ids, barriers, the tf32 mma.sync with its fragment types, the dynamic shared
// memory as an external array, libdevice math as declarations, and the launch
// attributes kept on the kernels.
// RUN: decay-opt %examples/mamba2.mlir --decay-expand-gpu-kernels='head-dims=64' \
// RUN:   | decay-opt --pass-pipeline='builtin.module(decay-gpu-kernels-to-nvvm)' | FileCheck %s

// CHECK: gpu.module @mamba2_forward_k64_v64
// CHECK-DAG: llvm.mlir.global external @__dynamic_shmem__0() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
// CHECK-DAG: llvm.func @__nv_expf(f32) -> f32
// The preparation: one block per (sequence, head), a thread per channel.
// CHECK: llvm.func @mamba2_forward_prepare(%arg0: !llvm.ptr, {{.*}}, %arg14: i64) attributes {decay.dynamic_shared_bytes = 0 : i64, {{.*}}decay.threads = 64 : i64, gpu.kernel, nvvm.kernel}
// CHECK: nvvm.read.ptx.sreg.tid.x
// CHECK: nvvm.read.ptx.sreg.ctaid.x
// The chunk kernel: block (item, value tile), barriers, tensor cores.
// CHECK: llvm.func @mamba2_forward_chunks({{.*}}) attributes {decay.dynamic_shared_bytes = 48384 : i64, {{.*}}decay.threads = 128 : i64, gpu.kernel, nvvm.kernel}
// CHECK: llvm.mlir.addressof @__dynamic_shmem__0 : !llvm.ptr<3>
// CHECK: nvvm.read.ptx.sreg.ctaid.y
// CHECK: nvvm.barrier0
// CHECK: nvvm.mma.sync A[{{.*}}]  B[{{.*}}]  C[{{.*}}]  {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<tf32>, multiplicandBPtxType = #nvvm.mma_type<tf32>, shape = #nvvm.shape<m = 16, n = 8, k = 8>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// Shared memory is addressed in its own address space.
// CHECK: llvm.store {{.*}} : f32, !llvm.ptr<3>
// CHECK-NOT: nvgpu.
// CHECK-NOT: gpu.barrier
