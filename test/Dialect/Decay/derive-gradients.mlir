// The decay-derive-gradients pass: the decay.adjoint it derives (reverse-mode AD of the decay region) for every example spec, checked op by op against the hand-derived gradients, and one small region per adjoint rule the examples do not exercise.

// RUN: decay-opt %examples/linear.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=LINEAR
// RUN: decay-opt %examples/retnet.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=RETNET
// RUN: decay-opt %examples/tnll.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=TNLL
// RUN: decay-opt %examples/mamba2.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=MAMBA2
// RUN: decay-opt %examples/mamba2_vector.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=MAMBA2_VECTOR
// RUN: decay-opt %examples/gla.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=GLA
// RUN: decay-opt %examples/hgrn2.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=HGRN2
// RUN: decay-opt %examples/lightnet.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=LIGHTNET
// RUN: decay-opt %examples/simple_decay.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=SIMPLE_DECAY
// RUN: decay-opt %examples/d2d_exp.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=D2D_EXP
// RUN: decay-opt %examples/d2d_elu.mlir --decay-derive-gradients --canonicalize --cse | FileCheck %s --check-prefix=D2D_ELU

// The in-file regions below, one per split, for the other adjoint rules.
// RUN: decay-opt %s -split-input-file --decay-derive-gradients --canonicalize --cse | FileCheck %s

// The adjoint's block arguments are, in order: the inputs and params (named as
// in the spec), `<scan>_prev` per scan, `d_g`, `d_key` (derived key only) and
// `d_<scan>` per scan; it yields the gradients of the inputs and params, then
// per scan the gradient carried to the previous token. The recurrence itself
// is kept.

//===----------------------------------------------------------------------===//
// linear: granularity none, no decay, hence nothing to differentiate.
//===----------------------------------------------------------------------===//

// LINEAR-NOT:  decay.adjoint
// LINEAR:      decay.recurrence @linear none
// LINEAR-NOT:  decay.adjoint

//===----------------------------------------------------------------------===//
// retnet: g = log1p(-2^(-5-h)) depends on the head index only: the adjoint
// takes d_g and yields nothing (no inputs, no params).
//===----------------------------------------------------------------------===//

// RETNET:       decay.recurrence @retnet constant_scalar
// RETNET-LABEL: decay.adjoint @retnet {
// RETNET-NEXT:  ^bb0(%d_g: f32):
// RETNET-NEXT:    decay.yield{{$}}
// RETNET-NEXT:  }
// RETNET-NOT:   decay.adjoint

//===----------------------------------------------------------------------===//
// tnll: g = log_decay, so d_log_decay = d_g.
//===----------------------------------------------------------------------===//

// TNLL:       decay.recurrence @tnll constant_scalar
// TNLL-LABEL: decay.adjoint @tnll {
// TNLL-NEXT:  ^bb0(%log_decay: f32, %d_g: f32):
// TNLL-NEXT:    decay.yield %d_g : f32
// TNLL-NEXT:  }

//===----------------------------------------------------------------------===//
// mamba2: g = -exp(A_log) * softplus(x), x = dt + dt_bias.
//   d_dt = d_dt_bias = d_g * (-exp(A_log)) * sigmoid(x)
//   d_A_log = -(d_g * softplus(x)) * exp(A_log)
//===----------------------------------------------------------------------===//

// MAMBA2:       decay.recurrence @mamba2 scalar
// MAMBA2-LABEL: decay.adjoint @mamba2 {
// MAMBA2-NEXT:  ^bb0(%dt: f32, %A_log: f32, %dt_bias: f32, %d_g: f32):
// MAMBA2-DAG:     %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// MAMBA2-DAG:     %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// The forward values the reverse sweep needs.
// MAMBA2:         %[[X:.*]] = arith.addf %dt, %dt_bias : f32
// MAMBA2-NEXT:    %[[SP:.*]] = decay.softplus %[[X]] : f32
// MAMBA2-NEXT:    %[[A:.*]] = math.exp %A_log : f32
// MAMBA2-NEXT:    %[[NA:.*]] = arith.negf %[[A]] : f32
// g = na * sp: d_na = d_g * sp, d_sp = d_g * na.
// MAMBA2-NEXT:    %[[DNA:.*]] = arith.mulf %d_g, %[[SP]] : f32
// MAMBA2-NEXT:    %[[DSP:.*]] = arith.mulf %d_g, %[[NA]] : f32
// na = -a, a = exp(A_log): d_A_log = -d_na * a.
// MAMBA2-NEXT:    %[[DA:.*]] = arith.negf %[[DNA]] : f32
// MAMBA2-NEXT:    %[[DALOG:.*]] = arith.mulf %[[DA]], %[[A]] : f32
// sp = softplus(x): d_x = d_sp * sigmoid(x), sigmoid(x) with one exponential
// that cannot overflow: e = exp(-|x|), (x >= 0 ? 1 : e) / (1 + e).
// MAMBA2-NEXT:    %[[ABSSIG:.*]] = math.absf %[[X]] : f32
// MAMBA2-NEXT:    %[[NABSSIG:.*]] = arith.negf %[[ABSSIG]] : f32
// MAMBA2-NEXT:    %[[ESIG:.*]] = math.exp %[[NABSSIG]] : f32
// MAMBA2-NEXT:    %[[NONNEGSIG:.*]] = arith.cmpf oge, %[[X]], %[[ZERO]] : f32
// MAMBA2-NEXT:    %[[NUMSIG:.*]] = arith.select %[[NONNEGSIG]], %[[ONE]], %[[ESIG]] : f32
// MAMBA2-NEXT:    %[[DENSIG:.*]] = arith.addf %[[ESIG]], %[[ONE]] : f32
// MAMBA2-NEXT:    %[[SIG:.*]] = arith.divf %[[NUMSIG]], %[[DENSIG]] : f32
// MAMBA2-NEXT:    %[[DX:.*]] = arith.mulf %[[DSP]], %[[SIG]] : f32
// x = dt + dt_bias: both get d_x.
// MAMBA2-NEXT:    decay.yield %[[DX]], %[[DALOG]], %[[DX]] : f32, f32, f32
// MAMBA2-NEXT:  }
// MAMBA2-NOT:   decay.adjoint

