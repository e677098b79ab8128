// decay-expand-kernels with bf16 inputs: bf16 memrefs for the per-token tensors (spec option dtype = bf16, or the pass's dtype option), extf on their loads and truncf on their stores, f32 states and params, f32 accumulators for shared input gradients, the f32 override, the bad dtype error, and decay-expand-bf16 in the CPU pipeline.
// RUN: decay-opt %s -split-input-file --decay-derive-gradients --decay-expand-kernels=backward=true | FileCheck %s
// RUN: decay-opt %s -split-input-file --decay-derive-gradients '--decay-expand-kernels=backward=true dtype=f32' | FileCheck %s --check-prefix=F32 --implicit-check-not=bf16
// RUN: decay-opt %s -split-input-file --decay-derive-gradients '--decay-expand-kernels=backward=true dtype=bf16' | FileCheck %s --check-prefix=SHARED
// RUN: not decay-opt %s -split-input-file --decay-expand-kernels=dtype=f16 2>&1 | FileCheck %s --check-prefix=ERR
// RUN: decay-opt %s -split-input-file --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm | FileCheck %s --check-prefix=LLVM

// dtype names f32 or bf16 only.
// ERR: error: decay-expand-kernels: dtype must be f32 or bf16, got 'f16'

//===----------------------------------------------------------------------===//
// Mamba2 with dtype = bf16 in the spec.
//===----------------------------------------------------------------------===//

// q, k, v, the input dt and o are bf16; h0, the params and ht stay f32.
// CHECK-LABEL: func.func @mamba2_forward(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xbf16>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xbf16>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xbf16>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>,
// CHECK-SAME:    %[[DT:[a-z0-9_]+]]: memref<?x?x?xbf16>, %[[ALOG:[a-z0-9_]+]]: memref<?xf32>, %[[DTB:[a-z0-9_]+]]: memref<?xf32>,
// CHECK-SAME:    %[[O:[a-z0-9_]+]]: memref<?x?x?x?xbf16>, %[[HT:[a-z0-9_]+]]: memref<?x?x?x?xf32>)
// A bf16 load is extended to f32 before any arithmetic; params are read as f32.
// CHECK:         %[[DTRAW:.+]] = memref.load %[[DT]][{{.+}}] : memref<?x?x?xbf16>
// CHECK-NEXT:    %[[DTF:.+]] = arith.extf %[[DTRAW]] : bf16 to f32
// CHECK-NEXT:    %[[A:.+]] = memref.load %[[ALOG]][{{.+}}] : memref<?xf32>
// CHECK:         %[[QRAW:.+]] = memref.load %[[Q]][{{.+}}] : memref<?x?x?x?xbf16>
// CHECK-NEXT:    %[[QF:.+]] = arith.extf %[[QRAW]] : bf16 to f32
// CHECK-NEXT:    memref.store %[[QF]], %{{.+}} : memref<?x?xf32>
// CHECK:         %[[KRAW:.+]] = memref.load %[[K]][{{.+}}] : memref<?x?x?x?xbf16>
// CHECK-NEXT:    arith.extf %[[KRAW]] : bf16 to f32
// CHECK:         %[[VRAW:.+]] = memref.load %[[V]][{{.+}}] : memref<?x?x?x?xbf16>
// CHECK-NEXT:    arith.extf %[[VRAW]] : bf16 to f32
// o is rounded to bf16 (to nearest even: truncf's default) as it is stored.
// CHECK:         %[[OB:.+]] = arith.truncf %{{.+}} : f32 to bf16
// CHECK-NEXT:    memref.store %[[OB]], %[[O]][{{.+}}] : memref<?x?x?x?xbf16>
// The state stays f32, without conversions.
// CHECK-NOT:     arith.truncf {{.*}} to bf16
// CHECK:         return

