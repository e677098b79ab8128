// Independent hand-written float64 token-by-token oracle for every decay variant (MATH.md 1, 5; docs/semantics.md), used to test decayc.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace decay::oracle {

// One problem instance. All tensors are row-major float64.
struct Problem {
  int64_t B = 1, T = 0, H = 1, K = 1, V = 1;
  std::vector<double> q, k, v;        // [B,T,H,K], [B,T,H,K], [B,T,H,V]
  std::vector<double> h0;             // [N,H,K,V] or empty (zeros)
  std::vector<int64_t> cuSeqlens;     // empty = no varlen; else N+1 entries, 0..T, B must be 1
  // Spec inputs and params by spec name: "dt", "A_log", "dt_bias", "gk", "f",
  // "delta", "log_decay", "ps".
  std::map<std::string, std::vector<double>> tensors;
  // Optional initial extra states: "norm_h0" [N,H,K], "scan_z_h0" [N,H,K] (lightnet).
  std::map<std::string, std::vector<double>> states;
  // Optional overrides on top of the variant's defaults.
  std::string featureMap;             // "" = variant default; else identity|elu1|exp|silu|relu
  std::optional<double> scale;        // default K^-1/2; ignored when the normalizer is on
  std::optional<double> ropeTheta;    // RoPE (rotate-half) when set; K must be even
  std::optional<bool> normalizer;     // default: the variant's own (on for d2d_*)
  double eps = 1e-6;                  // normalizer epsilon
  double lowerBound = 0.0;            // hgrn2 lower_bound
};

struct Result {
  std::vector<double> o;              // [B,T,H,V] (zeros for tokens of no sequence: none, by validation)
  std::vector<double> ht;             // [N,H,K,V]
  // "norm_ht" [N,H,K] when the normalizer is on; "scan_z_ht" [N,H,K] for lightnet.
  std::map<std::string, std::vector<double>> states;
};

// Names accepted by run(): linear, retnet, tnll, mamba2, mamba2_vector, gla,
// hgrn2, lightnet, simple_decay, d2d_exp, d2d_elu.
std::vector<std::string> variants();

// Naive recurrence, token by token, float64. Throws std::invalid_argument on
// an unknown variant, a missing or mis-sized tensor, or bad cuSeqlens.
Result run(const std::string &variant, const Problem &p);

// ---- Building blocks (exposed so tests can check them one by one) ----

double softplus(double x);             // max(x,0) + log1p(exp(-|x|))
double logsigmoid(double x);           // -softplus(-x)
double sigmoid(double x);
double logaddexp(double a, double b);  // max(a,b) + log1p(exp(-|a-b|))
double featureMap(const std::string &name, double x);  // identity|elu1|exp|silu|relu

// Sequence n covers tokens [begin, end) of batch row `batch`.
struct Sequence {
  int64_t batch, begin, end;
};
std::vector<Sequence> sequences(const Problem &p);

struct VariantInfo {
  bool derivedKey = false;        // the key comes from the parameterization
  std::string featureMap = "identity";
  bool normalizer = false;
};
VariantInfo variantInfo(const std::string &variant);

std::string effectiveFeatureMap(const std::string &variant, const Problem &p);
bool effectiveNormalizer(const std::string &variant, const Problem &p);
double effectiveScale(const Problem &p);  // scale or K^-1/2

// Log-decay and derived key of every token.
struct Decay {
  std::vector<double> g;       // [B,T,H,K]; scalar decays are replicated over K
  std::vector<double> key;     // [B,T,H,K] when the variant derives its key, else empty
  std::vector<double> scanZt;  // [N,H,K] final scan state (lightnet only), else empty
};
Decay decayAndKey(const std::string &variant, const Problem &p);

// Rotate-half RoPE of one K-vector at position pos.
void applyRope(std::vector<double> &x, int64_t pos, double theta);

}  // namespace decay::oracle
