// Independent hand-written float64 token-by-token oracle for every decay variant (see Oracle.h), used to test decayc.
#include "Oracle.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace decay::oracle {

namespace {

[[noreturn]] void fail(const std::string &msg) {
  throw std::invalid_argument("oracle: " + msg);
}

// The named tensor from p.tensors, checked to have `size` elements.
const std::vector<double> &tensor(const Problem &p, const std::string &name,
                                  int64_t size) {
  auto it = p.tensors.find(name);
  if (it == p.tensors.end())
    fail("missing tensor '" + name + "'");
  if (static_cast<int64_t>(it->second.size()) != size)
    fail("tensor '" + name + "' has " + std::to_string(it->second.size()) +
         " elements, expected " + std::to_string(size));
  return it->second;
}

// The named optional state from p.states ([N,H,K]), or zeros when absent.
std::vector<double> optionalState(const Problem &p, const std::string &name,
                                  int64_t size) {
  auto it = p.states.find(name);
  if (it == p.states.end())
    return std::vector<double>(size, 0.0);
  if (static_cast<int64_t>(it->second.size()) != size)
    fail("state '" + name + "' has " + std::to_string(it->second.size()) +
         " elements, expected " + std::to_string(size));
  return it->second;
}

void checkShapes(const Problem &p) {
  if (p.B < 1 || p.T < 0 || p.H < 1 || p.K < 1 || p.V < 1)
    fail("bad shape");
  if (static_cast<int64_t>(p.q.size()) != p.B * p.T * p.H * p.K)
    fail("q must be [B,T,H,K]");
  if (static_cast<int64_t>(p.k.size()) != p.B * p.T * p.H * p.K)
    fail("k must be [B,T,H,K]");
  if (static_cast<int64_t>(p.v.size()) != p.B * p.T * p.H * p.V)
    fail("v must be [B,T,H,V]");
  if (p.ropeTheta && p.K % 2 != 0)
    fail("RoPE needs an even K");
}

}  // namespace

std::vector<std::string> variants() {
  return {"linear", "retnet", "tnll",     "mamba2",       "mamba2_vector", "gla",
          "hgrn2",  "lightnet", "simple_decay", "d2d_exp", "d2d_elu"};
}

double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

double logsigmoid(double x) { return -softplus(-x); }

double sigmoid(double x) {
  if (x >= 0)
    return 1.0 / (1.0 + std::exp(-x));
  double e = std::exp(x);
  return e / (1.0 + e);
}

double logaddexp(double a, double b) {
  return std::max(a, b) + std::log1p(std::exp(-std::fabs(a - b)));
}

double featureMap(const std::string &name, double x) {
  if (name == "identity")
    return x;
  if (name == "elu1")
    return x > 0 ? x + 1.0 : std::exp(x);
  if (name == "exp")
    return std::exp(x);
  if (name == "silu")
    return x * sigmoid(x);
  if (name == "relu")
    return std::max(x, 0.0);
  fail("unknown feature map '" + name + "'");
}

std::vector<Sequence> sequences(const Problem &p) {
  std::vector<Sequence> seqs;
  if (p.cuSeqlens.empty()) {
    for (int64_t b = 0; b < p.B; ++b)
      seqs.push_back({b, 0, p.T});
    return seqs;
  }
  if (p.B != 1)
    fail("cuSeqlens requires B = 1");
  if (p.cuSeqlens.size() < 2)
    fail("cuSeqlens needs at least 2 entries");
  if (p.cuSeqlens.front() != 0 || p.cuSeqlens.back() != p.T)
    fail("cuSeqlens must start at 0 and end at T");
  for (size_t n = 0; n + 1 < p.cuSeqlens.size(); ++n) {
    if (p.cuSeqlens[n + 1] < p.cuSeqlens[n])
      fail("cuSeqlens must be non-decreasing");
    seqs.push_back({0, p.cuSeqlens[n], p.cuSeqlens[n + 1]});
  }
  return seqs;
}

VariantInfo variantInfo(const std::string &variant) {
  VariantInfo info;
  if (variant == "linear" || variant == "retnet" || variant == "tnll" ||
      variant == "mamba2" || variant == "mamba2_vector" || variant == "gla" ||
      variant == "simple_decay")
    return info;
  if (variant == "hgrn2" || variant == "lightnet") {
    info.derivedKey = true;
    return info;
  }
  if (variant == "d2d_exp") {
    info.featureMap = "exp";
    info.normalizer = true;
    return info;
  }
  if (variant == "d2d_elu") {
    info.featureMap = "elu1";
    info.normalizer = true;
    return info;
  }
  fail("unknown variant '" + variant + "'");
}

std::string effectiveFeatureMap(const std::string &variant, const Problem &p) {
  return p.featureMap.empty() ? variantInfo(variant).featureMap : p.featureMap;
}

