// Mamba2 with a per-channel decay: the Mamba2 parameterization (Dao & Gu,
// "Transformers are SSMs", arXiv 2405.21060) made a vector decay, as in the
// design-space study (Qin et al., COLM 2025, arXiv 2509.05282; MATH.md section 5):
//   g = -exp(A_log) * softplus(dt + dt_bias),   per (b, t, h, c).
// `vector` granularity: the region is evaluated per token, head and key channel c.
// Inputs are per-token tensors (dims start with B, T); params are [H, K] here, so
// every channel has its own A_log and dt_bias.
decay.recurrence @mamba2_vector vector
    inputs(%dt : [B, T, H, K])
    params(%A_log : [H, K], %dt_bias : [H, K]) {
  %x = arith.addf %dt, %dt_bias : f32
  %sp = decay.softplus %x : f32            // log(1 + exp(x)), overflow-free
  %a = math.exp %A_log : f32
  %na = arith.negf %a : f32
  %g = arith.mulf %na, %sp : f32
  decay.yield %g : f32
}
