// decay-cpu-kernels-to-llvm on the chunked kernels: only the llvm dialect and the OpenMP ops remain, the (sequence, group of heads) work items on an omp.parallel / omp.wsloop collapse(2) nest, vector<16xf32> fmuladd tiles, the causal mask, exp as a polynomial, f64 dLambda, atomic param gradients, and the C interface of each kernel.
// RUN: decay-opt %s --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.mamba2
// RUN: FileCheck %s < %t.mamba2
// RUN: FileCheck %s --check-prefix=ONLY < %t.mamba2
// RUN: FileCheck %s --check-prefix=FWD < %t.mamba2

// Every example spec goes through the pipeline the same way.
// RUN: decay-opt %examples/linear.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.linear && FileCheck %s --check-prefix=EXAMPLE -DNAME=linear < %t.linear && FileCheck %s --check-prefix=ONLY < %t.linear
// RUN: decay-opt %examples/retnet.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.retnet && FileCheck %s --check-prefix=EXAMPLE -DNAME=retnet < %t.retnet && FileCheck %s --check-prefix=ONLY < %t.retnet
// RUN: decay-opt %examples/tnll.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.tnll && FileCheck %s --check-prefix=EXAMPLE -DNAME=tnll < %t.tnll && FileCheck %s --check-prefix=ONLY < %t.tnll
// RUN: decay-opt %examples/mamba2_vector.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.mamba2_vector && FileCheck %s --check-prefix=EXAMPLE -DNAME=mamba2_vector < %t.mamba2_vector && FileCheck %s --check-prefix=ONLY < %t.mamba2_vector
// RUN: decay-opt %examples/gla.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.gla && FileCheck %s --check-prefix=EXAMPLE -DNAME=gla < %t.gla && FileCheck %s --check-prefix=ONLY < %t.gla
// RUN: decay-opt %examples/hgrn2.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.hgrn2 && FileCheck %s --check-prefix=EXAMPLE -DNAME=hgrn2 < %t.hgrn2 && FileCheck %s --check-prefix=ONLY < %t.hgrn2
// RUN: decay-opt %examples/lightnet.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.lightnet && FileCheck %s --check-prefix=EXAMPLE -DNAME=lightnet < %t.lightnet && FileCheck %s --check-prefix=ONLY < %t.lightnet
// RUN: decay-opt %examples/simple_decay.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.simple_decay && FileCheck %s --check-prefix=EXAMPLE -DNAME=simple_decay < %t.simple_decay && FileCheck %s --check-prefix=ONLY < %t.simple_decay
// RUN: decay-opt %examples/d2d_exp.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.d2d_exp && FileCheck %s --check-prefix=EXAMPLE -DNAME=d2d_exp < %t.d2d_exp && FileCheck %s --check-prefix=ONLY < %t.d2d_exp
// RUN: decay-opt %examples/d2d_elu.mlir --decay-derive-gradients --decay-expand-kernels=backward=true --decay-cpu-kernels-to-llvm > %t.d2d_elu && FileCheck %s --check-prefix=EXAMPLE -DNAME=d2d_elu < %t.d2d_elu && FileCheck %s --check-prefix=ONLY < %t.d2d_elu

// The chunked kernels hand out their work items one at a time (dynamic
// schedule); the step kernel keeps equal static shares.
// RUN: decay-opt %examples/mamba2.mlir --decay-expand-kernels=step=true --decay-cpu-kernels-to-llvm | FileCheck %s --check-prefix=SCHED
// SCHED-LABEL: llvm.func @mamba2_forward(
// SCHED:         omp.wsloop schedule(dynamic = %{{[0-9]+}} : i32) {
// SCHED-LABEL: llvm.func @mamba2_step(
// SCHED:         omp.wsloop {

// Only the llvm dialect remains, plus the OpenMP ops that carry the
// (sequence, head) loop (omp.parallel, omp.wsloop, omp.loop_nest, with llvm
// types) for the LLVM IR translation.
// ONLY-NOT: scf.
// ONLY-NOT: cf.
// ONLY-NOT: memref.
// (vector. as an op, not inside an intrinsic's name: llvm.intr.vector.reduce.fadd.)
// ONLY-NOT: {{[^.]}}vector.
// ONLY-NOT: arith.
// ONLY-NOT: math.
// ONLY-NOT: index.
// ONLY-NOT: func.func
// ONLY-NOT: func.return
// ONLY-NOT: func.call
// ONLY-NOT: decay.
// ONLY-NOT: unrealized_conversion_cast
// ONLY-NOT: omp.reduction
// ONLY-NOT: omp.declare_reduction

