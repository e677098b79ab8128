// The lane arithmetic of the warp-collective primitives: mma.sync m16n8k8 tf32 over fragments and shfl.sync source lanes.
#ifndef DECAYRT_LIB_SIMT_WARPMATH_H
#define DECAYRT_LIB_SIMT_WARPMATH_H

#include <cstdint>

namespace decayrt::detail::simt {

inline constexpr unsigned kWarpSize = 32;

/// One lane's operands of mma.sync.m16n8k8.row.col.f32.tf32.tf32.f32, in the
/// PTX ISA's fragment layout (groupID = lane / 4, tig = lane % 4):
/// a0 A[groupID][tig], a1 A[groupID+8][tig], a2 A[groupID][tig+4],
/// a3 A[groupID+8][tig+4]; b0 B[tig][groupID], b1 B[tig+4][groupID] (B is K x N);
/// c0 C[groupID][2*tig], c1 C[groupID][2*tig+1], c2 C[groupID+8][2*tig],
/// c3 C[groupID+8][2*tig+1], and D like C.
struct MmaFragments {
  uint32_t a[4] = {0, 0, 0, 0};
  uint32_t b[2] = {0, 0};
  float c[4] = {0, 0, 0, 0};
};

/// The value the tensor core reads from an fp32 bit pattern given as tf32:
/// the low 13 mantissa bits are ignored.
double tf32Value(uint32_t bits);

/// D = A * B + C over the fragments of a whole warp: `d[lane]` receives that
/// lane's d0..d3. Each element is the 8 products (exact in double: tf32
/// significands have 11 bits) and c summed in double, rounded once to float.
/// The tensor core accumulates in its own order and precision, so results may
/// differ from hardware within fp32 accumulation error.
void multiplyAccumulateM16N8K8(const MmaFragments (&lanes)[kWarpSize], float (&d)[kWarpSize][4]);

/// Where a lane of shfl.sync reads from, and the PTX predicate.
struct ShuffleSource {
  unsigned lane = 0;
  bool inRange = false;
};

/// The source lane of `lane` for shfl.sync `mode` (decay_simt_shuffle_mode,
/// at most 3) with operands b (lane or offset) and c (clamp and segment
/// mask), by the PTX ISA's definition: out of range, a lane reads itself.
ShuffleSource shuffleSourceLane(uint32_t mode, unsigned lane, uint32_t b, uint32_t c);

} // namespace decayrt::detail::simt

#endif // DECAYRT_LIB_SIMT_WARPMATH_H
