// mma.sync m16n8k8 tf32 computed from a warp's fragments, and the shfl.sync source-lane rule of the PTX ISA.
#include "WarpMath.h"

#include "decayrt/simt_abi.h"

#include <cstring>

namespace decayrt::detail::simt {

namespace {

constexpr unsigned kRows = 16; // M
constexpr unsigned kCols = 8;  // N
constexpr unsigned kDepth = 8; // K
constexpr uint32_t kTf32Mask = 0xffffe000u;

/// The warp's fragments gathered into whole matrices.
struct MmaMatrices {
  double a[kRows][kDepth];
  double b[kDepth][kCols];
  double c[kRows][kCols];
};

MmaMatrices gatherMatrices(const MmaFragments (&lanes)[kWarpSize]) {
  MmaMatrices m{};
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    const MmaFragments &f = lanes[lane];
    unsigned group = lane / 4, tig = lane % 4;
    m.a[group][tig] = tf32Value(f.a[0]);
    m.a[group + 8][tig] = tf32Value(f.a[1]);
    m.a[group][tig + 4] = tf32Value(f.a[2]);
    m.a[group + 8][tig + 4] = tf32Value(f.a[3]);
    m.b[tig][group] = tf32Value(f.b[0]);
    m.b[tig + 4][group] = tf32Value(f.b[1]);
    m.c[group][2 * tig] = f.c[0];
    m.c[group][2 * tig + 1] = f.c[1];
    m.c[group + 8][2 * tig] = f.c[2];
    m.c[group + 8][2 * tig + 1] = f.c[3];
  }
  return m;
}

float productSum(const MmaMatrices &m, unsigned row, unsigned col) {
  double sum = m.c[row][col];
  for (unsigned k = 0; k < kDepth; ++k)
    sum += m.a[row][k] * m.b[k][col];
  return static_cast<float>(sum);
}

} // namespace

double tf32Value(uint32_t bits) {
  uint32_t kept = bits & kTf32Mask;
  float value;
  std::memcpy(&value, &kept, sizeof value);
  return value;
}

void multiplyAccumulateM16N8K8(const MmaFragments (&lanes)[kWarpSize], float (&d)[kWarpSize][4]) {
  MmaMatrices m = gatherMatrices(lanes);
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    unsigned group = lane / 4, tig = lane % 4;
    d[lane][0] = productSum(m, group, 2 * tig);
    d[lane][1] = productSum(m, group, 2 * tig + 1);
    d[lane][2] = productSum(m, group + 8, 2 * tig);
    d[lane][3] = productSum(m, group + 8, 2 * tig + 1);
  }
}

ShuffleSource shuffleSourceLane(uint32_t mode, unsigned lane, uint32_t b, uint32_t c) {
  int bval = static_cast<int>(b & 31);
  int cval = static_cast<int>(c & 31);
  int segmask = static_cast<int>((c >> 8) & 31);
  int self = static_cast<int>(lane);
  int maxLane = (self & segmask) | (cval & ~segmask);
  int minLane = self & segmask;
  int source = self;
  bool inRange = false;
  switch (mode) {
  case DECAY_SIMT_SHUFFLE_UP:
    source = self - bval;
    inRange = source >= maxLane;
    break;
  case DECAY_SIMT_SHUFFLE_DOWN:
    source = self + bval;
    inRange = source <= maxLane;
    break;
  case DECAY_SIMT_SHUFFLE_BFLY:
    source = self ^ bval;
    inRange = source <= maxLane;
    break;
  default: // DECAY_SIMT_SHUFFLE_IDX
    source = minLane | (bval & ~segmask);
    inRange = source <= maxLane;
    break;
  }
  if (!inRange)
    source = self;
  return {static_cast<unsigned>(source), inRange};
}

} // namespace decayrt::detail::simt
