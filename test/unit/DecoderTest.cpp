// Tests of decayrt's step entry and decoder on fake packages whose forward and step kernels, compiled from C at test time, run a real recurrence.
#include "FakePackages.h"

#include "decay/Support/Bfloat16.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using nlohmann::json;
using namespace decayrt::test;

namespace {

/// The fake kernels: token by token, both entries through the same C code,
/// so that a forward and the steps that split it agree exactly.
///
/// `full` (spec `full`): a scan c (init 0.5) with c_t = c_{t-1} + dt_t A_h
/// and the decay a_t = c_{t-1} / c_t (LightNet-like, in linear space), RoPE on
/// q and k (pair i turns by a fixed angle per position), a normalizer:
///   S <- a S + k v^T, z <- a z + k, o = S^T q / (z . q + 1e-6).
/// `plain` (spec `plain`): S <- 0.9 S + k v^T, o = S^T q.
/// `fake_full_step_bf16`: the step of `full` on a bf16 `state` cache.
const char *const kRecurrenceKernels = R"C(
#include <stdint.h>
#include <string.h>

typedef struct { float *allocated, *aligned; int64_t offset; int64_t sizes_strides[]; } Desc;
typedef struct { int64_t *allocated, *aligned; int64_t offset; int64_t sizes_strides[]; } IDesc;
#define F(i) (((const Desc *)args[i])->aligned)
#define I(i) (((const IDesc *)args[i])->aligned)
#define SIZE(i, d) (((const Desc *)args[i])->sizes_strides[d])

/* Turns the pairs (2i, 2i+1) of x by `position` times the angle whose tangent
   of the half is t = 0.15 / (i + 1) (cos and sin as rationals of t). */
static void rope(const float *x, float *out, int64_t K, int64_t position) {
  for (int64_t i = 0; i < K / 2; ++i) {
    float t = 0.15f / (float)(i + 1), c = (1 - t * t) / (1 + t * t), s = 2 * t / (1 + t * t);
    float a = x[2 * i], b = x[2 * i + 1];
    for (int64_t p = 0; p < position; ++p) {
      float turned = c * a - s * b;
      b = s * a + c * b;
      a = turned;
    }
    out[2 * i] = a;
    out[2 * i + 1] = b;
  }
}

/* One token of one head. z and c are NULL for `plain`. */
static void token(float *S, float *z, float *c, const float *q, const float *k, const float *v,
                  float dt, float A, int64_t position, int64_t K, int64_t V, float *o) {
  float qr[64], kr[64];
  for (int64_t i = 0; i < K; ++i) { qr[i] = q[i]; kr[i] = k[i]; }
  float a = 0.9f;
  if (c) {
    rope(q, qr, K, position);
    rope(k, kr, K, position);
    float previous = *c;
    *c = previous + dt * A;
    a = previous / *c;
  }
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < V; ++j) S[i * V + j] = a * S[i * V + j] + kr[i] * v[j];
  float denominator = 1.0f;
  if (z) {
    denominator = 1e-6f;
    for (int64_t i = 0; i < K; ++i) { z[i] = a * z[i] + kr[i]; denominator += z[i] * qr[i]; }
  }
  for (int64_t j = 0; j < V; ++j) {
    float sum = 0;
    for (int64_t i = 0; i < K; ++i) sum += S[i * V + j] * qr[i];
    o[j] = sum / denominator;
  }
}

/* Runs tokens [first, end) of batch row `row`, head h, from position `start`. */
static void run(void **args, int full, int64_t row, int64_t h, int64_t first, int64_t end,
                int64_t start, float *S, float *z, float *c, int o) {
  int64_t T = SIZE(0, 1), H = SIZE(0, 2), K = SIZE(0, 3), V = SIZE(2, 3);
  for (int64_t t = first; t < end; ++t) {
    int64_t at = (row * T + t) * H + h;
    token(S, z, c, F(0) + at * K, F(1) + at * K, F(2) + at * V, full ? F(5)[at] : 0,
          full ? F(6)[h] : 0, start + t - first, K, V, F(o) + at * V);
  }
}

/* Forward. full: q k v h0 seqs dt A norm_h0 scan_c_h0 | o ht norm_ht scan_c_ht;
   plain: q k v h0 seqs | o ht. */
static void forward(void **args, int full) {
  int64_t H = SIZE(0, 2), K = SIZE(0, 3), V = SIZE(2, 3);
  int64_t N = ((const IDesc *)args[4])->sizes_strides[0];
  int o = full ? 9 : 5, ht = full ? 10 : 6;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t *seq = I(4) + 3 * n;
    for (int64_t h = 0; h < H; ++h) {
      int64_t state = n * H + h;
      float *S = F(ht) + state * K * V, *z = 0, *c = 0;
      for (int64_t i = 0; i < K * V; ++i) S[i] = F(3)[state * K * V + i];
      if (full) {
        z = F(11) + state * K;
        for (int64_t i = 0; i < K; ++i) z[i] = F(7)[state * K + i];
        c = F(12) + state;
        *c = F(8)[state];
      }
      run(args, full, seq[0], h, seq[1], seq[2], 0, S, z, c, o);
    }
  }
}

/* Step. full: q k v slots positions dt A state norm_state scan_c_state | o;
   plain: q k v slots positions state | o. */
static void step(void **args, int full) {
  int64_t B = SIZE(0, 0), T = SIZE(0, 1), H = SIZE(0, 2), K = SIZE(0, 3), V = SIZE(2, 3);
  int cache = full ? 7 : 5;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      int64_t state = I(3)[b] * H + h;
      float *z = full ? F(8) + state * K : 0, *c = full ? F(9) + state : 0;
      run(args, full, b, h, 0, T, I(4)[b], F(cache) + state * K * V, z, c, full ? 10 : 6);
    }
}

/* bf16 bits nearest to x (ties to even; NaN kept quiet), and back. */
static uint16_t to_bf16(float x) {
  uint32_t bits;
  memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}
static float from_bf16(uint16_t half) {
  uint32_t bits = (uint32_t)half << 16;
  float x;
  memcpy(&x, &bits, 4);
  return x;
}

/* The step of `full` with a bf16 state cache: per token, the slot's state
   widened to f32, advanced, and stored back rounded to nearest even. */
void fake_full_step_bf16(void **args) {
  int64_t B = SIZE(0, 0), T = SIZE(0, 1), H = SIZE(0, 2), K = SIZE(0, 3), V = SIZE(2, 3);
  float S[64 * 64];
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      int64_t state = I(3)[b] * H + h;
      uint16_t *cache = (uint16_t *)F(7) + state * K * V;
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < K * V; ++i) S[i] = from_bf16(cache[i]);
        run(args, 1, b, h, t, t + 1, I(4)[b] + t, S, F(8) + state * K, F(9) + state, 10);
        for (int64_t i = 0; i < K * V; ++i) cache[i] = to_bf16(S[i]);
      }
    }
}

void fake_full_forward(void **args) { forward(args, 1); }
void fake_full_step(void **args) { step(args, 1); }
void fake_plain_forward(void **args) { forward(args, 0); }
void fake_plain_step(void **args) { step(args, 0); }
)C";

constexpr int64_t kH = 2, kK = 4, kV = 3, kSlots = 4;

/// A CPU kernel item.
json cpuKernel(const char *entry, const std::string &symbol, const json &arguments) {
  return {{"entry", entry},  {"target", "cpu"},     {"symbol", symbol},
          {"cpu", "native"}, {"threads", "openmp"}, {"arguments", arguments}};
}

/// The manifest of a package with forward and step kernels; `name` renames
/// its spec (the kernels stay those of `full` or `plain`).
json recurrenceManifest(bool full, const std::string &name = "", double scanInit = 0.5) {
  std::string kind = full ? "full" : "plain";
  return {{"format", "decayc-package"},
          {"version", 1},
          {"spec", recurrenceSpec(name.empty() ? kind : name, full, scanInit)},
          {"kernels",
           {cpuKernel("forward", "fake_" + kind + "_forward", recurrenceForwardArguments(full)),
            cpuKernel("step", "fake_" + kind + "_step", recurrenceStepArguments(full))}}};
}

PackageTemplate &recurrenceKernels() {
  static PackageTemplate kernels(kRecurrenceKernels);
  return kernels;
}

/// Deterministic values in [low, high).
std::vector<float> values(size_t count, uint32_t seed, float low = -1.0f, float high = 1.0f) {
  std::vector<float> out(count);
  uint32_t state = seed * 2654435761u + 12345u;
  for (float &x : out) {
    state = state * 1664525u + 1013904223u;
    x = low + (high - low) * static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
  }
  return out;
}

/// The per-token inputs of one sequence of L tokens: q [L,H,K], k, v [L,H,V], dt [L,H].
struct Sequence {
  int64_t L;
  std::vector<float> q, k, v, dt;
  Sequence(int64_t length, uint32_t seed)
      : L(length), q(values(L * kH * kK, seed)), k(values(L * kH * kK, seed + 1)),
        v(values(L * kH * kV, seed + 2)), dt(values(L * kH, seed + 3, 0.1f, 1.0f)) {}
};

constexpr float kSentinel = 42.0f;

