// GLA, Gated Linear Attention (Yang et al., "Gated Linear Attention Transformers
// with Hardware-Efficient Training", arXiv 2312.06635; MATH.md section 5): a
// data-dependent vector decay from the gate logits gk, with the temperature 16
// (the gate-logit normalizer) that keeps the decay close to 1:
//   g = logsigmoid(gk) / 16.
decay.recurrence @gla vector
    inputs(%gk : [B, T, H, K]) {
  %ls = decay.logsigmoid %gk : f32         // log(sigmoid(gk)) = -softplus(-gk)
  %c16 = arith.constant 16.0 : f32
  %g = arith.divf %ls, %c16 : f32
  decay.yield %g : f32
}