// The backward: do, dq, dk, dv and ddt are bf16; dht, dh0 and the param
// gradients are f32. Each token's ddt is stored once, rounded.
// CHECK-LABEL: func.func @mamba2_backward(
// CHECK-SAME:    %{{[a-z0-9_]+}}: memref<?x?x?x?xbf16>, %{{[a-z0-9_]+}}: memref<?x?x?x?xbf16>, %{{[a-z0-9_]+}}: memref<?x?x?x?xbf16>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf32>,
// CHECK-SAME:    %{{[a-z0-9_]+}}: memref<?x3xi64>, %{{[a-z0-9_]+}}: memref<?x?x?xbf16>, %{{[a-z0-9_]+}}: memref<?xf32>, %{{[a-z0-9_]+}}: memref<?xf32>,
// CHECK-SAME:    %[[DO:[a-z0-9_]+]]: memref<?x?x?x?xbf16>, %[[DHT:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// CHECK-SAME:    %[[DQ:[a-z0-9_]+]]: memref<?x?x?x?xbf16>, %[[DK:[a-z0-9_]+]]: memref<?x?x?x?xbf16>, %[[DV:[a-z0-9_]+]]: memref<?x?x?x?xbf16>, %[[DH0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// CHECK-SAME:    %[[DDT:[a-z0-9_]+]]: memref<?x?x?xbf16>, %[[DALOG:[a-z0-9_]+]]: memref<?xf32>, %[[DDTB:[a-z0-9_]+]]: memref<?xf32>)
// CHECK:         %[[DORAW:.+]] = memref.load %[[DO]][{{.+}}] : memref<?x?x?x?xbf16>
// CHECK-NEXT:    arith.extf %[[DORAW]] : bf16 to f32
// dv leaves dv^T through the 16x16 transposes, a vector of 16 rounded at a time.
// CHECK:         %[[DVB:.+]] = arith.truncf %{{.+}} : vector<16xf32> to vector<16xbf16>
// CHECK:         vector.store %[[DVB]], %[[DV]][{{.+}}] : memref<?x?x?x?xbf16>, vector<16xbf16>
// The columns, then the rows left over, one element at a time.
// CHECK:         %[[DVC:.+]] = arith.truncf %{{.+}} : f32 to bf16
// CHECK:         memref.store %[[DVC]], %[[DV]][{{.+}}] : memref<?x?x?x?xbf16>
// CHECK:         %[[DVR:.+]] = arith.truncf %{{.+}} : f32 to bf16
// CHECK:         memref.store %[[DVR]], %[[DV]][{{.+}}] : memref<?x?x?x?xbf16>
// Each token's ddt in the reverse token loop; then the chunk's rows of dq
// and dk (plain stores: only f32 results take non-temporal ones).
// CHECK:         %[[DDTB16:.+]] = arith.truncf %{{.+}} : f32 to bf16
// CHECK-NEXT:    memref.store %[[DDTB16]], %[[DDT]][{{.+}}] : memref<?x?x?xbf16>
// CHECK:         %[[DQB:.+]] = arith.truncf %{{.+}} : f32 to bf16
// CHECK-NEXT:    memref.store %[[DQB]], %[[DQ]][{{.+}}] : memref<?x?x?x?xbf16>
// CHECK:         %[[DKB:.+]] = arith.truncf %{{.+}} : f32 to bf16
// CHECK-NEXT:    memref.store %[[DKB]], %[[DK]][{{.+}}] : memref<?x?x?x?xbf16>
// CHECK:         memref.atomic_rmw addf %{{.+}}, %[[DALOG]][{{.+}}] : (f32, memref<?xf32>) -> f32

// dtype=f32 overrides the spec: no bf16 anywhere (--implicit-check-not).
// F32-LABEL: func.func @mamba2_forward(
// F32-SAME:    memref<?x?x?x?xf32>
// F32-LABEL: func.func @mamba2_backward(

