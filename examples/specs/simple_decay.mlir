// Simple decay, the simplest data-dependent vector decay of the design-space study
// (Qin et al., "Elucidating the Design Space of Decay in Linear Attention",
// COLM 2025, arXiv 2509.05282; MATH.md section 5):
//   g = logsigmoid(f + delta),
// with a trained per-(head, channel) offset delta, initialized to log(0.99/0.01)
// so that the decay starts near 0.99.
decay.recurrence @simple_decay vector
    inputs(%f : [B, T, H, K])
    params(%delta : [H, K]) {
  %x = arith.addf %f, %delta : f32
  %g = decay.logsigmoid %x : f32
  decay.yield %g : f32
}