// EXAMPLE:       llvm.func @[[NAME]]_forward(
// EXAMPLE:         omp.parallel {
// EXAMPLE-NEXT:      omp.wsloop schedule(dynamic = %{{.*}} : i32) {
// EXAMPLE-NEXT:        omp.loop_nest (%{{.*}}, %{{.*}}) : i64 = (%{{.*}}, %{{.*}}) to (%{{.*}}, %{{.*}}) step (%{{.*}}, %{{.*}}) collapse(2) {
// EXAMPLE:               llvm.intr.fmuladd(%{{.*}}, %{{.*}}, %{{.*}}) : (vector<16xf32>, vector<16xf32>, vector<16xf32>) -> vector<16xf32>
// EXAMPLE:               omp.yield
// EXAMPLE:             omp.terminator
// EXAMPLE:         llvm.return
// EXAMPLE:       llvm.func @_mlir_ciface_[[NAME]]_forward(
// EXAMPLE:         llvm.call @[[NAME]]_forward(
// EXAMPLE:       llvm.func @[[NAME]]_backward(
// EXAMPLE:         omp.parallel {
// EXAMPLE-NEXT:      omp.wsloop schedule(dynamic = %{{.*}} : i32) {
// EXAMPLE-NEXT:        omp.loop_nest (%{{.*}}, %{{.*}}) : i64 = (%{{.*}}, %{{.*}}) to (%{{.*}}, %{{.*}}) step (%{{.*}}, %{{.*}}) collapse(2) {
// EXAMPLE:               llvm.intr.fmuladd(%{{.*}}, %{{.*}}, %{{.*}}) : (vector<16xf32>, vector<16xf32>, vector<16xf32>) -> vector<16xf32>
// EXAMPLE:               llvm.fpext %{{.*}} : f32 to f64
// EXAMPLE:               omp.yield
// EXAMPLE:             omp.terminator
// EXAMPLE:         llvm.return
// EXAMPLE:       llvm.func @_mlir_ciface_[[NAME]]_backward(
// EXAMPLE:         llvm.call @[[NAME]]_backward(

// The scratch buffers of the kernels come from malloc and go back to free.
// CHECK-DAG:   llvm.func @malloc(i64) -> !llvm.ptr
// CHECK-DAG:   llvm.func @free(!llvm.ptr)

//===----------------------------------------------------------------------===//
// The forward kernel: the memref arguments expanded (q is %arg0..%arg10, seqs
// %arg44..%arg50).
//===----------------------------------------------------------------------===//

