// Mamba2 (Dao & Gu, "Transformers are SSMs", arXiv 2405.21060): a scalar,
// data-dependent decay per head and token, g = -exp(A_log) * softplus(dt + dt_bias)
// (MATH.md section 5). A_log and dt_bias are per-head params.
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
