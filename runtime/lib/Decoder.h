// The decoder behind the opaque decayrt_decoder handle: a package's step and forward kernels and a cache of state slots.
#ifndef DECAYRT_LIB_DECODER_H
#define DECAYRT_LIB_DECODER_H

#include "Error.h"
#include "Package.h"

#include <cstdint>
#include <string>
#include <vector>

namespace decayrt::detail {

/// One state of the recurrence, for every slot: the step kernel's inout
/// argument `name` ("state", "norm_state", "scan_<name>_state") with dims S
/// then letters of HKV, and the forward's initial and final states of the
/// same shape with N in place of S ("h0"/"ht", "norm_h0"/"norm_ht", ...).
struct CacheComponent {
  std::string name;
  std::string initialName, finalName;
  std::string dims;
  std::vector<int64_t> slotShape; ///< the shape of one slot's state
  int64_t slotElements = 0;
  float init = 0.0f;         ///< every element of an empty sequence's state
  std::vector<float> values; ///< [S, slotShape...]

  float *slot(int64_t s) { return values.data() + s * slotElements; }
  const float *slot(int64_t s) const { return values.data() + s * slotElements; }
};

} // namespace decayrt::detail

/// Mutable: one decoder is not safe for concurrent calls (docs/decoding.md).
struct decayrt_decoder {
  const decayrt_package *package = nullptr;
  const decayrt::detail::LoadedKernel *forward = nullptr, *step = nullptr;
  int64_t slots = 0, H = 0, K = 0, V = 0;
  std::vector<decayrt::detail::CacheComponent> components; ///< in the step kernel's order
  std::vector<int64_t> positions;                          ///< tokens each slot has consumed
  /// What identifies the recurrence a saved state belongs to, as
  /// "key=value;..." (spec name apart): see docs/decoding.md.
  std::string recurrence;
};

namespace decayrt::detail {

/// Fails unless `slot` is one of the decoder's slots; `function` names the caller.
Error checkSlot(const decayrt_decoder &decoder, int64_t slot, const char *function);

/// Puts `slot` back at the empty sequence: every state at its init, position 0.
void resetSlot(decayrt_decoder &decoder, int64_t slot);

} // namespace decayrt::detail

#endif // DECAYRT_LIB_DECODER_H
