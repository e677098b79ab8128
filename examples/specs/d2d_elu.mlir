// D2D with the elu+1 feature map (Tong et al., "Disentangle to Decay",
// COLING 2025; MATH.md section 5): a constant vector decay, a fixed per-head base
// Pb_h minus a trained per-(head, channel) part ps:
//   g = Pb_h - ps,   Pb_h = -2^(-H/(h+1)) for the 0-based head index h,
// with phi = elu + 1 on q and k and the normalizer z (o = S^T q / (z . q + eps)).
decay.recurrence @d2d_elu constant_vector
    params(%ps : [H, K])
    attributes {feature_map = "elu1", normalizer} {
  %h = decay.head_index : f32
  %num_heads = decay.num_heads : f32
  %one = arith.constant 1.0 : f32
  %h1 = arith.addf %h, %one : f32          // h + 1 = 1..H
  %ratio = arith.divf %num_heads, %h1 : f32
  %nratio = arith.negf %ratio : f32
  %pow = math.exp2 %nratio : f32           // 2^(-H/(h+1))
  %pb = arith.negf %pow : f32              // Pb_h
  %g = arith.subf %pb, %ps : f32
  decay.yield %g : f32
}
