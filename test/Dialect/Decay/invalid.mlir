// RUN: decay-opt %s -split-input-file -verify-diagnostics

// Every diagnostic of the decay.recurrence parser and verifier
// (lib/Dialect/Decay/IR/DecayOps.cpp), one malformed spec per case, plus the
// MLIR parser errors a hand-written spec most often hits.

//===----------------------------------------------------------------------===//
// Parser
//===----------------------------------------------------------------------===//

// expected-error @+1 {{unknown granularity 'diagonal': expected none, constant_scalar, constant_vector, scalar or vector}}
decay.recurrence @bad_granularity diagonal inputs(%x : [B, T, H]) {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{unknown dim 'X': expected one of B, T, H, K}}
decay.recurrence @unknown_dim scalar inputs(%x : [B, T, X]) {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{unknown dim 'HK': expected one of B, T, H, K}}
decay.recurrence @dims_without_commas vector inputs(%x : [B, T, HK]) {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{dim 'T' appears twice}}
decay.recurrence @duplicate_dim scalar inputs(%x : [B, T, T]) {
  decay.yield %x : f32
}

// -----

// The same name for an input and a param: MLIR's parser sees two region
// arguments with one name.
// expected-note @+2 {{previously referenced here}}
// expected-error @+1 {{region entry argument '%x' is already in use}}
decay.recurrence @same_ssa_name scalar inputs(%x : [B, T, H]) params(%x : [H]) {
  decay.yield %x : f32
}

// -----

decay.recurrence @undeclared vector inputs(%f : [B, T, H, K]) {
  // expected-error @+1 {{use of undeclared SSA value name}}
  %g = decay.logsigmoid %gate : f32
  decay.yield %g : f32
}

// -----

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

// expected-error @+1 {{has unknown option 'temperature'; known options: key_dim, value_dim, scale, feature_map, normalizer, eps, rope_theta, dtype, state_dtype, chunk_size}}
decay.recurrence @unknown_option scalar inputs(%x : [B, T, H]) attributes {temperature = 16.0} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{key_dim must be in [1, 4096], got 0}}
decay.recurrence @key_dim_zero scalar inputs(%x : [B, T, H]) attributes {key_dim = 0} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{value_dim must be in [1, 4096], got 8192}}
decay.recurrence @value_dim_huge scalar inputs(%x : [B, T, H]) attributes {value_dim = 8192} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{attribute 'key_dim' failed to satisfy constraint: 64-bit signless integer attribute}}
decay.recurrence @key_dim_float scalar inputs(%x : [B, T, H]) attributes {key_dim = 64.0} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{chunk_size must be a power of two in [16, 256], got 48}}
decay.recurrence @chunk_not_pow2 scalar inputs(%x : [B, T, H]) attributes {chunk_size = 48} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{chunk_size must be a power of two in [16, 256], got 512}}
decay.recurrence @chunk_too_big scalar inputs(%x : [B, T, H]) attributes {chunk_size = 512} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{chunk_size must be a power of two in [16, 256], got 8}}
decay.recurrence @chunk_too_small scalar inputs(%x : [B, T, H]) attributes {chunk_size = 8} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{scale must be finite and non-zero}}
decay.recurrence @scale_zero scalar inputs(%x : [B, T, H]) attributes {scale = 0.0} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{scale must be finite and non-zero}}
decay.recurrence @scale_inf scalar inputs(%x : [B, T, H]) attributes {scale = 0x7FF0000000000000 : f64} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{scale does not apply with the normalizer (it cancels)}}
decay.recurrence @scale_with_normalizer scalar inputs(%x : [B, T, H]) attributes {scale = 0.125, normalizer} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{eps must be positive and finite}}
decay.recurrence @eps_negative scalar inputs(%x : [B, T, H]) attributes {normalizer, eps = -1.0e-6} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{eps must be positive and finite}}
decay.recurrence @eps_zero scalar inputs(%x : [B, T, H]) attributes {normalizer, eps = 0.0} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{eps only applies with the normalizer}}
decay.recurrence @eps_without_normalizer scalar inputs(%x : [B, T, H]) attributes {eps = 1.0e-6} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{attribute 'normalizer' failed to satisfy constraint: unit attribute}}
decay.recurrence @normalizer_not_unit scalar inputs(%x : [B, T, H]) attributes {normalizer = true} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{rope_theta must be positive and finite}}
decay.recurrence @rope_theta_negative scalar inputs(%x : [B, T, H]) attributes {rope_theta = -10000.0} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{RoPE needs an even key_dim, got 63}}
decay.recurrence @rope_odd_key_dim scalar inputs(%x : [B, T, H]) attributes {rope_theta = 10000.0, key_dim = 63} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{has unknown feature_map 'gelu': expected identity, elu1, exp, silu or relu}}
decay.recurrence @bad_feature_map scalar inputs(%x : [B, T, H]) attributes {feature_map = "gelu"} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{dtype must be f32 or bf16, got 'f16'}}
decay.recurrence @bad_dtype scalar inputs(%x : [B, T, H]) attributes {dtype = f16} {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{attribute 'dtype' failed to satisfy constraint: any type attribute}}
decay.recurrence @dtype_not_a_type scalar inputs(%x : [B, T, H]) attributes {dtype = "bf16"} {
  decay.yield %x : f32
}

