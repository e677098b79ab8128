// Which spec-input gradients a backward kernel writes with one plain store per element.
#ifndef DECAY_SUPPORT_GRADIENTSTORES_H
#define DECAY_SUPPORT_GRADIENTSTORES_H

#include <string_view>

namespace decay {

/// Whether the gradient of a spec input with dims `inputDims` ([B, T, ...],
/// letters of BTHK) gets exactly one contribution per element when the
/// spec's region is evaluated per token, and per channel when `perChannel`:
/// the input is indexed by every index of the evaluation (H, and K exactly
/// when per channel). The backward kernels store such a gradient once
/// instead of adding into it, and a package's manifest marks it
/// "overwritten": the runtime need not zero it before the call.
inline bool inputGradientStoredOnce(std::string_view inputDims, bool perChannel) {
  auto has = [&](char dim) { return inputDims.find(dim) != std::string_view::npos; };
  return has('T') && has('H') && has('K') == perChannel;
}

} // namespace decay

#endif
