// GoogleTest self-tests of the float64 oracle: hand-computed tiny cases and agreement with an independent quadratic (parallel) form.
#include "Oracle.h"

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <random>
#include <stdexcept>

namespace {

using decay::oracle::Problem;
using decay::oracle::Result;
namespace oracle = decay::oracle;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

void expectAllClose(const std::vector<double> &got, const std::vector<double> &want,
                    double tol = 1e-11, const std::string &what = "") {
  ASSERT_EQ(got.size(), want.size()) << what;
  double peak = 1.0;
  for (double w : want)
    peak = std::max(peak, std::fabs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << " [" << i << "]";
    EXPECT_NEAR(got[i], want[i], tol * peak) << what << " [" << i << "]";
  }
}

std::vector<double> normal(std::mt19937_64 &rng, size_t n, double mean = 0.0,
                           double sd = 1.0) {
  std::normal_distribution<double> dist(mean, sd);
  std::vector<double> x(n);
  for (double &e : x)
    e = dist(rng);
  return x;
}

std::vector<double> uniform(std::mt19937_64 &rng, size_t n, double lo = 0.0,
                            double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> x(n);
  for (double &e : x)
    e = dist(rng);
  return x;
}

bool isD2d(const std::string &variant) {
  return variant == "d2d_exp" || variant == "d2d_elu";
}

// A random problem for `variant` with moderate decay. N = B without cu, else
// cu.size() - 1 (then B must be 1 and T = cu.back()).
Problem makeProblem(const std::string &variant, int64_t B, int64_t T, int64_t H,
                    int64_t K, int64_t V, uint64_t seed,
                    const std::vector<int64_t> &cu = {}, bool withStates = true) {
  std::mt19937_64 rng(seed);
  Problem p;
  p.B = B, p.T = T, p.H = H, p.K = K, p.V = V;
  p.cuSeqlens = cu;
  const size_t N = cu.empty() ? B : cu.size() - 1;
  const size_t BTH = B * T * H, BTHK = BTH * K;
  p.q = normal(rng, BTHK);
  p.k = normal(rng, BTHK);
  p.v = uniform(rng, BTH * V);
  if (withStates) {
    p.h0 = normal(rng, N * H * K * V);
    p.states["norm_h0"] = uniform(rng, N * H * K, 0.1, 1.0);
    if (variant == "lightnet")
      p.states["scan_z_h0"] = normal(rng, N * H * K);
  }
  if (variant == "tnll") {
    p.tensors["log_decay"] = uniform(rng, H, -0.5, -0.01);
  } else if (variant == "mamba2") {
    p.tensors["dt"] = normal(rng, BTH, 0.0, 0.5);
    p.tensors["A_log"] = normal(rng, H, 0.0, 0.3);
    p.tensors["dt_bias"] = normal(rng, H, 0.0, 0.3);
  } else if (variant == "mamba2_vector") {
    p.tensors["dt"] = normal(rng, BTHK, 0.0, 0.5);
    p.tensors["A_log"] = normal(rng, H * K, 0.0, 0.3);
    p.tensors["dt_bias"] = normal(rng, H * K, 0.0, 0.3);
  } else if (variant == "gla") {
    p.tensors["gk"] = normal(rng, BTHK, 0.0, 2.0);
  } else if (variant == "hgrn2") {
    p.tensors["f"] = normal(rng, BTHK, 1.0, 1.0);
  } else if (variant == "lightnet") {
    p.tensors["f"] = normal(rng, BTHK);
  } else if (variant == "simple_decay") {
    p.tensors["f"] = normal(rng, BTHK);
    p.tensors["delta"] = normal(rng, H * K, std::log(0.99 / 0.01), 1.0);
  } else if (isD2d(variant)) {
    p.tensors["ps"] = uniform(rng, H * K);
  }
  return p;
}

// The test's own feature maps (written again on purpose).
double testPhi(const std::string &name, double x) {
  if (name == "identity")
    return x;
  if (name == "elu1")
    return x > 0 ? 1.0 + x : std::exp(x);
  if (name == "exp")
    return std::exp(x);
  if (name == "silu")
    return x / (1.0 + std::exp(-x));
  if (name == "relu")
    return x > 0 ? x : 0.0;
  throw std::runtime_error("bad phi");
}

// RoPE as a complex rotation of the pairs (x_i, x_{i+K/2}).
void testRope(std::vector<double> &x, int64_t pos, double theta) {
  const size_t half = x.size() / 2;
  for (size_t i = 0; i < half; ++i) {
    double freq = std::pow(theta, -2.0 * double(i) / double(x.size()));
    std::complex<double> c(x[i], x[i + half]);
    c *= std::polar(1.0, double(pos) * freq);
    x[i] = c.real();
    x[i + half] = c.imag();
  }
}

struct ParallelOut {
  std::vector<double> o, ht, normHt;
};

// Quadratic ("parallel") form, written independently of the oracle's loop:
//   o_t = scale * [ sum_{s<=t} (sum_c q_tc k_sc exp(L_tc - L_sc)) v_s
//                   + sum_c q_tc exp(L_tc) h0[c,:] ]
// with L the inclusive cumulative sum of g inside the sequence. Only the
// per-token log-decay and derived key come from the oracle (they are checked
// against hand-computed values by the tests further down).
ParallelOut parallelForm(const std::string &variant, const Problem &p) {
  const oracle::Decay d = oracle::decayAndKey(variant, p);
  const bool derived = variant == "hgrn2" || variant == "lightnet";
  std::string phi = p.featureMap;
  if (phi.empty())
    phi = variant == "d2d_exp" ? "exp" : variant == "d2d_elu" ? "elu1" : "identity";
  const bool norm = p.normalizer ? *p.normalizer : isD2d(variant);
  const double scale = p.scale ? *p.scale : 1.0 / std::sqrt(double(p.K));
  const int64_t B = p.B, T = p.T, H = p.H, K = p.K, V = p.V;

  struct Seq {
    int64_t b, begin, end;
  };
  std::vector<Seq> seqs;
  if (p.cuSeqlens.empty())
    for (int64_t b = 0; b < B; ++b)
      seqs.push_back({b, 0, T});
  else
    for (size_t n = 0; n + 1 < p.cuSeqlens.size(); ++n)
      seqs.push_back({0, p.cuSeqlens[n], p.cuSeqlens[n + 1]});
  const int64_t N = seqs.size();

  // Final query/key of every token (feature map, derived key, RoPE).
  std::vector<double> qf(B * T * H * K), kf(B * T * H * K);
  for (const Seq &s : seqs)
    for (int64_t t = s.begin; t < s.end; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t base = ((s.b * T + t) * H + h) * K;
        std::vector<double> qq(K), kk(K);
        for (int64_t c = 0; c < K; ++c) {
          qq[c] = testPhi(phi, p.q[base + c]);
          kk[c] = derived ? d.key[base + c] : testPhi(phi, p.k[base + c]);
        }
        if (p.ropeTheta) {
          testRope(qq, t - s.begin, *p.ropeTheta);
          testRope(kk, t - s.begin, *p.ropeTheta);
        }
        for (int64_t c = 0; c < K; ++c) {
          qf[base + c] = qq[c];
          kf[base + c] = kk[c];
        }
      }

  auto h0 = [&](int64_t n, int64_t h, int64_t c, int64_t j) {
    return p.h0.empty() ? 0.0 : p.h0[((n * H + h) * K + c) * V + j];
  };
  auto z0 = [&](int64_t n, int64_t h, int64_t c) {
    auto it = p.states.find("norm_h0");
    return it == p.states.end() ? 0.0 : it->second[(n * H + h) * K + c];
  };

  ParallelOut out;
  out.o.assign(B * T * H * V, 0.0);
  out.ht.assign(N * H * K * V, 0.0);
  out.normHt.assign(N * H * K, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const Seq &s = seqs[n];
    const int64_t len = s.end - s.begin;
    for (int64_t h = 0; h < H; ++h) {
      auto idx = [&](int64_t t) { return (s.b * T + s.begin + t) * H + h; };
      // L[t][c]: inclusive cumulative sum of g over the sequence.
      std::vector<std::vector<double>> L(len, std::vector<double>(K, 0.0));
      for (int64_t t = 0; t < len; ++t)
        for (int64_t c = 0; c < K; ++c)
          L[t][c] = (t > 0 ? L[t - 1][c] : 0.0) + d.g[idx(t) * K + c];

      for (int64_t t = 0; t < len; ++t) {
        const double *qt = &qf[idx(t) * K];
        std::vector<double> num(V, 0.0);
        double den = 0.0;
        for (int64_t u = 0; u <= t; ++u) {
          const double *ku = &kf[idx(u) * K];
          double a = 0.0;
          for (int64_t c = 0; c < K; ++c)
            a += qt[c] * ku[c] * std::exp(L[t][c] - L[u][c]);
          for (int64_t j = 0; j < V; ++j)
            num[j] += a * p.v[idx(u) * V + j];
          den += a;
        }
        for (int64_t c = 0; c < K; ++c) {
          const double w = qt[c] * std::exp(L[t][c]);
          for (int64_t j = 0; j < V; ++j)
            num[j] += w * h0(n, h, c, j);
          den += w * z0(n, h, c);
        }
        for (int64_t j = 0; j < V; ++j)
          out.o[idx(t) * V + j] = norm ? num[j] / (den + p.eps) : scale * num[j];
      }

      for (int64_t c = 0; c < K; ++c) {
        const double Lend = len > 0 ? L[len - 1][c] : 0.0;
        double z = std::exp(Lend) * z0(n, h, c);
        for (int64_t u = 0; u < len; ++u)
          z += std::exp(Lend - L[u][c]) * kf[idx(u) * K + c];
        out.normHt[(n * H + h) * K + c] = z;
        for (int64_t j = 0; j < V; ++j) {
          double acc = std::exp(Lend) * h0(n, h, c, j);
          for (int64_t u = 0; u < len; ++u)
            acc += std::exp(Lend - L[u][c]) * kf[idx(u) * K + c] * p.v[idx(u) * V + j];
          out.ht[((n * H + h) * K + c) * V + j] = acc;
        }
      }
    }
  }
  return out;
}

void expectMatchesParallel(const std::string &variant, const Problem &p) {
  SCOPED_TRACE(variant);
  const Result r = oracle::run(variant, p);
  const ParallelOut ref = parallelForm(variant, p);
  expectAllClose(r.o, ref.o, 1e-11, "o");
  expectAllClose(r.ht, ref.ht, 1e-11, "ht");
  const bool norm = p.normalizer ? *p.normalizer : isD2d(variant);
  if (norm) {
    ASSERT_TRUE(r.states.count("norm_ht"));
    expectAllClose(r.states.at("norm_ht"), ref.normHt, 1e-11, "norm_ht");
  } else {
    EXPECT_FALSE(r.states.count("norm_ht"));
  }
  EXPECT_EQ(r.states.count("scan_z_ht"), variant == "lightnet" ? 1u : 0u);
}

// ---------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------

TEST(OracleHelpers, VariantList) {
  const std::vector<std::string> want = {"linear", "retnet", "tnll", "mamba2",
                                         "mamba2_vector", "gla", "hgrn2", "lightnet",
                                         "simple_decay", "d2d_exp", "d2d_elu"};
  EXPECT_EQ(oracle::variants(), want);
}

TEST(OracleHelpers, StableScalarFunctions) {
  EXPECT_NEAR(oracle::softplus(0.0), std::log(2.0), 1e-15);
  EXPECT_NEAR(oracle::softplus(1.0), std::log(1.0 + std::exp(1.0)), 1e-15);
  EXPECT_NEAR(oracle::softplus(-3.0), std::log(1.0 + std::exp(-3.0)), 1e-15);
  EXPECT_DOUBLE_EQ(oracle::softplus(1000.0), 1000.0);       // no overflow
  EXPECT_NEAR(oracle::softplus(-1000.0), 0.0, 1e-300);      // no underflow trouble
  EXPECT_NEAR(oracle::logsigmoid(0.0), -std::log(2.0), 1e-15);
  EXPECT_DOUBLE_EQ(oracle::logsigmoid(-1000.0), -1000.0);
  EXPECT_NEAR(oracle::sigmoid(0.0), 0.5, 1e-15);
  EXPECT_NEAR(oracle::sigmoid(2.0), 1.0 / (1.0 + std::exp(-2.0)), 1e-15);
  EXPECT_NEAR(oracle::sigmoid(-2.0), 1.0 / (1.0 + std::exp(2.0)), 1e-15);
  EXPECT_NEAR(oracle::logaddexp(0.0, 0.0), std::log(2.0), 1e-15);
  EXPECT_NEAR(oracle::logaddexp(std::log(2.0), std::log(3.0)), std::log(5.0), 1e-15);
  EXPECT_DOUBLE_EQ(oracle::logaddexp(1000.0, 1000.0), 1000.0 + std::log(2.0));
}

TEST(OracleHelpers, FeatureMaps) {
  EXPECT_EQ(oracle::featureMap("identity", -1.5), -1.5);
  EXPECT_EQ(oracle::featureMap("elu1", 2.0), 3.0);
  EXPECT_NEAR(oracle::featureMap("elu1", -1.0), std::exp(-1.0), 1e-15);
  EXPECT_EQ(oracle::featureMap("elu1", 0.0), 1.0);
  EXPECT_NEAR(oracle::featureMap("exp", 1.0), std::exp(1.0), 1e-15);
  EXPECT_EQ(oracle::featureMap("silu", 0.0), 0.0);
  EXPECT_NEAR(oracle::featureMap("silu", 1.0), 1.0 / (1.0 + std::exp(-1.0)), 1e-15);
  EXPECT_NEAR(oracle::featureMap("silu", -2.0), -2.0 / (1.0 + std::exp(2.0)), 1e-15);
  EXPECT_EQ(oracle::featureMap("relu", -1.0), 0.0);
  EXPECT_EQ(oracle::featureMap("relu", 2.5), 2.5);
  EXPECT_THROW(oracle::featureMap("tanh", 0.0), std::invalid_argument);
}

TEST(OracleHelpers, RopeRotatesPairs) {
  // K = 4, theta = 10000: pair 0 turns by pos, pair 1 by pos / 100.
  std::vector<double> x = {1.0, 2.0, 3.0, 4.0};
  oracle::applyRope(x, 2, 10000.0);
  EXPECT_NEAR(x[0], 1.0 * std::cos(2.0) - 3.0 * std::sin(2.0), 1e-15);
  EXPECT_NEAR(x[2], 1.0 * std::sin(2.0) + 3.0 * std::cos(2.0), 1e-15);
  EXPECT_NEAR(x[1], 2.0 * std::cos(0.02) - 4.0 * std::sin(0.02), 1e-15);
  EXPECT_NEAR(x[3], 2.0 * std::sin(0.02) + 4.0 * std::cos(0.02), 1e-15);
  std::vector<double> y = {1.0, 2.0, 3.0, 4.0};
  oracle::applyRope(y, 0, 10000.0);
  EXPECT_EQ(y, (std::vector<double>{1.0, 2.0, 3.0, 4.0}));
}

TEST(OracleHelpers, Sequences) {
  Problem p;
  p.B = 3, p.T = 5;
  auto s = oracle::sequences(p);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[2].batch, 2);
  EXPECT_EQ(s[2].begin, 0);
  EXPECT_EQ(s[2].end, 5);
  p.B = 1;
  p.cuSeqlens = {0, 2, 2, 5};
  s = oracle::sequences(p);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[1].begin, 2);
  EXPECT_EQ(s[1].end, 2);
  EXPECT_EQ(s[2].begin, 2);
  EXPECT_EQ(s[2].end, 5);
  p.cuSeqlens = {0, 3, 2, 5};
  EXPECT_THROW(oracle::sequences(p), std::invalid_argument);
  p.cuSeqlens = {0, 2, 4};
  EXPECT_THROW(oracle::sequences(p), std::invalid_argument);  // does not end at T
  p.B = 2;
  p.cuSeqlens = {0, 5};
  EXPECT_THROW(oracle::sequences(p), std::invalid_argument);  // varlen needs B = 1
}