bool effectiveNormalizer(const std::string &variant, const Problem &p) {
  return p.normalizer ? *p.normalizer : variantInfo(variant).normalizer;
}

double effectiveScale(const Problem &p) {
  return p.scale ? *p.scale : 1.0 / std::sqrt(static_cast<double>(p.K));
}

void applyRope(std::vector<double> &x, int64_t pos, double theta) {
  const int64_t K = static_cast<int64_t>(x.size());
  if (K % 2 != 0)
    fail("RoPE needs an even K");
  const int64_t half = K / 2;
  for (int64_t i = 0; i < half; ++i) {
    double angle = static_cast<double>(pos) *
                   std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(K));
    double c = std::cos(angle), s = std::sin(angle);
    double a = x[i], b = x[i + half];
    x[i] = a * c - b * s;
    x[i + half] = a * s + b * c;
  }
}

Decay decayAndKey(const std::string &variant, const Problem &p) {
  checkShapes(p);
  const VariantInfo info = variantInfo(variant);
  const int64_t B = p.B, T = p.T, H = p.H, K = p.K;
  const int64_t BTHK = B * T * H * K;
  Decay d;
  d.g.assign(BTHK, 0.0);
  if (info.derivedKey)
    d.key.assign(BTHK, 0.0);

  // Index of element (b,t,h,c) of a [B,T,H,K] tensor, and (b,t,h) of [B,T,H].
  auto at4 = [&](int64_t b, int64_t t, int64_t h, int64_t c) {
    return ((b * T + t) * H + h) * K + c;
  };
  auto at3 = [&](int64_t b, int64_t t, int64_t h) { return (b * T + t) * H + h; };

  if (variant == "lightnet") {
    // Scan per (sequence, head, channel): z_t = logaddexp(z_{t-1}, f_t).
    const std::vector<double> &f = tensor(p, "f", BTHK);
    const std::vector<Sequence> seqs = sequences(p);
    const int64_t N = static_cast<int64_t>(seqs.size());
    std::vector<double> z0 = optionalState(p, "scan_z_h0", N * H * K);
    d.scanZt.assign(N * H * K, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < K; ++c) {
          double z = z0[(n * H + h) * K + c];
          for (int64_t t = seqs[n].begin; t < seqs[n].end; ++t) {
            int64_t i = at4(seqs[n].batch, t, h, c);
            double zNew = logaddexp(z, f[i]);
            d.g[i] = z - zNew;
            d.key[i] = std::exp(f[i] - zNew);
            z = zNew;
          }
          d.scanZt[(n * H + h) * K + c] = z;
        }
    return d;
  }

  // Fetch the inputs each variant needs (this also checks their sizes).
  const std::vector<double> *dt = nullptr, *aLog = nullptr, *dtBias = nullptr,
                            *gk = nullptr, *f = nullptr, *delta = nullptr,
                            *logDecay = nullptr, *ps = nullptr;
  if (variant == "mamba2") {
    dt = &tensor(p, "dt", B * T * H);
    aLog = &tensor(p, "A_log", H);
    dtBias = &tensor(p, "dt_bias", H);
  } else if (variant == "mamba2_vector") {
    dt = &tensor(p, "dt", BTHK);
    aLog = &tensor(p, "A_log", H * K);
    dtBias = &tensor(p, "dt_bias", H * K);
  } else if (variant == "gla") {
    gk = &tensor(p, "gk", BTHK);
  } else if (variant == "hgrn2") {
    f = &tensor(p, "f", BTHK);
  } else if (variant == "simple_decay") {
    f = &tensor(p, "f", BTHK);
    delta = &tensor(p, "delta", H * K);
  } else if (variant == "tnll") {
    logDecay = &tensor(p, "log_decay", H);
  } else if (variant == "d2d_exp" || variant == "d2d_elu") {
    ps = &tensor(p, "ps", H * K);
  }

  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < K; ++c) {
          const int64_t i = at4(b, t, h, c);
          double g = 0.0;
          if (variant == "linear") {
            g = 0.0;
          } else if (variant == "retnet") {
            g = std::log1p(-std::pow(2.0, -5.0 - static_cast<double>(h)));
          } else if (variant == "tnll") {
            g = (*logDecay)[h];
          } else if (variant == "mamba2") {
            g = -std::exp((*aLog)[h]) * softplus((*dt)[at3(b, t, h)] + (*dtBias)[h]);
          } else if (variant == "mamba2_vector") {
            g = -std::exp((*aLog)[h * K + c]) * softplus((*dt)[i] + (*dtBias)[h * K + c]);
          } else if (variant == "gla") {
            g = logsigmoid((*gk)[i]) / 16.0;
          } else if (variant == "hgrn2") {
            const double lb = p.lowerBound;
            // lb = 0 is logsigmoid(f), computed stably for very negative f.
            g = lb == 0.0 ? logsigmoid((*f)[i]) : std::log(lb + (1.0 - lb) * sigmoid((*f)[i]));
            d.key[i] = -std::expm1(g);  // 1 - exp(g)
          } else if (variant == "simple_decay") {
            g = logsigmoid((*f)[i] + (*delta)[h * K + c]);
          } else if (variant == "d2d_exp" || variant == "d2d_elu") {
            // Pb_h = -2^(-H/h) for 1-based h, i.e. -2^(-H/(h+1)) for 0-based h.
            const double pb = -std::pow(2.0, -static_cast<double>(H) / static_cast<double>(h + 1));
            const double factor = variant == "d2d_exp" ? 0.02 : 1.0;
            g = pb - factor * (*ps)[h * K + c];
          } else {
            fail("unknown variant '" + variant + "'");
          }
          d.g[i] = g;
        }
  return d;
}