/// The tensors of one call: per row a slice [first, first + T) of a sequence,
/// gathered into q [rows,T,H,K], k, v, dt [rows,T,H], with A [H] and o
/// [rows,T,H,V] (filled with kSentinel).
struct Batch {
  int64_t rows, T;
  std::vector<int64_t> qShape, vShape, dtShape, aShape{kH};
  std::vector<float> q, k, v, dt, A{0.7f, 1.3f}, o;

  Batch(const std::vector<std::pair<const Sequence *, int64_t>> &slices, int64_t tokens)
      : rows(static_cast<int64_t>(slices.size())),
        T(tokens), qShape{rows, T, kH, kK}, vShape{rows, T, kH, kV}, dtShape{rows, T, kH},
        o(rows * T * kH * kV, kSentinel) {
    for (const auto &[sequence, first] : slices) {
      gather(sequence->q, first, kH * kK, q);
      gather(sequence->k, first, kH * kK, k);
      gather(sequence->v, first, kH * kV, v);
      gather(sequence->dt, first, kH, dt);
    }
  }
  Batch(const Batch &) = delete;

  void gather(const std::vector<float> &from, int64_t first, int64_t perToken,
              std::vector<float> &to) {
    to.insert(to.end(), from.begin() + first * perToken, from.begin() + (first + T) * perToken);
  }

  /// q, k, v, o, and for `full` dt and A.
  std::vector<decayrt_tensor> tensors(bool full) {
    std::vector<decayrt_tensor> list = {view("q", q, qShape), view("k", k, qShape),
                                        view("v", v, vShape), view("o", o, vShape)};
    if (full) {
      list.push_back(view("dt", dt, dtShape));
      list.push_back(view("A", A, aShape));
    }
    return list;
  }

  /// o of row r, token t: V values.
  std::vector<float> output(int64_t r, int64_t t) const {
    auto at = o.begin() + ((r * T + t) * kH) * kV;
    return std::vector<float>(at, at + kH * kV);
  }
  bool untouched() const {
    for (float x : o)
      if (x != kSentinel)
        return false;
    return true;
  }
};

/// What a forward from the empty state returns: o [T,H,V] and the final
/// states ht [H,K,V], norm_ht [H,K], scan_c_ht [H] (those two for `full`).
struct ForwardRun {
  std::vector<float> o, ht, zt, ct;
};

/// The forward over the first `count` tokens of `sequence` from the empty state.
ForwardRun forwardRun(decayrt_package *package, bool full, const Sequence &sequence,
                      int64_t count) {
  Batch batch({{&sequence, 0}}, count);
  std::vector<int64_t> hShape{1, kH, kK, kV}, zShape{1, kH, kK}, cShape{1, kH};
  ForwardRun run{{}, std::vector<float>(kH * kK * kV), std::vector<float>(kH * kK),
                 std::vector<float>(kH)};
  std::vector<decayrt_tensor> tensors = batch.tensors(full);
  tensors.push_back(view("ht", run.ht, hShape));
  if (full) {
    tensors.push_back(view("norm_ht", run.zt, zShape));
    tensors.push_back(view("scan_c_ht", run.ct, cShape));
  }
  EXPECT_EQ(decayrt_run(package, "forward", tensors.data(), tensors.size()), DECAYRT_OK)
      << decayrt_last_error();
  run.o = batch.o;
  return run;
}

/// The outputs of a forward over a whole sequence from the empty state:
/// L * H * V values.
std::vector<float> forwardOutputs(decayrt_package *package, bool full, const Sequence &sequence) {
  return forwardRun(package, full, sequence, sequence.L).o;
}

/// The outputs of tokens [first, first + count) of a forward's outputs.
std::vector<float> tokens(const std::vector<float> &outputs, int64_t first, int64_t count = 1) {
  return std::vector<float>(outputs.begin() + first * kH * kV,
                            outputs.begin() + (first + count) * kH * kV);
}

/// The saved bytes of `slot` (its states and position).
std::vector<unsigned char> saveSlot(decayrt_decoder *decoder, int64_t slot) {
  size_t size = 0;
  EXPECT_EQ(decayrt_decoder_save(decoder, slot, nullptr, 0, &size), DECAYRT_OK);
  std::vector<unsigned char> bytes(size);
  EXPECT_EQ(decayrt_decoder_save(decoder, slot, bytes.data(), size, &size), DECAYRT_OK);
  return bytes;
}

/// The saved bytes of every slot of a decoder of kSlots slots: what must not
/// change when a call fails.
std::vector<std::vector<unsigned char>> snapshot(decayrt_decoder *decoder) {
  std::vector<std::vector<unsigned char>> slots;
  for (int64_t slot = 0; slot < kSlots; ++slot)
    slots.push_back(saveSlot(decoder, slot));
  return slots;
}

int64_t positionOf(decayrt_decoder *decoder, int64_t slot) {
  int64_t position = -1;
  EXPECT_EQ(decayrt_decoder_position(decoder, slot, &position), DECAYRT_OK);
  return position;
}

/// Expects `status` with a one-line message holding `fragment`.
void expectError(decayrt_status got, decayrt_status expected, const std::string &fragment) {
  EXPECT_EQ(got, expected) << decayrt_status_name(got) << ": " << decayrt_last_error();
  std::string message = decayrt_last_error();
  EXPECT_TRUE(contains(message, fragment));
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

// ---- Fixture ----

/// Loads the full and plain packages (built once per suite) and a decoder of each.
class Decoding : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    directory = new TempDir;
    fullPath =
        new std::string(recurrenceKernels().build(*directory, recurrenceManifest(true).dump()));
    plainPath =
        new std::string(recurrenceKernels().build(*directory, recurrenceManifest(false).dump()));
  }
  static void TearDownTestSuite() {
    delete fullPath;
    delete plainPath;
    delete directory;
  }

  void SetUp() override {
    ASSERT_EQ(decayrt_package_load(fullPath->c_str(), &full), DECAYRT_OK) << decayrt_last_error();
    ASSERT_EQ(decayrt_package_load(plainPath->c_str(), &plain), DECAYRT_OK) << decayrt_last_error();
    ASSERT_EQ(decayrt_decoder_create(full, kSlots, kH, kK, kV, &decoder), DECAYRT_OK)
        << decayrt_last_error();
  }
  void TearDown() override {
    decayrt_decoder_free(decoder);
    decayrt_package_free(full);
    decayrt_package_free(plain);
  }

  /// Loads a package with this manifest (kept until the test ends).
  decayrt_package *loadManifest(const json &manifest) {
    std::string path = recurrenceKernels().build(*directory, manifest.dump());
    decayrt_package *package = nullptr;
    EXPECT_EQ(decayrt_package_load(path.c_str(), &package), DECAYRT_OK) << decayrt_last_error();
    extra.emplace_back(package);
    return package;
  }

  /// A decoder of `slots` slots on `package` (freed when the test ends).
  decayrt_decoder *decoderOn(decayrt_package *package, int64_t slots) {
    decayrt_decoder *made = nullptr;
    EXPECT_EQ(decayrt_decoder_create(package, slots, kH, kK, kV, &made), DECAYRT_OK)
        << decayrt_last_error();
    decoders.emplace_back(made);
    return made;
  }

  /// Prefills tokens [first, first + count) of `sequence` into `slot`; the outputs.
  std::vector<float> prefill(decayrt_decoder *into, int64_t slot, const Sequence &sequence,
                             int64_t first, int64_t count, bool isFull = true) {
    Batch batch({{&sequence, first}}, count);
    std::vector<decayrt_tensor> tensors = batch.tensors(isFull);
    EXPECT_EQ(decayrt_decoder_prefill(into, slot, tensors.data(), tensors.size()), DECAYRT_OK)
        << decayrt_last_error();
    return batch.o;
  }

  /// One step of rows (slot, sequence, token); the outputs, row after row.
  std::vector<std::vector<float>>
  step(decayrt_decoder *into,
       const std::vector<std::tuple<int64_t, const Sequence *, int64_t>> &rows,
       bool isFull = true) {
    std::vector<int64_t> slots;
    std::vector<std::pair<const Sequence *, int64_t>> slices;
    for (const auto &[slot, sequence, t] : rows) {
      slots.push_back(slot);
      slices.push_back({sequence, t});
    }
    Batch batch(slices, 1);
    std::vector<decayrt_tensor> tensors = batch.tensors(isFull);
    EXPECT_EQ(
        decayrt_decoder_step(into, slots.data(), slots.size(), tensors.data(), tensors.size()),
        DECAYRT_OK)
        << decayrt_last_error();
    std::vector<std::vector<float>> outputs;
    for (int64_t r = 0; r < batch.rows; ++r)
      outputs.push_back(batch.output(r, 0));
    return outputs;
  }

  struct PackageDeleter {
    void operator()(decayrt_package *package) const { decayrt_package_free(package); }
  };
  struct DecoderDeleter {
    void operator()(decayrt_decoder *made) const { decayrt_decoder_free(made); }
  };

  static TempDir *directory;
  static std::string *fullPath, *plainPath;
  decayrt_package *full = nullptr, *plain = nullptr;
  decayrt_decoder *decoder = nullptr;
  std::vector<std::unique_ptr<decayrt_package, PackageDeleter>> extra;
  std::vector<std::unique_ptr<decayrt_decoder, DecoderDeleter>> decoders; ///< freed before `extra`
};

