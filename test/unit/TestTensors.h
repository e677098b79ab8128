// Helpers the unit tests share: random float64 tensors and the field's relative rms error.
#ifndef DECAY_TEST_UNIT_TESTTENSORS_H
#define DECAY_TEST_UNIT_TESTTENSORS_H

#include "decay/Runner/SpecProgram.h"

#include <cmath>
#include <random>
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

} // namespace decay::test

#endif
