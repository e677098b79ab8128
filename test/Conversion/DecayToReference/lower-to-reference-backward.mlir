// decay-lower-to-reference{backward=true} after decay-derive-gradients: the float64 backward reference function @<name>_reference_backward (signature, forward then reverse sweep over the tokens, inverse RoPE, the decay.adjoint inlined in f64), its error without an adjoint, and its lowering to LLVM.
// RUN: decay-opt %s -split-input-file --decay-derive-gradients --decay-lower-to-reference=backward=true | FileCheck %s
// RUN: decay-opt %s -split-input-file --decay-derive-gradients --decay-lower-to-reference=backward=true | FileCheck %s --check-prefix=GONE
// RUN: not decay-opt %s -split-input-file --decay-lower-to-reference=backward=true 2>&1 | FileCheck %s --check-prefix=NO-ADJOINT
// RUN: decay-opt %s -split-input-file --decay-derive-gradients --decay-lower-to-reference=backward=true --decay-reference-to-llvm | FileCheck %s --check-prefix=LLVM

// The backward function takes (q, k, v, h0, seqs, inputs..., params...,
// [norm_h0], scan_h0..., do, dht, [dnorm_ht], dscan_ht..., dq, dk, dv, dh0,
// d_inputs..., d_params..., [dnorm_h0], dscan_h0...), all f64 memrefs except
// seqs (memref<?x3xi64>). The recurrences and their adjoints are gone:
// GONE-NOT: decay.

// Without decay-derive-gradients a decaying spec has no adjoint to lower.
// NO-ADJOINT: error: 'decay.recurrence' op has no decay.adjoint: run decay-derive-gradients before decay-lower-to-reference{backward=true}
// NO-ADJOINT-NEXT: decay.recurrence @mamba2 scalar
// NO-ADJOINT: error: 'decay.recurrence' op has no decay.adjoint: run decay-derive-gradients
// NO-ADJOINT-NEXT: decay.recurrence @lightnet vector
// NO-ADJOINT: error: 'decay.recurrence' op has no decay.adjoint: run decay-derive-gradients
// NO-ADJOINT-NEXT: decay.recurrence @normrope constant_vector
// A spec without decay needs no adjoint: it still gets its backward function.
// NO-ADJOINT: func.func @linear_reference(
// NO-ADJOINT: func.func @linear_reference_backward(
// NO-ADJOINT-NOT: error:

//===----------------------------------------------------------------------===//
// Scalar decay (Mamba2).
//===----------------------------------------------------------------------===//