//===----------------------------------------------------------------------===//
// mamba2_vector: the same region per channel, the same adjoint.
//===----------------------------------------------------------------------===//

// MAMBA2_VECTOR:       decay.recurrence @mamba2_vector vector
// MAMBA2_VECTOR-LABEL: decay.adjoint @mamba2_vector {
// MAMBA2_VECTOR-NEXT:  ^bb0(%dt: f32, %A_log: f32, %dt_bias: f32, %d_g: f32):
// MAMBA2_VECTOR-DAG:     %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// MAMBA2_VECTOR-DAG:     %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// MAMBA2_VECTOR:         %[[X:.*]] = arith.addf %dt, %dt_bias : f32
// MAMBA2_VECTOR-NEXT:    %[[SP:.*]] = decay.softplus %[[X]] : f32
// MAMBA2_VECTOR-NEXT:    %[[A:.*]] = math.exp %A_log : f32
// MAMBA2_VECTOR-NEXT:    %[[NA:.*]] = arith.negf %[[A]] : f32
// MAMBA2_VECTOR-NEXT:    %[[DNA:.*]] = arith.mulf %d_g, %[[SP]] : f32
// MAMBA2_VECTOR-NEXT:    %[[DSP:.*]] = arith.mulf %d_g, %[[NA]] : f32
// MAMBA2_VECTOR-NEXT:    %[[DA:.*]] = arith.negf %[[DNA]] : f32
// MAMBA2_VECTOR-NEXT:    %[[DALOG:.*]] = arith.mulf %[[DA]], %[[A]] : f32
// MAMBA2_VECTOR-NEXT:    %[[ABSSIG:.*]] = math.absf %[[X]] : f32
// MAMBA2_VECTOR-NEXT:    %[[NABSSIG:.*]] = arith.negf %[[ABSSIG]] : f32
// MAMBA2_VECTOR-NEXT:    %[[ESIG:.*]] = math.exp %[[NABSSIG]] : f32
// MAMBA2_VECTOR-NEXT:    %[[NONNEGSIG:.*]] = arith.cmpf oge, %[[X]], %[[ZERO]] : f32
// MAMBA2_VECTOR-NEXT:    %[[NUMSIG:.*]] = arith.select %[[NONNEGSIG]], %[[ONE]], %[[ESIG]] : f32
// MAMBA2_VECTOR-NEXT:    %[[DENSIG:.*]] = arith.addf %[[ESIG]], %[[ONE]] : f32
// MAMBA2_VECTOR-NEXT:    %[[SIG:.*]] = arith.divf %[[NUMSIG]], %[[DENSIG]] : f32
// MAMBA2_VECTOR-NEXT:    %[[DX:.*]] = arith.mulf %[[DSP]], %[[SIG]] : f32
// MAMBA2_VECTOR-NEXT:    decay.yield %[[DX]], %[[DALOG]], %[[DX]] : f32, f32, f32
// MAMBA2_VECTOR-NEXT:  }

//===----------------------------------------------------------------------===//
// gla: g = logsigmoid(gk) / 16.
//   d_gk = (d_g / 16) * sigmoid(-gk), sigmoid with one exponential (see mamba2)
// (the gradient to the constant 16 is dead and removed).
//===----------------------------------------------------------------------===//

