// Linear attention without decay (Katharopoulos et al., "Transformers are RNNs",
// arXiv 2006.16236), the no-decay baseline of the design-space study (Qin et al.,
// "Elucidating the Design Space of Decay in Linear Attention", COLM 2025,
// arXiv 2509.05282; MATH.md section 5):
//   S_t = S_{t-1} + k_t v_t^T,  o_t = scale * S_t^T q_t,  i.e. log-decay g = 0.
// Granularity `none` declares no inputs, no params and takes no region.
decay.recurrence @linear none