// CHECK-LABEL: llvm.func @mamba2_forward(
// CHECK-SAME:    attributes {llvm.emit_c_interface} {
// The (sequence, group of heads) grid is N = seqs.sizes[0] by
// ceil(H / heads per item), H = q.sizes[2].
// CHECK-DAG:     %[[SEQSD:[0-9]+]] = llvm.insertvalue %arg50, %{{[0-9]+}}[4, 1] : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>
// CHECK-DAG:     %[[QD:[0-9]+]] = llvm.insertvalue %arg10, %{{[0-9]+}}[4, 3] : !llvm.struct<(ptr, ptr, i64, array<4 x i64>, array<4 x i64>)>
// CHECK-DAG:     %[[NINF:[0-9]+]] = llvm.mlir.constant(0xFF800000 : f32) : f32
// CHECK-DAG:     %[[ONE:[0-9]+]] = llvm.mlir.constant(1 : i32) : i32
// CHECK:         %[[NH:[0-9]+]] = llvm.extractvalue %[[QD]][3, 2] : !llvm.struct<(ptr, ptr, i64, array<4 x i64>, array<4 x i64>)>
// CHECK:         %[[NSEQ:[0-9]+]] = llvm.extractvalue %[[SEQSD]][3, 0] : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>
// Heads per item: clamp(N * H / 8, 1, 4); groups: ceil(H / heads per item).
// CHECK-NEXT:    %[[PAIRS:[0-9]+]] = llvm.mul %[[NSEQ]], %[[NH]] : i64
// CHECK-NEXT:    %[[SHARE:[0-9]+]] = llvm.udiv %[[PAIRS]], %{{[0-9]+}} : i64
// CHECK-NEXT:    %[[CAP:[0-9]+]] = llvm.intr.umin(%[[SHARE]], %{{[0-9]+}}) : (i64, i64) -> i64
// CHECK-NEXT:    %[[PER:[0-9]+]] = llvm.intr.umax(%[[CAP]], %{{[0-9]+}}) : (i64, i64) -> i64
// CHECK:         %[[GROUPS:[0-9]+]] = llvm.select
// One OpenMP worksharing loop over the collapsed (sequence, group) nest,
// holding the whole work item, handed out one item at a time (dynamic
// schedule, chunk 1).
// CHECK-NEXT:    omp.parallel {
// CHECK-NEXT:      omp.wsloop schedule(dynamic = %[[ONE]] : i32) {
// CHECK-NEXT:        omp.loop_nest (%[[N:arg[0-9]+]], %[[G:arg[0-9]+]]) : i64 = (%[[Z:[0-9]+]], %[[Z]]) to (%[[NSEQ]], %[[GROUPS]]) step (%[[S:[0-9]+]], %[[S]]) collapse(2) {
// The group's heads: [g * per, min(g * per + per, H)).
// CHECK:               %[[HFIRST:[0-9]+]] = llvm.mul %[[G]], %[[PER]] : i64
// The sequence's row of seqs (3 i64 per row).
// CHECK:               llvm.mul %[[N]], %{{[0-9]+}} overflow<nsw, nuw> : i64
// CHECK:               llvm.load %{{[0-9]+}} : !llvm.ptr -> i64
// h0 of (n, h) copied into ht, for every head h of the group.
// CHECK:               llvm.br ^bb{{[0-9]+}}(%[[HFIRST]] : i64)
// CHECK-NEXT:        ^bb{{[0-9]+}}(%[[H:[0-9]+]]: i64):
// CHECK:               %[[ST0:[0-9]+]] = llvm.extractvalue %{{[0-9]+}}[4, 0] : !llvm.struct<(ptr, ptr, i64, array<4 x i64>, array<4 x i64>)>
// CHECK-NEXT:          llvm.mul %[[N]], %[[ST0]] overflow<nsw, nuw> : i64
// CHECK-NEXT:          %[[ST1:[0-9]+]] = llvm.extractvalue %{{[0-9]+}}[4, 1] : !llvm.struct<(ptr, ptr, i64, array<4 x i64>, array<4 x i64>)>
// CHECK-NEXT:          llvm.mul %[[H]], %[[ST1]] overflow<nsw, nuw> : i64
// Per-work-item scratch.
// CHECK:               llvm.call @malloc(
// The register tile: 24 vector<16xf32> accumulators carried by the reduction
// loop's block, a broadcast element of A times a row of B, fused.
// CHECK:             ^bb{{[0-9]+}}(%{{[0-9]+}}: i64{{(, %[0-9]+: vector<16xf32>){24}\)}}:
// CHECK:               llvm.load %{{[0-9]+}} {alignment = 4 : i64} : !llvm.ptr -> vector<16xf32>
// CHECK:               %[[BC:[0-9]+]] = llvm.shufflevector %{{[0-9]+}}, %{{[0-9]+}} [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] : vector<16xf32>
// CHECK-NEXT:          llvm.intr.fmuladd(%[[BC]], %{{[0-9]+}}, %{{[0-9]+}}) : (vector<16xf32>, vector<16xf32>, vector<16xf32>) -> vector<16xf32>
// CHECK-NEXT:          llvm.intr.fmuladd(%[[BC]], %{{[0-9]+}}, %{{[0-9]+}}) : (vector<16xf32>, vector<16xf32>, vector<16xf32>) -> vector<16xf32>
// CHECK-COUNT-14:      llvm.intr.fmuladd(%{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}) : (vector<16xf32>, vector<16xf32>, vector<16xf32>) -> vector<16xf32>
// CHECK:               llvm.store %{{[0-9]+}}, %{{[0-9]+}} {alignment = 4 : i64} : vector<16xf32>, !llvm.ptr
// The causal mask: -inf above the diagonal, before the exponential.
// CHECK:               %[[CAUSAL:[0-9]+]] = llvm.icmp "ule" %{{[0-9]+}}, %{{[0-9]+}} : i64
// CHECK:               %[[HIGH:[0-9]+]] = llvm.fsub %{{[0-9]+}}, %{{[0-9]+}} : f32
// CHECK:               %[[LOW:[0-9]+]] = llvm.fsub %{{[0-9]+}}, %{{[0-9]+}} : f32
// CHECK-NEXT:          %[[DIFF:[0-9]+]] = llvm.fadd %[[HIGH]], %[[LOW]] : f32
// CHECK-NEXT:          %[[EXPONENT:[0-9]+]] = llvm.select %[[CAUSAL]], %[[DIFF]], %[[NINF]] : i1, f32
// exp as MLIR's polynomial approximation in plain f32 arithmetic (no call,
// so LLVM vectorizes it at any width): clamp, range reduction, polynomial,
// times 2^n built from its bits.
// CHECK:               llvm.fcmp "uge" %[[EXPONENT]], %{{[0-9]+}} : f32
// CHECK:               llvm.intr.floor(%{{[0-9]+}}) : (f32) -> f32
// CHECK:               llvm.bitcast %{{[0-9]+}} : i32 to f32
// CHECK:               llvm.call @free(
// CHECK:               omp.yield
// CHECK-NEXT:        }
// CHECK-NEXT:      }
// CHECK-NEXT:      omp.terminator
// CHECK-NEXT:    }
// CHECK-NEXT:    llvm.return
// CHECK:       llvm.func @_mlir_ciface_mamba2_forward(%arg0: !llvm.ptr, %arg1: !llvm.ptr, %arg2: !llvm.ptr, %arg3: !llvm.ptr, %arg4: !llvm.ptr, %arg5: !llvm.ptr, %arg6: !llvm.ptr, %arg7: !llvm.ptr, %arg8: !llvm.ptr, %arg9: !llvm.ptr) attributes {llvm.emit_c_interface} {
// CHECK:         llvm.call @mamba2_forward(
// CHECK:         llvm.return