// GLA:       decay.recurrence @gla vector
// GLA-LABEL: decay.adjoint @gla {
// GLA-NEXT:  ^bb0(%gk: f32, %d_g: f32):
// GLA-DAG:     %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// GLA-DAG:     %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// GLA-DAG:     %[[C16:.*]] = arith.constant 1.600000e+01 : f32
// GLA:         %[[DLS:.*]] = arith.divf %d_g, %[[C16]] : f32
// GLA-NEXT:    %[[NGK:.*]] = arith.negf %gk : f32
// GLA-NEXT:    %[[ABSSIGN:.*]] = math.absf %[[NGK]] : f32
// GLA-NEXT:    %[[NABSSIGN:.*]] = arith.negf %[[ABSSIGN]] : f32
// GLA-NEXT:    %[[ESIGN:.*]] = math.exp %[[NABSSIGN]] : f32
// GLA-NEXT:    %[[NONNEGSIGN:.*]] = arith.cmpf oge, %[[NGK]], %[[ZERO]] : f32
// GLA-NEXT:    %[[NUMSIGN:.*]] = arith.select %[[NONNEGSIGN]], %[[ONE]], %[[ESIGN]] : f32
// GLA-NEXT:    %[[DENSIGN:.*]] = arith.addf %[[ESIGN]], %[[ONE]] : f32
// GLA-NEXT:    %[[SIGN:.*]] = arith.divf %[[NUMSIGN]], %[[DENSIGN]] : f32
// GLA-NEXT:    %[[DGK:.*]] = arith.mulf %[[DLS]], %[[SIGN]] : f32
// GLA-NEXT:    decay.yield %[[DGK]] : f32
// GLA-NEXT:  }

//===----------------------------------------------------------------------===//
// hgrn2 (lb = 0): g = logaddexp(log 0, log 1 + logsigmoid(f)), which the
// canonicalizer folds to u = logsigmoid(f) + 0; key = -expm1(g).
//   d_g' = d_g + (-d_key) * (expm1(g) + 1)           (key feeds g)
//   d_u  = d_g' * exp(u - g)                          (logaddexp, u = g here)
//   d_f  = d_u * sigmoid(-f)                          (logsigmoid)
// i.e. d_f = (d_g - d_key exp(g)) sigmoid(-f).
//===----------------------------------------------------------------------===//

// HGRN2:       decay.recurrence @hgrn2 vector
// HGRN2-LABEL: decay.adjoint @hgrn2 {
// HGRN2-NEXT:  ^bb0(%f: f32, %d_g: f32, %d_key: f32):
// HGRN2-DAG:     %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// HGRN2-DAG:     %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// HGRN2:         %[[LS:.*]] = decay.logsigmoid %f : f32
// HGRN2-NEXT:    %[[G:.*]] = arith.addf %[[LS]], %[[ZERO]] : f32
// HGRN2-NEXT:    %[[EM1:.*]] = math.expm1 %[[G]] : f32
// HGRN2-NEXT:    %[[NDKEY:.*]] = arith.negf %d_key : f32
// HGRN2-NEXT:    %[[EG:.*]] = arith.addf %[[EM1]], %[[ONE]] : f32
// HGRN2-NEXT:    %[[FROMKEY:.*]] = arith.mulf %[[NDKEY]], %[[EG]] : f32
// HGRN2-NEXT:    %[[DGT:.*]] = arith.addf %d_g, %[[FROMKEY]] : f32
// HGRN2-NEXT:    %[[GAP:.*]] = arith.subf %[[G]], %[[G]] : f32
// HGRN2-NEXT:    %[[W:.*]] = math.exp %[[GAP]] : f32
// HGRN2-NEXT:    %[[DU:.*]] = arith.mulf %[[DGT]], %[[W]] : f32
// HGRN2-NEXT:    %[[NF:.*]] = arith.negf %f : f32
// HGRN2-NEXT:    %[[ABSSIGN:.*]] = math.absf %[[NF]] : f32
// HGRN2-NEXT:    %[[NABSSIGN:.*]] = arith.negf %[[ABSSIGN]] : f32
// HGRN2-NEXT:    %[[ESIGN:.*]] = math.exp %[[NABSSIGN]] : f32
// HGRN2-NEXT:    %[[NONNEGSIGN:.*]] = arith.cmpf oge, %[[NF]], %[[ZERO]] : f32
// HGRN2-NEXT:    %[[NUMSIGN:.*]] = arith.select %[[NONNEGSIGN]], %[[ONE]], %[[ESIGN]] : f32
// HGRN2-NEXT:    %[[DENSIGN:.*]] = arith.addf %[[ESIGN]], %[[ONE]] : f32
// HGRN2-NEXT:    %[[SIGN:.*]] = arith.divf %[[NUMSIGN]], %[[DENSIGN]] : f32
// HGRN2-NEXT:    %[[DF:.*]] = arith.mulf %[[DU]], %[[SIGN]] : f32
// HGRN2-NEXT:    decay.yield %[[DF]] : f32
// HGRN2-NEXT:  }

//===----------------------------------------------------------------------===//
// lightnet: z = logaddexp(z_prev, f) (the scan's update from its carried
// value), g = z_prev - z, key = exp(f - z).
//   d_z      = d_z(later tokens) - d_key * key - d_g
//   d_z_prev = d_g + d_z * exp(z_prev - z)
//   d_f      = d_key * key + d_z * exp(f - z)        (exp(f - z) is the key)
//===----------------------------------------------------------------------===//

