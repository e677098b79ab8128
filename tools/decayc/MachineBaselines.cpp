// Reference figures measured beside every benchmark: the fp32 FMA peak and a hand-vectorized recurrence.
#include "MachineBaselines.h"

#include "decay/Support/CacheLineVector.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;

/// Runs `work(thread)` on `threads` threads and waits for all of them.
template <typename Work> void onThreads(int64_t threads, Work work) {
  std::vector<std::thread> pool;
  for (int64_t i = 0; i < threads; ++i)
    pool.emplace_back([&, i] { work(i); });
  for (std::thread &thread : pool)
    thread.join();
}

/// 16 independent accumulators of 16 lanes, `iterations` FMAs each.
__attribute__((target("avx512f"))) float fmaChainsAvx512(int64_t iterations) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i)
    acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t n = 0; n < iterations; ++n)
    for (int i = 0; i < 16; ++i)
      acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  float total = 0;
  for (int i = 0; i < 16; ++i)
    total += _mm512_reduce_add_ps(acc[i]);
  return total;
}

/// 12 independent accumulators of 8 lanes.
__attribute__((target("avx2,fma"))) float fmaChainsAvx2(int64_t iterations) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i)
    acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t n = 0; n < iterations; ++n)
    for (int i = 0; i < 12; ++i)
      acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  alignas(32) float lanes[8];
  float total = 0;
  for (int i = 0; i < 12; ++i) {
    _mm256_store_ps(lanes, acc[i]);
    for (float lane : lanes)
      total += lane;
  }
  return total;
}

/// One token of the recurrence for one (batch, head): S = diag(d) S + k v^T; o = S^T q.
__attribute__((target("avx512f"))) void recurrenceStepAvx512(float *state, const float *decay,
                                                           const float *k, const float *v,
                                                           const float *q, float *o, int64_t K,
                                                           int64_t V) {
  for (int64_t j = 0; j < V; j += 16) {
    __mmask16 mask = V - j >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (V - j)) - 1);
    __m512 vj = _mm512_maskz_loadu_ps(mask, v + j), out = _mm512_setzero_ps();
    for (int64_t i = 0; i < K; ++i) {
      float *row = state + i * V + j;
      __m512 s = _mm512_maskz_loadu_ps(mask, row);
      s = _mm512_fmadd_ps(s, _mm512_set1_ps(decay[i]), _mm512_mul_ps(_mm512_set1_ps(k[i]), vj));
      _mm512_mask_storeu_ps(row, mask, s);
      out = _mm512_fmadd_ps(_mm512_set1_ps(q[i]), s, out);
    }
    _mm512_mask_storeu_ps(o + j, mask, out);
  }
}

/// recurrenceStep over the state's columns [j0, j1) only, element by element.
void recurrenceColumnsScalar(float *state, const float *decay, const float *k, const float *v,
                             const float *q, float *o, int64_t K, int64_t V, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j)
    o[j] = 0;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = j0; j < j1; ++j) {
      float s = state[i * V + j] * decay[i] + k[i] * v[j];
      state[i * V + j] = s;
      o[j] += q[i] * s;
    }
}

void recurrenceStepScalar(float *state, const float *decay, const float *k, const float *v,
                          const float *q, float *o, int64_t K, int64_t V) {
  recurrenceColumnsScalar(state, decay, k, v, q, o, K, V, 0, V);
}

/// The same step in AVX2: 32 columns at a time (four vectors of 8,
/// four independent chains of o; AMD's masked AVX2 stores are slow), the
/// columns left over element by element.
__attribute__((target("avx2,fma"))) void recurrenceStepAvx2(float *state, const float *decay,
                                                          const float *k, const float *v,
                                                          const float *q, float *o, int64_t K,
                                                          int64_t V) {
  constexpr int64_t kVectors = 4;
  int64_t full = V / (8 * kVectors) * (8 * kVectors);
  for (int64_t j = 0; j < full; j += 8 * kVectors) {
    __m256 vj[kVectors], out[kVectors];
    for (int64_t u = 0; u < kVectors; ++u) {
      vj[u] = _mm256_loadu_ps(v + j + 8 * u);
      out[u] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < K; ++i) {
      __m256 d = _mm256_set1_ps(decay[i]), ki = _mm256_set1_ps(k[i]), qi = _mm256_set1_ps(q[i]);
      for (int64_t u = 0; u < kVectors; ++u) {
        float *row = state + i * V + j + 8 * u;
        __m256 s = _mm256_fmadd_ps(_mm256_loadu_ps(row), d, _mm256_mul_ps(ki, vj[u]));
        _mm256_storeu_ps(row, s);
        out[u] = _mm256_fmadd_ps(qi, s, out[u]);
      }
    }
    for (int64_t u = 0; u < kVectors; ++u)
      _mm256_storeu_ps(o + j + 8 * u, out[u]);
  }
  recurrenceColumnsScalar(state, decay, k, v, q, o, K, V, full, V);
}
} // namespace

