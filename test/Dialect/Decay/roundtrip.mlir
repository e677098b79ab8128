// Round trips of the decay.recurrence syntax: every example spec, every option,
// and the generic form. A round trip prints, re-parses the printed text, prints
// again and requires the two prints to be identical.

// Every example spec (examples/specs), custom form.
// RUN: decay-opt %examples/linear.mlir > %t.linear.1 && decay-opt %t.linear.1 > %t.linear.2 && diff %t.linear.1 %t.linear.2
// RUN: decay-opt %examples/retnet.mlir > %t.retnet.1 && decay-opt %t.retnet.1 > %t.retnet.2 && diff %t.retnet.1 %t.retnet.2
// RUN: decay-opt %examples/tnll.mlir > %t.tnll.1 && decay-opt %t.tnll.1 > %t.tnll.2 && diff %t.tnll.1 %t.tnll.2
// RUN: decay-opt %examples/mamba2.mlir > %t.mamba2.1 && decay-opt %t.mamba2.1 > %t.mamba2.2 && diff %t.mamba2.1 %t.mamba2.2
// RUN: decay-opt %examples/mamba2_vector.mlir > %t.mamba2_vector.1 && decay-opt %t.mamba2_vector.1 > %t.mamba2_vector.2 && diff %t.mamba2_vector.1 %t.mamba2_vector.2
// RUN: decay-opt %examples/gla.mlir > %t.gla.1 && decay-opt %t.gla.1 > %t.gla.2 && diff %t.gla.1 %t.gla.2
// RUN: decay-opt %examples/hgrn2.mlir > %t.hgrn2.1 && decay-opt %t.hgrn2.1 > %t.hgrn2.2 && diff %t.hgrn2.1 %t.hgrn2.2
// RUN: decay-opt %examples/lightnet.mlir > %t.lightnet.1 && decay-opt %t.lightnet.1 > %t.lightnet.2 && diff %t.lightnet.1 %t.lightnet.2
// RUN: decay-opt %examples/simple_decay.mlir > %t.simple_decay.1 && decay-opt %t.simple_decay.1 > %t.simple_decay.2 && diff %t.simple_decay.1 %t.simple_decay.2
// RUN: decay-opt %examples/d2d_exp.mlir > %t.d2d_exp.1 && decay-opt %t.d2d_exp.1 > %t.d2d_exp.2 && diff %t.d2d_exp.1 %t.d2d_exp.2
// RUN: decay-opt %examples/d2d_elu.mlir > %t.d2d_elu.1 && decay-opt %t.d2d_elu.1 > %t.d2d_elu.2 && diff %t.d2d_elu.1 %t.d2d_elu.2

// Every example spec through the generic form: printed generically, re-parsed and
// printed in the custom form again, it must equal its first custom print.
// RUN: decay-opt %examples/linear.mlir --mlir-print-op-generic > %t.linear.g && decay-opt %t.linear.g | diff %t.linear.1 -
// RUN: decay-opt %examples/retnet.mlir --mlir-print-op-generic > %t.retnet.g && decay-opt %t.retnet.g | diff %t.retnet.1 -
// RUN: decay-opt %examples/tnll.mlir --mlir-print-op-generic > %t.tnll.g && decay-opt %t.tnll.g | diff %t.tnll.1 -
// RUN: decay-opt %examples/mamba2.mlir --mlir-print-op-generic > %t.mamba2.g && decay-opt %t.mamba2.g | diff %t.mamba2.1 -
// RUN: decay-opt %examples/mamba2_vector.mlir --mlir-print-op-generic > %t.mamba2_vector.g && decay-opt %t.mamba2_vector.g | diff %t.mamba2_vector.1 -
// RUN: decay-opt %examples/gla.mlir --mlir-print-op-generic > %t.gla.g && decay-opt %t.gla.g | diff %t.gla.1 -
// RUN: decay-opt %examples/hgrn2.mlir --mlir-print-op-generic > %t.hgrn2.g && decay-opt %t.hgrn2.g | diff %t.hgrn2.1 -
// RUN: decay-opt %examples/lightnet.mlir --mlir-print-op-generic > %t.lightnet.g && decay-opt %t.lightnet.g | diff %t.lightnet.1 -
// RUN: decay-opt %examples/simple_decay.mlir --mlir-print-op-generic > %t.simple_decay.g && decay-opt %t.simple_decay.g | diff %t.simple_decay.1 -
// RUN: decay-opt %examples/d2d_exp.mlir --mlir-print-op-generic > %t.d2d_exp.g && decay-opt %t.d2d_exp.g | diff %t.d2d_exp.1 -
// RUN: decay-opt %examples/d2d_elu.mlir --mlir-print-op-generic > %t.d2d_elu.g && decay-opt %t.d2d_elu.g | diff %t.d2d_elu.1 -