// LIGHTNET:       decay.recurrence @lightnet vector
// LIGHTNET-LABEL: decay.adjoint @lightnet {
// LIGHTNET-NEXT:  ^bb0(%f: f32, %z_prev: f32, %d_g: f32, %d_key: f32, %d_z: f32):
// LIGHTNET-NEXT:    %[[Z:.*]] = decay.logaddexp %z_prev, %f : f32
// LIGHTNET-NEXT:    %[[D:.*]] = arith.subf %f, %[[Z]] : f32
// LIGHTNET-NEXT:    %[[KEY:.*]] = math.exp %[[D]] : f32
// LIGHTNET-NEXT:    %[[DD:.*]] = arith.mulf %d_key, %[[KEY]] : f32
// LIGHTNET-NEXT:    %[[NDD:.*]] = arith.negf %[[DD]] : f32
// LIGHTNET-NEXT:    %[[DZ1:.*]] = arith.addf %d_z, %[[NDD]] : f32
// LIGHTNET-NEXT:    %[[NDG:.*]] = arith.negf %d_g : f32
// LIGHTNET-NEXT:    %[[DZ:.*]] = arith.addf %[[DZ1]], %[[NDG]] : f32
// LIGHTNET-NEXT:    %[[GAPP:.*]] = arith.subf %z_prev, %[[Z]] : f32
// LIGHTNET-NEXT:    %[[WP:.*]] = math.exp %[[GAPP]] : f32
// LIGHTNET-NEXT:    %[[DP1:.*]] = arith.mulf %[[DZ]], %[[WP]] : f32
// LIGHTNET-NEXT:    %[[DPREV:.*]] = arith.addf %d_g, %[[DP1]] : f32
// LIGHTNET-NEXT:    %[[DF1:.*]] = arith.mulf %[[DZ]], %[[KEY]] : f32
// LIGHTNET-NEXT:    %[[DF:.*]] = arith.addf %[[DD]], %[[DF1]] : f32
// LIGHTNET-NEXT:    decay.yield %[[DF]], %[[DPREV]] : f32, f32
// LIGHTNET-NEXT:  }

//===----------------------------------------------------------------------===//
// simple_decay: g = logsigmoid(f + delta).
//   d_f = d_delta = d_g * sigmoid(-(f + delta))
//===----------------------------------------------------------------------===//

// SIMPLE_DECAY:       decay.recurrence @simple_decay vector
// SIMPLE_DECAY-LABEL: decay.adjoint @simple_decay {
// SIMPLE_DECAY-NEXT:  ^bb0(%f: f32, %delta: f32, %d_g: f32):
// SIMPLE_DECAY-DAG:     %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// SIMPLE_DECAY-DAG:     %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// SIMPLE_DECAY:         %[[X:.*]] = arith.addf %f, %delta : f32
// SIMPLE_DECAY-NEXT:    %[[NX:.*]] = arith.negf %[[X]] : f32
// SIMPLE_DECAY-NEXT:    %[[ABSSIGN:.*]] = math.absf %[[NX]] : f32
// SIMPLE_DECAY-NEXT:    %[[NABSSIGN:.*]] = arith.negf %[[ABSSIGN]] : f32
// SIMPLE_DECAY-NEXT:    %[[ESIGN:.*]] = math.exp %[[NABSSIGN]] : f32
// SIMPLE_DECAY-NEXT:    %[[NONNEGSIGN:.*]] = arith.cmpf oge, %[[NX]], %[[ZERO]] : f32
// SIMPLE_DECAY-NEXT:    %[[NUMSIGN:.*]] = arith.select %[[NONNEGSIGN]], %[[ONE]], %[[ESIGN]] : f32
// SIMPLE_DECAY-NEXT:    %[[DENSIGN:.*]] = arith.addf %[[ESIGN]], %[[ONE]] : f32
// SIMPLE_DECAY-NEXT:    %[[SIGN:.*]] = arith.divf %[[NUMSIGN]], %[[DENSIGN]] : f32
// SIMPLE_DECAY-NEXT:    %[[DX:.*]] = arith.mulf %d_g, %[[SIGN]] : f32
// SIMPLE_DECAY-NEXT:    decay.yield %[[DX]], %[[DX]] : f32, f32
// SIMPLE_DECAY-NEXT:  }

//===----------------------------------------------------------------------===//
// d2d_exp: g = Pb_h - 0.02 * ps, so d_ps = -d_g * 0.02; the head-index
// branch (Pb_h) gets no adjoint and is removed.
//===----------------------------------------------------------------------===//

