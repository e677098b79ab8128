// tnll: the per-head constant decay of TNL (TransNormerLLM) made trainable
// ("learned"), one of the decay forms of the design-space study (Qin et al.,
// "Elucidating the Design Space of Decay in Linear Attention", COLM 2025,
// arXiv 2509.05282; MATH.md section 5):
//   g_h = log_decay_h,  a learned log-decay per head.
// A param is a trained tensor with dims among H and K (here one value per head);
// in the region it is the f32 value of the current head.
decay.recurrence @tnll constant_scalar
    params(%log_decay : [H]) {
  decay.yield %log_decay : f32
}