Result run(const std::string &variant, const Problem &p) {
  checkShapes(p);
  const VariantInfo info = variantInfo(variant);
  const std::vector<Sequence> seqs = sequences(p);
  const Decay d = decayAndKey(variant, p);
  const std::string phi = effectiveFeatureMap(variant, p);
  featureMap(phi, 0.0);  // validate the name even when T = 0
  const bool norm = effectiveNormalizer(variant, p);
  const double scale = effectiveScale(p);

  const int64_t T = p.T, H = p.H, K = p.K, V = p.V;
  const int64_t N = static_cast<int64_t>(seqs.size());
  if (!p.h0.empty() && static_cast<int64_t>(p.h0.size()) != N * H * K * V)
    fail("h0 must be [N,H,K,V]");
  const std::vector<double> normH0 =
      norm ? optionalState(p, "norm_h0", N * H * K) : std::vector<double>();

  Result r;
  r.o.assign(p.B * T * H * V, 0.0);
  r.ht.assign(N * H * K * V, 0.0);
  if (norm)
    r.states["norm_ht"].assign(N * H * K, 0.0);

  for (int64_t n = 0; n < N; ++n) {
    const Sequence &seq = seqs[n];
    for (int64_t h = 0; h < H; ++h) {
      // State S [K,V] and normalizer z [K] of this (sequence, head).
      std::vector<double> S(K * V, 0.0), z(K, 0.0);
      if (!p.h0.empty())
        for (int64_t c = 0; c < K; ++c)
          for (int64_t j = 0; j < V; ++j)
            S[c * V + j] = p.h0[((n * H + h) * K + c) * V + j];
      if (norm)
        for (int64_t c = 0; c < K; ++c)
          z[c] = normH0[(n * H + h) * K + c];

      for (int64_t t = seq.begin; t < seq.end; ++t) {
        const int64_t tok = (seq.batch * T + t) * H + h;  // (b,t,h) index
        const int64_t pos = t - seq.begin;

        // Query and key (feature map on q and on an input key only).
        std::vector<double> qv(K), kv(K);
        for (int64_t c = 0; c < K; ++c) {
          qv[c] = featureMap(phi, p.q[tok * K + c]);
          kv[c] = info.derivedKey ? d.key[tok * K + c] : featureMap(phi, p.k[tok * K + c]);
        }
        if (p.ropeTheta) {
          applyRope(qv, pos, *p.ropeTheta);
          applyRope(kv, pos, *p.ropeTheta);
        }

        // S <- diag(exp(g)) S + k v^T ;  z <- diag(exp(g)) z + k.
        for (int64_t c = 0; c < K; ++c) {
          const double a = std::exp(d.g[tok * K + c]);
          for (int64_t j = 0; j < V; ++j)
            S[c * V + j] = a * S[c * V + j] + kv[c] * p.v[tok * V + j];
          if (norm)
            z[c] = a * z[c] + kv[c];
        }

        // o = scale * S^T q, or S^T q / (z.q + eps) with the normalizer.
        double den = 0.0;
        if (norm) {
          for (int64_t c = 0; c < K; ++c)
            den += z[c] * qv[c];
          den += p.eps;
        }
        for (int64_t j = 0; j < V; ++j) {
          double num = 0.0;
          for (int64_t c = 0; c < K; ++c)
            num += S[c * V + j] * qv[c];
          r.o[tok * V + j] = norm ? num / den : scale * num;
        }
      }

      for (int64_t c = 0; c < K; ++c)
        for (int64_t j = 0; j < V; ++j)
          r.ht[((n * H + h) * K + c) * V + j] = S[c * V + j];
      if (norm)
        for (int64_t c = 0; c < K; ++c)
          r.states["norm_ht"][(n * H + h) * K + c] = z[c];
    }
  }
  if (variant == "lightnet")
    r.states["scan_z_ht"] = d.scanZt;
  return r;
}

}  // namespace decay::oracle