// D2D_EXP:       decay.recurrence @d2d_exp constant_vector
// D2D_EXP-LABEL: decay.adjoint @d2d_exp {
// D2D_EXP-NEXT:  ^bb0(%ps: f32, %d_g: f32):
// D2D_EXP-NEXT:    %[[C:.*]] = arith.constant 2.000000e-02 : f32
// D2D_EXP-NEXT:    %[[NDG:.*]] = arith.negf %d_g : f32
// D2D_EXP-NEXT:    %[[DPS:.*]] = arith.mulf %[[NDG]], %[[C]] : f32
// D2D_EXP-NEXT:    decay.yield %[[DPS]] : f32
// D2D_EXP-NEXT:  }

//===----------------------------------------------------------------------===//
// d2d_elu: g = Pb_h - ps, so d_ps = -d_g.
//===----------------------------------------------------------------------===//

// D2D_ELU:       decay.recurrence @d2d_elu constant_vector
// D2D_ELU-LABEL: decay.adjoint @d2d_elu {
// D2D_ELU-NEXT:  ^bb0(%ps: f32, %d_g: f32):
// D2D_ELU-NEXT:    %[[NDG:.*]] = arith.negf %d_g : f32
// D2D_ELU-NEXT:    decay.yield %[[NDG]] : f32
// D2D_ELU-NEXT:  }

//===----------------------------------------------------------------------===//
// In-file regions: the other adjoint rules.
//===----------------------------------------------------------------------===//

// divf: q = a / b, d_a = d_g / b, d_b = -(d_g * q) / b.
// CHECK-LABEL: decay.adjoint @divide {
// CHECK-NEXT:  ^bb0(%a: f32, %b: f32, %d_g: f32):
// CHECK-NEXT:    %[[Q:.*]] = arith.divf %a, %b : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.divf %d_g, %b : f32
// CHECK-NEXT:    %[[GQ:.*]] = arith.mulf %d_g, %[[Q]] : f32
// CHECK-NEXT:    %[[GQB:.*]] = arith.divf %[[GQ]], %b : f32
// CHECK-NEXT:    %[[DB:.*]] = arith.negf %[[GQB]] : f32
// CHECK-NEXT:    decay.yield %[[DA]], %[[DB]] : f32, f32
// CHECK-NEXT:  }
decay.recurrence @divide vector inputs(%a : [B, T, H, K]) params(%b : [H, K]) {
  %q = arith.divf %a, %b : f32
  decay.yield %q : f32
}

// -----

// select: the gradient goes to the chosen operand, 0 to the other; the i1
// condition gets none.
// CHECK-LABEL: decay.adjoint @choose {
// CHECK-NEXT:  ^bb0(%a: f32, %b: f32, %d_g: f32):
// CHECK-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[C:.*]] = arith.cmpf olt, %a, %[[ZERO]] : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.select %[[C]], %d_g, %[[ZERO]] : f32
// CHECK-NEXT:    %[[DB:.*]] = arith.select %[[C]], %[[ZERO]], %d_g : f32
// CHECK-NEXT:    decay.yield %[[DA]], %[[DB]] : f32, f32
// CHECK-NEXT:  }
decay.recurrence @choose scalar inputs(%a : [B, T, H], %b : [B, T, H]) {
  %zero = arith.constant 0.0 : f32
  %c = arith.cmpf olt, %a, %zero : f32
  %s = arith.select %c, %a, %b : f32
  decay.yield %s : f32
}

// -----

// maximumf: the gradient goes to the operand equal to the result (the first on
// ties), 0 to the other.
// CHECK-LABEL: decay.adjoint @maximum {
// CHECK-NEXT:  ^bb0(%a: f32, %b: f32, %d_g: f32):
// CHECK-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[M:.*]] = arith.maximumf %a, %b : f32
// CHECK-NEXT:    %[[FIRST:.*]] = arith.cmpf oeq, %[[M]], %a : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.select %[[FIRST]], %d_g, %[[ZERO]] : f32
// CHECK-NEXT:    %[[DB:.*]] = arith.select %[[FIRST]], %[[ZERO]], %d_g : f32
// CHECK-NEXT:    decay.yield %[[DA]], %[[DB]] : f32, f32
// CHECK-NEXT:  }
decay.recurrence @maximum scalar inputs(%a : [B, T, H], %b : [B, T, H]) {
  %m = arith.maximumf %a, %b : f32
  decay.yield %m : f32
}

// -----

// minimumf: the same rule (the chosen operand is the one equal to the result).
// CHECK-LABEL: decay.adjoint @minimum {
// CHECK-NEXT:  ^bb0(%a: f32, %b: f32, %d_g: f32):
// CHECK-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[M:.*]] = arith.minimumf %a, %b : f32
// CHECK-NEXT:    %[[FIRST:.*]] = arith.cmpf oeq, %[[M]], %a : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.select %[[FIRST]], %d_g, %[[ZERO]] : f32
// CHECK-NEXT:    %[[DB:.*]] = arith.select %[[FIRST]], %[[ZERO]], %d_g : f32
// CHECK-NEXT:    decay.yield %[[DA]], %[[DB]] : f32, f32
// CHECK-NEXT:  }
decay.recurrence @minimum scalar inputs(%a : [B, T, H], %b : [B, T, H]) {
  %m = arith.minimumf %a, %b : f32
  decay.yield %m : f32
}