// The forward kernel computes in f32 only.
// FWD-LABEL: llvm.func @mamba2_forward(
// FWD-NOT:     f64
// FWD:       llvm.func @_mlir_ciface_mamba2_forward(

//===----------------------------------------------------------------------===//
// The backward kernel.
//===----------------------------------------------------------------------===//

// Work items of (sequence, group of heads), as in the forward.
// CHECK-LABEL: llvm.func @mamba2_backward(
// CHECK:         %[[BPER:[0-9]+]] = llvm.intr.umax(%{{[0-9]+}}, %{{[0-9]+}}) : (i64, i64) -> i64
// CHECK:         omp.parallel {
// CHECK-NEXT:      omp.wsloop schedule(dynamic = %{{[0-9]+}} : i32) {
// CHECK-NEXT:        omp.loop_nest (%[[N:arg[0-9]+]], %[[BG:arg[0-9]+]]) : i64 = (%[[Z:[0-9]+]], %[[Z]]) to (%{{[0-9]+}}, %{{[0-9]+}}) step (%[[S:[0-9]+]], %[[S]]) collapse(2) {
// CHECK:               %[[BFIRST:[0-9]+]] = llvm.mul %[[BG]], %[[BPER]] : i64
// CHECK:               llvm.intr.fmuladd(%{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}) : (vector<16xf32>, vector<16xf32>, vector<16xf32>) -> vector<16xf32>
// dLambda in f64.
// CHECK:               llvm.fpext %{{[0-9]+}} : f32 to f64
// CHECK:               llvm.fsub %{{[0-9]+}}, %{{[0-9]+}} : f64
// d_A_log[h] and d_dt_bias[h] are shared by every sequence: atomic adds, at
// the end, for each head h = first + i of the group.
// CHECK:               %[[H:[0-9]+]] = llvm.add %[[BFIRST]], %{{[0-9]+}} : i64
// CHECK:               %[[P1:[0-9]+]] = llvm.getelementptr %{{[0-9]+}}[%[[H]]] : (!llvm.ptr, i64) -> !llvm.ptr, f32
// CHECK-NEXT:          llvm.atomicrmw fadd %[[P1]], %{{[0-9]+}} acq_rel : !llvm.ptr, f32
// CHECK:               %[[P2:[0-9]+]] = llvm.getelementptr %{{[0-9]+}}[%[[H]]] : (!llvm.ptr, i64) -> !llvm.ptr, f32
// CHECK-NEXT:          llvm.atomicrmw fadd %[[P2]], %{{[0-9]+}} acq_rel : !llvm.ptr, f32
// CHECK:               omp.yield
// CHECK:             omp.terminator
// CHECK:         llvm.return
// CHECK:       llvm.func @_mlir_ciface_mamba2_backward(%arg0: !llvm.ptr, {{(%arg[0-9]+: !llvm.ptr, ){15}%arg16: !llvm.ptr}}) attributes {llvm.emit_c_interface} {
// CHECK:         llvm.call @mamba2_backward(
// CHECK:         llvm.return
decay.recurrence @mamba2 scalar
    inputs(%dt : [B, T, H])
    params(%A_log : [H], %dt_bias : [H]) {
  %x = arith.addf %dt, %dt_bias : f32
  %sp = decay.softplus %x : f32
  %a = math.exp %A_log : f32
  %na = arith.negf %a : f32
  %g = arith.mulf %na, %sp : f32
  decay.yield %g : f32
}