// Both functions: the forward reference and the backward one.
// CHECK-LABEL: func.func @mamba2_reference(
// CHECK-LABEL: func.func @mamba2_reference_backward(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>,
// CHECK-SAME:    %[[DT:[a-z0-9_]+]]: memref<?x?x?xf64>, %[[ALOG:[a-z0-9_]+]]: memref<?xf64>, %[[DTB:[a-z0-9_]+]]: memref<?xf64>,
// CHECK-SAME:    %[[DO:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DHT:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[DQ:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DK:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DV:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DH0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[DDT:[a-z0-9_]+]]: memref<?x?x?xf64>, %[[DALOG:[a-z0-9_]+]]: memref<?xf64>, %[[DDTB:[a-z0-9_]+]]: memref<?xf64>)
// CHECK-SAME:    attributes {llvm.emit_c_interface} {
// CHECK:         %[[NH:.*]] = memref.dim %[[Q]], %c2 : memref<?x?x?x?xf64>
// CHECK:         %[[KD:.*]] = memref.dim %[[Q]], %c3 : memref<?x?x?x?xf64>
// CHECK:         %[[VD:.*]] = memref.dim %[[V]], %c3{{.*}} : memref<?x?x?x?xf64>
// CHECK:         %[[SQRT:.*]] = math.sqrt %{{.*}} : f64
// CHECK-NEXT:    %[[SCALE:.*]] = arith.divf %{{.*}}, %[[SQRT]] : f64
// One loop over the sequences, one over the heads.
// CHECK:         scf.for %[[N:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step
// CHECK:           %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[START:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           scf.for %[[H:[a-z0-9_]+]] = %{{.*}} to %[[NH]] step
// The forward sweep, from h0, over t = start..end-1 (stores what the reverse
// sweep needs: the log-decay per channel, q, k, dq).
// CHECK:               memref.load %[[H0]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:             scf.for %[[TF:[a-z0-9_]+]] = %[[START]] to %[[END]] step
// CHECK:               memref.load %[[DT]][%[[B]], %[[TF]], %[[H]]] : memref<?x?x?xf64>
// CHECK:               memref.load %[[DO]][%[[B]], %[[TF]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NEXT:          arith.mulf %[[SCALE]], %{{.*}} : f64
// The reverse sweep starts from dS = dht.
// CHECK:               memref.load %[[DHT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// The reverse loop: r = 0..end-start-1, t = end - 1 - r.
// CHECK:             %[[COUNT:.*]] = arith.subi %[[END]], %[[START]] : index
// CHECK:             scf.for %[[R:[a-z0-9_]+]] = %{{.*}} to %[[COUNT]] step
// CHECK:               %[[LAST:.*]] = arith.subi %[[END]], %{{.*}} : index
// CHECK-NEXT:          %[[T:.*]] = arith.subi %[[LAST]], %[[R]] : index
// CHECK-NEXT:          %[[ROW:.*]] = arith.subi %[[T]], %[[START]] : index
// dv, dq and dk of token t (identity feature map: derivative 1).
// CHECK:                 memref.load %[[V]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:                 memref.store %{{.*}}, %[[DV]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// dLambda = q dq - k dk, accumulated in reverse (the reverse cumsum of dg).
// CHECK:                 %[[QDQ:.*]] = arith.mulf %{{.*}}, %{{.*}} : f64
// CHECK:                 %[[KDK:.*]] = arith.mulf %{{.*}}, %{{.*}} : f64
// CHECK-NEXT:            %[[DLAMBDA:.*]] = arith.subf %[[QDQ]], %[[KDK]] : f64
// CHECK-NEXT:            %[[OLDSUM:.*]] = memref.load %[[LSUM:[a-z0-9_]+]][%{{.*}}] : memref<?xf64>
// CHECK-NEXT:            %[[NEWSUM:.*]] = arith.addf %[[OLDSUM]], %[[DLAMBDA]] : f64
// CHECK-NEXT:            memref.store %[[NEWSUM]], %[[LSUM]][%{{.*}}] : memref<?xf64>
// CHECK:                 memref.store %{{.*}}, %[[DQ]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:                 memref.store %{{.*}}, %[[DK]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// A scalar decay: dg sums the K channels.
// CHECK:               %[[DG:.*]] = scf.for %{{.*}} iter_args
// CHECK-NEXT:            memref.load %[[LSUM]]
// The adjoint, inlined in f64 at (b, t, h): d_dt = d_dt_bias = dg * (-exp(A_log)) * exp(logsigmoid(x)),
// d_A_log = -(dg * softplus(x)) * exp(A_log), x = dt + dt_bias.
// CHECK:               %[[DTV:.*]] = memref.load %[[DT]][%[[B]], %[[T]], %[[H]]] : memref<?x?x?xf64>
// CHECK-NEXT:          %[[AV:.*]] = memref.load %[[ALOG]][%[[H]]] : memref<?xf64>
// CHECK-NEXT:          %[[BV:.*]] = memref.load %[[DTB]][%[[H]]] : memref<?xf64>
// CHECK:               %[[X:.*]] = arith.addf %[[DTV]], %[[BV]] : f64
// softplus(x) = max(x, 0) + log1p(exp(-|x|)), in f64
// CHECK-NEXT:          %[[ABS:.*]] = math.absf %[[X]] : f64
// CHECK-NEXT:          %[[NABS:.*]] = arith.negf %[[ABS]] : f64
// CHECK-NEXT:          %[[E:.*]] = math.exp %[[NABS]] : f64
// CHECK-NEXT:          %[[L:.*]] = math.log1p %[[E]] : f64
// CHECK-NEXT:          %[[ZERO:.*]] = arith.constant 0.000000e+00 : f64
// CHECK-NEXT:          %[[M:.*]] = arith.maximumf %[[X]], %[[ZERO]] : f64
// CHECK-NEXT:          %[[SP:.*]] = arith.addf %[[M]], %[[L]] : f64
// CHECK-NEXT:          %[[A:.*]] = math.exp %[[AV]] : f64
// CHECK-NEXT:          %[[NA:.*]] = arith.negf %[[A]] : f64
// CHECK-NEXT:          arith.mulf %[[NA]], %[[SP]] : f64
// CHECK-NEXT:          %[[DNA:.*]] = arith.mulf %[[DG]], %[[SP]] : f64
// CHECK-NEXT:          %[[DSP:.*]] = arith.mulf %[[DG]], %[[NA]] : f64
// CHECK-NEXT:          %[[DA:.*]] = arith.negf %[[DNA]] : f64
// CHECK-NEXT:          %[[GALOG:.*]] = arith.mulf %[[DA]], %[[A]] : f64
// sigmoid(x) = (x >= 0 ? 1 : e) / (1 + e), e = exp(-|x|), in f64
// CHECK:               %[[AX:.*]] = math.absf %[[X]] : f64
// CHECK-NEXT:          %[[NAX:.*]] = arith.negf %[[AX]] : f64
// CHECK-NEXT:          %[[EX:.*]] = math.exp %[[NAX]] : f64
// CHECK:               %[[NONNEG:.*]] = arith.cmpf oge, %[[X]], %{{.*}} : f64
// CHECK:               %[[NUM:.*]] = arith.select %[[NONNEG]], %{{.*}}, %[[EX]] : f64
// CHECK:               %[[DEN:.*]] = arith.addf %{{.*}}, %{{.*}} : f64
// CHECK-NEXT:          %[[SIG:.*]] = arith.divf %[[NUM]], %[[DEN]] : f64
// CHECK-NEXT:          %[[GX:.*]] = arith.mulf %[[DSP]], %[[SIG]] : f64
// Stored into d_dt [B,T,H] (its only contribution), accumulated (+=) into
// d_A_log [H] and d_dt_bias [H].
// CHECK-NEXT:          memref.store %[[GX]], %[[DDT]][%[[B]], %[[T]], %[[H]]] : memref<?x?x?xf64>
// CHECK-NEXT:          %[[OLD2:.*]] = memref.load %[[DALOG]][%[[H]]] : memref<?xf64>
// CHECK-NEXT:          %[[NEW2:.*]] = arith.addf %[[OLD2]], %[[GALOG]] : f64
// CHECK-NEXT:          memref.store %[[NEW2]], %[[DALOG]][%[[H]]] : memref<?xf64>
// CHECK-NEXT:          %[[OLD3:.*]] = memref.load %[[DDTB]][%[[H]]] : memref<?xf64>
// CHECK-NEXT:          %[[NEW3:.*]] = arith.addf %[[OLD3]], %[[GX]] : f64
// CHECK-NEXT:          memref.store %[[NEW3]], %[[DDTB]][%[[H]]] : memref<?xf64>
// CHECK-NEXT:        }
// After the reverse sweep, dS is dh0.
// CHECK:               memref.store %{{.*}}, %[[DH0]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:         return