// -----

// sqrt: r = sqrt(a), d_a = (d_g * 0.5) / r.
// CHECK-LABEL: decay.adjoint @square_root {
// CHECK-NEXT:  ^bb0(%a: f32, %d_g: f32):
// CHECK-NEXT:    %[[HALF:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-NEXT:    %[[R:.*]] = math.sqrt %a : f32
// CHECK-NEXT:    %[[GH:.*]] = arith.mulf %d_g, %[[HALF]] : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.divf %[[GH]], %[[R]] : f32
// CHECK-NEXT:    decay.yield %[[DA]] : f32
// CHECK-NEXT:  }
decay.recurrence @square_root scalar inputs(%a : [B, T, H]) {
  %s = math.sqrt %a : f32
  decay.yield %s : f32
}

// -----

// tanh: r = tanh(a), d_a = d_g * (1 - r * r).
// CHECK-LABEL: decay.adjoint @hyperbolic {
// CHECK-NEXT:  ^bb0(%a: f32, %d_g: f32):
// CHECK-NEXT:    %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:    %[[R:.*]] = math.tanh %a : f32
// CHECK-NEXT:    %[[R2:.*]] = arith.mulf %[[R]], %[[R]] : f32
// CHECK-NEXT:    %[[D:.*]] = arith.subf %[[ONE]], %[[R2]] : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.mulf %d_g, %[[D]] : f32
// CHECK-NEXT:    decay.yield %[[DA]] : f32
// CHECK-NEXT:  }
decay.recurrence @hyperbolic scalar inputs(%a : [B, T, H]) {
  %s = math.tanh %a : f32
  decay.yield %s : f32
}

// -----

// sin and cos: g = sin(a) + cos(b), d_a = d_g * cos(a), d_b = -(d_g * sin(b)).
// CHECK-LABEL: decay.adjoint @trig {
// CHECK-NEXT:  ^bb0(%a: f32, %b: f32, %d_g: f32):
// CHECK-NEXT:    %[[SINB:.*]] = math.sin %b : f32
// CHECK-NEXT:    %[[GSINB:.*]] = arith.mulf %d_g, %[[SINB]] : f32
// CHECK-NEXT:    %[[DB:.*]] = arith.negf %[[GSINB]] : f32
// CHECK-NEXT:    %[[COSA:.*]] = math.cos %a : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.mulf %d_g, %[[COSA]] : f32
// CHECK-NEXT:    decay.yield %[[DA]], %[[DB]] : f32, f32
// CHECK-NEXT:  }
decay.recurrence @trig scalar inputs(%a : [B, T, H], %b : [B, T, H]) {
  %s = math.sin %a : f32
  %c = math.cos %b : f32
  %g = arith.addf %s, %c : f32
  decay.yield %g : f32
}

// -----

// powf: r = a^b, d_a = d_g * (b * a^(b - 1)), d_b = d_g * (r * log(a)).
// CHECK-LABEL: decay.adjoint @power {
// CHECK-NEXT:  ^bb0(%a: f32, %b: f32, %d_g: f32):
// CHECK-NEXT:    %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:    %[[R:.*]] = math.powf %a, %b : f32
// CHECK-NEXT:    %[[BM1:.*]] = arith.subf %b, %[[ONE]] : f32
// CHECK-NEXT:    %[[P:.*]] = math.powf %a, %[[BM1]] : f32
// CHECK-NEXT:    %[[BP:.*]] = arith.mulf %b, %[[P]] : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.mulf %d_g, %[[BP]] : f32
// CHECK-NEXT:    %[[LOGA:.*]] = math.log %a : f32
// CHECK-NEXT:    %[[RL:.*]] = arith.mulf %[[R]], %[[LOGA]] : f32
// CHECK-NEXT:    %[[DB:.*]] = arith.mulf %d_g, %[[RL]] : f32
// CHECK-NEXT:    decay.yield %[[DA]], %[[DB]] : f32, f32
// CHECK-NEXT:  }
decay.recurrence @power scalar inputs(%a : [B, T, H], %b : [B, T, H]) {
  %p = math.powf %a, %b : f32
  decay.yield %p : f32
}

// -----

// fma: a * b + c, d_a = d_g * b, d_b = d_g * a, d_c = d_g.
// CHECK-LABEL: decay.adjoint @fused {
// CHECK-NEXT:  ^bb0(%a: f32, %b: f32, %c: f32, %d_g: f32):
// CHECK-NEXT:    %[[DA:.*]] = arith.mulf %d_g, %b : f32
// CHECK-NEXT:    %[[DB:.*]] = arith.mulf %d_g, %a : f32
// CHECK-NEXT:    decay.yield %[[DA]], %[[DB]], %d_g : f32, f32, f32
// CHECK-NEXT:  }
decay.recurrence @fused scalar inputs(%a : [B, T, H], %b : [B, T, H], %c : [B, T, H]) {
  %p = math.fma %a, %b, %c : f32
  decay.yield %p : f32
}