// -----

//===----------------------------------------------------------------------===//
// Inputs and params
//===----------------------------------------------------------------------===//

// A name is a tensor (file) name: SSA names such as %0 or %a.b are not
// identifiers. (%0 would also not round-trip: it prints as %_0.)
// expected-error @+1 {{input name '0' must be an identifier ([A-Za-z_][A-Za-z0-9_]*): it names a tensor file}}
decay.recurrence @numeric_name scalar inputs(%0 : [B, T, H]) {
  decay.yield %0 : f32
}

// -----

// expected-error @+1 {{param name 'a.b' must be an identifier ([A-Za-z_][A-Za-z0-9_]*): it names a tensor file}}
decay.recurrence @dotted_name scalar params(%a.b : [H]) {
  decay.yield %a.b : f32
}

// -----

// expected-error @+1 {{input name 'q' is reserved for a built-in tensor}}
decay.recurrence @reserved_q scalar inputs(%q : [B, T, H]) {
  decay.yield %q : f32
}

// -----

// expected-error @+1 {{param name 'h0' is reserved for a built-in tensor}}
decay.recurrence @reserved_h0 scalar params(%h0 : [H]) {
  decay.yield %h0 : f32
}

// -----

// expected-error @+1 {{input name 'scan_x' is reserved for a built-in tensor}}
decay.recurrence @reserved_scan_prefix vector inputs(%scan_x : [B, T, H, K]) {
  decay.yield %scan_x : f32
}

// -----

// expected-error @+1 {{param name 'norm_ht' is reserved for a built-in tensor}}
decay.recurrence @reserved_norm constant_scalar params(%norm_ht : [H]) {
  decay.yield %norm_ht : f32
}

// -----

// The custom syntax cannot spell a duplicated name (see the parser case above);
// the generic form can.
// expected-error @+1 {{declares 'x' twice}}
"decay.recurrence"() ({
^bb0(%a: f32, %b: f32):
  "decay.yield"(%a) : (f32) -> ()
}) {granularity = 3 : i32, input_dims = ["BTH"], input_names = ["x"],
    param_dims = ["H"], param_names = ["x"], sym_name = "duplicate_name"} : () -> ()

// -----

// expected-error @+1 {{has 2 input names but 1 dim lists}}
"decay.recurrence"() ({
^bb0(%a: f32, %b: f32):
  "decay.yield"(%a) : (f32) -> ()
}) {granularity = 3 : i32, input_dims = ["BTH"], input_names = ["x", "y"],
    param_dims = [], param_names = [], sym_name = "names_dims_mismatch"} : () -> ()

// -----

// expected-error @+1 {{param name '' must be an identifier ([A-Za-z_][A-Za-z0-9_]*): it names a tensor file}}
"decay.recurrence"() ({
^bb0(%a: f32):
  "decay.yield"(%a) : (f32) -> ()
}) {granularity = 1 : i32, input_dims = [], input_names = [],
    param_dims = ["H"], param_names = [""], sym_name = "empty_name"} : () -> ()

// -----

// expected-error @+1 {{declares per-token input 'x' but granularity 'constant_scalar' does not depend on the token (use a param)}}
decay.recurrence @input_in_constant constant_scalar inputs(%x : [B, T, H]) {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{declares per-token input 'x' but granularity 'none' does not depend on the token}}
decay.recurrence @input_in_none none inputs(%x : [B, T, H])

// -----

// expected-error @+1 {{declares param 'p' but granularity 'none' has no decay}}
decay.recurrence @param_in_none none params(%p : [H])

// -----

// expected-error @+1 {{input 'x' must have dims [B, T], [B, T, H], [B, T, K] or [B, T, H, K]}}
decay.recurrence @input_without_bt scalar inputs(%x : [H]) {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{input 'x' must have dims [B, T], [B, T, H], [B, T, K] or [B, T, H, K]}}
decay.recurrence @input_t_first scalar inputs(%x : [T, B, H]) {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{input 'x' must have dims [B, T], [B, T, H], [B, T, K] or [B, T, H, K]}}
decay.recurrence @input_k_before_h vector inputs(%x : [B, T, K, H]) {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{param 'p' must have dims [H], [K] or [H, K]}}
decay.recurrence @param_per_token scalar params(%p : [B, T, H]) {
  decay.yield %p : f32
}

