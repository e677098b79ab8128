// RetNet (Sun et al., "Retentive Network", arXiv 2307.08621; MATH.md section 5):
// a constant scalar decay per head, gamma_h = 1 - 2^(-5-h) for the 0-based head
// index h = 0..H-1, so the log-decay is
//   g_h = log(1 - 2^(-5-h)).
// `constant_scalar` means g depends on neither the token nor the key channel: the
// region is evaluated once per head, and decay.head_index gives h (as an f32).
decay.recurrence @retnet constant_scalar {
  %h = decay.head_index : f32
  %minus5 = arith.constant -5.0 : f32
  %e = arith.subf %minus5, %h : f32        // -5 - h
  %p = math.exp2 %e : f32                  // 2^(-5-h)
  %np = arith.negf %p : f32
  %g = math.log1p %np : f32                // log(1 - 2^(-5-h)), accurate for small p
  decay.yield %g : f32
}