TempDir *Decoding::directory = nullptr;
std::string *Decoding::fullPath = nullptr, *Decoding::plainPath = nullptr;

} // namespace

// ---- The step entry through decayrt_run ----

/// The state caches of `full` for kSlots slots, `state` of element type
/// State (float, or uint16_t for bf16 bits), as a direct step call takes them.
template <typename State> struct StepCaches {
  std::vector<int64_t> stateShape{kSlots, kH, kK, kV}, normShape{kSlots, kH, kK},
      scanShape{kSlots, kH};
  std::vector<State> state;
  std::vector<float> norm, scan;

  StepCaches(std::vector<State> state, std::vector<float> norm, std::vector<float> scan)
      : state(std::move(state)), norm(std::move(norm)), scan(std::move(scan)) {}

  /// Appends slots and positions [rows] and the caches to `list`.
  void append(std::vector<decayrt_tensor> &list, std::vector<int64_t> &slots,
              std::vector<int64_t> &positions, const std::vector<int64_t> &rowShape) {
    for (decayrt_tensor tensor :
         {view("slots", slots, rowShape), view("positions", positions, rowShape),
          view("state", state, stateShape), view("norm_state", norm, normShape),
          view("scan_c_state", scan, scanShape)})
      list.push_back(tensor);
  }
};

/// The tensors of a direct step call on caches of kSlots slots.
struct StepCall : StepCaches<float> {
  Sequence first{3, 10}, second{3, 20};
  Batch batch{{{&first, 0}, {&second, 0}}, 3};
  std::vector<int64_t> slots{2, 0}, positions{0, 0}, rowShape{2};
  std::vector<float> state0 = state, norm0 = norm, scan0 = scan;

  StepCall()
      : StepCaches(values(kSlots * kH * kK * kV, 7), values(kSlots * kH * kK, 8),
                   values(kSlots * kH, 9, 0.5f, 1.0f)) {}

  std::vector<decayrt_tensor> tensors() {
    std::vector<decayrt_tensor> list = batch.tensors(true);
    append(list, slots, positions, rowShape);
    return list;
  }
  bool untouched() const {
    return batch.untouched() && state == state0 && norm == norm0 && scan == scan0;
  }
};

decayrt_tensor *named(std::vector<decayrt_tensor> &tensors, const std::string &name) {
  for (decayrt_tensor &tensor : tensors)
    if (name == tensor.name)
      return &tensor;
  ADD_FAILURE() << "no tensor " << name;
  return &tensors[0];
}

TEST_F(Decoding, StepEntryAdvancesTheRowsSlotsLikeAForward) {
  StepCall call;
  call.positions = {0, 0};
  for (int64_t slot : {0, 2}) { // the two rows' slots start empty
    std::fill(call.state.begin() + slot * kH * kK * kV,
              call.state.begin() + (slot + 1) * kH * kK * kV, 0.0f);
    std::fill(call.norm.begin() + slot * kH * kK, call.norm.begin() + (slot + 1) * kH * kK, 0.0f);
    std::fill(call.scan.begin() + slot * kH, call.scan.begin() + (slot + 1) * kH, 0.5f);
  }
  std::vector<float> before = call.state;
  std::vector<decayrt_tensor> tensors = call.tensors();
  ASSERT_EQ(decayrt_run(full, "step", tensors.data(), tensors.size()), DECAYRT_OK)
      << decayrt_last_error();
  std::vector<float> first = forwardOutputs(full, true, call.first);
  std::vector<float> second = forwardOutputs(full, true, call.second);
  for (int64_t t = 0; t < 3; ++t) {
    EXPECT_EQ(call.batch.output(0, t), tokens(first, t));
    EXPECT_EQ(call.batch.output(1, t), tokens(second, t));
  }
  int64_t perSlot = kH * kK * kV;
  for (int64_t slot : {1, 3}) // slots of no row are untouched
    EXPECT_TRUE(std::equal(before.begin() + slot * perSlot, before.begin() + (slot + 1) * perSlot,
                           call.state.begin() + slot * perSlot));
  EXPECT_NE(call.state, before);
}

TEST_F(Decoding, StepEntryPositionsOffsetTheRope) {
  StepCall call, later;
  later.positions = {5, 0};
  std::vector<decayrt_tensor> a = call.tensors(), b = later.tensors();
  ASSERT_EQ(decayrt_run(full, "step", a.data(), a.size()), DECAYRT_OK);
  ASSERT_EQ(decayrt_run(full, "step", b.data(), b.size()), DECAYRT_OK);
  EXPECT_NE(call.batch.output(0, 0), later.batch.output(0, 0));
  EXPECT_EQ(call.batch.output(1, 2), later.batch.output(1, 2));
}

