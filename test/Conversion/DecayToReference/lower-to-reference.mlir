// RUN: decay-opt %s --decay-lower-to-reference -split-input-file | FileCheck %s
// RUN: decay-opt %s --decay-lower-to-reference -split-input-file | FileCheck %s --check-prefix=GONE
// RUN: decay-opt %s --decay-lower-to-reference --decay-reference-to-llvm -split-input-file > %t.llvm.mlir
// RUN: FileCheck %s --check-prefix=LLVM < %t.llvm.mlir
// RUN: FileCheck %s --check-prefix=LLVM-ONLY < %t.llvm.mlir

// Every example spec lowers to a reference function and through the LLVM pipeline.
// RUN: decay-opt %examples/linear.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.linear && FileCheck %s --check-prefix=EXAMPLE -DNAME=linear < %t.linear && FileCheck %s --check-prefix=LLVM-ONLY < %t.linear
// RUN: decay-opt %examples/retnet.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.retnet && FileCheck %s --check-prefix=EXAMPLE -DNAME=retnet < %t.retnet && FileCheck %s --check-prefix=LLVM-ONLY < %t.retnet
// RUN: decay-opt %examples/tnll.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.tnll && FileCheck %s --check-prefix=EXAMPLE -DNAME=tnll < %t.tnll && FileCheck %s --check-prefix=LLVM-ONLY < %t.tnll
// RUN: decay-opt %examples/mamba2.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.mamba2 && FileCheck %s --check-prefix=EXAMPLE -DNAME=mamba2 < %t.mamba2 && FileCheck %s --check-prefix=LLVM-ONLY < %t.mamba2
// RUN: decay-opt %examples/mamba2_vector.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.mamba2_vector && FileCheck %s --check-prefix=EXAMPLE -DNAME=mamba2_vector < %t.mamba2_vector && FileCheck %s --check-prefix=LLVM-ONLY < %t.mamba2_vector
// RUN: decay-opt %examples/gla.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.gla && FileCheck %s --check-prefix=EXAMPLE -DNAME=gla < %t.gla && FileCheck %s --check-prefix=LLVM-ONLY < %t.gla
// RUN: decay-opt %examples/hgrn2.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.hgrn2 && FileCheck %s --check-prefix=EXAMPLE -DNAME=hgrn2 < %t.hgrn2 && FileCheck %s --check-prefix=LLVM-ONLY < %t.hgrn2
// RUN: decay-opt %examples/lightnet.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.lightnet && FileCheck %s --check-prefix=EXAMPLE -DNAME=lightnet < %t.lightnet && FileCheck %s --check-prefix=LLVM-ONLY < %t.lightnet
// RUN: decay-opt %examples/simple_decay.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.simple_decay && FileCheck %s --check-prefix=EXAMPLE -DNAME=simple_decay < %t.simple_decay && FileCheck %s --check-prefix=LLVM-ONLY < %t.simple_decay
// RUN: decay-opt %examples/d2d_exp.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.d2d_exp && FileCheck %s --check-prefix=EXAMPLE -DNAME=d2d_exp < %t.d2d_exp && FileCheck %s --check-prefix=LLVM-ONLY < %t.d2d_exp
// RUN: decay-opt %examples/d2d_elu.mlir --decay-lower-to-reference --decay-reference-to-llvm > %t.d2d_elu && FileCheck %s --check-prefix=EXAMPLE -DNAME=d2d_elu < %t.d2d_elu && FileCheck %s --check-prefix=LLVM-ONLY < %t.d2d_elu

// decay-lower-to-reference replaces each `decay.recurrence @name` by
// `func.func @name_reference`, the float64 token-by-token recurrence, with the
// arguments (q, k, v, h0, seqs, inputs..., params..., [norm_h0], scan_h0...,
// o, ht, [norm_ht], scan_ht...). The spec itself is gone:
// GONE-NOT: decay.

