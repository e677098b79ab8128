// The decoder behind the opaque decayrt_decoder handle: a package's step and forward kernels and a cache of state slots.
#ifndef DECAYRT_LIB_DECODER_H
#define DECAYRT_LIB_DECODER_H

#include "Dtype.h"
#include "Error.h"
#include "Package.h"

#include <cstdint>
#include <string>
#include <vector>

namespace decayrt::detail {

/// One state of the recurrence, for every slot: the step kernel's inout
/// argument `name` ("state", "norm_state", "scan_<name>_state") with dims S
/// then letters of HKV, stored in that argument's dtype (f32, or bf16 bits
/// for a bf16 `state`), and the forward's f32 initial and final states of
/// the same shape with N in place of S ("h0"/"ht", "norm_h0"/"norm_ht", ...).
struct CacheComponent {
  std::string name;
  std::string initialName, finalName;
  std::string dims;
  decayrt_dtype dtype = DECAYRT_F32; ///< the step argument's: f32 or bf16
  std::vector<int64_t> slotShape;    ///< the shape of one slot's state
  int64_t slotElements = 0;
  float init = 0.0f;                ///< every element of an empty sequence's state
  std::vector<unsigned char> bytes; ///< [S, slotShape...] elements of `dtype`

  int64_t slotBytes() const { return slotElements * dtypeSize(dtype); }
  unsigned char *slot(int64_t s) { return bytes.data() + s * slotBytes(); }
  const unsigned char *slot(int64_t s) const { return bytes.data() + s * slotBytes(); }
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
  /// "key=value;..." (spec name apart): see docs/decoding.md. Version-1
  /// bytes hold it without the states' dtypes (their states are all f32).
  std::string recurrence, recurrenceV1;
};

namespace decayrt::detail {

/// Fails unless `slot` is one of the decoder's slots; `function` names the caller.
Error checkSlot(const decayrt_decoder &decoder, int64_t slot, const char *function);

/// Puts `slot` back at the empty sequence: every state at its init, position 0.
void resetSlot(decayrt_decoder &decoder, int64_t slot);

} // namespace decayrt::detail

#endif // DECAYRT_LIB_DECODER_H
