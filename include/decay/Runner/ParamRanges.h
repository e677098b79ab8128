// The ranges the model codebases initialize the example specs' params in, for generated inputs.
#ifndef DECAY_RUNNER_PARAMRANGES_H
#define DECAY_RUNNER_PARAMRANGES_H

#include <string>
#include <utility>

namespace decay {

/// The range of param `name` as the models initialize it (MATH.md section
/// 5): TNL's log_decay is negative, D2D's ps starts near 0 (g = Pb_h - ps
/// stays negative), simple_decay's delta near log(0.99/0.01); any other
/// param in `otherwise`. A positive log-decay makes the state grow without
/// bound, which f32 cannot hold over long sequences.
inline std::pair<double, double> modelParamRange(const std::string &name,
                                                 std::pair<double, double> otherwise) {
  if (name == "log_decay")
    return {-1.0, -0.01};
  if (name == "ps")
    return {0.0, 0.1};
  if (name == "delta")
    return {4.0, 5.0};
  return otherwise;
}

} // namespace decay

#endif