// LLVM-LABEL: llvm.func @mamba2_reference_backward(
// LLVM-LABEL: llvm.func @_mlir_ciface_mamba2_reference_backward(
// LLVM:         llvm.call @mamba2_reference_backward(
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
// Vector decay with a scan and a derived key (LightNet): scan_z_h0, dscan_z_ht
// and dscan_z_h0 are [N, H, K]; the input key k is never read and the derived
// key's gradient goes through the adjoint.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @lightnet_reference(
// CHECK-LABEL: func.func @lightnet_reference_backward(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>, %[[F:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[Z0:[a-z0-9_]+]]: memref<?x?x?xf64>,
// CHECK-SAME:    %[[DO:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DHT:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DZT:[a-z0-9_]+]]: memref<?x?x?xf64>,
// CHECK-SAME:    %[[DQ:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DK:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DV:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DH0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[DF:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DZ0:[a-z0-9_]+]]: memref<?x?x?xf64>)
// CHECK-SAME:    attributes {llvm.emit_c_interface} {
// CHECK-NOT:     memref.load %[[K]]
// CHECK:         %[[KD:.*]] = memref.dim %[[Q]], %c3 : memref<?x?x?x?xf64>
// CHECK:         scf.for %[[N:[a-z0-9_]+]] =
// CHECK:           %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[START:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           scf.for %[[H:[a-z0-9_]+]] =
// The scan state starts from scan_z_h0, per channel.
// CHECK:               %[[INIT:.*]] = memref.load %[[Z0]][%[[N]], %[[H]], %[[I0:[a-z0-9_]+]]] : memref<?x?x?xf64>
// CHECK-NEXT:          memref.store %[[INIT]], %[[ZSTATE:[a-z0-9_]+]][%[[I0]]] : memref<?xf64>
// Forward sweep: the region per channel, the scan's prev kept per row for the adjoint.
// CHECK:             scf.for %[[TF:[a-z0-9_]+]] = %[[START]] to %[[END]] step
// CHECK-NEXT:          %[[ROWF:.*]] = arith.subi %[[TF]], %[[START]] : index
// CHECK:               scf.for %[[CF:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:            %[[FV:.*]] = memref.load %[[F]][%[[B]], %[[TF]], %[[H]], %[[CF]]] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[PREV:.*]] = memref.load %[[ZSTATE]][%[[CF]]] : memref<?xf64>
// CHECK:                 %[[CUR:.*]] = arith.select %{{.*}}, %{{.*}}, %{{.*}} : f64
// CHECK-NEXT:            memref.store %[[CUR]], %[[ZSTATE]][%[[CF]]] : memref<?xf64>
// CHECK-NEXT:            memref.store %[[PREV]], %[[PREVS:[a-z0-9_]+]][%[[ROWF]], %[[CF]]] : memref<?x?xf64>
// g = prev - cur and the derived key exp(f - cur) into the row's buffers.
// CHECK-NEXT:            %[[G:.*]] = arith.subf %[[PREV]], %[[CUR]] : f64
// CHECK-NEXT:            %[[D:.*]] = arith.subf %[[FV]], %[[CUR]] : f64
// CHECK-NEXT:            %[[KEY:.*]] = math.exp %[[D]] : f64
// CHECK-NEXT:            memref.store %[[G]], %[[GROWS:[a-z0-9_]+]][%[[ROWF]], %[[CF]]] : memref<?x?xf64>
// CHECK-NEXT:            memref.store %[[KEY]], %[[KROWS:[a-z0-9_]+]][%[[ROWF]], %[[CF]]] : memref<?x?xf64>
// q goes through the (identity) feature map; the input key k is not loaded.
// CHECK-NOT:             memref.load %[[K]]
// CHECK:                 memref.load %[[Q]][%[[B]], %[[TF]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NOT:             memref.load %[[K]]
// Reverse sweep: dS = dht, and the scan's carried gradient starts from dscan_z_ht.
// CHECK:               memref.load %[[DHT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:             %[[DZTV:.*]] = memref.load %[[DZT]][%[[N]], %[[H]], %[[I1:[a-z0-9_]+]]] : memref<?x?x?xf64>
// CHECK-NEXT:        memref.store %[[DZTV]], %[[CARRY:[a-z0-9_]+]][%[[I1]]] : memref<?xf64>
// CHECK:             %[[COUNT:.*]] = arith.subi %[[END]], %[[START]] : index
// CHECK:             scf.for %[[R:[a-z0-9_]+]] = %{{.*}} to %[[COUNT]] step
// CHECK:               %[[LAST:.*]] = arith.subi %[[END]], %{{.*}} : index
// CHECK-NEXT:          %[[T:.*]] = arith.subi %[[LAST]], %[[R]] : index
// CHECK-NEXT:          %[[ROW:.*]] = arith.subi %[[T]], %[[START]] : index
// dv from the derived key of the row.
// CHECK:                   memref.load %[[KROWS]][%[[ROW]], %{{.*}}] : memref<?x?xf64>
// CHECK:                 memref.store %{{.*}}, %[[DV]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// The decay of token t applied to dS.
// CHECK:                 memref.load %[[GROWS]][%[[ROW]], %{{.*}}] : memref<?x?xf64>
// CHECK-NEXT:            math.exp
// dq is written; the input key gets no gradient (no load of k, no store to
// dk), the derived key's gradient goes to a buffer for the adjoint.
// CHECK:                 memref.store %{{.*}}, %[[DQ]][%[[B]], %[[T]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[DKEYV:.*]] = memref.load %[[DKBUF:[a-z0-9_]+]][%{{.*}}] : memref<?xf64>
// CHECK-NEXT:            memref.store %[[DKEYV]], %[[DKEYBUF:[a-z0-9_]+]][%{{.*}}] : memref<?xf64>
// The adjoint per channel c, in f64: arguments f, z_prev (from the forward
// sweep), d_g (the reverse cumsum), d_key and d_z (the carry).
// CHECK:               scf.for %[[C:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:            %[[DGV:.*]] = memref.load %{{.*}}[%[[C]]] : memref<?xf64>
// CHECK-NEXT:            %[[DKEY:.*]] = memref.load %[[DKEYBUF]][%[[C]]] : memref<?xf64>
// CHECK-NEXT:            %[[FA:.*]] = memref.load %[[F]][%[[B]], %[[T]], %[[H]], %[[C]]] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[ZPREV:.*]] = memref.load %[[PREVS]][%[[ROW]], %[[C]]] : memref<?x?xf64>
// CHECK-NEXT:            %[[DZ:.*]] = memref.load %[[CARRY]][%[[C]]] : memref<?xf64>
// z = logaddexp(z_prev, f), expanded in f64.
// CHECK-NEXT:            %[[HI:.*]] = arith.maximumf %[[ZPREV]], %[[FA]] : f64
// CHECK:                 %[[Z:.*]] = arith.select %{{.*}}, %[[HI]], %{{.*}} : f64
// CHECK-NEXT:            arith.subf %[[ZPREV]], %[[Z]] : f64
// CHECK-NEXT:            %[[FZ:.*]] = arith.subf %[[FA]], %[[Z]] : f64
// CHECK-NEXT:            %[[KEYA:.*]] = math.exp %[[FZ]] : f64
// d(f - z) = d_key * key; d_z = d_z(carry) - d_key * key - d_g.
// CHECK-NEXT:            %[[DD:.*]] = arith.mulf %[[DKEY]], %[[KEYA]] : f64
// CHECK-NEXT:            %[[NDD:.*]] = arith.negf %[[DD]] : f64
// CHECK-NEXT:            %[[DZ1:.*]] = arith.addf %[[DZ]], %[[NDD]] : f64
// CHECK-NEXT:            %[[NDG:.*]] = arith.negf %[[DGV]] : f64
// CHECK-NEXT:            %[[DZT2:.*]] = arith.addf %[[DZ1]], %[[NDG]] : f64
// d_z_prev = d_g + d_z exp(z_prev - z); d_f = d_key key + d_z exp(f - z).
// CHECK-NEXT:            %[[GP:.*]] = arith.subf %[[ZPREV]], %[[Z]] : f64
// CHECK-NEXT:            %[[WP:.*]] = math.exp %[[GP]] : f64
// CHECK-NEXT:            %[[DP1:.*]] = arith.mulf %[[DZT2]], %[[WP]] : f64
// CHECK-NEXT:            %[[DPREV:.*]] = arith.addf %[[DGV]], %[[DP1]] : f64
// CHECK-NEXT:            %[[GF:.*]] = arith.subf %[[FA]], %[[Z]] : f64
// CHECK-NEXT:            %[[WF:.*]] = math.exp %[[GF]] : f64
// CHECK-NEXT:            %[[DF1:.*]] = arith.mulf %[[DZT2]], %[[WF]] : f64
// CHECK-NEXT:            %[[DFV:.*]] = arith.addf %[[DD]], %[[DF1]] : f64
// d_f = ... (its only contribution), and the carry becomes d_z_prev for the previous token.
// CHECK-NEXT:            memref.store %[[DFV]], %[[DF]][%[[B]], %[[T]], %[[H]], %[[C]]] : memref<?x?x?x?xf64>
// CHECK-NEXT:            memref.store %[[DPREV]], %[[CARRY]][%[[C]]] : memref<?xf64>
// After the reverse sweep: dh0, and dscan_z_h0 from the carry.
// CHECK:               memref.store %{{.*}}, %[[DH0]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:             %[[FINAL:.*]] = memref.load %[[CARRY]][%[[I2:[a-z0-9_]+]]] : memref<?xf64>
// CHECK-NEXT:        memref.store %[[FINAL]], %[[DZ0]][%[[N]], %[[H]], %[[I2]]] : memref<?x?x?xf64>
// CHECK:         return

