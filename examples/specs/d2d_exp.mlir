// D2D with the exp feature map (Tong et al., "Disentangle to Decay", COLING 2025;
// MATH.md section 5): a constant vector decay, a fixed per-head base Pb_h plus a
// trained per-(head, channel) part ps (initialized to 0):
//   g = Pb_h - 0.02 * ps,   Pb_h = -2^(-H/(h+1)) for the 0-based head index h,
// with phi = exp on q and k and the normalizer z (o = S^T q / (z . q + eps)).
// decay.head_index and decay.num_heads give h and H as f32. The options follow the
// `attributes` keyword: `normalizer` is a unit option (present or absent).
decay.recurrence @d2d_exp constant_vector
    params(%ps : [H, K])
    attributes {feature_map = "exp", normalizer} {
  %h = decay.head_index : f32
  %num_heads = decay.num_heads : f32
  %one = arith.constant 1.0 : f32
  %h1 = arith.addf %h, %one : f32          // h + 1 = 1..H
  %ratio = arith.divf %num_heads, %h1 : f32
  %nratio = arith.negf %ratio : f32
  %pow = math.exp2 %nratio : f32           // 2^(-H/(h+1))
  %pb = arith.negf %pow : f32              // Pb_h
  %c = arith.constant 0.02 : f32
  %step = arith.mulf %c, %ps : f32
  %g = arith.subf %pb, %step : f32
  decay.yield %g : f32
}
