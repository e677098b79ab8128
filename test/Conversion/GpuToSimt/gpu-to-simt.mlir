// decay-gpu-to-simt: the NVVM kernels of a gpu.module become host functions
// that read ids from the thread's record (decayrt/simt_abi.h) and call every
// GPU primitive through its table of operations; shared-memory accesses are
// reported first; libdevice calls become the C library's.
// RUN: decay-opt %s --split-input-file --decay-gpu-to-simt -verify-diagnostics | FileCheck %s
// The real kernels, through the whole pipeline: nothing of NVVM is left.
// RUN: decay-opt %examples/gla.mlir --decay-derive-gradients --decay-expand-gpu-kernels='head-dims=64 backward=true' \
// RUN:   | decay-opt --pass-pipeline='builtin.module(decay-gpu-kernels-to-simt)' | FileCheck %s --check-prefix=GLA
// The deliberately broken kernel of the emulator's race test: one barrier fewer.
// RUN: decay-opt %examples/gla.mlir --decay-expand-gpu-kernels='head-dims=64' | grep -c gpu.barrier | FileCheck %s --check-prefix=BARRIERS
// RUN: decay-opt %examples/gla.mlir --decay-expand-gpu-kernels='head-dims=64 test-omit-barrier=1' | grep -c gpu.barrier | FileCheck %s --check-prefix=OMITTED

