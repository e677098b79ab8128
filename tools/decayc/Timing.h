// The statistics of decayc bench's timed runs.
#ifndef DECAYC_TIMING_H
#define DECAYC_TIMING_H

#include <algorithm>
#include <vector>

namespace decayc {

/// The median of `values` (the mean of the middle two for an even count).
inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : 0.5 * (values[middle - 1] + values[middle]);
}

} // namespace decayc

#endif