// -----

// expected-error @+1 {{param 'p' must have dims [H], [K] or [H, K]}}
decay.recurrence @param_no_dims scalar params(%p : []) {
  decay.yield %p : f32
}

// -----

// expected-error @+1 {{input 'x' has a K dim, but a scalar decay is shared by all key channels}}
decay.recurrence @k_dim_in_scalar scalar inputs(%x : [B, T, H, K]) {
  decay.yield %x : f32
}

// -----

// expected-error @+1 {{param 'p' has a K dim, but a constant_scalar decay is shared by all key channels}}
decay.recurrence @k_dim_in_constant_scalar constant_scalar params(%p : [H, K]) {
  decay.yield %p : f32
}

// -----

//===----------------------------------------------------------------------===//
// The region
//===----------------------------------------------------------------------===//

// expected-error @+1 {{with granularity 'none' has no decay and takes no region}}
decay.recurrence @region_in_none none {
  %g = arith.constant 0.0 : f32
  decay.yield %g : f32
}

// -----

// expected-error @+1 {{needs a region computing the log-decay}}
decay.recurrence @missing_region scalar inputs(%x : [B, T, H])

// -----

// expected-error @+1 {{region has 1 arguments but the spec declares 2 inputs and params}}
"decay.recurrence"() ({
^bb0(%a: f32):
  "decay.yield"(%a) : (f32) -> ()
}) {granularity = 3 : i32, input_dims = ["BTH"], input_names = ["x"],
    param_dims = ["H"], param_names = ["p"], sym_name = "argument_count"} : () -> ()

// -----

// expected-error @+1 {{region argument #0 must be f32, got 'f64'}}
"decay.recurrence"() ({
^bb0(%a: f64):
  %g = "arith.truncf"(%a) : (f64) -> f32
  "decay.yield"(%g) : (f32) -> ()
}) {granularity = 3 : i32, input_dims = ["BTH"], input_names = ["x"],
    param_dims = [], param_names = [], sym_name = "f64_argument"} : () -> ()

// -----

// expected-error @+1 {{region must end with 'decay.yield' of the log-decay}}
decay.recurrence @empty_region scalar inputs(%x : [B, T, H]) {
}

// -----

// expected-error @+1 {{region must end with 'decay.yield' of the log-decay}}
decay.recurrence @no_yield scalar inputs(%x : [B, T, H]) {
  %g = arith.negf %x : f32
}

// -----

decay.recurrence @yield_nothing scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{yields no log-decay}}
  decay.yield
}

// -----

decay.recurrence @yield_three vector inputs(%x : [B, T, H, K]) {
  // expected-error @+1 {{yields 3 values; expected the log-decay and optionally a derived key}}
  decay.yield %x, %x, %x : f32, f32, f32
}

// -----

decay.recurrence @yield_integer scalar inputs(%x : [B, T, H]) {
  %c = arith.constant 0 : i32
  // expected-error @+1 {{must yield f32 values, got 'i32'}}
  decay.yield %c : i32
}

// -----

decay.recurrence @yield_index_key vector inputs(%x : [B, T, H, K]) {
  %c = arith.constant 1 : index
  // expected-error @+1 {{must yield f32 values, got 'index'}}
  decay.yield %x, %c : f32, index
}

// -----

decay.recurrence @derived_key_in_scalar scalar inputs(%x : [B, T, H]) {
  %k = math.exp %x : f32
  // expected-error @+1 {{yields a derived key of shape [B, T, H], but a key must have shape [B, T, H, K]: use vector granularity}}
  decay.yield %x, %k : f32, f32
}

// -----

decay.recurrence @derived_key_in_constant_vector constant_vector params(%p : [H, K]) {
  // expected-error @+1 {{yields a derived key, but a constant_vector decay is not computed per token}}
  decay.yield %p, %p : f32, f32
}

// -----

decay.recurrence @derived_key_in_constant_scalar constant_scalar params(%p : [H]) {
  // expected-error @+1 {{yields a derived key, but a constant_scalar decay is not computed per token}}
  decay.yield %p, %p : f32, f32
}

// -----

decay.recurrence @func_call scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'func.call' op is not allowed in a decay region: use arith, math and decay ops}}
  %g = func.call @gate(%x) : (f32) -> f32
  decay.yield %g : f32
}

