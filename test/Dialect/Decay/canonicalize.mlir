// RUN: decay-opt %s -canonicalize -split-input-file | FileCheck %s

// The folders of decay.softplus, decay.logsigmoid and decay.logaddexp, run by the
// canonicalizer, and what it must keep. The folders compute in double and round
// to the op's type: the f32 values below are what decay-opt prints.

// CHECK-LABEL: func.func @fold_softplus
// CHECK-DAG:     %[[LN2:.*]] = arith.constant 0.693147182 : f32
// CHECK-DAG:     %[[TINY:.*]] = arith.constant 2.06115369E-9 : f32
// CHECK-DAG:     %[[HUNDRED:.*]] = arith.constant 1.000000e+02 : f32
// CHECK-DAG:     %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG:     %[[LN2_F64:.*]] = arith.constant 0.69314718055994529 : f64
// CHECK-NOT:     decay.softplus
// CHECK:         return %[[LN2]], %[[TINY]], %[[HUNDRED]], %[[ZERO]], %[[LN2_F64]] :
func.func @fold_softplus() -> (f32, f32, f32, f32, f64) {
  %zero = arith.constant 0.0 : f32
  %m20 = arith.constant -20.0 : f32
  %hundred = arith.constant 100.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %zero64 = arith.constant 0.0 : f64
  // softplus(0) = ln 2
  %a = decay.softplus %zero : f32
  // softplus(-20) = log1p(exp(-20)), not rounded to 0
  %b = decay.softplus %m20 : f32
  // softplus(100) = 100 without overflow of exp(100) in f32
  %c = decay.softplus %hundred : f32
  // softplus(-inf) = 0
  %d = decay.softplus %ninf : f32
  // folds in the op's own type
  %e = decay.softplus %zero64 : f64
  return %a, %b, %c, %d, %e : f32, f32, f32, f32, f64
}

// -----

// CHECK-LABEL: func.func @fold_logsigmoid
// CHECK-DAG:     %[[MLN2:.*]] = arith.constant -0.693147182 : f32
// CHECK-DAG:     %[[MTINY:.*]] = arith.constant -2.06115369E-9 : f32
// CHECK-DAG:     %[[M100:.*]] = arith.constant -1.000000e+02 : f32
// CHECK-NOT:     decay.logsigmoid
// CHECK:         return %[[MLN2]], %[[MTINY]], %[[M100]] :
func.func @fold_logsigmoid() -> (f32, f32, f32) {
  %zero = arith.constant 0.0 : f32
  %p20 = arith.constant 20.0 : f32
  %m100 = arith.constant -100.0 : f32
  // logsigmoid(0) = -ln 2
  %a = decay.logsigmoid %zero : f32
  // logsigmoid(20) = -log1p(exp(-20))
  %b = decay.logsigmoid %p20 : f32
  // logsigmoid(-100) = -100 without overflow
  %c = decay.logsigmoid %m100 : f32
  return %a, %b, %c : f32, f32, f32
}

// -----

// CHECK-LABEL: func.func @fold_logaddexp
// CHECK-DAG:     %[[LN2:.*]] = arith.constant 0.693147182 : f32
// CHECK-DAG:     %[[L12:.*]] = arith.constant 2.31326175 : f32
// CHECK-DAG:     %[[HUNDRED:.*]] = arith.constant 1.000000e+02 : f32
// CHECK-DAG:     %[[TWO:.*]] = arith.constant 2.000000e+00 : f32
// CHECK-DAG:     %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK-NOT:     decay.logaddexp
// CHECK:         return %[[LN2]], %[[L12]], %[[HUNDRED]], %[[TWO]], %[[NINF]] :
func.func @fold_logaddexp() -> (f32, f32, f32, f32, f32) {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %two = arith.constant 2.0 : f32
  %hundred = arith.constant 100.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  // log(e^0 + e^0) = ln 2
  %a = decay.logaddexp %zero, %zero : f32
  // log(e^1 + e^2) = 2 + log1p(e^-1)
  %b = decay.logaddexp %one, %two : f32
  // log(e^1 + e^100) = 100 in f32, without overflow
  %c = decay.logaddexp %one, %hundred : f32
  // -inf is the identity: log(0 + e^2) = 2
  %d = decay.logaddexp %ninf, %two : f32
  // and both -inf gives -inf, not NaN
  %e = decay.logaddexp %ninf, %ninf : f32
  return %a, %b, %c, %d, %e : f32, f32, f32, f32, f32
}

// -----