// LLVM-LABEL: llvm.func @lightnet_reference_backward(
// LLVM-LABEL: llvm.func @_mlir_ciface_lightnet_reference_backward(
// LLVM:         llvm.call @lightnet_reference_backward(
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
// Normalizer, elu+1 feature map and RoPE on a constant vector decay: norm_h0,
// dnorm_ht and dnorm_h0 are [N, H, K]; the backward undoes RoPE with the
// rotation by -angle (negated sin) and multiplies by the feature map's
// derivative.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @normrope_reference(
// CHECK-LABEL: func.func @normrope_reference_backward(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>, %[[PS:[a-z0-9_]+]]: memref<?x?xf64>, %[[Z0:[a-z0-9_]+]]: memref<?x?x?xf64>,
// CHECK-SAME:    %[[DO:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DHT:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DZT:[a-z0-9_]+]]: memref<?x?x?xf64>,
// CHECK-SAME:    %[[DQ:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DK:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DV:[a-z0-9_]+]]: memref<?x?x?x?xf64>, %[[DH0:[a-z0-9_]+]]: memref<?x?x?x?xf64>,
// CHECK-SAME:    %[[DPS:[a-z0-9_]+]]: memref<?x?xf64>, %[[DZ0:[a-z0-9_]+]]: memref<?x?x?xf64>)
// CHECK-SAME:    attributes {llvm.emit_c_interface} {
// CHECK:         %[[KD:.*]] = memref.dim %[[Q]], %c3 : memref<?x?x?x?xf64>
// CHECK:         scf.for %[[N:[a-z0-9_]+]] =
// CHECK:           %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[START:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           scf.for %[[H:[a-z0-9_]+]] =
// z starts from norm_h0.
// CHECK:               %[[ZI:.*]] = memref.load %[[Z0]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf64>
// CHECK-NEXT:          memref.store %[[ZI]], %[[ZBUF:[a-z0-9_]+]][%{{.*}}] : memref<?xf64>
// Forward sweep: phi = elu+1 on q, then RoPE at the position in the sequence,
// rotation by +angle.
// CHECK:             scf.for %[[TF:[a-z0-9_]+]] = %[[START]] to %[[END]] step
// CHECK-NEXT:          %[[POSF:.*]] = arith.subi %[[TF]], %[[START]] : index
// CHECK:                 memref.load %[[Q]][%[[B]], %[[TF]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[QZERO:.*]] = arith.constant 0.000000e+00 : f64
// CHECK-NEXT:            arith.cmpf ogt, %{{.*}}, %[[QZERO]] : f64
// CHECK:                 arith.select
// CHECK-NEXT:            memref.store %{{.*}}, %[[QROWS:[a-z0-9_]+]][%[[POSF]], %{{.*}}] : memref<?x?xf64>
// CHECK:               %[[LOGTHETA:.*]] = arith.constant 9.2103403719761836 : f64
// CHECK:               %[[FPOSI:.*]] = arith.index_cast %[[POSF]] : index to i64
// CHECK-NEXT:          %[[FPOS:.*]] = arith.sitofp %[[FPOSI]] : i64 to f64
// CHECK:                 %[[FEXPO:.*]] = arith.mulf %{{.*}}, %[[LOGTHETA]] : f64
// CHECK-NEXT:            %[[FFREQ:.*]] = math.exp %[[FEXPO]] : f64
// CHECK-NEXT:            %[[FANGLE:.*]] = arith.mulf %[[FPOS]], %[[FFREQ]] : f64
// CHECK-NEXT:            %[[FCOS:.*]] = math.cos %[[FANGLE]] : f64
// CHECK-NEXT:            %[[FSIN:.*]] = math.sin %[[FANGLE]] : f64
// CHECK-NEXT:            %[[FJ:.*]] = arith.addi
// CHECK-NEXT:            %[[FX1:.*]] = memref.load %[[QROWS]][%[[POSF]], %{{.*}}] : memref<?x?xf64>
// CHECK-NEXT:            %[[FX2:.*]] = memref.load %[[QROWS]][%[[POSF]], %[[FJ]]] : memref<?x?xf64>
// CHECK-NEXT:            arith.mulf %[[FX1]], %[[FCOS]] : f64
// CHECK-NEXT:            arith.mulf %[[FX2]], %[[FSIN]] : f64
// z <- exp(g) z + k and the denominator z . q + eps.
// CHECK:                 memref.store %{{.*}}, %[[ZBUF]][%{{.*}}] : memref<?xf64>
// CHECK:               %[[EPS:.*]] = arith.constant 1.000000e-05 : f64
// CHECK-NEXT:          %[[DEN:.*]] = arith.addf %{{.*}}, %[[EPS]] : f64
// do . o with o = num / den; dnum = do / den; dden = -(do . o) / den.
// CHECK:               %[[DOTO:.*]] = scf.for
// CHECK-NEXT:            %[[DOV:.*]] = memref.load %[[DO]][%[[B]], %[[TF]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[NUMJ:.*]] = memref.load %{{.*}} : memref<?xf64>
// CHECK-NEXT:            %[[OJ:.*]] = arith.divf %[[NUMJ]], %[[DEN]] : f64
// CHECK-NEXT:            arith.mulf %[[DOV]], %[[OJ]] : f64
// CHECK:                 %[[DOV2:.*]] = memref.load %[[DO]][%[[B]], %[[TF]], %[[H]], %{{.*}}] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[DNUM:.*]] = arith.divf %[[DOV2]], %[[DEN]] : f64
// CHECK-NEXT:            memref.store %[[DNUM]], %{{.*}} : memref<?x?xf64>
// CHECK:               %[[DDEN:.*]] = arith.divf %[[DOTO]], %[[DEN]] : f64
// CHECK-NEXT:          %[[NDDEN:.*]] = arith.negf %[[DDEN]] : f64
// CHECK-NEXT:          memref.store %[[NDDEN]], %{{.*}} : memref<?xf64>
// The reverse sweep starts from dS = dht, dz = dnorm_ht.
// CHECK:               memref.load %[[DHT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:             memref.load %[[DZT]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf64>
// CHECK:             %[[COUNT:.*]] = arith.subi %[[END]], %[[START]] : index
// CHECK:             scf.for %[[R:[a-z0-9_]+]] = %{{.*}} to %[[COUNT]] step
// CHECK:               %[[LAST:.*]] = arith.subi %[[END]], %{{.*}} : index
// CHECK-NEXT:          %[[T:.*]] = arith.subi %[[LAST]], %[[R]] : index
// CHECK-NEXT:          %[[ROW:.*]] = arith.subi %[[T]], %[[START]] : index
// Inverse RoPE on dq (the row's buffer) and on dk: rotation by -angle.
// CHECK:               %[[RPOSI:.*]] = arith.index_cast %[[ROW]] : index to i64
// CHECK-NEXT:          %[[RPOS:.*]] = arith.sitofp %[[RPOSI]] : i64 to f64
// CHECK:                 %[[ANGLE:.*]] = arith.mulf %[[RPOS]], %{{.*}} : f64
// CHECK-NEXT:            %[[COS:.*]] = math.cos %[[ANGLE]] : f64
// CHECK-NEXT:            %[[SIN:.*]] = math.sin %[[ANGLE]] : f64
// CHECK-NEXT:            %[[NSIN:.*]] = arith.negf %[[SIN]] : f64
// CHECK-NEXT:            %[[J:.*]] = arith.addi %{{.*}}, %{{.*}} : index
// CHECK-NEXT:            %[[X1:.*]] = memref.load %[[DQROWS:[a-z0-9_]+]][%[[ROW]], %[[I:[a-z0-9_]+]]] : memref<?x?xf64>
// CHECK-NEXT:            %[[X2:.*]] = memref.load %[[DQROWS]][%[[ROW]], %[[J]]] : memref<?x?xf64>
// CHECK-NEXT:            %[[A1:.*]] = arith.mulf %[[X1]], %[[COS]] : f64
// CHECK-NEXT:            %[[A2:.*]] = arith.mulf %[[X2]], %[[NSIN]] : f64
// CHECK-NEXT:            %[[R1:.*]] = arith.subf %[[A1]], %[[A2]] : f64
// CHECK-NEXT:            memref.store %[[R1]], %[[DQROWS]][%[[ROW]], %[[I]]] : memref<?x?xf64>
// CHECK-NEXT:            %[[B1:.*]] = arith.mulf %[[X1]], %[[NSIN]] : f64
// CHECK-NEXT:            %[[B2:.*]] = arith.mulf %[[X2]], %[[COS]] : f64
// CHECK-NEXT:            %[[R2:.*]] = arith.addf %[[B1]], %[[B2]] : f64
// CHECK-NEXT:            memref.store %[[R2]], %[[DQROWS]][%[[ROW]], %[[J]]] : memref<?x?xf64>
// CHECK:                 %[[KSIN:.*]] = math.sin %{{.*}} : f64
// CHECK-NEXT:            %[[NKSIN:.*]] = arith.negf %[[KSIN]] : f64
// CHECK:                 memref.load %[[DKBUF:[a-z0-9_]+]][%{{.*}}] : memref<?xf64>
// CHECK:                 arith.mulf %{{.*}}, %[[NKSIN]] : f64
// CHECK:                 memref.store %{{.*}}, %[[DKBUF]][%{{.*}}] : memref<?xf64>
// dq = dq' * phi'(q), phi'(x) = x > 0 ? 1 : exp(x); the same for dk.
// CHECK:                 %[[QRAW:.*]] = memref.load %[[Q]][%[[B]], %[[T]], %[[H]], %[[CQ:[a-z0-9_]+]]] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[DQP:.*]] = memref.load %[[DQROWS]][%[[ROW]], %[[CQ]]] : memref<?x?xf64>
// CHECK-NEXT:            %[[DZERO:.*]] = arith.constant 0.000000e+00 : f64
// CHECK-NEXT:            %[[POS:.*]] = arith.cmpf ogt, %[[QRAW]], %[[DZERO]] : f64
// CHECK-NEXT:            %[[DONE:.*]] = arith.constant 1.000000e+00 : f64
// CHECK-NEXT:            %[[EQ:.*]] = math.exp %[[QRAW]] : f64
// CHECK-NEXT:            %[[PHID:.*]] = arith.select %[[POS]], %[[DONE]], %[[EQ]] : f64
// CHECK-NEXT:            %[[DQV:.*]] = arith.mulf %[[DQP]], %[[PHID]] : f64
// CHECK-NEXT:            memref.store %[[DQV]], %[[DQ]][%[[B]], %[[T]], %[[H]], %[[CQ]]] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[KRAW:.*]] = memref.load %[[K]][%[[B]], %[[T]], %[[H]], %[[CQ]]] : memref<?x?x?x?xf64>
// CHECK-NEXT:            %[[DKP:.*]] = memref.load %[[DKBUF]][%[[CQ]]] : memref<?xf64>
// CHECK:                 memref.store %{{.*}}, %[[DK]][%[[B]], %[[T]], %[[H]], %[[CQ]]] : memref<?x?x?x?xf64>
// The adjoint at (h, c): g = h - 0.5 ps, d_ps = -d_g * 0.5, accumulated over
// the tokens into d_ps [H, K].
// CHECK:               scf.for %[[C:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:            %[[DGV:.*]] = memref.load %{{.*}}[%[[C]]] : memref<?xf64>
// CHECK-NEXT:            %[[PSV:.*]] = memref.load %[[PS]][%[[H]], %[[C]]] : memref<?x?xf64>
// CHECK:                 %[[HALF:.*]] = arith.constant 5.000000e-01 : f64
// CHECK:                 %[[NDG:.*]] = arith.negf %[[DGV]] : f64
// CHECK-NEXT:            arith.mulf %[[NDG]], %[[PSV]] : f64
// CHECK-NEXT:            %[[GPS:.*]] = arith.mulf %[[NDG]], %[[HALF]] : f64
// CHECK-NEXT:            %[[OLDPS:.*]] = memref.load %[[DPS]][%[[H]], %[[C]]] : memref<?x?xf64>
// CHECK-NEXT:            %[[NEWPS:.*]] = arith.addf %[[OLDPS]], %[[GPS]] : f64
// CHECK-NEXT:            memref.store %[[NEWPS]], %[[DPS]][%[[H]], %[[C]]] : memref<?x?xf64>
// After the reverse sweep: dh0 and dnorm_h0.
// CHECK:               memref.store %{{.*}}, %[[DH0]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf64>
// CHECK:             memref.store %{{.*}}, %[[DZ0]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf64>
// CHECK:         return