// -----

decay.recurrence @scf_if scalar inputs(%x : [B, T, H]) {
  %zero = arith.constant 0.0 : f32
  %neg = arith.cmpf olt, %x, %zero : f32
  // expected-error @+1 {{'scf.if' op is not allowed in a decay region: use arith, math and decay ops}}
  %g = scf.if %neg -> (f32) {
    scf.yield %x : f32
  } else {
    scf.yield %zero : f32
  }
  decay.yield %g : f32
}

// -----

decay.recurrence @nested_recurrence scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'decay.recurrence' op must not have regions inside a decay region}}
  decay.recurrence @inner none
  decay.yield %x : f32
}

// -----

decay.recurrence @bitcast scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'arith.bitcast' op reinterprets bits, which a decay region must not do}}
  %bits = arith.bitcast %x : f32 to i32
  %one = arith.constant 1 : i32
  %more = arith.addi %bits, %one : i32
  %g = arith.bitcast %more : i32 to f32
  decay.yield %g : f32
}

// -----

decay.recurrence @vector_type scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'arith.constant' op uses type 'vector<4xf32>'; a decay region computes on f32 scalars (and integers)}}
  %v = arith.constant dense<1.0> : vector<4xf32>
  decay.yield %x : f32
}

// -----

decay.recurrence @tensor_type scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'arith.constant' op uses type 'tensor<2xf32>'; a decay region computes on f32 scalars (and integers)}}
  %t = arith.constant dense<0.5> : tensor<2xf32>
  decay.yield %x : f32
}

// -----

decay.recurrence @f64_value scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'arith.extf' op uses type 'f64'; a decay region computes on f32 scalars (and integers)}}
  %wide = arith.extf %x : f32 to f64
  %g = arith.truncf %wide : f64 to f32
  decay.yield %g : f32
}

// -----

decay.recurrence @bf16_value scalar inputs(%x : [B, T, H]) {
  // expected-error @+1 {{'arith.truncf' op uses type 'bf16'; a decay region computes on f32 scalars (and integers)}}
  %y = arith.truncf %x : f32 to bf16
  %h = decay.softplus %y : bf16
  decay.yield %x : f32
}

// -----

// expected-error @below {{'decay.yield' op expects parent op}}
decay.yield

// -----

//===----------------------------------------------------------------------===//
// Scans
//===----------------------------------------------------------------------===//

decay.recurrence @scan_in_constant constant_vector params(%p : [H, K]) {
  // expected-error @+1 {{'decay.cumsum' op scans over time, but granularity 'constant_vector' does not depend on the token}}
  %prev, %cur = decay.cumsum "s" %p init 0.0 : f32
  decay.yield %cur : f32
}

// -----

decay.recurrence @duplicate_scan vector inputs(%f : [B, T, H, K]) {
  %p1, %z1 = decay.logcumsumexp "z" %f init 0.0 : f32
  // expected-error @+1 {{'decay.cumsum' op reuses scan name 'z'; every scan names its own carried state}}
  %p2, %z2 = decay.cumsum "z" %f init 0.0 : f32
  %g = arith.subf %p1, %z2 : f32
  decay.yield %g : f32
}

// -----

decay.recurrence @bad_scan_name vector inputs(%f : [B, T, H, K]) {
  // expected-error @+1 {{'decay.logcumsumexp' op name must be an identifier ([A-Za-z_][A-Za-z0-9_]*), got 'log z'}}
  %prev, %z = decay.logcumsumexp "log z" %f init 0.0 : f32
  %g = arith.subf %prev, %z : f32
  decay.yield %g : f32
}

// -----

decay.recurrence @empty_scan_name scalar inputs(%f : [B, T, H]) {
  // expected-error @+1 {{'decay.cumsum' op name must be an identifier ([A-Za-z_][A-Za-z0-9_]*), got ''}}
  %prev, %s = decay.cumsum "" %f init 0.0 : f32
  decay.yield %s : f32
}

// -----

decay.recurrence @digit_scan_name scalar inputs(%f : [B, T, H]) {
  // expected-error @+1 {{'decay.cumsum' op name must be an identifier ([A-Za-z_][A-Za-z0-9_]*), got '2z'}}
  %prev, %s = decay.cumsum "2z" %f init 0.0 : f32
  decay.yield %s : f32
}

// -----

func.func @scan_outside(%x: f32) -> f32 {
  // expected-error @+1 {{'decay.cumsum' op must be inside a decay.recurrence}}
  %prev, %cur = decay.cumsum "s" %x init 0.0 : f32
  return %cur : f32
}