// EXAMPLE:       llvm.func @[[NAME]]_reference(
// EXAMPLE:       llvm.func @_mlir_ciface_[[NAME]]_reference(
// EXAMPLE:         llvm.call @[[NAME]]_reference(

// The LLVM pipeline leaves only the llvm dialect (libm for the transcendental
// functions), and a C interface for every reference function.
// LLVM-ONLY-NOT: scf.
// LLVM-ONLY-NOT: cf.
// LLVM-ONLY-NOT: memref.
// LLVM-ONLY-NOT: arith.
// LLVM-ONLY-NOT: math.
// LLVM-ONLY-NOT: func.func
// LLVM-ONLY-NOT: func.return
// LLVM-ONLY-NOT: decay.
// LLVM-ONLY-NOT: unrealized_conversion_cast

//===----------------------------------------------------------------------===//
// Scalar decay (Mamba2): inputs and params of several ranks, a decay op
// expanded in f64, and the full recurrence around it.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @mamba2_reference(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>,
// CHECK-SAME:    %[[DT:[a-z0-9_]+]]: memref<?x?x?xf64>, %[[ALOG:[a-z0-9_]+]]: memref<?xf64>, %[[DTB:[a-z0-9_]+]]: memref<?xf64>,
// CHECK-SAME:    %[[O:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[HT:[a-z0-9_]+]]: memref<?x?x?x?xf64>)
// CHECK-SAME:    attributes {llvm.emit_c_interface} {
// H and K from q, V from v; the default scale is K^-1/2.
// CHECK:         %[[NH:.*]] = memref.dim %[[Q]], %c2 : memref<?x?x?x?xf64>
// CHECK:         %[[KD:.*]] = memref.dim %[[Q]], %c3 : memref<?x?x?x?xf64>
// CHECK:         %[[VD:.*]] = memref.dim %[[V]], %c3{{.*}} : memref<?x?x?x?xf64>
// CHECK:         %[[KF:.*]] = arith.sitofp %{{.*}} : i64 to f64
// CHECK:         %[[SQRT:.*]] = math.sqrt %[[KF]] : f64
// CHECK:         %[[SCALE:.*]] = arith.divf %{{.*}}, %[[SQRT]] : f64
// One loop over the sequences (batch row, first token, end token), one per head.
// CHECK:         %[[NSEQ:.*]] = memref.dim %[[SEQS]], %c0 : memref<?x3xi64>
// CHECK:         scf.for %[[N:[a-z0-9_]+]] = %{{.*}} to %[[NSEQ]] step
// CHECK:           memref.load %[[SEQS]][%[[N]], %{{.*}}] : memref<?x3xi64>
// CHECK-NEXT:      %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[START:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           scf.for %[[H:[a-z0-9_]+]] = %{{.*}} to %[[NH]] step
// The initial state is copied into the final state, which is then updated in place.
// CHECK:               %[[S0:.*]] = memref.load %[[H0]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NEXT:          memref.store %[[S0]], %[[HT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:             scf.for %[[T:[a-z0-9_]+]] = %[[START]] to %[[END]] step
// The region, evaluated in f64 at (b, t, h): dt [B,T,H], A_log [H], dt_bias [H].
// CHECK:               %[[DTV:.*]] = memref.load %[[DT]][%[[B]], %[[T]], %[[H]]] : memref<?x?x?xf64>
// CHECK-NEXT:          %[[AV:.*]] = memref.load %[[ALOG]][%[[H]]] : memref<?xf64>
// CHECK-NEXT:          %[[BV:.*]] = memref.load %[[DTB]][%[[H]]] : memref<?xf64>
// CHECK-NEXT:          %[[X:.*]] = arith.addf %[[DTV]], %[[BV]] : f64
// decay.softplus: max(x, 0) + log1p(exp(-|x|)).
// CHECK-NEXT:          %[[ABS:.*]] = math.absf %[[X]] : f64
// CHECK-NEXT:          %[[NABS:.*]] = arith.negf %[[ABS]] : f64
// CHECK-NEXT:          %[[E:.*]] = math.exp %[[NABS]] : f64
// CHECK-NEXT:          %[[L:.*]] = math.log1p %[[E]] : f64
// CHECK-NEXT:          %[[ZERO:.*]] = arith.constant 0.000000e+00 : f64
// CHECK-NEXT:          %[[M:.*]] = arith.maximumf %[[X]], %[[ZERO]] : f64
// CHECK-NEXT:          %[[SP:.*]] = arith.addf %[[M]], %[[L]] : f64
// CHECK-NEXT:          %[[A:.*]] = math.exp %[[AV]] : f64
// CHECK-NEXT:          %[[NA:.*]] = arith.negf %[[A]] : f64
// CHECK-NEXT:          %[[G:.*]] = arith.mulf %[[NA]], %[[SP]] : f64
// A scalar decay is the same for every key channel.
// CHECK:               scf.for %[[C:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:            memref.store %[[G]], %[[GBUF:[a-z0-9_]+]][%[[C]]] : memref<?xf64>
// q and k (identity feature map) into buffers.
// CHECK:               memref.load %[[Q]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:               memref.load %[[K]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// S <- exp(g) S + k v^T
// CHECK:               scf.for %[[I:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:            %[[GI:.*]] = memref.load %[[GBUF]][%[[I]]] : memref<?xf64>
// CHECK-NEXT:            %[[DECAY:.*]] = math.exp %[[GI]] : f64
// CHECK-NEXT:            %[[KI:.*]] = memref.load %{{.*}}[%[[I]]] : memref<?xf64>
// CHECK:                 scf.for %[[J:[a-z0-9_]+]] = %{{.*}} to %[[VD]] step
// CHECK-NEXT:              %[[OLD:.*]] = memref.load %[[HT]][%[[N]], %[[H]], %[[I]], %[[J]]] : memref<?x?x?x?xf64>
// CHECK-NEXT:              %[[VJ:.*]] = memref.load %[[V]][%[[B]], %[[T]], %[[H]], %[[J]]] : memref<?x?x?x?xf64>
// CHECK-NEXT:              %[[KV:.*]] = arith.mulf %[[KI]], %[[VJ]] : f64
// CHECK-NEXT:              %[[DS:.*]] = arith.mulf %[[DECAY]], %[[OLD]] : f64
// CHECK-NEXT:              %[[NEW:.*]] = arith.addf %[[DS]], %[[KV]] : f64
// CHECK-NEXT:              memref.store %[[NEW]], %[[HT]][%[[N]], %[[H]], %[[I]], %[[J]]] : memref<?x?x?x?xf64>
// o = scale S^T q
// CHECK:               %[[DOT:.*]] = scf.for %{{.*}} iter_args(%{{.*}}) -> (f64) {
// CHECK:               %[[OUT:.*]] = arith.mulf %[[DOT]], %[[SCALE]] : f64
// CHECK-NEXT:          memref.store %[[OUT]], %[[O]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:         memref.dealloc
// CHECK:         return

