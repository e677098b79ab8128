// LightNet (Qin et al., "You Only Scan Once", arXiv 2405.21022; MATH.md section 5):
// a vector decay from a running log-sum-exp over time, z_t = log(exp(z_0) +
// sum_{s<=t} exp(f_s)) with z_0 = 0, g_t = z_{t-1} - z_t, and the derived key
// k_t = exp(f_t - z_t). z is carried state (scan_z_h0 / scan_z_ht).
decay.recurrence @lightnet vector
    inputs(%f : [B, T, H, K]) {
  %prev, %z = decay.logcumsumexp "z" %f init 0.0 : f32
  %g = arith.subf %prev, %z : f32
  %d = arith.subf %f, %z : f32
  %key = math.exp %d : f32
  decay.yield %g, %key : f32, f32
}