int64_t decayc::hardwareThreads() {
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

double decayc::measurePeakGflops(int64_t threads) {
  bool avx512 = __builtin_cpu_supports("avx512f");
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  int64_t flopsPerIteration = avx512 ? 16 * 16 * 2 : avx2 ? 12 * 8 * 2 : 2;
  int64_t iterations = avx512 ? 2'000'000 : 3'000'000;
  std::atomic<float> sink{0};
  auto run = [&](int64_t) {
    float value = avx512 ? fmaChainsAvx512(iterations) : avx2 ? fmaChainsAvx2(iterations) : 0.0f;
    sink.store(value, std::memory_order_relaxed);
  };
  onThreads(threads, run); // warm-up: clocks up, threads created
  // The best of five trials: on a shared host a trial can lose a vCPU.
  double best = 0;
  for (int trial = 0; trial < 5; ++trial) {
    auto start = Clock::now();
    onThreads(threads, run);
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, static_cast<double>(flopsPerIteration) * iterations * threads / seconds / 1e9);
  }
  return best;
}

double decayc::measureRecurrenceBaseline(int64_t B, int64_t T, int64_t H, int64_t K, int64_t V,
                                         int64_t threads, int64_t runs) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  // Aligned as the kernels' benchmark tensors are (decay::CacheLineVector).
  auto random = [&](size_t count, float scale) {
    decay::CacheLineVector<float> values(count);
    for (float &value : values)
      value = scale * unit(rng);
    return values;
  };
  decay::CacheLineVector<float> q = random(B * T * H * K, 0.5f), k = random(B * T * H * K, 0.5f),
                                v = random(B * T * H * V, 0.5f), g = random(B * T * H * K, -0.1f);
  decay::CacheLineVector<float> o(B * T * H * V);
  bool avx512 = __builtin_cpu_supports("avx512f");
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  auto step = avx512 ? recurrenceStepAvx512 : avx2 ? recurrenceStepAvx2 : recurrenceStepScalar;
  auto once = [&] {
    std::atomic<int64_t> next{0};
    onThreads(threads, [&](int64_t) {
      decay::CacheLineVector<float> state(K * V), decay(K);
      for (int64_t item; (item = next.fetch_add(1)) < B * H;) {
        int64_t b = item / H, h = item % H;
        std::fill(state.begin(), state.end(), 0.0f);
        for (int64_t t = 0; t < T; ++t) {
          int64_t token = (b * T + t) * H + h;
          for (int64_t i = 0; i < K; ++i)
            decay[i] = std::exp(g[token * K + i]);
          step(
              state.data(), decay.data(), &k[token * K], &v[token * V], &q[token * K],
              &o[token * V], K, V);
        }
      }
    });
  };
  once();
  std::vector<double> times;
  for (int64_t i = 0; i < runs; ++i) {
    auto start = Clock::now();
    once();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double decayc::measureTriadGBps(int64_t threads, int trials) {
  // 3 x 128 MiB: far beyond any cache, as the decoding state is.
  const size_t count = size_t(1) << 25;
  std::vector<float> a(count), b(count, 1.0f), c(count, 2.0f);
  const float s = 0.5f;
  auto triad = [&](int64_t thread) {
    size_t begin = count * thread / threads, end = count * (thread + 1) / threads;
    float *x = a.data();
    const float *y = b.data(), *z = c.data();
    for (size_t i = begin; i < end; ++i)
      x[i] = y[i] + s * z[i];
  };
  onThreads(threads, triad); // first touch, page faults
  double best = 0.0;
  for (int trial = 0; trial < trials; ++trial) {
    auto start = Clock::now();
    onThreads(threads, triad);
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, 12.0 * static_cast<double>(count) / seconds / 1e9);
  }
  return best;
}
