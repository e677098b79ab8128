// The diagnostics of decay-derive-gradients (an op on the gradient path without an adjoint rule, reported at the op) and of the decay.adjoint verifier (lib/Dialect/Decay/IR/DecayOps.cpp) on hand-written adjoints.
// RUN: decay-opt %s -split-input-file -verify-diagnostics --decay-derive-gradients

//===----------------------------------------------------------------------===//
// decay-derive-gradients: ops a decay region may hold (arith and math on f32
// scalars) but that have no adjoint rule, reached by the gradient.
//===----------------------------------------------------------------------===//

decay.recurrence @atan scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'math.atan' op has no adjoint rule, so decay-derive-gradients cannot differentiate this decay region}}
  %y = math.atan %x : f32
  decay.yield %y : f32
}

// -----

// The failing op is found even when it is not the last op before the yield.
decay.recurrence @erf vector inputs(%x : [B, T, H, K]) params(%p : [H, K]) {
  // expected-error @+1 {{'math.erf' op has no adjoint rule}}
  %e = math.erf %x : f32
  %s = arith.mulf %e, %p : f32
  %g = decay.logsigmoid %s : f32
  decay.yield %g : f32
}

// -----

// floor has derivative 0 almost everywhere, but there is no rule for it either.
decay.recurrence @floor scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'math.floor' op has no adjoint rule}}
  %f = math.floor %x : f32
  %g = arith.negf %f : f32
  decay.yield %g : f32
}

// -----

decay.recurrence @remainder scalar inputs(%x : [B, T, H]) params(%m : [H]) {
  // expected-error @+1 {{'arith.remf' op has no adjoint rule}}
  %r = arith.remf %x, %m : f32
  decay.yield %r : f32
}

// -----

// Only through the derived key: the log-decay alone is differentiable.
decay.recurrence @tan_key vector inputs(%f : [B, T, H, K]) {
  %g = decay.logsigmoid %f : f32
  // expected-error @+1 {{'math.tan' op has no adjoint rule}}
  %key = math.tan %f : f32
  decay.yield %g, %key : f32, f32
}

// -----

// Only through the gradient a scan carries to earlier tokens (d_z): g does not
// use the scan's cur value.
decay.recurrence @scan_carry vector inputs(%f : [B, T, H, K]) {
  // expected-error @+1 {{'math.cbrt' op has no adjoint rule}}
  %c = math.cbrt %f : f32
  %prev, %z = decay.cumsum "z" %c init 0.0 : f32
  %g = decay.logsigmoid %prev : f32
  decay.yield %g : f32
}

// -----

// math.fpowi (f32 base, integer exponent) has no rule.
decay.recurrence @fpowi scalar inputs(%x : [B, T, H]) {
  %n = arith.constant 3 : i32
  // expected-error @+1 {{'math.fpowi' op has no adjoint rule}}
  %y = math.fpowi %x, %n : f32, i32
  decay.yield %y : f32
}

// -----

// The first failing recurrence stops the pass; a later one is not reported.
decay.recurrence @first scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'math.log10' op has no adjoint rule}}
  %y = math.log10 %x : f32
  decay.yield %y : f32
}
decay.recurrence @second scalar inputs(%x : [B, T, H]) {
  %y = math.copysign %x, %x : f32
  decay.yield %y : f32
}

//===----------------------------------------------------------------------===//
// The decay.adjoint verifier on hand-written adjoints (the pass leaves a
// recurrence with an adjoint alone, so these are reported by the verifier).
//===----------------------------------------------------------------------===//

// -----

decay.recurrence @too_few_args scalar inputs(%dt : [B, T, H]) params(%A : [H]) {
  %g = arith.mulf %dt, %A : f32
  decay.yield %g : f32
}
// expected-error @+1 {{'decay.adjoint' op has 2 arguments; @too_few_args needs 3 (inputs and params, scan states, d_g, scan gradients)}}
decay.adjoint @too_few_args {
^bb0(%dt: f32, %A: f32):
  decay.yield %dt, %A : f32, f32
}

// -----