// LLVM-LABEL: llvm.func @normrope_reference_backward(
// LLVM:         llvm.call @cos(
// LLVM:         llvm.call @sin(
// LLVM-LABEL: llvm.func @_mlir_ciface_normrope_reference_backward(
// LLVM:         llvm.call @normrope_reference_backward(
decay.recurrence @normrope constant_vector
    params(%ps : [H, K])
    attributes {feature_map = "elu1", normalizer, eps = 1.0e-5, rope_theta = 10000.0} {
  %h = decay.head_index : f32
  %c = arith.constant 0.5 : f32
  %s = arith.mulf %c, %ps : f32
  %g = arith.subf %h, %s : f32
  decay.yield %g : f32
}

// -----

//===----------------------------------------------------------------------===//
// No decay: no adjoint needed; the backward has no spec gradients.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @linear_reference(
// CHECK-LABEL: func.func @linear_reference_backward(
// CHECK-SAME:    %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>,
// CHECK-SAME:    %{{[a-z0-9_]+}}: memref<?x3xi64>,
// CHECK-SAME:    %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>,
// CHECK-SAME:    %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>, %{{[a-z0-9_]+}}: memref<?x?x?x?xf64>) attributes
// CHECK:         return

// LLVM-LABEL: llvm.func @linear_reference_backward(
// LLVM-LABEL: llvm.func @_mlir_ciface_linear_reference_backward(
decay.recurrence @linear none