TEST(OracleHelpers, Errors) {
  Problem p = makeProblem("gla", 1, 3, 1, 3, 2, 1);
  EXPECT_THROW(oracle::run("nope", p), std::invalid_argument);
  p.tensors.erase("gk");
  EXPECT_THROW(oracle::run("gla", p), std::invalid_argument);  // missing input
  p = makeProblem("mamba2", 1, 3, 1, 3, 2, 1);
  p.tensors["dt"].pop_back();
  EXPECT_THROW(oracle::run("mamba2", p), std::invalid_argument);  // wrong size
  p = makeProblem("linear", 1, 3, 1, 3, 2, 1);
  p.ropeTheta = 10000.0;
  EXPECT_THROW(oracle::run("linear", p), std::invalid_argument);  // odd K
  p = makeProblem("linear", 1, 3, 1, 2, 2, 1);
  p.featureMap = "softmax";
  EXPECT_THROW(oracle::run("linear", p), std::invalid_argument);
  p = makeProblem("linear", 1, 3, 1, 2, 2, 1);
  p.h0.pop_back();
  EXPECT_THROW(oracle::run("linear", p), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Hand-computed tiny cases (each value written out from MATH.md / semantics.md)
// ---------------------------------------------------------------------------

Problem tiny(int64_t T, int64_t H, int64_t K, int64_t V) {
  Problem p;
  p.B = 1, p.T = T, p.H = H, p.K = K, p.V = V;
  p.q.assign(T * H * K, 0.0);
  p.k.assign(T * H * K, 0.0);
  p.v.assign(T * H * V, 0.0);
  return p;
}

TEST(OracleHand, LinearOneTokenWithH0) {
  Problem p = tiny(1, 1, 2, 1);
  p.q = {1.0, 2.0};
  p.k = {3.0, -1.0};
  p.v = {2.0};
  p.h0 = {0.5, -0.25};  // [K=2, V=1]
  // S = h0 + k v = (6.5, -2.25); o = (6.5 * 1 - 2.25 * 2) / sqrt(2) = sqrt(2).
  Result r = oracle::run("linear", p);
  expectAllClose(r.o, {std::sqrt(2.0)}, 1e-15);
  expectAllClose(r.ht, {6.5, -2.25}, 1e-15);
  EXPECT_TRUE(r.states.empty());
}

TEST(OracleHand, LinearTwoTokensK2V2) {
  Problem p = tiny(2, 1, 2, 2);
  p.k = {1, 0, /*t1*/ 0, 1};
  p.v = {1, 2, /*t1*/ 3, 4};
  p.q = {1, 1, /*t1*/ 2, 1};
  // o0 = s (q0.k0) v0 = s (1,2); o1 = s[(q1.k0) v0 + (q1.k1) v1] = s (2+3, 4+4).
  const double s = 1.0 / std::sqrt(2.0);
  Result r = oracle::run("linear", p);
  expectAllClose(r.o, {s * 1, s * 2, s * 5, s * 8}, 1e-15);
  // ht = k0 v0^T + k1 v1^T = [[1,2],[3,4]].
  expectAllClose(r.ht, {1, 2, 3, 4}, 1e-15);
}

TEST(OracleHand, ScaleOverride) {
  Problem p = tiny(1, 1, 2, 1);
  p.q = {1.0, 1.0};
  p.k = {2.0, 3.0};
  p.v = {1.5};
  p.scale = 2.0;
  Result r = oracle::run("linear", p);
  expectAllClose(r.o, {2.0 * 5.0 * 1.5}, 1e-15);
}

TEST(OracleHand, RetnetTwoHeadsTwoTokens) {
  Problem p = tiny(2, 2, 1, 1);  // index [t][h]
  p.q = {1, 1, 1, 1};
  p.k = {1, 1, 1, 1};
  p.v = {1, 10, 2, 20};
  p.h0 = {2.0, 4.0};  // head 0, head 1
  const double g0 = 1.0 - 1.0 / 32.0, g1 = 1.0 - 1.0 / 64.0;
  const double a1 = g0 * 2.0 + 1.0, a2 = g0 * a1 + 2.0;    // head 0
  const double b1 = g1 * 4.0 + 10.0, b2 = g1 * b1 + 20.0;  // head 1
  Result r = oracle::run("retnet", p);
  expectAllClose(r.o, {a1, b1, a2, b2}, 1e-14);
  expectAllClose(r.ht, {a2, b2}, 1e-14);
  oracle::Decay d = oracle::decayAndKey("retnet", p);
  EXPECT_NEAR(d.g[0], std::log(31.0 / 32.0), 1e-15);
  EXPECT_NEAR(d.g[1], std::log(63.0 / 64.0), 1e-15);
  EXPECT_TRUE(d.key.empty());
}

TEST(OracleHand, TnllUsesLogDecayPerHead) {
  Problem p = tiny(2, 2, 1, 1);
  p.tensors["log_decay"] = {std::log(0.5), std::log(0.25)};
  p.q = {1, 2, 1, 2};
  p.k = {1, 1, 3, 3};
  p.v = {1, 1, 1, 1};
  // head 0: S1 = 1, S2 = 0.5 + 3 = 3.5 ; head 1: S1 = 1, S2 = 0.25 + 3 = 3.25 (q = 2).
  Result r = oracle::run("tnll", p);
  expectAllClose(r.o, {1.0, 2.0, 3.5, 6.5}, 1e-15);
}

TEST(OracleHand, Mamba2ScalarDecaySharedOverChannels) {
  Problem p = tiny(1, 2, 2, 1);
  p.tensors["A_log"] = {0.0, std::log(2.0)};
  p.tensors["dt_bias"] = {0.5, -1.0};
  p.tensors["dt"] = {-0.5, 1.0};  // [B,T,H]: softplus(0) = log 2 for both heads
  // head 0: g = -1 * log 2 -> 0.5 ; head 1: g = -2 log 2 -> 0.25.
  p.h0 = {4.0, 8.0, /*head 1*/ 4.0, 8.0};
  p.q = {1.0, 1.0, /*h1*/ 1.0, 0.0};
  p.k = {1.0, 0.0, /*h1*/ 0.0, 1.0};
  p.v = {2.0, /*h1*/ 3.0};
  // head 0: S = (0.5*4 + 2, 0.5*8 + 0) = (4, 4); o = (4 + 4)/sqrt2
  // head 1: S = (0.25*4, 0.25*8 + 3) = (1, 5); o = 1/sqrt2
  Result r = oracle::run("mamba2", p);
  const double s = 1.0 / std::sqrt(2.0);
  expectAllClose(r.o, {8.0 * s, 1.0 * s}, 1e-15);
  expectAllClose(r.ht, {4.0, 4.0, 1.0, 5.0}, 1e-15);
  oracle::Decay d = oracle::decayAndKey("mamba2", p);
  expectAllClose(d.g, {-std::log(2.0), -std::log(2.0), -2 * std::log(2.0), -2 * std::log(2.0)},
                 1e-15);
}

TEST(OracleHand, Mamba2VectorPerChannel) {
  Problem p = tiny(1, 1, 2, 1);
  p.tensors["A_log"] = {0.0, std::log(2.0)};
  p.tensors["dt_bias"] = {1.0, 0.0};
  p.tensors["dt"] = {-1.0, 0.0};  // both softplus(0) = log 2 -> decays (0.5, 0.25)
  p.h0 = {4.0, 8.0};
  p.q = {1.0, 1.0};
  p.k = {1.0, 1.0};
  p.v = {1.0};
  // S = (0.5*4 + 1, 0.25*8 + 1) = (3, 3); o = 6/sqrt2.
  Result r = oracle::run("mamba2_vector", p);
  expectAllClose(r.o, {6.0 / std::sqrt(2.0)}, 1e-15);
  expectAllClose(r.ht, {3.0, 3.0}, 1e-15);
}

TEST(OracleHand, Gla) {
  Problem p = tiny(1, 1, 2, 1);
  p.tensors["gk"] = {0.0, -1.0};
  // decays: sigmoid(0)^(1/16) = 2^(-1/16), sigmoid(-1)^(1/16) = (1+e)^(-1/16)
  const double a0 = std::pow(2.0, -1.0 / 16.0), a1 = std::pow(1.0 + std::exp(1.0), -1.0 / 16.0);
  p.h0 = {1.0, 2.0};
  p.q = {1.0, 3.0};
  p.k = {0.5, 0.5};
  p.v = {2.0};
  Result r = oracle::run("gla", p);
  const double S0 = a0 * 1.0 + 1.0, S1 = a1 * 2.0 + 1.0;
  expectAllClose(r.o, {(S0 + 3.0 * S1) / std::sqrt(2.0)}, 1e-14);
  expectAllClose(r.ht, {S0, S1}, 1e-14);
}

TEST(OracleHand, Hgrn2DerivedKeyIgnoresInputKey) {
  Problem p = tiny(1, 1, 2, 1);
  p.tensors["f"] = {0.0, std::log(3.0)};  // sigmoid = (1/2, 3/4)
  p.k = {100.0, -100.0};                   // unused
  p.q = {1.0, 1.0};
  p.v = {4.0};
  p.h0 = {2.0, 4.0};
  // lb = 0: decay (0.5, 0.75), key (0.5, 0.25); S = (1 + 2, 3 + 1) = (3, 4)
  Result r = oracle::run("hgrn2", p);
  expectAllClose(r.o, {7.0 / std::sqrt(2.0)}, 1e-14);
  expectAllClose(r.ht, {3.0, 4.0}, 1e-14);
  oracle::Decay d = oracle::decayAndKey("hgrn2", p);
  expectAllClose(d.key, {0.5, 0.25}, 1e-15);

  // lb = 0.5, f = 0: decay 0.5 + 0.5*0.5 = 0.75, key 0.25.
  p.tensors["f"] = {0.0, 0.0};
  p.lowerBound = 0.5;
  r = oracle::run("hgrn2", p);
  // S = (0.75*2 + 1, 0.75*4 + 1) = (2.5, 4)
  expectAllClose(r.ht, {2.5, 4.0}, 1e-14);
  expectAllClose(r.o, {6.5 / std::sqrt(2.0)}, 1e-14);
}

TEST(OracleHand, Hgrn2FeatureMapAppliesToQueryOnly) {
  Problem p = tiny(1, 1, 1, 1);
  p.tensors["f"] = {0.0};  // decay 0.5, key 0.5
  p.featureMap = "exp";
  p.q = {std::log(3.0)};  // phi(q) = 3
  p.k = {5.0};            // unused, and not exp'ed into the key
  p.v = {2.0};
  p.h0 = {4.0};
  // S = 0.5*4 + 0.5*2 = 3 ; o = 3 * 3 (K = 1: scale 1).
  Result r = oracle::run("hgrn2", p);
  expectAllClose(r.o, {9.0}, 1e-14);
}

TEST(OracleHand, LightnetAveragesWithScanState) {
  Problem p = tiny(2, 1, 1, 1);
  p.tensors["f"] = {0.0, 0.0};
  p.q = {1.0, 1.0};
  p.v = {3.0, 6.0};
  p.h0 = {9.0};
  // z: 0 -> log2 -> log3. decays 1/2, 2/3; keys 1/2, 1/3.
  // S1 = (9 + 3)/2 = 6 ; S2 = (2/3)*6 + 6/3 = 6 = (h0 + v1 + v2)/3.
  Result r = oracle::run("lightnet", p);
  expectAllClose(r.o, {6.0, 6.0}, 1e-14);
  expectAllClose(r.ht, {6.0}, 1e-14);
  ASSERT_TRUE(r.states.count("scan_z_ht"));
  expectAllClose(r.states.at("scan_z_ht"), {std::log(3.0)}, 1e-15);
  oracle::Decay d = oracle::decayAndKey("lightnet", p);
  expectAllClose(d.g, {-std::log(2.0), std::log(2.0 / 3.0)}, 1e-15);
  expectAllClose(d.key, {0.5, 1.0 / 3.0}, 1e-15);

  // With scan_z_h0 = log 2 (prior mass 2): z: log2 -> log3 -> log4.
  // S1 = (2/3)*9 + (1/3)*3 = 7 ; S2 = (3/4)*7 + (1/4)*6 = 6.75 = (2*9 + 3 + 6)/4.
  p.states["scan_z_h0"] = {std::log(2.0)};
  r = oracle::run("lightnet", p);
  expectAllClose(r.o, {7.0, 6.75}, 1e-14);
  expectAllClose(r.states.at("scan_z_ht"), {std::log(4.0)}, 1e-15);
}

TEST(OracleHand, SimpleDecay) {
  Problem p = tiny(1, 1, 2, 1);
  p.tensors["f"] = {1.0, std::log(3.0)};
  p.tensors["delta"] = {-1.0, 0.0};  // sigmoid(0) = 1/2, sigmoid(log 3) = 3/4
  p.h0 = {4.0, 4.0};
  p.q = {1.0, -1.0};
  p.k = {1.0, 2.0};
  p.v = {1.0};
  // S = (2 + 1, 3 + 2) = (3, 5) ; o = (3 - 5)/sqrt2
  Result r = oracle::run("simple_decay", p);
  expectAllClose(r.o, {-2.0 / std::sqrt(2.0)}, 1e-14);
  expectAllClose(r.ht, {3.0, 5.0}, 1e-14);
}

TEST(OracleHand, D2dExpHeadConstantsAndNormalizer) {
  Problem p = tiny(1, 2, 1, 1);
  p.tensors["ps"] = {1.0, 0.0};
  // Pb (0-based h): -2^(-2/1) = -0.25, -2^(-2/2) = -0.5 ; g = Pb - 0.02 ps.
  const double a0 = std::exp(-0.25 - 0.02), a1 = std::exp(-0.5);
  p.q = {0.0, std::log(2.0)};  // phi = exp: 1, 2
  p.k = {0.0, std::log(3.0)};  // phi: 1, 3
  p.v = {5.0, 7.0};
  p.h0 = {2.0, 1.0};
  p.states["norm_h0"] = {1.0, 0.5};
  p.scale = 100.0;  // ignored with the normalizer
  const double S0 = a0 * 2.0 + 5.0, z0 = a0 * 1.0 + 1.0;
  const double S1 = a1 * 1.0 + 21.0, z1 = a1 * 0.5 + 3.0;
  Result r = oracle::run("d2d_exp", p);
  expectAllClose(r.o, {S0 / (z0 + 1e-6), 2.0 * S1 / (2.0 * z1 + 1e-6)}, 1e-14);
  expectAllClose(r.ht, {S0, S1}, 1e-14);
  ASSERT_TRUE(r.states.count("norm_ht"));
  expectAllClose(r.states.at("norm_ht"), {z0, z1}, 1e-14);
  oracle::Decay d = oracle::decayAndKey("d2d_exp", p);
  expectAllClose(d.g, {-0.27, -0.5}, 1e-15);
}

TEST(OracleHand, D2dExpK2) {
  Problem p = tiny(1, 1, 2, 1);
  p.tensors["ps"] = {0.0, 0.0};
  p.q = {0.0, std::log(2.0)};  // (1, 2)
  p.k = {std::log(3.0), 0.0};  // (3, 1)
  p.v = {4.0};
  // no h0: S = k v = (12, 4), z = k = (3, 1); o = (12 + 8)/(3 + 2 + eps).
  Result r = oracle::run("d2d_exp", p);
  expectAllClose(r.o, {20.0 / (5.0 + 1e-6)}, 1e-14);
  p.eps = 1.0;
  r = oracle::run("d2d_exp", p);
  expectAllClose(r.o, {20.0 / 6.0}, 1e-14);
}

TEST(OracleHand, D2dEluTwoTokens) {
  Problem p = tiny(2, 1, 1, 1);
  p.tensors["ps"] = {0.25};  // g = -2^(-1) - 0.25 = -0.75
  const double a = std::exp(-0.75);
  p.q = {-1.0, 1.0};  // elu1: e^-1, 2
  p.k = {1.0, 0.0};   // elu1: 2, 1
  p.v = {3.0, 5.0};
  // S1 = 6, z1 = 2 ; S2 = 6a + 5, z2 = 2a + 1.
  const double q0 = std::exp(-1.0);
  Result r = oracle::run("d2d_elu", p);
  expectAllClose(r.o, {6.0 * q0 / (2.0 * q0 + 1e-6), 2.0 * (6 * a + 5) / (2.0 * (2 * a + 1) + 1e-6)},
                 1e-14);
  expectAllClose(r.states.at("norm_ht"), {2 * a + 1}, 1e-14);
}

TEST(OracleHand, FeatureMapOverrides) {
  // linear, T = 1, K = 2, V = 1: o = phi(q).phi(k) v / sqrt2.
  const std::vector<double> q = {-1.0, 2.0}, k = {0.5, -0.5};
  struct Case {
    std::string name;
    double q0, q1, k0, k1;
  };
  const double e = std::exp(1.0);
  const std::vector<Case> cases = {
      {"identity", -1.0, 2.0, 0.5, -0.5},
      {"elu1", 1.0 / e, 3.0, 1.5, std::exp(-0.5)},
      {"exp", 1.0 / e, std::exp(2.0), std::exp(0.5), std::exp(-0.5)},
      {"silu", -1.0 / (1.0 + e), 2.0 / (1.0 + std::exp(-2.0)), 0.5 / (1.0 + std::exp(-0.5)),
       -0.5 / (1.0 + std::exp(0.5))},
      {"relu", 0.0, 2.0, 0.5, 0.0},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    Problem p = tiny(1, 1, 2, 1);
    p.q = q;
    p.k = k;
    p.v = {3.0};
    p.featureMap = c.name;
    Result r = oracle::run("linear", p);
    expectAllClose(r.o, {(c.q0 * c.k0 + c.q1 * c.k1) * 3.0 / std::sqrt(2.0)}, 1e-14);
    expectAllClose(r.ht, {c.k0 * 3.0, c.k1 * 3.0}, 1e-14);
  }
}

TEST(OracleHand, NormalizerOverrideOnLinear) {
  Problem p = tiny(2, 1, 1, 1);
  p.normalizer = true;
  p.q = {2.0, 2.0};
  p.k = {1.0, 3.0};
  p.v = {4.0, 8.0};
  // S1 = 4, z1 = 1 ; S2 = 28, z2 = 4 ; o = S q / (z q + eps).
  Result r = oracle::run("linear", p);
  expectAllClose(r.o, {8.0 / (2.0 + 1e-6), 56.0 / (8.0 + 1e-6)}, 1e-14);
  expectAllClose(r.states.at("norm_ht"), {4.0}, 1e-15);
  // And d2d with the normalizer switched off uses scale.
  Problem d = tiny(1, 1, 1, 1);
  d.tensors["ps"] = {0.0};
  d.normalizer = false;
  d.q = {0.0};
  d.k = {0.0};
  d.v = {2.0};
  d.scale = 0.5;
  r = oracle::run("d2d_exp", d);
  expectAllClose(r.o, {1.0}, 1e-15);
  EXPECT_FALSE(r.states.count("norm_ht"));
}

TEST(OracleHand, RopeTwoTokensK2) {
  // linear, K = 2, theta irrelevant for pair 0 (angle = position).
  Problem p = tiny(2, 1, 2, 1);
  p.ropeTheta = 10000.0;
  p.q = {1.0, 0.0, /*t1*/ 1.0, 0.0};
  p.k = {1.0, 0.0, /*t1*/ 0.0, 1.0};
  p.v = {3.0, 5.0};
  // t0: R0 q0 . R0 k0 = 1 -> o0 = 3/sqrt2.
  // t1: R1 q1 = (cos1, sin1); R0 k0 = (1, 0); R1 k1 = (-sin1, cos1).
  //     o1 = (cos1 * 3 + 0 * 5)/sqrt2.
  Result r = oracle::run("linear", p);
  const double s = 1.0 / std::sqrt(2.0);
  expectAllClose(r.o, {3.0 * s, std::cos(1.0) * 3.0 * s}, 1e-15);
  // ht = R0 k0 * 3 + R1 k1 * 5.
  expectAllClose(r.ht, {3.0 - 5.0 * std::sin(1.0), 5.0 * std::cos(1.0)}, 1e-15);
}

// ---------------------------------------------------------------------------
// Against the parallel form
// ---------------------------------------------------------------------------

class OracleParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(OracleParallel, BatchOddTWithStates) {
  const std::string variant = GetParam();
  expectMatchesParallel(variant, makeProblem(variant, 2, 7, 2, 4, 3, 11));
}

TEST_P(OracleParallel, BatchNoStates) {
  const std::string variant = GetParam();
  expectMatchesParallel(variant, makeProblem(variant, 2, 7, 3, 3, 2, 12, {}, false));
}

TEST_P(OracleParallel, VarlenWithEmptySequences) {
  const std::string variant = GetParam();
  const std::vector<int64_t> cu = {0, 0, 3, 3, 7, 7};  // empties first, middle, last
  Problem p = makeProblem(variant, 1, 7, 2, 4, 3, 13, cu);
  expectMatchesParallel(variant, p);
  // Empty sequences keep their initial states.
  Result r = oracle::run(variant, p);
  const int64_t HKV = 2 * 4 * 3, HK = 2 * 4;
  for (int64_t n : {0, 2, 4}) {
    for (int64_t i = 0; i < HKV; ++i)
      EXPECT_EQ(r.ht[n * HKV + i], p.h0[n * HKV + i]);
    if (variant == "lightnet") {
      for (int64_t i = 0; i < HK; ++i)
        EXPECT_EQ(r.states.at("scan_z_ht")[n * HK + i], p.states.at("scan_z_h0")[n * HK + i]);
    }
    if (isD2d(variant)) {
      for (int64_t i = 0; i < HK; ++i)
        EXPECT_EQ(r.states.at("norm_ht")[n * HK + i], p.states.at("norm_h0")[n * HK + i]);
    }
  }
}

TEST_P(OracleParallel, WithRope) {
  const std::string variant = GetParam();
  Problem p = makeProblem(variant, 1, 9, 2, 6, 2, 14, {0, 4, 9});
  p.ropeTheta = 10.0;  // small theta: every pair rotates noticeably
  expectMatchesParallel(variant, p);
}

TEST_P(OracleParallel, VarlenEqualsBatchRows) {
  const std::string variant = GetParam();
  Problem batch = makeProblem(variant, 2, 5, 2, 4, 3, 15);
  Problem packed = batch;  // [2,5,...] row-major is [1,10,...] packed
  packed.B = 1, packed.T = 10, packed.cuSeqlens = {0, 5, 10};
  Result a = oracle::run(variant, batch), b = oracle::run(variant, packed);
  EXPECT_EQ(a.o, b.o);
  EXPECT_EQ(a.ht, b.ht);
  EXPECT_EQ(a.states, b.states);
}

TEST_P(OracleParallel, SplitRunCarriesState) {
  // Running tokens [0,3) then [3,7) with h0 = ht (and the norm/scan states) equals one run.
  const std::string variant = GetParam();
  const int64_t T = 7, T1 = 3, H = 2, K = 4, V = 3;
  Problem full = makeProblem(variant, 1, T, H, K, V, 16);
  auto slice = [&](int64_t t0, int64_t t1) {
    Problem s = full;
    s.T = t1 - t0;
    auto cut = [&](std::vector<double> &x, int64_t per) {
      x = std::vector<double>(x.begin() + t0 * per, x.begin() + t1 * per);
    };
    cut(s.q, H * K);
    cut(s.k, H * K);
    cut(s.v, H * V);
    for (const char *name : {"dt", "gk", "f"})
      if (s.tensors.count(name))
        cut(s.tensors[name], int64_t(s.tensors[name].size()) / T);
    return s;
  };
  Result whole = oracle::run(variant, full);
  Problem first = slice(0, T1), second = slice(T1, T);
  Result r1 = oracle::run(variant, first);
  second.h0 = r1.ht;
  if (r1.states.count("norm_ht"))
    second.states["norm_h0"] = r1.states.at("norm_ht");
  if (r1.states.count("scan_z_ht"))
    second.states["scan_z_h0"] = r1.states.at("scan_z_ht");
  Result r2 = oracle::run(variant, second);
  std::vector<double> o = r1.o;
  o.insert(o.end(), r2.o.begin(), r2.o.end());
  expectAllClose(o, whole.o, 1e-12, "o");
  expectAllClose(r2.ht, whole.ht, 1e-12, "ht");
  for (const auto &[name, value] : whole.states)
    expectAllClose(r2.states.at(name), value, 1e-12, name);
}

INSTANTIATE_TEST_SUITE_P(AllVariants, OracleParallel,
                         ::testing::ValuesIn(decay::oracle::variants()),
                         [](const ::testing::TestParamInfo<std::string> &info) {
                           return info.param;
                         });

// Feature-map / normalizer / RoPE overrides on top of a few variants.
struct OverrideCase {
  std::string variant, featureMap;
  bool normalizer, rope;
};

class OracleOverrides : public ::testing::TestWithParam<OverrideCase> {};

TEST_P(OracleOverrides, MatchesParallel) {
  const OverrideCase &c = GetParam();
  Problem p = makeProblem(c.variant, 1, 7, 2, 4, 3, 21, {0, 2, 2, 7});
  p.featureMap = c.featureMap;
  p.normalizer = c.normalizer;
  if (c.rope)
    p.ropeTheta = 100.0;
  expectMatchesParallel(c.variant, p);
}

std::vector<OverrideCase> overrideCases() {
  std::vector<OverrideCase> cases;
  for (const char *v : {"linear", "gla", "mamba2", "hgrn2", "d2d_exp"})
    for (const char *fm : {"identity", "elu1", "exp", "silu", "relu"})
      for (bool rope : {false, true}) {
        cases.push_back({v, fm, false, rope});
        // The normalizer only with positive feature maps (well-conditioned z.q).
        if (std::string(fm) == "exp" || std::string(fm) == "elu1")
          cases.push_back({v, fm, true, rope});
      }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Overrides, OracleOverrides, ::testing::ValuesIn(overrideCases()),
                         [](const ::testing::TestParamInfo<OverrideCase> &info) {
                           return info.param.variant + "_" + info.param.featureMap +
                                  (info.param.normalizer ? "_norm" : "") +
                                  (info.param.rope ? "_rope" : "");
                         });

// ---------------------------------------------------------------------------
// Cross-variant identities and robustness
// ---------------------------------------------------------------------------

TEST(OracleIdentities, Mamba2EqualsBroadcastMamba2Vector) {
  Problem s = makeProblem("mamba2", 2, 6, 2, 4, 3, 31);
  Problem v = s;
  const int64_t K = 4;
  auto spread = [&](const std::vector<double> &x) {
    std::vector<double> y;
    for (double e : x)
      for (int64_t c = 0; c < K; ++c)
        y.push_back(e);
    return y;
  };
  for (const char *name : {"dt", "A_log", "dt_bias"})
    v.tensors[name] = spread(s.tensors[name]);
  Result a = oracle::run("mamba2", s), b = oracle::run("mamba2_vector", v);
  expectAllClose(a.o, b.o, 1e-14);
  expectAllClose(a.ht, b.ht, 1e-14);
}

TEST(OracleIdentities, TnllEqualsRetnetWithItsConstants) {
  Problem p = makeProblem("tnll", 1, 7, 3, 2, 2, 32);
  p.tensors["log_decay"] = {std::log(1 - 1.0 / 32), std::log(1 - 1.0 / 64), std::log(1 - 1.0 / 128)};
  Result a = oracle::run("tnll", p), b = oracle::run("retnet", p);
  expectAllClose(a.o, b.o, 1e-14);
  expectAllClose(a.ht, b.ht, 1e-14);
}

TEST(OracleIdentities, HeadsAreIndependentButSeeTheirIndex) {
  // retnet with H = 2: head 1 of the 2-head problem is not head 0 of a 1-head problem.
  Problem p = tiny(1, 2, 1, 1);
  p.q = {1.0, 1.0};
  p.k = {1.0, 1.0};
  p.v = {1.0, 1.0};
  p.h0 = {1.0, 1.0};
  Result r = oracle::run("retnet", p);
  EXPECT_NEAR(r.o[0], 31.0 / 32.0 + 1.0, 1e-15);
  EXPECT_NEAR(r.o[1], 63.0 / 64.0 + 1.0, 1e-15);
}

TEST(OracleRobustness, StrongDecayLongSequenceStaysFinite) {
  Problem p = makeProblem("mamba2", 1, 1000, 1, 8, 4, 41);
  for (double &x : p.tensors["A_log"])
    x = 3.0;
  for (double &x : p.tensors["dt"])
    x = 5.0;  // g ~ -exp(3) * 5 ~ -100 per step
  Result r = oracle::run("mamba2", p);
  for (double x : r.o)
    ASSERT_TRUE(std::isfinite(x));
  Problem g = makeProblem("gla", 1, 1000, 1, 8, 4, 42);
  for (double &x : g.tensors["gk"])
    x = -1000.0;  // g = -62.5: state forgets everything each step
  r = oracle::run("gla", g);
  for (double x : r.o)
    ASSERT_TRUE(std::isfinite(x));
  // Last output only sees the last token: S = k v^T (previous state * e^-62.5).
  double qk = 0.0;
  const int64_t last = 999;
  for (int64_t c = 0; c < 8; ++c)
    qk += g.q[last * 8 + c] * g.k[last * 8 + c];
  for (int64_t j = 0; j < 4; ++j)
    EXPECT_NEAR(r.o[last * 4 + j], qk * g.v[last * 4 + j] / std::sqrt(8.0), 1e-12);
}

TEST(OracleRobustness, PositiveD2dDecayStaysFiniteOnShortRuns) {
  Problem p = makeProblem("d2d_elu", 1, 10, 2, 4, 3, 43);
  for (double &x : p.tensors["ps"])
    x = -2.0;  // g = Pb - ps > 0
  Result r = oracle::run("d2d_elu", p);
  for (double x : r.o)
    ASSERT_TRUE(std::isfinite(x));
  expectMatchesParallel("d2d_elu", p);
}

TEST(OracleRobustness, ZeroLengthProblem) {
  Problem p = makeProblem("lightnet", 2, 0, 2, 4, 3, 44);
  Result r = oracle::run("lightnet", p);
  EXPECT_TRUE(r.o.empty());
  EXPECT_EQ(r.ht, p.h0);
  EXPECT_EQ(r.states.at("scan_z_ht"), p.states.at("scan_z_h0"));
}

}  // namespace
