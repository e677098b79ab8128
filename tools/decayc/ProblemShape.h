// The problem shape of decayc bench and inspect (--shape B=..,T=..,H=..,K=..,V=..) and MATH.md's FLOP count.
#ifndef DECAYC_PROBLEMSHAPE_H
#define DECAYC_PROBLEMSHAPE_H

#include <cstdint>
#include <string>

namespace decayc {

/// The sizes of a problem: batch, tokens, heads, key and value dims.
struct ProblemShape {
  int64_t B = 4, T = 4096, H = 8, K = 128, V = 128;
};

/// Reads `--shape` text ("B=4,T=4096,..."; the sizes not named keep their
/// value in `shape`). False, with `error` set, on anything else.
bool parseShape(const std::string &text, ProblemShape &shape, std::string &error);

/// The forward's FLOPs (MATH.md section 2): 2T[C(K+V) + 2KV] per (batch,
/// head) with chunks of C = `chunkSize` tokens.
double forwardFlops(const ProblemShape &shape, int64_t chunkSize);

/// The recurrent form's FLOPs (MATH.md section 4), of the step kernel over
/// T tokens: 5KV per (token, batch, head): the decay's multiply, the rank-one
/// update's multiply and add, and o = S^T q's multiply and add.
double recurrentFlops(const ProblemShape &shape);

} // namespace decayc

#endif