// LLVM-LABEL: llvm.func @mamba2_reference(
// LLVM:       llvm.call @log1p(
// LLVM-LABEL: llvm.func @_mlir_ciface_mamba2_reference(
// LLVM:       llvm.call @mamba2_reference(
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

// -----

//===----------------------------------------------------------------------===//
// Vector decay with a scan and a derived key (LightNet): the scan's state has
// its own h0/ht arguments, [N, H, K], and the input key k is never read.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @lightnet_reference(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>, %[[F:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[Z0:[a-z0-9_]+]]: memref<?x?x?xf64>,
// CHECK-SAME:    %[[O:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[HT:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[ZT:[a-z0-9_]+]]: memref<?x?x?xf64>)
// CHECK:         %[[KD:.*]] = memref.dim %[[Q]], %c3 : memref<?x?x?x?xf64>
// CHECK:         scf.for %[[N:[a-z0-9_]+]] =
// CHECK:           %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           scf.for %[[H:[a-z0-9_]+]] =
// CHECK:                 memref.store %{{.*}}, %[[HT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// The scan state starts from scan_z_h0 (per channel).
// CHECK:             scf.for %[[C0:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:          %[[INIT:.*]] = memref.load %[[Z0]][%[[N]], %[[H]], %[[C0]]] : memref<?x?x?xf64>
// CHECK-NEXT:          memref.store %[[INIT]], %[[ZT]][%[[N]], %[[H]], %[[C0]]] : memref<?x?x?xf64>
// CHECK:             scf.for %[[T:[a-z0-9_]+]] =
// The region per key channel c: f at (b, t, h, c); the scan loads its carried
// state, combines it with logaddexp and stores it back.
// CHECK:               scf.for %[[C:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:            %[[FV:.*]] = memref.load %[[F]][%[[B]], %[[T]], %[[H]], %[[C]]] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[PREV:.*]] = memref.load %[[ZT]][%[[N]], %[[H]], %[[C]]] : memref<?x?x?xf64>
// CHECK-NEXT:            %[[HI:.*]] = arith.maximumf %[[PREV]], %[[FV]] : f64
// CHECK-NEXT:            %[[DIFF:.*]] = arith.subf %[[PREV]], %[[FV]] : f64
// CHECK-NEXT:            %[[ABS:.*]] = math.absf %[[DIFF]] : f64
// CHECK-NEXT:            %[[NABS:.*]] = arith.negf %[[ABS]] : f64
// CHECK-NEXT:            %[[E:.*]] = math.exp %[[NABS]] : f64
// CHECK-NEXT:            %[[L:.*]] = math.log1p %[[E]] : f64
// CHECK-NEXT:            %[[SUM:.*]] = arith.addf %[[HI]], %[[L]] : f64
// logaddexp(-inf, -inf) = -inf and logaddexp(inf, inf) = inf, not NaN.
// CHECK-NEXT:            %[[AHI:.*]] = math.absf %[[HI]] : f64
// CHECK-NEXT:            %[[INF:.*]] = arith.constant 0x7FF0000000000000 : f64
// CHECK-NEXT:            %[[BOTH:.*]] = arith.cmpf oeq, %[[AHI]], %[[INF]] : f64
// CHECK-NEXT:            %[[CUR:.*]] = arith.select %[[BOTH]], %[[HI]], %[[SUM]] : f64
// CHECK-NEXT:            memref.store %[[CUR]], %[[ZT]][%[[N]], %[[H]], %[[C]]] : memref<?x?x?xf64>
// g = prev - cur, key = exp(f - cur), both per channel.
// CHECK-NEXT:            %[[G:.*]] = arith.subf %[[PREV]], %[[CUR]] : f64
// CHECK-NEXT:            %[[D:.*]] = arith.subf %[[FV]], %[[CUR]] : f64
// CHECK-NEXT:            %[[KEY:.*]] = math.exp %[[D]] : f64
// CHECK-NEXT:            memref.store %[[G]], %[[GBUF:[a-z0-9_]+]][%[[C]]] : memref<?xf64>
// CHECK-NEXT:            memref.store %[[KEY]], %[[KBUF:[a-z0-9_]+]][%[[C]]] : memref<?xf64>
// Only q is loaded; the derived key is used as derived.
// CHECK:               memref.load %[[Q]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NOT:           memref.load %[[K]]
// CHECK:               %[[GI:.*]] = memref.load %[[GBUF]][%{{.*}}] : memref<?xf64>
// CHECK-NEXT:          math.exp %[[GI]] : f64
// CHECK-NEXT:          memref.load %[[KBUF]][%{{.*}}] : memref<?xf64>
// CHECK-NOT:       memref.load %[[K]]
// CHECK:         return