// -----

// absf: g = -|a|, d_|a| = -d_g, d_a = (a < 0 ? -d_|a| : d_|a|) = (a < 0 ? d_g : -d_g).
// CHECK-LABEL: decay.adjoint @absolute {
// CHECK-NEXT:  ^bb0(%a: f32, %d_g: f32):
// CHECK-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[NDG:.*]] = arith.negf %d_g : f32
// CHECK-NEXT:    %[[NEG:.*]] = arith.cmpf olt, %a, %[[ZERO]] : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.select %[[NEG]], %d_g, %[[NDG]] : f32
// CHECK-NEXT:    decay.yield %[[DA]] : f32
// CHECK-NEXT:  }
decay.recurrence @absolute scalar inputs(%a : [B, T, H]) {
  %p = math.absf %a : f32
  %n = arith.negf %p : f32
  decay.yield %n : f32
}

// -----

// The remaining unary rules, one input each:
//   rsqrt:  d = d_g * (-0.5 * r^3)        log:   d = d_g / x
//   log2:   d = d_g / (x * ln 2)          exp2:  d = d_g * (r * ln 2)
//   log1p:  d = d_g / (x + 1)
// CHECK-LABEL: decay.adjoint @unary {
// CHECK-NEXT:  ^bb0(%a: f32, %b: f32, %c: f32, %d: f32, %e: f32, %d_g: f32):
// CHECK-DAG:     %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-DAG:     %[[LN2:.*]] = arith.constant 0.693147182 : f32
// CHECK-DAG:     %[[MHALF:.*]] = arith.constant -5.000000e-01 : f32
// CHECK:         %[[RS:.*]] = math.rsqrt %a : f32
// CHECK-NEXT:    %[[EX:.*]] = math.exp2 %d : f32
// CHECK-NEXT:    %[[E1:.*]] = arith.addf %e, %[[ONE]] : f32
// CHECK-NEXT:    %[[DE:.*]] = arith.divf %d_g, %[[E1]] : f32
// CHECK-NEXT:    %[[EXL:.*]] = arith.mulf %[[EX]], %[[LN2]] : f32
// CHECK-NEXT:    %[[DD:.*]] = arith.mulf %d_g, %[[EXL]] : f32
// CHECK-NEXT:    %[[CL:.*]] = arith.mulf %c, %[[LN2]] : f32
// CHECK-NEXT:    %[[DC:.*]] = arith.divf %d_g, %[[CL]] : f32
// CHECK-NEXT:    %[[DB:.*]] = arith.divf %d_g, %b : f32
// CHECK-NEXT:    %[[R2:.*]] = arith.mulf %[[RS]], %[[RS]] : f32
// CHECK-NEXT:    %[[R3:.*]] = arith.mulf %[[RS]], %[[R2]] : f32
// CHECK-NEXT:    %[[R3H:.*]] = arith.mulf %[[R3]], %[[MHALF]] : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.mulf %d_g, %[[R3H]] : f32
// CHECK-NEXT:    decay.yield %[[DA]], %[[DB]], %[[DC]], %[[DD]], %[[DE]] : f32, f32, f32, f32, f32
// CHECK-NEXT:  }
decay.recurrence @unary scalar
    inputs(%a : [B, T, H], %b : [B, T, H], %c : [B, T, H], %d : [B, T, H], %e : [B, T, H]) {
  %ra = math.rsqrt %a : f32
  %rb = math.log %b : f32
  %rc = math.log2 %c : f32
  %rd = math.exp2 %d : f32
  %re = math.log1p %e : f32
  %s1 = arith.addf %ra, %rb : f32
  %s2 = arith.addf %s1, %rc : f32
  %s3 = arith.addf %s2, %rd : f32
  %g = arith.addf %s3, %re : f32
  decay.yield %g : f32
}

// -----

// cumsum: the scan becomes cur = s_prev + x; g = s_prev - cur.
//   d_cur    = d_s - d_g
//   d_x      = d_cur
//   d_s_prev = d_g + d_cur (carried to the previous token)
// CHECK-LABEL: decay.adjoint @running {
// CHECK-NEXT:  ^bb0(%x: f32, %s_prev: f32, %d_g: f32, %d_s: f32):
// CHECK-NEXT:    %[[NDG:.*]] = arith.negf %d_g : f32
// CHECK-NEXT:    %[[DCUR:.*]] = arith.addf %d_s, %[[NDG]] : f32
// CHECK-NEXT:    %[[DPREV:.*]] = arith.addf %d_g, %[[DCUR]] : f32
// CHECK-NEXT:    decay.yield %[[DCUR]], %[[DPREV]] : f32, f32
// CHECK-NEXT:  }
decay.recurrence @running vector inputs(%x : [B, T, H, K]) {
  %prev, %cur = decay.cumsum "s" %x init 0.0 : f32
  %g = arith.subf %prev, %cur : f32
  decay.yield %g : f32
}