// The CPU pipeline expands the conversions (decay-expand-bf16): bf16 travels
// as bits through i16, with no fpext/fptrunc of bf16 left for LLVM.
// LLVM-LABEL: llvm.func @mamba2_forward(
// LLVM:         %[[BITS:.+]] = llvm.bitcast %{{.+}} : bf16 to i16
// LLVM-NOT:     llvm.fpext {{.*}}bf16
// LLVM-NOT:     llvm.fptrunc {{.*}}bf16
// LLVM:         llvm.store %{{.+}}, %{{.+}} : bf16, !llvm.ptr
// LLVM-NOT:     llvm.fpext {{.*}}bf16
// LLVM-NOT:     llvm.fptrunc {{.*}}bf16
// LLVM-LABEL: llvm.func @_mlir_ciface_mamba2_backward(
decay.recurrence @mamba2 scalar
    inputs(%dt : [B, T, H])
    params(%A_log : [H], %dt_bias : [H])
    attributes {dtype = bf16} {
  %x = arith.addf %dt, %dt_bias : f32
  %sp = decay.softplus %x : f32
  %a = math.exp %A_log : f32
  %na = arith.negf %a : f32
  %g = arith.mulf %na, %sp : f32
  decay.yield %g : f32
}

// -----

//===----------------------------------------------------------------------===//
// Shared input gradients (pass option dtype=bf16): da [B,T] collects one
// contribution per head, df [B,T,H] one per key channel.
//===----------------------------------------------------------------------===//

// The ABI function widens the caller's bf16 gradients into f32 accumulators,
// calls the kernel body, then rounds them back once and frees them.
// SHARED-LABEL: func.func @shared_backward(
// SHARED-SAME:    %[[DA:[a-z0-9_]+]]: memref<?x?xbf16>, %[[DF:[a-z0-9_]+]]: memref<?x?x?xbf16>) attributes {llvm.emit_c_interface} {
// SHARED:         %[[ACCA:.+]] = memref.alloc(%{{.+}}, %{{.+}}) : memref<?x?xf32>
// SHARED:         %[[RAWA:.+]] = memref.load %[[DA]][%{{.+}}, %{{.+}}] : memref<?x?xbf16>
// SHARED-NEXT:    %[[WIDEA:.+]] = arith.extf %[[RAWA]] : bf16 to f32
// SHARED-NEXT:    memref.store %[[WIDEA]], %[[ACCA]][%{{.+}}, %{{.+}}] : memref<?x?xf32>
// SHARED:         %[[ACCF:.+]] = memref.alloc(%{{.+}}, %{{.+}}, %{{.+}}) : memref<?x?x?xf32>
// SHARED:         call @shared_backward_body(%{{.+}}, %[[ACCA]], %[[ACCF]]) : ({{.+}}, memref<?x?xf32>, memref<?x?x?xf32>) -> ()
// SHARED:         %[[SUMA:.+]] = memref.load %[[ACCA]][%{{.+}}, %{{.+}}] : memref<?x?xf32>
// SHARED-NEXT:    %[[ROUNDA:.+]] = arith.truncf %[[SUMA]] : f32 to bf16
// SHARED-NEXT:    memref.store %[[ROUNDA]], %[[DA]][%{{.+}}, %{{.+}}] : memref<?x?xbf16>
// SHARED:         memref.dealloc %[[ACCA]] : memref<?x?xf32>
// SHARED:         memref.store %{{.+}}, %[[DF]][%{{.+}}, %{{.+}}, %{{.+}}] : memref<?x?x?xbf16>
// SHARED:         memref.dealloc %[[ACCF]] : memref<?x?x?xf32>
// SHARED-NEXT:    return
// The body takes the accumulators as f32 and adds to them in f32 (atomically
// across heads).
// SHARED-LABEL: func.func private @shared_backward_body(
// SHARED-SAME:    %[[BDA:[a-z0-9_]+]]: memref<?x?xf32>, %[[BDF:[a-z0-9_]+]]: memref<?x?x?xf32>) {
// SHARED:         memref.atomic_rmw addf %{{.+}}, %[[BDA]][%{{.+}}, %{{.+}}] : (f32, memref<?x?xf32>) -> f32
decay.recurrence @shared vector inputs(%a : [B, T], %f : [B, T, H]) {
  %x = arith.addf %a, %f : f32
  %g = decay.logsigmoid %x : f32
  decay.yield %g : f32
}