// CHECK-NOT: gpu.module
// CHECK-NOT: gpu.container_module
// CHECK: llvm.func @expf(f32) -> f32
// The kernel's body: internal, the thread's record first.
// CHECK: llvm.func internal @decay_simt_m_k_thread(%[[THREAD:.*]]: !llvm.ptr, %[[DATA:.*]]: !llvm.ptr, %[[N:.*]]: i64) {
// CHECK-DAG: %[[MMA:.*]] = llvm.alloca %{{.*}} x !llvm.array<4 x f32>
// CHECK-DAG: %[[VALID:.*]] = llvm.alloca %{{.*}} x i8
// tid.x: field 0, element 0 of decay_simt_thread.
// CHECK: %[[TIDP:.*]] = llvm.getelementptr %[[THREAD]][0, 0, 0] : (!llvm.ptr) -> !llvm.ptr, !llvm.struct<(array<3 x i32>, array<3 x i32>, array<3 x i32>, array<3 x i32>, i32, i32, ptr, ptr, ptr)>
// CHECK: llvm.load %[[TIDP]] : !llvm.ptr -> i32
// ctaid.y: field 2, element 1.
// CHECK: llvm.getelementptr %[[THREAD]][0, 2, 1]
// The dynamic shared memory: the block's buffer (field 6).
// CHECK: %[[SHP:.*]] = llvm.getelementptr %[[THREAD]][0, 6]
// CHECK: %[[SH:.*]] = llvm.load %[[SHP]] : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.addrspacecast %[[SH]] : !llvm.ptr to !llvm.ptr<3>
// A shared store: reported (operation 6) with its size and kind 1 (write), then done.
// CHECK: %[[FOUR:.*]] = llvm.mlir.constant(4 : i32) : i32
// CHECK: %[[WRITE:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK: %[[OPS:.*]] = llvm.getelementptr %[[THREAD]][0, 7]
// CHECK: %[[TABLE:.*]] = llvm.load %[[OPS]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[ENTRY:.*]] = llvm.getelementptr %[[TABLE]][6] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[FN:.*]] = llvm.load %[[ENTRY]] : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.call %[[FN]](%[[THREAD]], %{{.*}}, %[[FOUR]], %[[WRITE]]) : !llvm.ptr, (!llvm.ptr, !llvm.ptr, i32, i32) -> ()
// CHECK: llvm.store %{{.*}}, %{{.*}} : f32, !llvm.ptr<3>
// bar.sync: operation 0.
// CHECK: llvm.getelementptr %{{.*}}[0] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: llvm.call %{{.*}}(%[[THREAD]]) : !llvm.ptr, (!llvm.ptr) -> ()
// A shared load: reported as a read (kind 0).
// CHECK: llvm.call %{{.*}}(%[[THREAD]], %{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, !llvm.ptr, i32, i32) -> ()
// CHECK: llvm.load %{{.*}} : !llvm.ptr<3> -> f32
// mma.sync: operation 1 with the lane's fragments and the result slot, read back into the struct.
// CHECK: llvm.getelementptr %{{.*}}[1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: llvm.call %{{.*}}(%[[THREAD]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[MMA]]) : !llvm.ptr, (!llvm.ptr, i32, i32, i32, i32, i32, i32, f32, f32, f32, f32, !llvm.ptr) -> ()
// CHECK-COUNT-4: llvm.load %{{.*}} : !llvm.ptr -> f32
// shfl.sync bfly (mode 2) on an f32, as bits.
// CHECK: llvm.bitcast %{{.*}} : f32 to i32
// CHECK: %[[BFLY:.*]] = llvm.mlir.constant(2 : i32) : i32
// CHECK: llvm.call %{{.*}}(%[[THREAD]], %[[BFLY]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[VALID]]) : !llvm.ptr, (!llvm.ptr, i32, i32, i32, i32, i32, !llvm.ptr) -> i32
// CHECK: llvm.bitcast %{{.*}} : i32 to f32
// cp.async of 16 bytes with 8 from the source (operation 3), commit (4), wait 0 (5).
// CHECK: %[[SIXTEEN:.*]] = llvm.mlir.constant(16 : i32) : i32
// CHECK: llvm.call %{{.*}}(%[[THREAD]], %{{.*}}, %{{.*}}, %[[SIXTEEN]], %{{.*}}) : !llvm.ptr, (!llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i32) -> ()
// CHECK: llvm.getelementptr %{{.*}}[4] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: llvm.getelementptr %{{.*}}[5] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// libdevice's expf is the C library's.
// CHECK: llvm.call @expf(%{{.*}}) : (f32) -> f32
// The entry point: each parameter read through parameters[i].
// CHECK: llvm.func @decay_simt_m_k(%[[T:.*]]: !llvm.ptr, %[[P:.*]]: !llvm.ptr)
// CHECK: %[[P0:.*]] = llvm.getelementptr %[[P]][0] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[A0:.*]] = llvm.load %[[P0]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[V0:.*]] = llvm.load %[[A0]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[P1:.*]] = llvm.getelementptr %[[P]][1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[A1:.*]] = llvm.load %[[P1]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[V1:.*]] = llvm.load %[[A1]] : !llvm.ptr -> i64
// CHECK: llvm.call @decay_simt_m_k_thread(%[[T]], %[[V0]], %[[V1]])
module attributes {gpu.container_module} {
  gpu.module @m {
    llvm.mlir.global external @__dynamic_shmem__0() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
    llvm.func @__nv_expf(f32) -> f32
    llvm.func @k(%data: !llvm.ptr, %n: i64) attributes {gpu.kernel, nvvm.kernel} {
      %tid = nvvm.read.ptx.sreg.tid.x : i32
      %block = nvvm.read.ptx.sreg.ctaid.y : i32
      %shared = llvm.mlir.addressof @__dynamic_shmem__0 : !llvm.ptr<3>
      %slot = llvm.getelementptr %shared[%tid] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, f32
      %one = llvm.mlir.constant(1.0 : f32) : f32
      llvm.store %one, %slot : f32, !llvm.ptr<3>
      nvvm.barrier0
      %read = llvm.load %slot : !llvm.ptr<3> -> f32
      %bits = llvm.bitcast %read : f32 to i32
      %mma = nvvm.mma.sync A[%bits, %bits, %bits, %bits] B[%bits, %bits] C[%read, %read, %read, %read]
        {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>,
         multiplicandAPtxType = #nvvm.mma_type<tf32>, multiplicandBPtxType = #nvvm.mma_type<tf32>,
         shape = #nvvm.shape<m = 16, n = 8, k = 8>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
      %d0 = llvm.extractvalue %mma[0] : !llvm.struct<(f32, f32, f32, f32)>
      %mask = llvm.mlir.constant(-1 : i32) : i32
      %offset = llvm.mlir.constant(1 : i32) : i32
      %clamp = llvm.mlir.constant(31 : i32) : i32
      %sum = nvvm.shfl.sync bfly %mask, %d0, %offset, %clamp : f32 -> f32
      %global = llvm.addrspacecast %data : !llvm.ptr to !llvm.ptr<1>
      %eight = llvm.mlir.constant(8 : i32) : i32
      nvvm.cp.async.shared.global %slot, %global, 16, cache = ca, %eight : !llvm.ptr<3>, !llvm.ptr<1>, i32
      nvvm.cp.async.commit.group
      nvvm.cp.async.wait.group 0
      %e = llvm.call @__nv_expf(%sum) : (f32) -> f32
      llvm.store %e, %data : f32, !llvm.ptr
      llvm.return
    }
  }
}

// GLA-NOT: nvvm.
// GLA-NOT: gpu.module
// GLA-DAG: llvm.func @decay_simt_gla_forward_k64_v64_gla_forward_prepare(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
// GLA-DAG: llvm.func @decay_simt_gla_forward_k64_v64_gla_forward_chunks(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
// GLA-DAG: llvm.func @decay_simt_gla_backward_k64_v64_gla_backward_prepare(
// GLA-DAG: llvm.func @decay_simt_gla_backward_k64_v64_gla_backward_states(
// GLA-DAG: llvm.func @decay_simt_gla_backward_k64_v64_gla_backward_chunks(
// GLA-DAG: llvm.func @decay_simt_gla_backward_k64_v64_gla_backward_finish(

// BARRIERS: 5
// OMITTED: 4

// -----

// rcp.approx.ftz: 1 / x with subnormals flushed; libdevice's fast functions are the C library's.
// CHECK-LABEL: llvm.func internal @decay_simt_approximate_k_thread
// CHECK: %[[ABS:.*]] = llvm.intr.fabs(%[[X:.*]]) : (f32) -> f32
// CHECK: %[[SUB:.*]] = llvm.fcmp "olt" %[[ABS]], %{{.*}} : f32
// CHECK: %[[SIGNED:.*]] = llvm.intr.copysign(%{{.*}}, %[[X]]) : (f32, f32) -> f32
// CHECK: %[[FLUSHED:.*]] = llvm.select %[[SUB]], %[[SIGNED]], %[[X]] : i1, f32
// CHECK: llvm.fdiv %{{.*}}, %[[FLUSHED]] : f32
// CHECK-NOT: nvvm.rcp
// CHECK: llvm.call @logf(
gpu.module @approximate {
  llvm.func @__nv_fast_logf(f32) -> f32
  llvm.func @k(%x: f32, %out: !llvm.ptr) attributes {gpu.kernel, nvvm.kernel} {
    %r = nvvm.rcp.approx.ftz.f %x : f32
    %l = llvm.call @__nv_fast_logf(%r) : (f32) -> f32
    llvm.store %l, %out : f32, !llvm.ptr
    llvm.return
  }
}

// -----

gpu.module @unsupported_register {
  llvm.func @k() attributes {gpu.kernel, nvvm.kernel} {
    // expected-error @+1 {{the SIMT emulator does not support 'nvvm.read.ptx.sreg.smid'}}
    %sm = nvvm.read.ptx.sreg.smid : i32
    llvm.return
  }
}

// -----

gpu.module @unsupported_mma_shape {
  llvm.func @k(%a: i32, %c: f32) attributes {gpu.kernel, nvvm.kernel} {
    // expected-error @+1 {{the SIMT emulator supports mma.sync only as m16n8k8 row.col with tf32 operands and f32 accumulators}}
    %d = nvvm.mma.sync A[%a, %a, %a, %a] B[%a, %a] C[%c, %c, %c, %c]
      {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>,
       multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>,
       shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
    llvm.return
  }
}

// -----

gpu.module @unsupported_vote {
  llvm.func @k(%p: i1) attributes {gpu.kernel, nvvm.kernel} {
    %mask = llvm.mlir.constant(-1 : i32) : i32
    // expected-error @+1 {{the SIMT emulator does not support 'nvvm.vote.sync'}}
    %any = nvvm.vote.sync any %mask, %p -> i1
    llvm.return
  }
}

// -----

gpu.module @no_host_math {
  // expected-error @+1 {{the SIMT emulator has no host equivalent of '__nv_rsqrtf'}}
  llvm.func @__nv_rsqrtf(f32) -> f32
  llvm.func @k(%x: f32) attributes {gpu.kernel, nvvm.kernel} {
    %y = llvm.call @__nv_rsqrtf(%x) : (f32) -> f32
    llvm.return
  }
}

// -----

gpu.module @static_shared {
  llvm.mlir.global internal @tile() {addr_space = 3 : i32} : !llvm.array<4 x f32>
  llvm.func @k() attributes {gpu.kernel, nvvm.kernel} {
    // expected-error @+1 {{the SIMT emulator supports only dynamic shared memory}}
    %p = llvm.mlir.addressof @tile : !llvm.ptr<3>
    llvm.return
  }
}

// -----

gpu.module @generic_shared {
  llvm.mlir.global external @__dynamic_shmem__0() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
  llvm.func @k() attributes {gpu.kernel, nvvm.kernel} {
    %p = llvm.mlir.addressof @__dynamic_shmem__0 : !llvm.ptr<3>
    // expected-error @+1 {{the SIMT emulator does not follow shared-memory pointers cast to another address space}}
    %g = llvm.addrspacecast %p : !llvm.ptr<3> to !llvm.ptr
    llvm.return
  }
}