// -----

// A value used three times (twice in a * a, once in exp(a)): its adjoint is the
// sum of the contributions, accumulated with addf:
//   d_a = -d_g * exp(a) + d_g * a + d_g * a.
// CHECK-LABEL: decay.adjoint @twice {
// CHECK-NEXT:  ^bb0(%a: f32, %d_g: f32):
// CHECK-NEXT:    %[[E:.*]] = math.exp %a : f32
// CHECK-NEXT:    %[[NDG:.*]] = arith.negf %d_g : f32
// CHECK-NEXT:    %[[FROMEXP:.*]] = arith.mulf %[[NDG]], %[[E]] : f32
// CHECK-NEXT:    %[[FROMSQ:.*]] = arith.mulf %d_g, %a : f32
// CHECK-NEXT:    %[[ACC1:.*]] = arith.addf %[[FROMEXP]], %[[FROMSQ]] : f32
// CHECK-NEXT:    %[[ACC2:.*]] = arith.addf %[[ACC1]], %[[FROMSQ]] : f32
// CHECK-NEXT:    decay.yield %[[ACC2]] : f32
// CHECK-NEXT:  }
decay.recurrence @twice scalar inputs(%a : [B, T, H]) {
  %sq = arith.mulf %a, %a : f32
  %e = math.exp %a : f32
  %g = arith.subf %sq, %e : f32
  decay.yield %g : f32
}

// -----

// Integer, constant, head_index and num_heads paths carry no gradient:
// g = a * (h / H) + 2 * sitofp(fptosi(a)) gives d_a = d_g * (h / H) only (the
// path through the integer is not differentiated), and the gradients reaching
// h, H and the constant 2 stop there.
// CHECK-LABEL: decay.adjoint @no_gradient {
// CHECK-NEXT:  ^bb0(%a: f32, %d_g: f32):
// CHECK-NEXT:    %[[H:.*]] = decay.head_index : f32
// CHECK-NEXT:    %[[NH:.*]] = decay.num_heads : f32
// CHECK-NEXT:    %[[R:.*]] = arith.divf %[[H]], %[[NH]] : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.mulf %d_g, %[[R]] : f32
// CHECK-NEXT:    decay.yield %[[DA]] : f32
// CHECK-NEXT:  }
decay.recurrence @no_gradient scalar inputs(%a : [B, T, H]) {
  %h = decay.head_index : f32
  %nh = decay.num_heads : f32
  %r = arith.divf %h, %nh : f32
  %x = arith.mulf %a, %r : f32
  %i = arith.fptosi %a : f32 to i32
  %f = arith.sitofp %i : i32 to f32
  %two = arith.constant 2.0 : f32
  %y = arith.mulf %f, %two : f32
  %g = arith.addf %x, %y : f32
  decay.yield %g : f32
}

// -----

// An op without an adjoint rule is fine when no gradient reaches it: math.floor
// only feeds a comparison (an i1).
// CHECK-LABEL: decay.adjoint @off_path {
// CHECK-NEXT:  ^bb0(%a: f32, %b: f32, %d_g: f32):
// CHECK-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[FL:.*]] = math.floor %a : f32
// CHECK-NEXT:    %[[C:.*]] = arith.cmpf olt, %[[FL]], %b : f32
// CHECK-NEXT:    %[[DA:.*]] = arith.select %[[C]], %d_g, %[[ZERO]] : f32
// CHECK-NEXT:    decay.yield %[[DA]], %[[ZERO]] : f32, f32
// CHECK-NEXT:  }
decay.recurrence @off_path scalar inputs(%a : [B, T, H], %b : [B, T, H]) {
  %fl = math.floor %a : f32
  %c = arith.cmpf olt, %fl, %b : f32
  %zero = arith.constant 0.0 : f32
  %s = arith.select %c, %a, %zero : f32
  decay.yield %s : f32
}

// -----

// A recurrence that already has a decay.adjoint keeps it: the pass derives
// nothing for it.
// CHECK-LABEL: decay.adjoint @given {
// CHECK-NEXT:  ^bb0(%x: f32, %d_g: f32):
// CHECK-NEXT:    %[[TWO:.*]] = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    %[[D:.*]] = arith.mulf %d_g, %[[TWO]] : f32
// CHECK-NEXT:    decay.yield %[[D]] : f32
// CHECK-NEXT:  }
// CHECK-NOT:   decay.adjoint
decay.recurrence @given scalar inputs(%x : [B, T, H]) {
  %g = math.exp %x : f32
  decay.yield %g : f32
}
decay.adjoint @given {
^bb0(%x: f32, %d_g: f32):
  %two = arith.constant 2.0 : f32
  %d = arith.mulf %d_g, %two : f32
  decay.yield %d : f32
}