// A derived key adds d_key; a scan adds its prev value and its gradient.
decay.recurrence @scan_key vector inputs(%f : [B, T, H, K]) {
  %prev, %z = decay.logcumsumexp "z" %f init 0.0 : f32
  %g = arith.subf %prev, %z : f32
  %d = arith.subf %f, %z : f32
  %key = math.exp %d : f32
  decay.yield %g, %key : f32, f32
}
// expected-error @+1 {{'decay.adjoint' op has 4 arguments; @scan_key needs 5 (inputs and params, scan states, d_g, d_key, scan gradients)}}
decay.adjoint @scan_key {
^bb0(%f: f32, %z_prev: f32, %d_g: f32, %d_key: f32):
  decay.yield %f, %z_prev : f32, f32
}

// -----

decay.recurrence @too_many_args constant_scalar params(%p : [H]) {
  decay.yield %p : f32
}
// expected-error @+1 {{'decay.adjoint' op has 3 arguments; @too_many_args needs 2}}
decay.adjoint @too_many_args {
^bb0(%p: f32, %d_g: f32, %extra: f32):
  decay.yield %d_g : f32
}

// -----

decay.recurrence @too_few_yields scalar inputs(%dt : [B, T, H]) params(%A : [H]) {
  %g = arith.mulf %dt, %A : f32
  decay.yield %g : f32
}
// expected-error @+1 {{'decay.adjoint' op must yield 2 gradients (inputs and params, then scan states)}}
decay.adjoint @too_few_yields {
^bb0(%dt: f32, %A: f32, %d_g: f32):
  decay.yield %d_g : f32
}

// -----

// A scan's carried gradient is yielded too: 1 input + 1 scan = 2.
decay.recurrence @scan_yields vector inputs(%f : [B, T, H, K]) {
  %prev, %z = decay.cumsum "z" %f init 0.0 : f32
  %g = arith.subf %prev, %z : f32
  decay.yield %g : f32
}
// expected-error @+1 {{'decay.adjoint' op must yield 2 gradients}}
decay.adjoint @scan_yields {
^bb0(%f: f32, %z_prev: f32, %d_g: f32, %d_z: f32):
  decay.yield %d_g, %d_g, %d_z : f32, f32, f32
}

// -----

decay.recurrence @not_f32 scalar inputs(%dt : [B, T, H]) params(%A : [H]) {
  %g = arith.mulf %dt, %A : f32
  decay.yield %g : f32
}
// expected-error @+1 {{'decay.adjoint' op arguments must be f32, got 'f64'}}
decay.adjoint @not_f32 {
^bb0(%dt: f32, %A: f64, %d_g: f32):
  decay.yield %d_g, %d_g : f32, f32
}

// -----

// expected-error @+1 {{'decay.adjoint' op arguments must be f32, got 'i32'}}
decay.adjoint @int_arg {
^bb0(%d_g: i32):
  decay.yield
}

// -----

// expected-error @+1 {{'decay.adjoint' op refers to @missing, which is not a decay.recurrence}}
decay.adjoint @missing {
^bb0(%d_g: f32):
  decay.yield
}

// -----

func.func @not_a_recurrence() {
  return
}
// expected-error @+1 {{'decay.adjoint' op refers to @not_a_recurrence, which is not a decay.recurrence}}
decay.adjoint @not_a_recurrence {
^bb0(%d_g: f32):
  decay.yield
}

// -----

decay.recurrence @no_decay none
// expected-error @+1 {{'decay.adjoint' op refers to a recurrence without decay (granularity 'none')}}
decay.adjoint @no_decay {
^bb0(%d_g: f32):
  decay.yield
}

// -----

// expected-error @+1 {{'decay.adjoint' op region #0 ('body') failed to verify constraint: region with 1 blocks}}
decay.adjoint @empty {
}

// -----

// An op with several results on the gradient's path has no rule: reported,
// not silently given a zero gradient.
decay.recurrence @several_results scalar inputs(%a : [B, T, H]) {
  // expected-error @+1 {{has no adjoint rule (it has several results)}}
  %s, %c = math.sincos %a : f32
  %g = arith.addf %s, %c : f32
  decay.yield %g : f32
}

// -----

decay.recurrence @integer_gradient scalar inputs(%x : [B, T, H]) {
  decay.yield %x : f32
}
// expected-error @+1 {{'decay.adjoint' op must yield f32 gradients, got 'i32'}}
decay.adjoint @integer_gradient {
^bb0(%x: f32, %d_g: f32):
  %i = arith.fptosi %d_g : f32 to i32
  decay.yield %i : i32
}