// The printed form of some examples.
// RUN: FileCheck %s --check-prefix=LINEAR < %t.linear.1
// RUN: FileCheck %s --check-prefix=RETNET < %t.retnet.1
// RUN: FileCheck %s --check-prefix=TNLL < %t.tnll.1
// RUN: FileCheck %s --check-prefix=MAMBA2V < %t.mamba2_vector.1
// RUN: FileCheck %s --check-prefix=GLA < %t.gla.1
// RUN: FileCheck %s --check-prefix=HGRN2 < %t.hgrn2.1
// RUN: FileCheck %s --check-prefix=LIGHTNET < %t.lightnet.1
// RUN: FileCheck %s --check-prefix=D2D < %t.d2d_exp.1
// RUN: FileCheck %s --check-prefix=GENERIC-GLA < %t.gla.g

// LINEAR:      module {
// LINEAR-NEXT:   decay.recurrence @linear none{{$}}
// LINEAR-NEXT: }

// RETNET-LABEL: decay.recurrence @retnet constant_scalar {
// RETNET-NEXT:    %[[H:.*]] = decay.head_index : f32
// RETNET-NEXT:    %[[M5:.*]] = arith.constant -5.000000e+00 : f32
// RETNET-NEXT:    %[[E:.*]] = arith.subf %[[M5]], %[[H]] : f32
// RETNET-NEXT:    %[[P:.*]] = math.exp2 %[[E]] : f32
// RETNET-NEXT:    %[[NP:.*]] = arith.negf %[[P]] : f32
// RETNET-NEXT:    %[[G:.*]] = math.log1p %[[NP]] : f32
// RETNET-NEXT:    decay.yield %[[G]] : f32

// TNLL-LABEL: decay.recurrence @tnll constant_scalar params(%log_decay : [H]) {
// TNLL-NEXT:    decay.yield %log_decay : f32
// TNLL-NEXT:  }

// MAMBA2V-LABEL: decay.recurrence @mamba2_vector vector inputs(%dt : [B, T, H, K]) params(%A_log : [H, K], %dt_bias : [H, K]) {
// MAMBA2V-NEXT:    %[[X:.*]] = arith.addf %dt, %dt_bias : f32
// MAMBA2V-NEXT:    %[[SP:.*]] = decay.softplus %[[X]] : f32
// MAMBA2V-NEXT:    %[[A:.*]] = math.exp %A_log : f32
// MAMBA2V-NEXT:    %[[NA:.*]] = arith.negf %[[A]] : f32
// MAMBA2V-NEXT:    %[[G:.*]] = arith.mulf %[[NA]], %[[SP]] : f32
// MAMBA2V-NEXT:    decay.yield %[[G]] : f32

// GLA-LABEL: decay.recurrence @gla vector inputs(%gk : [B, T, H, K]) {
// GLA-NEXT:    %[[LS:.*]] = decay.logsigmoid %gk : f32
// GLA-NEXT:    %[[C16:.*]] = arith.constant 1.600000e+01 : f32
// GLA-NEXT:    %[[G:.*]] = arith.divf %[[LS]], %[[C16]] : f32
// GLA-NEXT:    decay.yield %[[G]] : f32
// GLA-NEXT:  }

// HGRN2-LABEL: decay.recurrence @hgrn2 vector inputs(%f : [B, T, H, K]) {
// HGRN2:         %[[LB:.*]] = arith.constant 0.000000e+00 : f32
// HGRN2:         %[[LOGLB:.*]] = math.log %[[LB]] : f32
// HGRN2:         %[[LS:.*]] = decay.logsigmoid %f : f32
// HGRN2:         %[[UP:.*]] = arith.addf %{{.*}}, %[[LS]] : f32
// HGRN2:         %[[G:.*]] = decay.logaddexp %[[LOGLB]], %[[UP]] : f32
// HGRN2:         %[[EM1:.*]] = math.expm1 %[[G]] : f32
// HGRN2:         %[[KEY:.*]] = arith.negf %[[EM1]] : f32
// HGRN2:         decay.yield %[[G]], %[[KEY]] : f32, f32