TEST_F(Decoding, StepEntryChecksEverythingBeforeWriting) {
  struct Case {
    const char *what;
    std::function<void(StepCall &, std::vector<decayrt_tensor> &)> mutate;
    decayrt_status status;
    std::string fragment;
  };
  std::vector<float> big(kSlots * kH * kK * kV * 4);
  std::vector<double> wide(kSlots * kH * kK * kV);
  std::vector<int32_t> narrow(2);
  std::vector<int64_t> cuShape{2}, narrowShape{2};
  std::vector<Case> cases = {
      {"slot out of range",
       [](StepCall &c, auto &) {
         c.slots = {2, 9};
       },
       DECAYRT_ERROR_INVALID_ARGUMENT,
       "tensor 'slots': slots[1] = 9 is not a slot of state [4, 2, 4, 3]"},
      {"negative slot",
       [](StepCall &c, auto &) {
         c.slots = {-1, 0};
       },
       DECAYRT_ERROR_INVALID_ARGUMENT, "slots[0] = -1 is not a slot"},
      {"duplicate slots",
       [](StepCall &c, auto &) {
         c.slots = {3, 3};
       },
       DECAYRT_ERROR_INVALID_ARGUMENT, "tensor 'slots': slot 3 is used by rows 0 and 1"},
      {"negative position",
       [](StepCall &c, auto &) {
         c.positions = {0, -4};
       },
       DECAYRT_ERROR_INVALID_ARGUMENT, "tensor 'positions': positions[1] = -4 is negative"},
      {"position overflows",
       [](StepCall &c, auto &) {
         c.positions = {INT64_MAX - 1, 0};
       },
       DECAYRT_ERROR_INVALID_ARGUMENT, "overflows when advanced by T = 3"},
      {"missing state", [](StepCall &, auto &t) { t.erase(t.end() - 3); },
       DECAYRT_ERROR_MISSING_TENSOR, "missing tensor 'state': expected shape [S, H, K, V]"},
      {"missing norm state", [](StepCall &, auto &t) { t.erase(t.end() - 2); },
       DECAYRT_ERROR_MISSING_TENSOR, "missing tensor 'norm_state': expected shape [4, 2, 4]"},
      {"missing scan state", [](StepCall &, auto &t) { t.pop_back(); },
       DECAYRT_ERROR_MISSING_TENSOR, "missing tensor 'scan_c_state'"},
      {"missing slots", [](StepCall &, auto &t) { t.erase(t.end() - 5); },
       DECAYRT_ERROR_MISSING_TENSOR, "missing tensor 'slots'"},
      {"state of another H",
       [](StepCall &c, auto &t) {
         c.stateShape = {kSlots, kH + 1, kK, kV};
         named(t, "state")->shape = c.stateShape.data();
       },
       DECAYRT_ERROR_SHAPE, "tensor 'state': expected shape [4, 2, 4, 3]"},
      {"state of rank 3", [](StepCall &, auto &t) { named(t, "state")->rank = 3; },
       DECAYRT_ERROR_SHAPE, "tensor 'state': expected shape [S, H, K, V], got [4, 2, 4]"},
      {"norm state of other slots",
       [](StepCall &c, auto &t) {
         c.normShape = {kSlots - 1, kH, kK};
         named(t, "norm_state")->shape = c.normShape.data();
       },
       DECAYRT_ERROR_SHAPE, "tensor 'norm_state': expected shape [4, 2, 4]"},
      {"state f64",
       [&wide](StepCall &, auto &t) {
         *named(t, "state") = decayrt_tensor{
             "state", wide.data(), DECAYRT_F64, 4, named(t, "state")->shape, nullptr};
       },
       DECAYRT_ERROR_DTYPE, "tensor 'state': expected dtype f32, got f64"},
      {"slots i32",
       [&narrow, &narrowShape](StepCall &, auto &t) {
         *named(t, "slots") =
             decayrt_tensor{"slots", narrow.data(), DECAYRT_I32, 1, narrowShape.data(), nullptr};
       },
       DECAYRT_ERROR_DTYPE, "tensor 'slots': expected dtype i64, got i32"},
      {"slots of another batch",
       [](StepCall &c, auto &t) {
         c.rowShape = {3};
         c.slots = {0, 1, 2};
         c.positions = {0, 0, 0};
         named(t, "slots")->data = c.slots.data();
         named(t, "positions")->data = c.positions.data();
       },
       DECAYRT_ERROR_SHAPE, "tensor 'slots': expected shape [2]"},
      {"state aliases o", [](StepCall &c, auto &t) { named(t, "o")->data = c.state.data(); },
       DECAYRT_ERROR_ALIASING, "inout tensor 'state' overlaps output 'o'"},
      {"state aliases q",
       [&big](StepCall &, auto &t) {
         named(t, "q")->data = big.data();
         named(t, "state")->data = big.data() + 8;
       },
       DECAYRT_ERROR_ALIASING, "inout tensor 'state' overlaps tensor 'q'"},
      {"norm state aliases state",
       [](StepCall &c, auto &t) { named(t, "norm_state")->data = c.state.data() + 4; },
       DECAYRT_ERROR_ALIASING, "inout tensor 'state' overlaps inout tensor 'norm_state'"},
      {"cu_seqlens",
       [&narrow, &cuShape](StepCall &, auto &t) {
         t.push_back(
             decayrt_tensor{"cu_seqlens", narrow.data(), DECAYRT_I32, 1, cuShape.data(), nullptr});
       },
       DECAYRT_ERROR_UNKNOWN_TENSOR, "unknown tensor 'cu_seqlens': the step of @full takes q, k"},
      {"h0", [](StepCall &c, auto &t) { t.push_back(view("h0", c.state, c.stateShape)); },
       DECAYRT_ERROR_UNKNOWN_TENSOR, "unknown tensor 'h0'"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    StepCall call;
    std::vector<decayrt_tensor> tensors = call.tensors();
    c.mutate(call, tensors);
    expectError(decayrt_run(full, "step", tensors.data(), tensors.size()), c.status, c.fragment);
    EXPECT_TRUE(call.untouched());
  }
}

TEST_F(Decoding, StepEntryRunsWithoutRowsAndNamesTheEntryWhenMissing) {
  Sequence none(0, 1);
  Batch batch({}, 1);
  std::vector<int64_t> rowShape{0}, slots, positions;
  std::vector<int64_t> stateShape{kSlots, kH, kK, kV};
  std::vector<float> state(kSlots * kH * kK * kV, 1.0f);
  std::vector<decayrt_tensor> tensors = batch.tensors(false);
  tensors.push_back(view("slots", slots, rowShape));
  tensors.push_back(view("positions", positions, rowShape));
  tensors.push_back(view("state", state, stateShape));
  EXPECT_EQ(decayrt_run(plain, "step", tensors.data(), tensors.size()), DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_EQ(state, std::vector<float>(state.size(), 1.0f));
  expectError(decayrt_run(plain, "decode", tensors.data(), tensors.size()),
              DECAYRT_ERROR_INVALID_ARGUMENT, "expected \"forward\", \"backward\" or \"step\"");
}

// ---- Step kernels in the manifest ----

TEST_F(Decoding, MalformedStepManifestsAreRejected) {
  using Mutation = std::function<void(json &)>;
  auto stepArgs = [](json &m) -> json & { return m["kernels"][1]["arguments"]; };
  auto forwardArgs = [](json &m) -> json & { return m["kernels"][0]["arguments"]; };
  std::vector<std::tuple<const char *, std::string, Mutation>> cases = {
      {"unknown entry", "kernels[1].entry: expected \"forward\", \"backward\" or \"step\"",
       [](json &m) { m["kernels"][1]["entry"] = "decode"; }},
      {"step with seqs", "kernels[1].arguments: a step kernel has no argument of role sequences",
       [&](json &m) {
         stepArgs(m).insert(stepArgs(m).begin() + 5, argument("seqs", "N3", "sequences", "i64"));
       }},
      {"step without slots", "takes inputs slots and positions",
       [&](json &m) { stepArgs(m).erase(3); }},
      {"positions f32", "kernels[1].arguments[4].dtype: 'positions' (dims B) is i64",
       [&](json &m) { stepArgs(m)[4]["dtype"] = "f32"; }},
      {"step without state", "the inout state cache 'state'",
       [&](json &m) { stepArgs(m)[7]["name"] = "cache_state"; }},
      {"inout in a forward",
       "kernels[0].arguments[10].role: role inout belongs to step kernels only",
       [&](json &m) { forwardArgs(m)[10]["role"] = "inout"; }},
      {"S in an input", "kernels[1].arguments[5].dims",
       [&](json &m) { stepArgs(m)[5]["dims"] = "SH"; }},
      {"inout without S", "kernels[1].arguments[8].dims",
       [&](json &m) { stepArgs(m)[8]["dims"] = "BHK"; }},
      {"N in a step", "a step kernel has no sequences (N)",
       [&](json &m) { stepArgs(m)[9]["dims"] = "SN"; }},
      {"f64 argument", "kernels[1].arguments[0].dtype: dtype f64 is not a kernel argument's",
       [&](json &m) { stepArgs(m)[0]["dtype"] = "f64"; }},
      {"i64 input", "kernels[1].arguments[5].dtype: only the sequence table",
       [&](json &m) { stepArgs(m)[5]["dtype"] = "i64"; }},
      {"bf16 norm state",
       "kernels[1].arguments[8].dtype: state caches are f32 (only 'state' may be bf16), got bf16 "
       "for 'norm_state'",
       [&](json &m) { stepArgs(m)[8]["dtype"] = "bf16"; }},
      {"bf16 scan state", "got bf16 for 'scan_c_state'",
       [&](json &m) { stepArgs(m)[9]["dtype"] = "bf16"; }},
      {"optional in a step", "a step kernel has no optional arguments",
       [&](json &m) { stepArgs(m)[5]["optional"] = true; }},
      {"unused state", "cannot be unused", [&](json &m) { stepArgs(m)[8]["unused"] = true; }},
      {"oddly named cache", "inout argument 'zz' is not named state or <name>_state",
       [&](json &m) { stepArgs(m)[9]["name"] = "zz"; }},
  };
  for (const auto &[what, fragment, mutate] : cases) {
    SCOPED_TRACE(what);
    json manifest = recurrenceManifest(true);
    mutate(manifest);
    std::string path = recurrenceKernels().build(*directory, manifest.dump());
    ASSERT_FALSE(path.empty());
    expectLoadFailure(path, fragment);
  }
}

// ---- The decoder ----

TEST_F(Decoding, PrefillThenStepsEqualOneForward) {
  Sequence sequence(12, 30);
  std::vector<float> expected = forwardOutputs(full, true, sequence);
  EXPECT_EQ(prefill(decoder, 1, sequence, 0, 5), tokens(expected, 0, 5));
  EXPECT_EQ(positionOf(decoder, 1), 5);
  // Recurrent mode: a second prompt into a slot that holds tokens runs the step kernel.
  EXPECT_EQ(prefill(decoder, 1, sequence, 5, 4), tokens(expected, 5, 4));
  EXPECT_EQ(positionOf(decoder, 1), 9);
  for (int64_t t = 9; t < 12; ++t) {
    EXPECT_EQ(step(decoder, {{1, &sequence, t}})[0], tokens(expected, t)) << "token " << t;
    EXPECT_EQ(positionOf(decoder, 1), t + 1);
  }
  for (int64_t slot : {0, 2, 3})
    EXPECT_EQ(positionOf(decoder, slot), 0);
}

TEST_F(Decoding, PlainPackageDecodesWithTheStateAlone) {
  decayrt_decoder *plainDecoder = nullptr;
  ASSERT_EQ(decayrt_decoder_create(plain, 2, kH, kK, kV, &plainDecoder), DECAYRT_OK)
      << decayrt_last_error();
  Sequence sequence(6, 40);
  std::vector<float> expected = forwardOutputs(plain, false, sequence);
  EXPECT_EQ(prefill(plainDecoder, 0, sequence, 0, 2, false), tokens(expected, 0, 2));
  for (int64_t t = 2; t < 6; ++t)
    EXPECT_EQ(step(plainDecoder, {{0, &sequence, t}}, false)[0], tokens(expected, t));
  size_t size = 0;
  ASSERT_EQ(decayrt_decoder_save(plainDecoder, 0, nullptr, 0, &size), DECAYRT_OK);
  size_t header = 8 + 4 + (4 + 5) + 4 + 8 * 4 + 4; // magic, version, "plain", recurrence, sizes
  // state: name "state", dtype "f32", n, n f32 values; then the checksum.
  size_t recurrenceLength = size - header - (4 + 5 + 4 + 3 + 8 + 4 * kH * kK * kV) - 8;
  EXPECT_GT(recurrenceLength, 0u);
  EXPECT_LT(recurrenceLength, 200u);
  decayrt_decoder_free(plainDecoder);
}

TEST_F(Decoding, ContinuousBatchingKeepsEverySequenceAsAlone) {
  Sequence a(8, 50), b(8, 60), c(8, 70);
  std::vector<float> ea = forwardOutputs(full, true, a), eb = forwardOutputs(full, true, b),
                     ec = forwardOutputs(full, true, c);
  EXPECT_EQ(prefill(decoder, 3, a, 0, 3), tokens(ea, 0, 3));
  EXPECT_EQ(prefill(decoder, 0, b, 0, 1), tokens(eb, 0, 1));
  std::vector<unsigned char> idle = saveSlot(decoder, 2);
  auto outputs = step(decoder, {{0, &b, 1}, {3, &a, 3}});
  EXPECT_EQ(outputs[0], tokens(eb, 1));
  EXPECT_EQ(outputs[1], tokens(ea, 3));
  // c joins in slot 1; a sits one step out.
  EXPECT_EQ(prefill(decoder, 1, c, 0, 4), tokens(ec, 0, 4));
  outputs = step(decoder, {{1, &c, 4}, {0, &b, 2}});
  EXPECT_EQ(outputs[0], tokens(ec, 4));
  EXPECT_EQ(outputs[1], tokens(eb, 2));
  outputs = step(decoder, {{3, &a, 4}, {1, &c, 5}, {0, &b, 3}});
  EXPECT_EQ(outputs[0], tokens(ea, 4));
  EXPECT_EQ(outputs[1], tokens(ec, 5));
  EXPECT_EQ(outputs[2], tokens(eb, 3));
  // b leaves; its slot is reset and a fresh copy of a starts in it.
  ASSERT_EQ(decayrt_decoder_reset(decoder, 0), DECAYRT_OK);
  EXPECT_EQ(positionOf(decoder, 0), 0);
  EXPECT_EQ(prefill(decoder, 0, a, 0, 5), tokens(ea, 0, 5));
  outputs = step(decoder, {{0, &a, 5}, {3, &a, 5}});
  EXPECT_EQ(outputs[0], tokens(ea, 5));
  EXPECT_EQ(outputs[1], tokens(ea, 5));
  EXPECT_EQ(positionOf(decoder, 0), 6);
  EXPECT_EQ(positionOf(decoder, 1), 6);
  EXPECT_EQ(positionOf(decoder, 3), 6);
  EXPECT_EQ(saveSlot(decoder, 2), idle);
  std::vector<int64_t> none;
  Batch empty({}, 1);
  std::vector<decayrt_tensor> tensors = empty.tensors(true);
  std::vector<std::vector<unsigned char>> before = snapshot(decoder);
  EXPECT_EQ(decayrt_decoder_step(decoder, none.data(), 0, tensors.data(), tensors.size()),
            DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_EQ(snapshot(decoder), before);
}

TEST_F(Decoding, ResetSlotStartsOver) {
  Sequence a(4, 80), b(4, 90);
  std::vector<float> eb = forwardOutputs(full, true, b);
  std::vector<unsigned char> empty = saveSlot(decoder, 2);
  prefill(decoder, 2, a, 0, 4);
  EXPECT_NE(saveSlot(decoder, 2), empty);
  ASSERT_EQ(decayrt_decoder_reset(decoder, 2), DECAYRT_OK);
  EXPECT_EQ(saveSlot(decoder, 2), empty);
  EXPECT_EQ(prefill(decoder, 2, b, 0, 2), tokens(eb, 0, 2));
  EXPECT_EQ(step(decoder, {{2, &b, 2}})[0], tokens(eb, 2));
  expectError(decayrt_decoder_reset(decoder, kSlots), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_reset: slot 4 is not a slot of the decoder (it has 4: 0 to 3)");
}

TEST_F(Decoding, SavedSlotContinuesIdenticallyWhereRestored) {
  Sequence sequence(10, 100);
  std::vector<float> expected = forwardOutputs(full, true, sequence);
  prefill(decoder, 0, sequence, 0, 4);
  step(decoder, {{0, &sequence, 4}});
  std::vector<unsigned char> bytes = saveSlot(decoder, 0);
  ASSERT_EQ(decayrt_decoder_restore(decoder, 3, bytes.data(), bytes.size()), DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_EQ(positionOf(decoder, 3), 5);
  decayrt_decoder *other = nullptr;
  ASSERT_EQ(decayrt_decoder_create(full, 1, kH, kK, kV, &other), DECAYRT_OK);
  ASSERT_EQ(decayrt_decoder_restore(other, 0, bytes.data(), bytes.size()), DECAYRT_OK)
      << decayrt_last_error();
  for (int64_t t = 5; t < 10; ++t) {
    auto outputs = step(decoder, {{3, &sequence, t}, {0, &sequence, t}});
    EXPECT_EQ(outputs[0], tokens(expected, t));
    EXPECT_EQ(outputs[1], tokens(expected, t));
    EXPECT_EQ(step(other, {{0, &sequence, t}})[0], tokens(expected, t));
  }
  EXPECT_EQ(saveSlot(decoder, 3), saveSlot(decoder, 0));
  // The C++ wrapper saves and restores the same bytes.
  decayrt::Package package;
  ASSERT_EQ(package.load(*fullPath), DECAYRT_OK);
  decayrt::Decoder wrapped;
  ASSERT_EQ(wrapped.create(package, 2, kH, kK, kV), DECAYRT_OK) << decayrt_last_error();
  ASSERT_EQ(wrapped.restore(1, bytes), DECAYRT_OK) << decayrt_last_error();
  std::vector<unsigned char> again;
  ASSERT_EQ(wrapped.save(1, again), DECAYRT_OK);
  EXPECT_EQ(again, bytes);
  int64_t position = 0;
  EXPECT_EQ(wrapped.position(1, position), DECAYRT_OK);
  EXPECT_EQ(position, 5);
  decayrt_decoder_free(other);
}

TEST_F(Decoding, RestoreRejectsWhatIsNotThisDecodersStateAndKeepsTheSlot) {
  Sequence sequence(6, 110);
  prefill(decoder, 0, sequence, 0, 6);
  std::vector<unsigned char> good = saveSlot(decoder, 0);
  prefill(decoder, 1, sequence, 0, 2);
  std::vector<std::vector<unsigned char>> before = snapshot(decoder);
  auto expectRejected = [&](const std::vector<unsigned char> &bytes, const std::string &fragment) {
    expectError(decayrt_decoder_restore(decoder, 1, bytes.data(), bytes.size()),
                DECAYRT_ERROR_STATE, fragment);
    EXPECT_EQ(snapshot(decoder), before);
    EXPECT_EQ(positionOf(decoder, 1), 2);
  };
  for (size_t size : {size_t(0), size_t(5), size_t(8), size_t(11), size_t(30), good.size() / 2,
                      good.size() - 9, good.size() - 1}) {
    SCOPED_TRACE("truncated to " + std::to_string(size));
    std::vector<unsigned char> cut(good.begin(), good.begin() + static_cast<long>(size));
    expectRejected(cut, size < 8
                            ? "bad magic"
                            : "truncated state: " + std::to_string(size) + " bytes end inside the");
  }
  std::vector<unsigned char> bytes = good;
  bytes[0] = 'X';
  expectRejected(bytes, "bad magic");
  bytes = good;
  bytes[8] = 3;
  expectRejected(bytes, "format version 3, this decayrt reads versions 1 and 2");
  bytes = good;
  bytes.push_back(0);
  expectRejected(bytes, "1 bytes after the end of the state");
  bytes = good;
  bytes[good.size() - 12] ^= 1; // a value of the last state (then the 8-byte checksum)
  expectRejected(bytes, "checksum mismatch");

  // Another spec's name; the same spec with another scan init; other H, K, V.
  auto savedBy = [&](decayrt_package *package, int64_t heads, int64_t keyDim, int64_t valueDim) {
    decayrt_decoder *other = nullptr;
    EXPECT_EQ(decayrt_decoder_create(package, 1, heads, keyDim, valueDim, &other), DECAYRT_OK)
        << decayrt_last_error();
    std::vector<unsigned char> saved = saveSlot(other, 0);
    decayrt_decoder_free(other);
    return saved;
  };
  expectRejected(savedBy(loadManifest(recurrenceManifest(true, "other")), kH, kK, kV),
                 "the state is of spec @other, this decoder runs @full");
  expectRejected(savedBy(loadManifest(recurrenceManifest(true, "", 0.25)), kH, kK, kV),
                 "another recurrence @full: saved 'scans=c:0.25', this decoder's 'scans=c:0.5'");
  expectRejected(savedBy(loadManifest(recurrenceManifest(false, "full")), kH, kK, kV),
                 "saved 'granularity=constant_scalar', this decoder's 'granularity=scalar'");
  expectRejected(savedBy(full, kH + 1, kK, kV), "H, K, V = 3, 4, 3, this decoder 2, 4, 3");
  expectRejected(savedBy(full, kH, kK + 2, kV), "H, K, V = 2, 6, 3");
  expectRejected(savedBy(full, kH, kK, kV + 1), "H, K, V = 2, 4, 4");
  expectError(decayrt_decoder_restore(decoder, -1, good.data(), good.size()),
              DECAYRT_ERROR_INVALID_ARGUMENT, "slot -1 is not a slot");
  EXPECT_EQ(snapshot(decoder), before);
}

TEST_F(Decoding, SaveReportsTheSizeAndNeverOverflowsTheBuffer) {
  size_t size = 0;
  ASSERT_EQ(decayrt_decoder_save(decoder, 0, nullptr, 0, &size), DECAYRT_OK);
  std::vector<unsigned char> buffer(size + 4, 0xAB);
  size_t reported = 0;
  expectError(decayrt_decoder_save(decoder, 0, buffer.data(), size - 1, &reported),
              DECAYRT_ERROR_INVALID_ARGUMENT, "the buffer holds " + std::to_string(size - 1));
  EXPECT_EQ(reported, size);
  EXPECT_EQ(buffer, std::vector<unsigned char>(size + 4, 0xAB));
  ASSERT_EQ(decayrt_decoder_save(decoder, 0, buffer.data(), buffer.size(), &reported), DECAYRT_OK);
  EXPECT_EQ(reported, size);
  EXPECT_EQ(std::memcmp(buffer.data(), "DCYSTATE", 8), 0);
  EXPECT_EQ(buffer[size], 0xAB);
  // state [2,4,3] + norm [2,4] + scan [2] in f32, and more than the header.
  EXPECT_GT(size, (size_t)4 * (kH * kK * kV + kH * kK + kH));
}

TEST_F(Decoding, FailedStepsAndPrefillsChangeNoSlot) {
  Sequence a(6, 120), b(6, 130);
  prefill(decoder, 0, a, 0, 3);
  prefill(decoder, 2, b, 0, 2);
  std::vector<std::vector<unsigned char>> before = snapshot(decoder);
  auto stepFails = [&](std::vector<int64_t> slots,
                       std::function<void(Batch &, std::vector<decayrt_tensor> &)> mutate,
                       decayrt_status status, const std::string &fragment, size_t batchRows = 0) {
    std::vector<std::pair<const Sequence *, int64_t>> rows;
    for (size_t i = 0; i < (batchRows ? batchRows : slots.size()); ++i)
      rows.push_back({i % 2 ? &b : &a, 3});
    Batch batch(rows, 1);
    std::vector<decayrt_tensor> tensors = batch.tensors(true);
    mutate(batch, tensors);
    expectError(
        decayrt_decoder_step(decoder, slots.data(), slots.size(), tensors.data(), tensors.size()),
        status, fragment);
    EXPECT_TRUE(batch.untouched());
    EXPECT_EQ(snapshot(decoder), before);
  };
  auto keep = [](Batch &, std::vector<decayrt_tensor> &) {};
  std::vector<float> state(kSlots * kH * kK * kV);
  std::vector<int64_t> stateShape{kSlots, kH, kK, kV};
  stepFails({0, 7}, keep, DECAYRT_ERROR_INVALID_ARGUMENT,
            "decayrt_decoder_step: slots[1]: slot 7 is not a slot of the decoder");
  stepFails({2, 0, 2}, keep, DECAYRT_ERROR_INVALID_ARGUMENT,
            "slot 2 is in the batch twice (slots[0] and slots[2])");
  stepFails({0, 1, 2, 3, 0}, keep, DECAYRT_ERROR_INVALID_ARGUMENT,
            "a batch of 5 sequences, but the decoder has 4 slots");
  stepFails(
      {0, 2}, [](Batch &, auto &t) { t.erase(t.begin() + 3); }, DECAYRT_ERROR_MISSING_TENSOR,
      "missing output 'o'");
  stepFails(
      {0, 2}, [](Batch &, auto &t) { t.erase(t.begin() + 4); }, DECAYRT_ERROR_MISSING_TENSOR,
      "missing tensor 'dt'");
  stepFails(
      {0, 2}, [](Batch &x, auto &t) { t[3].data = x.q.data(); }, DECAYRT_ERROR_ALIASING,
      "output 'o' overlaps tensor 'q'");
  stepFails(
      {0, 2},
      [](Batch &x, auto &t) {
        x.qShape[1] = 2;
        t[0].shape = x.qShape.data();
      },
      DECAYRT_ERROR_SHAPE,
      "decayrt_decoder_step: tensor 'q': expected shape [2, 1, 2, 4] (2 sequences, one "
      "token, the decoder's H, K), got [2, 2, 2, 4]");
  stepFails(
      {0, 2},
      [](Batch &x, auto &t) {
        x.vShape[3] = 5;
        t[2].shape = x.vShape.data();
      },
      DECAYRT_ERROR_SHAPE, "tensor 'v': expected shape [2, 1, 2, 3]");
  stepFails({0}, keep, DECAYRT_ERROR_SHAPE, "tensor 'q': expected shape [1, 1, 2, 4]", 2);
  stepFails(
      {0, 2}, [&](Batch &, auto &t) { t.push_back(view("state", state, stateShape)); },
      DECAYRT_ERROR_UNKNOWN_TENSOR, "tensor 'state' is the decoder's own");
  stepFails(
      {0, 2}, [&](Batch &, auto &t) { t.push_back(view("positions", state, stateShape)); },
      DECAYRT_ERROR_UNKNOWN_TENSOR, "tensor 'positions' is the decoder's own");

  auto prefillFails = [&](int64_t slot, const Sequence &sequence, int64_t rows,
                          std::function<void(Batch &, std::vector<decayrt_tensor> &)> mutate,
                          decayrt_status status, const std::string &fragment) {
    std::vector<std::pair<const Sequence *, int64_t>> slices(rows, {&sequence, 0});
    Batch batch(slices, 2);
    std::vector<decayrt_tensor> tensors = batch.tensors(true);
    mutate(batch, tensors);
    expectError(decayrt_decoder_prefill(decoder, slot, tensors.data(), tensors.size()), status,
                fragment);
    EXPECT_TRUE(batch.untouched());
    EXPECT_EQ(snapshot(decoder), before);
  };
  std::vector<float> h(kH * kK * kV);
  std::vector<int64_t> hShape{1, kH, kK, kV};
  for (int64_t slot : {1, 0}) { // the forward path and the step path
    SCOPED_TRACE("slot " + std::to_string(slot));
    prefillFails(slot, a, 2, keep, DECAYRT_ERROR_SHAPE,
                 "decayrt_decoder_prefill: tensor 'q': expected shape [1, 2, 2, 4] (1 sequence, T "
                 "tokens, the decoder's H, K)");
    prefillFails(
        slot, a, 1, [&](Batch &, auto &t) { t.push_back(view("h0", h, hShape)); },
        DECAYRT_ERROR_UNKNOWN_TENSOR, "tensor 'h0' is the decoder's own");
    prefillFails(
        slot, a, 1, [&](Batch &, auto &t) { t.push_back(view("scan_c_ht", h, hShape)); },
        DECAYRT_ERROR_UNKNOWN_TENSOR, "tensor 'scan_c_ht' is the decoder's own");
    prefillFails(
        slot, a, 1,
        [](Batch &x, auto &t) {
          x.dtShape[1] = 3;
          t[4].shape = x.dtShape.data();
        },
        DECAYRT_ERROR_SHAPE, "tensor 'dt': expected shape [1, 2, 2]");
    prefillFails(
        slot, a, 1, [](Batch &, auto &t) { t.erase(t.begin() + 5); }, DECAYRT_ERROR_MISSING_TENSOR,
        "missing tensor 'A'");
    prefillFails(
        slot, a, 1, [](Batch &x, auto &t) { t[3].data = x.v.data(); }, DECAYRT_ERROR_ALIASING,
        "output 'o' overlaps tensor 'v'");
  }
  prefillFails(kSlots, a, 1, keep, DECAYRT_ERROR_INVALID_ARGUMENT,
               "decayrt_decoder_prefill: slot 4 is not a slot of the decoder");
  EXPECT_EQ(positionOf(decoder, 0), 3);
  EXPECT_EQ(positionOf(decoder, 2), 2);
}

TEST_F(Decoding, CreateChecksThePackageAndSizes) {
  decayrt_decoder *made = reinterpret_cast<decayrt_decoder *>(&made); // must be reset
  expectError(decayrt_decoder_create(nullptr, 1, kH, kK, kV, &made), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_create: package is NULL");
  EXPECT_EQ(made, nullptr);
  expectError(decayrt_decoder_create(full, 1, kH, kK, kV, nullptr), DECAYRT_ERROR_INVALID_ARGUMENT,
              "out is NULL");
  expectError(decayrt_decoder_create(full, 0, kH, kK, kV, &made), DECAYRT_ERROR_INVALID_ARGUMENT,
              "must be at least 1, got 0, 2, 4, 3");
  expectError(decayrt_decoder_create(full, 2, kH, 3, kV, &made), DECAYRT_ERROR_SHAPE,
              "RoPE needs an even key_dim, got 3");
  expectError(decayrt_decoder_create(full, INT64_MAX / 2, kH, kK, kV, &made), DECAYRT_ERROR_SHAPE,
              "is too large");
  json fixed = recurrenceManifest(false);
  fixed["spec"]["key_dim"] = 8;
  expectError(decayrt_decoder_create(loadManifest(fixed), 2, kH, kK, kV, &made),
              DECAYRT_ERROR_SHAPE, "fixes key_dim = 8, value_dim = any, got 4, 3");
  json forwardOnly = recurrenceManifest(true);
  forwardOnly["kernels"].erase(1);
  expectError(decayrt_decoder_create(loadManifest(forwardOnly), 2, kH, kK, kV, &made),
              DECAYRT_ERROR_UNSUPPORTED, "has no cpu kernel for the step entry");
  json noScanState = recurrenceManifest(true);
  noScanState["kernels"][1]["arguments"].erase(9);
  expectError(decayrt_decoder_create(loadManifest(noScanState), 2, kH, kK, kV, &made),
              DECAYRT_ERROR_UNSUPPORTED, "the step kernel lacks the state cache 'scan_c_state'");
  json noNormFinal = recurrenceManifest(true);
  noNormFinal["kernels"][0]["arguments"].erase(11);
  expectError(decayrt_decoder_create(loadManifest(noNormFinal), 2, kH, kK, kV, &made),
              DECAYRT_ERROR_UNSUPPORTED,
              "the forward lacks the f32 states 'norm_h0' and 'norm_ht' [N, H, K]");
  json strangeScan = recurrenceManifest(true);
  strangeScan["kernels"][1]["arguments"][9]["name"] = "scan_d_state";
  expectError(decayrt_decoder_create(loadManifest(strangeScan), 2, kH, kK, kV, &made),
              DECAYRT_ERROR_UNSUPPORTED, "'scan_d_state' names no scan of the spec");
  EXPECT_EQ(made, nullptr);
}

TEST_F(Decoding, NullArgumentsAreErrors) {
  int64_t position = 0, slot = 0;
  size_t size = 0;
  unsigned char byte = 0;
  Sequence sequence(1, 140);
  Batch batch({{&sequence, 0}}, 1);
  std::vector<decayrt_tensor> tensors = batch.tensors(true);
  const std::string null = "is NULL";
  expectError(decayrt_decoder_reset(nullptr, 0), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_reset: decoder is NULL");
  expectError(decayrt_decoder_prefill(nullptr, 0, tensors.data(), tensors.size()),
              DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_decoder_prefill: decoder is NULL");
  expectError(decayrt_decoder_prefill(decoder, 0, nullptr, 3), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_prefill: tensors is NULL");
  expectError(decayrt_decoder_step(nullptr, &slot, 1, tensors.data(), tensors.size()),
              DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_decoder_step: decoder is NULL");
  expectError(decayrt_decoder_step(decoder, nullptr, 1, tensors.data(), tensors.size()),
              DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_decoder_step: slots is NULL");
  expectError(decayrt_decoder_step(decoder, &slot, 1, nullptr, 2), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_step: tensors is NULL");
  expectError(decayrt_decoder_position(nullptr, 0, &position), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_position: decoder is NULL");
  expectError(decayrt_decoder_position(decoder, 0, nullptr), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_position: position is NULL");
  expectError(decayrt_decoder_position(decoder, 9, &position), DECAYRT_ERROR_INVALID_ARGUMENT,
              "slot 9 is not a slot");
  expectError(decayrt_decoder_save(nullptr, 0, nullptr, 0, &size), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_save: decoder is NULL");
  expectError(decayrt_decoder_save(decoder, 0, nullptr, 0, nullptr), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_save: size is NULL");
  expectError(decayrt_decoder_restore(nullptr, 0, &byte, 1), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_restore: decoder is NULL");
  expectError(decayrt_decoder_restore(decoder, 0, nullptr, 1), DECAYRT_ERROR_INVALID_ARGUMENT,
              "decayrt_decoder_restore: bytes is NULL");
  decayrt_decoder_free(nullptr);
  EXPECT_STREQ(decayrt_status_name(DECAYRT_ERROR_STATE), "ERROR_STATE");
  EXPECT_EQ(positionOf(decoder, 0), 0);
}

// ---- bf16 state caches ----

namespace {

/// The manifest of `full` whose step kernel keeps `state` in bf16
/// (fake_full_step_bf16); the forward's states stay f32.
json bf16StateManifest() {
  json manifest = recurrenceManifest(true);
  json &step = manifest["kernels"][1];
  step["symbol"] = "fake_full_step_bf16";
  step["arguments"][7]["dtype"] = "bf16";
  return manifest;
}

/// The little-endian bytes of `values` as f32, or rounded to bf16 (how a saved state holds them).
std::vector<unsigned char> savedBytes(const std::vector<float> &values, bool bf16) {
  std::vector<unsigned char> bytes;
  for (float value : values) {
    uint32_t word = 0;
    std::memcpy(&word, &value, 4);
    if (bf16)
      word = decay::toBfloat16(value);
    for (int b = 0; b < (bf16 ? 2 : 4); ++b)
      bytes.push_back(static_cast<unsigned char>(word >> (8 * b)));
  }
  return bytes;
}

/// Whether `bytes` hold `run` somewhere, contiguous.
bool holds(const std::vector<unsigned char> &bytes, const std::vector<unsigned char> &run) {
  return std::search(bytes.begin(), bytes.end(), run.begin(), run.end()) != bytes.end();
}

/// Caller-owned caches of kSlots slots for decayrt_run "step" on the
/// bf16-state package: the state as bf16 bits, the normalizer and scan f32.
struct Bf16Caches : StepCaches<uint16_t> {
  std::vector<int64_t> rowShape{1};

  Bf16Caches()
      : StepCaches(std::vector<uint16_t>(kSlots * kH * kK * kV, 0),
                   std::vector<float>(kSlots * kH * kK, 0.0f),
                   std::vector<float>(kSlots * kH, 0.5f)) {}

  /// Puts a forward's final states into `slot`, the state rounded to bf16.
  void handOff(int64_t slot, const ForwardRun &run) {
    std::transform(run.ht.begin(), run.ht.end(), state.begin() + slot * kH * kK * kV,
                   decay::toBfloat16);
    std::copy(run.zt.begin(), run.zt.end(), norm.begin() + slot * kH * kK);
    std::copy(run.ct.begin(), run.ct.end(), scan.begin() + slot * kH);
  }

  /// Runs tokens [first, first + count) of `sequence` in `slot` from position
  /// `first`; the outputs.
  std::vector<float> run(decayrt_package *package, int64_t slot, const Sequence &sequence,
                         int64_t first, int64_t count) {
    Batch batch({{&sequence, first}}, count);
    std::vector<int64_t> slots{slot}, positions{first};
    std::vector<decayrt_tensor> tensors = batch.tensors(true);
    append(tensors, slots, positions, rowShape);
    EXPECT_EQ(decayrt_run(package, "step", tensors.data(), tensors.size()), DECAYRT_OK)
        << decayrt_last_error();
    return batch.o;
  }

  /// The saved bytes of `slot`'s values: state (bf16), norm_state, scan_c_state.
  std::vector<unsigned char> slotBytes(int64_t slot) const {
    std::vector<unsigned char> bytes;
    for (int64_t i = 0; i < kH * kK * kV; ++i)
      for (int b = 0; b < 2; ++b)
        bytes.push_back(static_cast<unsigned char>(state[slot * kH * kK * kV + i] >> (8 * b)));
    return bytes;
  }
};

/// Saved bytes (format 2) of an all-f32 decoder rewritten in format version
/// 1 (docs/decoding.md): no dtypes in the recurrence's states nor per state.
std::vector<unsigned char> asVersion1(const std::vector<unsigned char> &saved) {
  size_t at = 12;
  std::vector<unsigned char> out(saved.begin(), saved.begin() + 8);
  auto read = [&](int width) { // a little-endian integer at `at`, not consumed
    uint64_t value = 0;
    for (int b = width - 1; b >= 0; --b)
      value = value << 8 | saved.at(at + static_cast<size_t>(b));
    return value;
  };
  auto copy = [&](size_t count) {
    out.insert(out.end(), saved.begin() + static_cast<long>(at),
               saved.begin() + static_cast<long>(at + count));
    at += count;
  };
  auto u32 = [&](uint64_t value) {
    for (int b = 0; b < 4; ++b)
      out.push_back(static_cast<unsigned char>(value >> (8 * b)));
  };
  auto text = [&] {
    size_t length = read(4);
    std::string value(saved.begin() + static_cast<long>(at + 4),
                      saved.begin() + static_cast<long>(at + 4 + length));
    at += 4 + length;
    return value;
  };
  u32(1);
  copy(4 + read(4)); // the spec's name
  std::string recurrence = text();
  for (size_t p; (p = recurrence.find(":f32")) != std::string::npos;)
    recurrence.erase(p, 4);
  u32(recurrence.size());
  out.insert(out.end(), recurrence.begin(), recurrence.end());
  copy(4 * 8); // H, K, V, position
  size_t count = read(4);
  copy(4);
  for (size_t i = 0; i < count; ++i) {
    copy(4 + read(4)); // the name
    EXPECT_EQ(text(), "f32");
    copy(8 + 4 * read(8)); // n and the values
  }
  uint64_t hash = 0xcbf29ce484222325ull; // FNV-1a
  for (unsigned char byte : out)
    hash = (hash ^ byte) * 0x100000001b3ull;
  for (int b = 0; b < 8; ++b)
    out.push_back(static_cast<unsigned char>(hash >> (8 * b)));
  return out;
}

} // namespace

TEST_F(Decoding, Bf16StateSlotsHoldTheRoundedForwardAndStepLikeTheStepEntry) {
  decayrt_package *package = loadManifest(bf16StateManifest());
  decayrt_decoder *bf16 = decoderOn(package, kSlots);
  Sequence sequence(9, 150);
  // The prompt runs through the f32 forward; the slot keeps bf16(ht) and the
  // f32 norm and scan states.
  ForwardRun prompt = forwardRun(package, true, sequence, 4);
  EXPECT_EQ(prefill(bf16, 1, sequence, 0, 4), prompt.o);
  std::vector<unsigned char> saved = saveSlot(bf16, 1);
  EXPECT_TRUE(holds(saved, savedBytes(prompt.ht, true)));
  EXPECT_TRUE(holds(saved, savedBytes(prompt.zt, false)));
  EXPECT_TRUE(holds(saved, savedBytes(prompt.ct, false)));
  // Then the step kernel on the slot, as decayrt_run on caches holding the same.
  Bf16Caches caches;
  caches.handOff(1, prompt);
  EXPECT_TRUE(holds(saved, caches.slotBytes(1)));
  EXPECT_EQ(prefill(bf16, 1, sequence, 4, 2), caches.run(package, 1, sequence, 4, 2));
  std::vector<float> expected = forwardOutputs(full, true, sequence), last;
  for (int64_t t = 6; t < 9; ++t) {
    last = step(bf16, {{1, &sequence, t}})[0];
    EXPECT_EQ(last, caches.run(package, 1, sequence, t, 1)) << "token " << t;
  }
  EXPECT_EQ(positionOf(bf16, 1), 9);
  EXPECT_TRUE(holds(saveSlot(bf16, 1), caches.slotBytes(1)));
  // bf16 storage changes the outputs, by its rounding only.
  std::vector<float> exact = tokens(expected, 8);
  EXPECT_NE(last, exact);
  for (size_t i = 0; i < exact.size(); ++i)
    EXPECT_NEAR(last[i], exact[i], 0.02 * std::max(1.0f, std::abs(exact[i]))) << i;
}

TEST_F(Decoding, Bf16StateSlotsResetSaveAndRestore) {
  decayrt_package *package = loadManifest(bf16StateManifest());
  decayrt_decoder *bf16 = decoderOn(package, kSlots), *other = decoderOn(package, 1);
  // An empty slot: zero state, the scan at its init; 2 bytes per state value.
  std::vector<unsigned char> empty = saveSlot(bf16, 2);
  EXPECT_TRUE(holds(empty, std::vector<unsigned char>(2 * kH * kK * kV, 0)));
  EXPECT_TRUE(holds(empty, savedBytes({0.5f, 0.5f}, false)));
  // f32 saves 2 more bytes per state value; "bf16" and ":bf16" 1 more each.
  EXPECT_EQ(saveSlot(decoder, 2).size() - empty.size(), size_t(2 * kH * kK * kV - 2));
  Sequence a(8, 160), b(8, 170);
  prefill(bf16, 2, b, 0, 3);
  EXPECT_NE(saveSlot(bf16, 2), empty);
  ASSERT_EQ(decayrt_decoder_reset(bf16, 2), DECAYRT_OK);
  EXPECT_EQ(saveSlot(bf16, 2), empty);
  EXPECT_EQ(positionOf(bf16, 2), 0);

  prefill(bf16, 0, a, 0, 3);
  step(bf16, {{0, &a, 3}});
  std::vector<unsigned char> bytes = saveSlot(bf16, 0);
  ASSERT_EQ(decayrt_decoder_restore(bf16, 3, bytes.data(), bytes.size()), DECAYRT_OK)
      << decayrt_last_error();
  ASSERT_EQ(decayrt_decoder_restore(other, 0, bytes.data(), bytes.size()), DECAYRT_OK)
      << decayrt_last_error();
  for (int64_t t = 4; t < 8; ++t) {
    auto outputs = step(bf16, {{3, &a, t}, {0, &a, t}});
    EXPECT_EQ(outputs[0], outputs[1]);
    EXPECT_EQ(step(other, {{0, &a, t}})[0], outputs[0]);
  }
  EXPECT_EQ(saveSlot(bf16, 3), saveSlot(bf16, 0));
  EXPECT_EQ(saveSlot(other, 0), saveSlot(bf16, 0));
  EXPECT_EQ(positionOf(other, 0), 8);

  // A failed prefill changes no bf16 slot, through the forward or the step.
  std::vector<std::vector<unsigned char>> before = snapshot(bf16);
  for (int64_t slot : {1, 0}) {
    Batch batch({{&b, 0}}, 2);
    std::vector<decayrt_tensor> tensors = batch.tensors(true);
    tensors.pop_back(); // A
    expectError(decayrt_decoder_prefill(bf16, slot, tensors.data(), tensors.size()),
                DECAYRT_ERROR_MISSING_TENSOR, "missing tensor 'A'");
    EXPECT_TRUE(batch.untouched());
    EXPECT_EQ(snapshot(bf16), before);
  }
}

TEST_F(Decoding, StatesOfOneDtypeDoNotRestoreIntoTheOther) {
  decayrt_package *package = loadManifest(bf16StateManifest());
  decayrt_decoder *bf16 = decoderOn(package, kSlots);
  Sequence sequence(5, 180);
  prefill(bf16, 0, sequence, 0, 5);
  prefill(bf16, 1, sequence, 0, 2);
  prefill(decoder, 0, sequence, 0, 5);
  prefill(decoder, 1, sequence, 0, 3);
  std::vector<unsigned char> fromBf16 = saveSlot(bf16, 0), fromF32 = saveSlot(decoder, 0);
  std::vector<std::vector<unsigned char>> bf16Before = snapshot(bf16),
                                          f32Before = snapshot(decoder);
  const std::string f32States = "states=state:SHKV:f32,norm_state:SHK:f32,scan_c_state:SH:f32'";
  const std::string bf16States = "states=state:SHKV:bf16,norm_state:SHK:f32,scan_c_state:SH:f32'";
  expectError(decayrt_decoder_restore(decoder, 1, fromBf16.data(), fromBf16.size()),
              DECAYRT_ERROR_STATE, "saved '" + bf16States + ", this decoder's '" + f32States);
  EXPECT_EQ(snapshot(decoder), f32Before);
  EXPECT_EQ(positionOf(decoder, 1), 3);
  expectError(decayrt_decoder_restore(bf16, 1, fromF32.data(), fromF32.size()),
              DECAYRT_ERROR_STATE, "saved '" + f32States + ", this decoder's '" + bf16States);
  EXPECT_EQ(snapshot(bf16), bf16Before);
  EXPECT_EQ(positionOf(bf16, 1), 2);

  // Version-1 bytes (f32 states, no dtypes) restore into f32 caches only.
  std::vector<unsigned char> version1 = asVersion1(fromF32);
  ASSERT_EQ(version1.size(), fromF32.size() - 3 * (4 + 3) - 3 * 4);
  ASSERT_EQ(decayrt_decoder_restore(decoder, 2, version1.data(), version1.size()), DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_EQ(saveSlot(decoder, 2), fromF32);
  EXPECT_EQ(positionOf(decoder, 2), 5);
  expectError(decayrt_decoder_restore(bf16, 1, version1.data(), version1.size()),
              DECAYRT_ERROR_STATE, "saved state 'state' is f32, this decoder keeps it in bf16");
  EXPECT_EQ(snapshot(bf16), bf16Before);
}

TEST_F(Decoding, StepEntryRefusesAStateCacheOfTheOtherDtype) {
  decayrt_package *package = loadManifest(bf16StateManifest());
  StepCall call;
  std::vector<decayrt_tensor> tensors = call.tensors();
  expectError(decayrt_run(package, "step", tensors.data(), tensors.size()), DECAYRT_ERROR_DTYPE,
              "tensor 'state': expected dtype bf16, got f32");
  EXPECT_TRUE(call.untouched());
  std::vector<uint16_t> bits(kSlots * kH * kK * kV, 0x3f80), bits0 = bits;
  *named(tensors, "state") = view("state", bits, call.stateShape);
  expectError(decayrt_run(full, "step", tensors.data(), tensors.size()), DECAYRT_ERROR_DTYPE,
              "tensor 'state': expected dtype f32, got bf16");
  EXPECT_TRUE(call.untouched());
  EXPECT_EQ(bits, bits0);
  // With the bf16 cache the bf16-state kernel runs.
  EXPECT_EQ(decayrt_run(package, "step", tensors.data(), tensors.size()), DECAYRT_OK)
      << decayrt_last_error();
  EXPECT_NE(bits, bits0);
}

TEST_F(Decoding, Bf16StateNeedsTheForwardsF32States) {
  json bf16Forward = bf16StateManifest();
  bf16Forward["kernels"][0]["arguments"][10]["dtype"] = "bf16"; // ht
  decayrt_decoder *made = nullptr;
  expectError(decayrt_decoder_create(loadManifest(bf16Forward), 2, kH, kK, kV, &made),
              DECAYRT_ERROR_UNSUPPORTED,
              "the forward lacks the f32 states 'h0' and 'ht' [N, H, K, V] of the step's state "
              "cache 'state' (bf16)");
  EXPECT_EQ(made, nullptr);
}
