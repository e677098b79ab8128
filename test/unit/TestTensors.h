// Helpers the unit tests share: random float64 tensors, the models' param ranges and the field's relative rms error.
#ifndef DECAY_TEST_UNIT_TESTTENSORS_H
#define DECAY_TEST_UNIT_TESTTENSORS_H

#include "decay/Runner/ParamRanges.h"
#include "decay/Runner/SpecProgram.h"

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace decay::test {

/// A tensor of `shape` with values uniform in [lo, hi), or standard normal.
inline HostTensor randomTensor(std::vector<int64_t> shape, double lo, double hi,
                               std::mt19937_64 &rng, bool normal = false) {
  std::uniform_real_distribution<double> unit(lo, hi);
  std::normal_distribution<double> gauss(0.0, 1.0);
  HostTensor t{std::move(shape), {}};
  int64_t n = 1;
  for (int64_t d : t.shape)
    n *= d;
  for (int64_t i = 0; i < n; ++i)
    t.data.push_back(normal ? gauss(rng) : unit(rng));
  return t;
}

/// rms(expected - actual) / rms(expected) (MATH.md section 6); the plain rms
/// of the difference when `expected` is all zeros.
inline double relativeRms(const std::vector<double> &expected, const std::vector<double> &actual) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff += (expected[i] - actual[i]) * (expected[i] - actual[i]);
    ref += expected[i] * expected[i];
  }
  return ref == 0 ? std::sqrt(diff) : std::sqrt(diff / ref);
}

/// The sizes of one test problem: q [B,T,H,K], v [B,T,H,V], N sequences.
struct ProblemSizes {
  int64_t B, T, H, K, V, N;
  /// The shape of a tensor with `dims` (letters of BTHKVN).
  std::vector<int64_t> shapeOf(const std::string &dims) const {
    std::vector<int64_t> shape;
    for (char d : dims)
      shape.push_back(d == 'B' ? B : d == 'T' ? T : d == 'H' ? H : d == 'K' ? K : d == 'V' ? V : N);
    return shape;
  }
};

/// The range of a param as the models initialize it (decay/Runner/ParamRanges.h),
/// others in [-1, 1].
inline std::pair<double, double> modelParamRange(const std::string &name) {
  return decay::modelParamRange(name, {-1.0, 1.0});
}

} // namespace decay::test

#endif
