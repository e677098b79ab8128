// Reference figures measured beside every benchmark: the fp32 FMA peak and a hand-vectorized recurrence.
#ifndef DECAYC_MACHINEBASELINES_H
#define DECAYC_MACHINEBASELINES_H

#include <cstdint>

namespace decayc {
/// The number of hardware threads.
int64_t hardwareThreads();
/// fp32 GFLOP/s of independent FMA chains on `threads` threads (AVX-512 where
/// the CPU has it, else AVX2+FMA, else scalar): the best of five short trials.
double measurePeakGflops(int64_t threads);
/// Median seconds of a hand-vectorized token-by-token forward recurrence
/// (S = diag(exp(g)) S + k v^T, o = S^T q per token, vector decay; in
/// AVX-512 where the CPU has it, else AVX2+FMA, else scalar) at this shape
/// on `threads` threads: the baseline the chunked kernel must beat.
double measureRecurrenceBaseline(int64_t B, int64_t T, int64_t H, int64_t K, int64_t V,
                                 int64_t threads, int64_t runs);
/// Memory bandwidth in GB/s of a STREAM triad a[i] = b[i] + s c[i] over f32
/// arrays far larger than the caches, split over `threads` threads; counted
/// as STREAM does (12 bytes per element: two reads, one write). The best of
/// `trials` trials.
double measureTriadGBps(int64_t threads, int trials = 5);
} // namespace decayc

#endif
