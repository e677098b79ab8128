// HGRN2 (Qin et al., "HGRN2: Gated Linear RNNs with State Expansion",
// arXiv 2404.07904; MATH.md section 5): a vector forget gate with a per-layer
// lower bound lb in [0, 1), and the key derived from the decay ("parameter
// sharing"):
//   g = log(lb + (1 - lb) * sigmoid(f)),   k = 1 - exp(g).
// g is computed in log space as logaddexp(log(lb), log(1 - lb) + logsigmoid(f)),
// which stays finite for very negative f, also for lb = 0 where log(lb) = -inf
// (logaddexp(-inf, y) = y). The region yields the log-decay first and the derived
// key second; the input key k is then ignored.
decay.recurrence @hgrn2 vector
    inputs(%f : [B, T, H, K]) {
  // The lower bound of this layer: 0 for the first layer; deeper layers raise it
  // (HGRN2 makes it increase with depth), so each layer has its own spec.
  %lb = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %log_lb = math.log %lb : f32             // -inf when lb = 0
  %one_minus_lb = arith.subf %one, %lb : f32
  %log_range = math.log %one_minus_lb : f32
  %ls = decay.logsigmoid %f : f32
  %upper = arith.addf %log_range, %ls : f32 // log((1 - lb) * sigmoid(f))
  %g = decay.logaddexp %log_lb, %upper : f32
  %em1 = math.expm1 %g : f32               // exp(g) - 1
  %key = arith.negf %em1 : f32             // 1 - exp(g)
  decay.yield %g, %key : f32, f32
}