// LLVM-LABEL: llvm.func @lightnet_reference(
// LLVM-LABEL: llvm.func @_mlir_ciface_lightnet_reference(
decay.recurrence @lightnet vector
    inputs(%f : [B, T, H, K]) {
  %prev, %z = decay.logcumsumexp "z" %f init 0.0 : f32
  %g = arith.subf %prev, %z : f32
  %d = arith.subf %f, %z : f32
  %key = math.exp %d : f32
  decay.yield %g, %key : f32, f32
}

// -----

//===----------------------------------------------------------------------===//
// Normalizer and feature map (D2D-style constant vector decay): norm_h0 and
// norm_ht [N, H, K], phi = exp on q and k, o = S^T q / (z . q + eps).
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @normalized_reference(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>, %[[PS:[a-z0-9_]+]]: memref<?x?xf64>, %[[Z0:[a-z0-9_]+]]: memref<?x?x?xf64>,
// CHECK-SAME:    %[[O:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[HT:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[ZT:[a-z0-9_]+]]: memref<?x?x?xf64>)
// CHECK:         scf.for %[[N:[a-z0-9_]+]] =
// CHECK:           %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           scf.for %[[H:[a-z0-9_]+]] =
// CHECK:             scf.for %[[I0:[a-z0-9_]+]] =
// CHECK:               %[[INIT:.*]] = memref.load %[[Z0]][%[[N]], %[[H]], %[[I0]]] : memref<?x?x?xf64>
// CHECK-NEXT:          memref.store %[[INIT]], %[[ZT]][%[[N]], %[[H]], %[[I0]]] : memref<?x?x?xf64>
// CHECK:             scf.for %[[T:[a-z0-9_]+]] =
// The region per (h, c): the param ps [H, K], the head index as f64.
// CHECK:               scf.for %[[C:[a-z0-9_]+]] =
// CHECK-NEXT:            %[[PSV:.*]] = memref.load %[[PS]][%[[H]], %[[C]]] : memref<?x?xf64>
// CHECK-NEXT:            %[[HIDX:.*]] = arith.index_cast %[[H]] : index to i64
// CHECK-NEXT:            %[[HF:.*]] = arith.sitofp %[[HIDX]] : i64 to f64
// CHECK-NEXT:            %[[G:.*]] = arith.subf %[[HF]], %[[PSV]] : f64
// CHECK-NEXT:            memref.store %[[G]], %{{.*}}[%[[C]]] : memref<?xf64>
// phi = exp on q and on k.
// CHECK:               %[[QV:.*]] = memref.load %[[Q]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NEXT:          %[[PQ:.*]] = math.exp %[[QV]] : f64
// CHECK-NEXT:          memref.store %[[PQ]], %[[QBUF:[a-z0-9_]+]][%{{.*}}] : memref<?xf64>
// CHECK-NEXT:          %[[KV:.*]] = memref.load %[[K]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NEXT:          %[[PK:.*]] = math.exp %[[KV]] : f64
// CHECK-NEXT:          memref.store %[[PK]], %[[KBUF:[a-z0-9_]+]][%{{.*}}] : memref<?xf64>
// z <- exp(g) z + k, after the state update of the same channel.
// CHECK:               scf.for %[[I:[a-z0-9_]+]] =
// CHECK-NEXT:            memref.load
// CHECK-NEXT:            %[[DECAY:.*]] = math.exp
// CHECK-NEXT:            %[[KI:.*]] = memref.load %[[KBUF]][%[[I]]] : memref<?xf64>
// CHECK:                 memref.store %{{.*}}, %[[HT]]
// CHECK:                 %[[ZOLD:.*]] = memref.load %[[ZT]][%[[N]], %[[H]], %[[I]]] : memref<?x?x?xf64>
// CHECK-NEXT:            %[[ZD:.*]] = arith.mulf %[[DECAY]], %[[ZOLD]] : f64
// CHECK-NEXT:            %[[ZNEW:.*]] = arith.addf %[[ZD]], %[[KI]] : f64
// CHECK-NEXT:            memref.store %[[ZNEW]], %[[ZT]][%[[N]], %[[H]], %[[I]]] : memref<?x?x?xf64>
// The denominator z . q + eps, with the spec's eps; no scale.
// CHECK:               %[[ZQ:.*]] = scf.for
// CHECK-NEXT:            memref.load %[[ZT]]
// CHECK-NEXT:            memref.load %[[QBUF]]
// CHECK:               %[[EPS:.*]] = arith.constant 1.000000e-05 : f64
// CHECK-NEXT:          %[[DEN:.*]] = arith.addf %[[ZQ]], %[[EPS]] : f64
// CHECK-NEXT:          %[[ONE:.*]] = arith.constant 1.000000e+00 : f64
// CHECK-NEXT:          %[[INV:.*]] = arith.divf %[[ONE]], %[[DEN]] : f64
// CHECK:               %[[SQ:.*]] = scf.for
// CHECK:               %[[OUT:.*]] = arith.mulf %[[SQ]], %[[INV]] : f64
// CHECK-NEXT:          memref.store %[[OUT]], %[[O]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:         return

// LLVM-LABEL: llvm.func @normalized_reference(
// LLVM-LABEL: llvm.func @_mlir_ciface_normalized_reference(
decay.recurrence @normalized constant_vector
    params(%ps : [H, K])
    attributes {feature_map = "exp", normalizer, eps = 1.0e-5} {
  %h = decay.head_index : f32
  %g = arith.subf %h, %ps : f32
  decay.yield %g : f32
}

// -----

//===----------------------------------------------------------------------===//
// RoPE (rotate-half on q and k at the position within the sequence), with a
// fixed scale.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @rope_reference(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>, %[[X:[a-z0-9_]+]]: memref<?x?x?xf64>,
// CHECK-SAME:    %[[O:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[HT:[a-z0-9_]+]]: memref<?x?x?x?xf64>)
// CHECK:         %[[KD:.*]] = memref.dim %[[Q]], %c3 : memref<?x?x?x?xf64>
// CHECK-NOT:     math.sqrt
// CHECK:         %[[SCALE:.*]] = arith.constant 2.500000e-01 : f64
// CHECK:           memref.load %[[SEQS]]
// CHECK-NEXT:      arith.index_cast
// CHECK:           %[[START:.*]] = arith.index_cast
// CHECK:             scf.for %[[T:[a-z0-9_]+]] = %[[START]] to
// CHECK-NEXT:          %[[POS:.*]] = arith.subi %[[T]], %[[START]] : index
// decay.logsigmoid: min(x, 0) - log1p(exp(-|x|)).
// CHECK:               %[[XV:.*]] = memref.load %[[X]]
// CHECK:               %[[L:.*]] = math.log1p
// CHECK:               %[[MIN:.*]] = arith.minimumf %[[XV]], %{{.*}} : f64
// CHECK-NEXT:          arith.subf %[[MIN]], %[[L]] : f64
// CHECK:               memref.load %[[Q]]
// CHECK-NEXT:          memref.store %{{.*}}, %[[QBUF:[a-z0-9_]+]][%{{.*}}] : memref<?xf64>
// CHECK-NEXT:          memref.load %[[K]]
// CHECK-NEXT:          memref.store %{{.*}}, %[[KBUF:[a-z0-9_]+]][%{{.*}}] : memref<?xf64>
// The rotation of q: angle = pos * exp(-2i/K * log(theta)), log(10000) below.
// CHECK:               %[[HALF:.*]] = arith.divui %[[KD]], %c2{{.*}} : index
// CHECK-NEXT:          %[[LOGTHETA:.*]] = arith.constant 9.2103403719761836 : f64
// CHECK:               %[[POSI:.*]] = arith.index_cast %[[POS]] : index to i64
// CHECK-NEXT:          %[[POSF:.*]] = arith.sitofp %[[POSI]] : i64 to f64
// CHECK:               scf.for %[[I:[a-z0-9_]+]] = %{{.*}} to %[[HALF]] step
// CHECK:                 %[[EXPO:.*]] = arith.mulf %{{.*}}, %[[LOGTHETA]] : f64
// CHECK-NEXT:            %[[FREQ:.*]] = math.exp %[[EXPO]] : f64
// CHECK-NEXT:            %[[ANGLE:.*]] = arith.mulf %[[POSF]], %[[FREQ]] : f64
// CHECK-NEXT:            %[[COS:.*]] = math.cos %[[ANGLE]] : f64
// CHECK-NEXT:            %[[SIN:.*]] = math.sin %[[ANGLE]] : f64
// CHECK-NEXT:            %[[J:.*]] = arith.addi %[[I]], %[[HALF]] : index
// CHECK-NEXT:            %[[X1:.*]] = memref.load %[[QBUF]][%[[I]]] : memref<?xf64>
// CHECK-NEXT:            %[[X2:.*]] = memref.load %[[QBUF]][%[[J]]] : memref<?xf64>
// CHECK-NEXT:            %[[A1:.*]] = arith.mulf %[[X1]], %[[COS]] : f64
// CHECK-NEXT:            %[[A2:.*]] = arith.mulf %[[X2]], %[[SIN]] : f64
// CHECK-NEXT:            %[[R1:.*]] = arith.subf %[[A1]], %[[A2]] : f64
// CHECK-NEXT:            memref.store %[[R1]], %[[QBUF]][%[[I]]] : memref<?xf64>
// CHECK-NEXT:            %[[B1:.*]] = arith.mulf %[[X1]], %[[SIN]] : f64
// CHECK-NEXT:            %[[B2:.*]] = arith.mulf %[[X2]], %[[COS]] : f64
// CHECK-NEXT:            %[[R2:.*]] = arith.addf %[[B1]], %[[B2]] : f64
// CHECK-NEXT:            memref.store %[[R2]], %[[QBUF]][%[[J]]] : memref<?xf64>
// And the same rotation of k.
// CHECK:               scf.for
// CHECK:                 math.cos
// CHECK:                 math.sin
// CHECK:                 memref.load %[[KBUF]]
// CHECK:                 memref.store %{{.*}}, %[[KBUF]]
// CHECK:               arith.mulf %{{.*}}, %[[SCALE]] : f64
// CHECK:         return

// LLVM-LABEL: llvm.func @rope_reference(
// LLVM:       llvm.call @cos(
// LLVM:       llvm.call @sin(
// LLVM-LABEL: llvm.func @_mlir_ciface_rope_reference(
decay.recurrence @rope scalar
    inputs(%x : [B, T, H])
    attributes {rope_theta = 10000.0, scale = 0.25} {
  %g = decay.logsigmoid %x : f32
  decay.yield %g : f32
}

// -----

//===----------------------------------------------------------------------===//
// No decay: no region, no spec arguments, g = 0.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @linear_reference(
// CHECK-SAME:    %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>,
// CHECK-SAME:    %{{[a-z0-9_]+}}: memref<?x3xi64>,
// CHECK-SAME:    %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>) attributes
// In the token loop (after the position p = t - start):
// CHECK:               arith.subi %{{.*}}, %{{.*}} : index
// CHECK:               scf.for %[[C:[a-z0-9_]+]] =
// CHECK-NEXT:            %[[ZERO:.*]] = arith.constant 0.000000e+00 : f64
// CHECK-NEXT:            memref.store %[[ZERO]], %[[GBUF:[a-z0-9_]+]][%[[C]]] : memref<?xf64>
// CHECK-NEXT:          }
// CHECK:               memref.load %[[GBUF]]
// CHECK-NEXT:          math.exp
// CHECK:         return

// LLVM-LABEL: llvm.func @linear_reference(
// LLVM-LABEL: llvm.func @_mlir_ciface_linear_reference(
decay.recurrence @linear none