// LIGHTNET-LABEL: decay.recurrence @lightnet vector inputs(%f : [B, T, H, K]) {
// LIGHTNET-NEXT:    %[[PREV:.*]], %[[Z:.*]] = decay.logcumsumexp "z" %f init 0.000000e+00 : f32
// LIGHTNET-NEXT:    %[[G:.*]] = arith.subf %[[PREV]], %[[Z]] : f32
// LIGHTNET-NEXT:    %[[D:.*]] = arith.subf %f, %[[Z]] : f32
// LIGHTNET-NEXT:    %[[KEY:.*]] = math.exp %[[D]] : f32
// LIGHTNET-NEXT:    decay.yield %[[G]], %[[KEY]] : f32, f32

// D2D-LABEL: decay.recurrence @d2d_exp constant_vector params(%ps : [H, K]) attributes {feature_map = "exp", normalizer} {
// D2D-NEXT:    %[[H:.*]] = decay.head_index : f32
// D2D-NEXT:    %[[NH:.*]] = decay.num_heads : f32
// D2D:         %[[STEP:.*]] = arith.mulf %{{.*}}, %ps : f32
// D2D-NEXT:    %[[G:.*]] = arith.subf %{{.*}}, %[[STEP]] : f32
// D2D-NEXT:    decay.yield %[[G]] : f32

// The generic form keeps the names and dims as string arrays and the
// granularity as its enum value (vector = 4).
// GENERIC-GLA:      "decay.recurrence"() ({
// GENERIC-GLA-NEXT: ^bb0(%[[ARG:.*]]: f32):
// GENERIC-GLA-NEXT:   "decay.logsigmoid"(%[[ARG]]) : (f32) -> f32
// GENERIC-GLA:      }) {granularity = 4 : i32, input_dims = ["BTHK"], input_names = ["gk"], param_dims = [], param_names = [], sym_name = "gla"} : () -> ()

// The cases below (this file) round-trip through both forms too.
// (The printed cases are separated by "// split" so that they can be re-split.)
// RUN: decay-opt %s -split-input-file -output-split-marker="// split" > %t.cases.1
// RUN: decay-opt %t.cases.1 -split-input-file="// split" -output-split-marker="// split" > %t.cases.2
// RUN: diff %t.cases.1 %t.cases.2
// RUN: decay-opt %s -split-input-file -output-split-marker="// split" --mlir-print-op-generic > %t.cases.g
// RUN: decay-opt %t.cases.g -split-input-file="// split" -output-split-marker="// split" > %t.cases.g2
// RUN: diff %t.cases.1 %t.cases.g2
// RUN: FileCheck %s < %t.cases.1
// RUN: FileCheck %s --check-prefix=GENERIC < %t.cases.g

// Every option except the normalizer's, in one dictionary. The printer sorts
// the options by name and spells the integer and float types out.
// CHECK-LABEL: decay.recurrence @all_options scalar inputs(%x : [B, T, H])
// CHECK-SAME:    attributes {chunk_size = 64 : i64, dtype = bf16, feature_map = "silu", key_dim = 128 : i64, rope_theta = 1.000000e+04 : f64, scale = 1.250000e-01 : f64, value_dim = 64 : i64} {
// CHECK-NEXT:    decay.yield %x : f32
// GENERIC-LABEL: "decay.recurrence"
// GENERIC:       }) {chunk_size = 64 : i64, dtype = bf16, feature_map = "silu", granularity = 3 : i32, input_dims = ["BTH"], input_names = ["x"], key_dim = 128 : i64, param_dims = [], param_names = [], rope_theta = 1.000000e+04 : f64, scale = 1.250000e-01 : f64, sym_name = "all_options", value_dim = 64 : i64} : () -> ()
decay.recurrence @all_options scalar
    inputs(%x : [B, T, H])
    attributes {key_dim = 128, value_dim = 64, scale = 0.125, feature_map = "silu",
                rope_theta = 10000.0, dtype = bf16, chunk_size = 64} {
  decay.yield %x : f32
}

// -----