// -inf is the identity of logaddexp also when the other operand is not a
// constant, and +inf absorbs (inf - inf would give NaN).
// CHECK-LABEL: func.func @logaddexp_identity
// CHECK-SAME:    (%[[X:.*]]: f32)
// CHECK-DAG:     %[[INF:.*]] = arith.constant 0x7F800000 : f32
// CHECK-NOT:     decay.logaddexp
// CHECK:         return %[[X]], %[[X]], %[[INF]] :
func.func @logaddexp_identity(%x: f32) -> (f32, f32, f32) {
  %ninf = arith.constant 0xFF800000 : f32
  %inf = arith.constant 0x7F800000 : f32
  %a = decay.logaddexp %x, %ninf : f32
  %b = decay.logaddexp %ninf, %x : f32
  %c = decay.logaddexp %inf, %inf : f32
  return %a, %b, %c : f32, f32, f32
}

// -----

// Folding inside a spec's region: the constant softplus folds, the constant
// arithmetic around it collapses into one constant, and the dead pure op goes.
// CHECK-LABEL: decay.recurrence @fold_in_region scalar inputs(%x : [B, T, H]) {
// CHECK-NEXT:    %[[C:.*]] = arith.constant 4.15888309 : f32
// CHECK-NEXT:    %[[G:.*]] = arith.mulf %x, %[[C]] : f32
// CHECK-NEXT:    decay.yield %[[G]] : f32
// CHECK-NEXT:  }
decay.recurrence @fold_in_region scalar inputs(%x : [B, T, H]) {
  %zero = arith.constant 0.0 : f32
  %two = arith.constant 2.0 : f32
  %three = arith.constant 3.0 : f32
  %six = arith.mulf %two, %three : f32
  %ln2 = decay.softplus %zero : f32
  %c = arith.mulf %six, %ln2 : f32          // 6 ln 2
  %g = arith.mulf %x, %c : f32
  %dead = decay.logsigmoid %x : f32
  decay.yield %g : f32
}

// -----

// RetNet-style constants: head-dependent ops do not fold, but what does not
// depend on the head does: 1 - 2^-5 folds to one constant.
// CHECK-LABEL: decay.recurrence @head_constants constant_scalar {
// CHECK-DAG:     %[[C:.*]] = arith.constant 9.687500e-01 : f32
// CHECK-DAG:     %[[H:.*]] = decay.head_index : f32
// CHECK:         %[[P:.*]] = arith.mulf %[[H]], %[[C]] : f32
// CHECK:         decay.yield %[[P]] : f32
decay.recurrence @head_constants constant_scalar {
  %h = decay.head_index : f32
  %one = arith.constant 1.0 : f32
  %m5 = arith.constant -5.0 : f32
  %p = math.exp2 %m5 : f32
  %gamma = arith.subf %one, %p : f32
  %g = arith.mulf %h, %gamma : f32
  decay.yield %g : f32
}

// -----

// A scan carries state across tokens (scan_<name>_h0 / scan_<name>_ht), so it is
// not dead when its results are unused; a pure op with unused results is.
// CHECK-LABEL: decay.recurrence @unused_scans vector inputs(%f : [B, T, H, K]) {
// CHECK-NEXT:    %{{.*}}, %{{.*}} = decay.cumsum "count" %f init 0.000000e+00 : f32
// CHECK-NEXT:    %{{.*}}, %{{.*}} = decay.logcumsumexp "lse" %f init 0.000000e+00 : f32
// CHECK-NEXT:    %[[G:.*]] = decay.logsigmoid %f : f32
// CHECK-NEXT:    decay.yield %[[G]] : f32
// CHECK-NEXT:  }
decay.recurrence @unused_scans vector inputs(%f : [B, T, H, K]) {
  %prev, %count = decay.cumsum "count" %f init 0.0 : f32
  %prev2, %lse = decay.logcumsumexp "lse" %f init 0.0 : f32
  %unused = decay.softplus %f : f32
  %g = decay.logsigmoid %f : f32
  decay.yield %g : f32
}

// -----

// Nothing folds on non-constant operands, and the recurrences themselves stay
// (a spec is not dead code, also a `none` one without a region).
// CHECK-LABEL: decay.recurrence @not_constant scalar inputs(%x : [B, T, H]) params(%p : [H]) {
// CHECK-NEXT:    %[[SP:.*]] = decay.softplus %x : f32
// CHECK-NEXT:    %[[LS:.*]] = decay.logsigmoid %p : f32
// CHECK-NEXT:    %[[L:.*]] = decay.logaddexp %[[SP]], %[[LS]] : f32
// CHECK-NEXT:    %[[G:.*]] = arith.negf %[[L]] : f32
// CHECK-NEXT:    decay.yield %[[G]] : f32
// CHECK:       decay.recurrence @kept none
decay.recurrence @not_constant scalar inputs(%x : [B, T, H]) params(%p : [H]) {
  %sp = decay.softplus %x : f32
  %ls = decay.logsigmoid %p : f32
  %l = decay.logaddexp %sp, %ls : f32
  %g = arith.negf %l : f32
  decay.yield %g : f32
}
decay.recurrence @kept none