// The normalizer with its eps (scale does not go with it).
// CHECK-LABEL: decay.recurrence @normalized vector inputs(%x : [B, T, H, K])
// CHECK-SAME:    attributes {dtype = f32, eps = 1.000000e-05 : f64, feature_map = "elu1", key_dim = 64 : i64, normalizer, value_dim = 32 : i64} {
// CHECK-NEXT:    decay.yield %x : f32
// GENERIC-LABEL: "decay.recurrence"
// GENERIC:       }) {dtype = f32, eps = 1.000000e-05 : f64, feature_map = "elu1", granularity = 4 : i32, input_dims = ["BTHK"], input_names = ["x"], key_dim = 64 : i64, normalizer, param_dims = [], param_names = [], sym_name = "normalized", value_dim = 32 : i64} : () -> ()
decay.recurrence @normalized vector
    inputs(%x : [B, T, H, K])
    attributes {normalizer, eps = 1.0e-5, feature_map = "elu1", dtype = f32,
                key_dim = 64, value_dim = 32} {
  decay.yield %x : f32
}

// -----

// Options on a `none` spec, which has no region.
// CHECK:      module {
// CHECK-NEXT:   decay.recurrence @linear_rope none attributes {feature_map = "relu", key_dim = 64 : i64, rope_theta = 5.000000e+05 : f64}{{$}}
// CHECK-NEXT: }
// GENERIC-LABEL: "decay.recurrence"
// GENERIC-SAME:  ({
// GENERIC-NEXT:  }) {feature_map = "relu", granularity = 0 : i32, input_dims = [], input_names = [], key_dim = 64 : i64, param_dims = [], param_names = [], rope_theta = 5.000000e+05 : f64, sym_name = "linear_rope"} : () -> ()
decay.recurrence @linear_rope none attributes {key_dim = 64, rope_theta = 500000.0, feature_map = "relu"}

// -----

// Less common dims, several specs in one module, scans of both kinds, the
// head index and integer arithmetic in a region.
// CHECK-LABEL: decay.recurrence @first scalar inputs(%a : [B, T], %b : [B, T, H]) params(%c : [H]) {
// CHECK-NEXT:    %[[S:.*]] = arith.addf %a, %b : f32
// CHECK-NEXT:    %[[P:.*]] = arith.mulf %[[S]], %c : f32
// CHECK-NEXT:    decay.yield %[[P]] : f32
// CHECK-LABEL: decay.recurrence @second vector inputs(%u : [B, T, K], %w : [B, T, H, K]) params(%kp : [K], %hkp : [H, K]) {
// CHECK:         %{{.*}}, %[[S1:.*]] = decay.cumsum "s" %u init 0.000000e+00 : f32
// CHECK:         %[[P2:.*]], %[[S2:.*]] = decay.logcumsumexp "lse" %w init -1.000000e+00 : f32
// CHECK:         %[[HI:.*]] = decay.head_index : f32
// CHECK:         %[[I:.*]] = arith.fptosi %[[HI]] : f32 to i32
// CHECK:         arith.addi %[[I]], %{{.*}} : i32
// CHECK:         arith.sitofp %{{.*}} : i32 to f32
// CHECK:         decay.yield %{{.*}}, %{{.*}} : f32, f32
// GENERIC:       "decay.cumsum"(%{{.*}}) {init = 0.000000e+00 : f64, name = "s"} : (f32) -> (f32, f32)
// GENERIC:       "decay.logcumsumexp"(%{{.*}}) {init = -1.000000e+00 : f64, name = "lse"} : (f32) -> (f32, f32)
// GENERIC:       }) {granularity = 4 : i32, input_dims = ["BTK", "BTHK"], input_names = ["u", "w"], param_dims = ["K", "HK"], param_names = ["kp", "hkp"], sym_name = "second"} : () -> ()
decay.recurrence @first scalar
    inputs(%a : [B, T], %b : [B, T, H]) params(%c : [H]) {
  %s = arith.addf %a, %b : f32
  %p = arith.mulf %s, %c : f32
  decay.yield %p : f32
}
decay.recurrence @second vector
    inputs(%u : [B, T, K], %w : [B, T, H, K]) params(%kp : [K], %hkp : [H, K]) {
  %prev1, %s = decay.cumsum "s" %u init 0.0 : f32
  %prev2, %lse = decay.logcumsumexp "lse" %w init -1.0 : f32
  %h = decay.head_index : f32
  %hi = arith.fptosi %h : f32 to i32
  %one = arith.constant 1 : i32
  %h1 = arith.addi %hi, %one : i32
  %h1f = arith.sitofp %h1 : i32 to f32
  %x = arith.mulf %h1f, %kp : f32
  %y = arith.subf %prev2, %lse : f32
  %z = arith.addf %x, %y : f32
  %g = arith.subf %z, %hkp : f32
  %key = arith.addf %s, %prev1 : f32
  decay.yield %g, %key : f32, f32
}
