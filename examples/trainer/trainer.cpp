// A trainer linking decayrt: fits Mamba2's decay params by gradient descent through a compiled package.
//
//   decayc compile examples/specs/mamba2.mlir -o mamba2.so
//   decay-trainer mamba2.so
//
// A teacher's A_log and dt_bias produce target outputs; a student starts from
// other values and follows the gradients that the package's backward returns
// for the loss 0.5 * mean((o - target)^2) (so do = (o - target) / n). Every buffer is
// the trainer's own; decayrt only reads and writes them.
#include "decayrt/decayrt.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace {
constexpr int64_t B = 2, T = 96, H = 2, K = 16, V = 16;

/// A named f32 tensor owned by the trainer.
struct Buffer {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

Buffer make(const std::string &name, std::vector<int64_t> shape, float fill = 0.0f) {
  int64_t count = 1;
  for (int64_t dim : shape)
    count *= dim;
  return {name, std::move(shape), std::vector<float>(count, fill)};
}

decayrt_tensor view(Buffer &buffer) {
  return {buffer.name.c_str(), buffer.data.data(), DECAYRT_F32,
          static_cast<int32_t>(buffer.shape.size()), buffer.shape.data(), nullptr};
}

/// Runs `entry` on `buffers`; prints decayrt's message and returns false on error.
bool run(decayrt_package *package, const char *entry, std::vector<Buffer *> buffers) {
  std::vector<decayrt_tensor> tensors;
  for (Buffer *buffer : buffers)
    tensors.push_back(view(*buffer));
  decayrt_status status = decayrt_run(package, entry, tensors.data(), tensors.size());
  if (status != DECAYRT_OK)
    std::fprintf(stderr, "decayrt_run(%s): %s: %s\n", entry, decayrt_status_name(status),
                 decayrt_last_error());
  return status == DECAYRT_OK;
}
} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: decay-trainer MAMBA2_PACKAGE.so\n");
    return 2;
  }
  decayrt_package *package = nullptr;
  if (decayrt_package_load(argv[1], &package) != DECAYRT_OK) {
    std::fprintf(stderr, "cannot load %s: %s\n", argv[1], decayrt_last_error());
    return 1;
  }

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  Buffer q = make("q", {B, T, H, K}), k = make("k", {B, T, H, K}), v = make("v", {B, T, H, V});
  Buffer dt = make("dt", {B, T, H});
  for (Buffer *buffer : {&q, &k, &v})
    for (float &x : buffer->data)
      x = unit(rng);
  for (float &x : dt.data)
    x = 2.0f * unit(rng) - 1.0f;
  Buffer aLog = make("A_log", {H}), dtBias = make("dt_bias", {H});
  Buffer o = make("o", {B, T, H, V}), ht = make("ht", {B, H, K, V});

  // The teacher's outputs are the targets.
  aLog.data = {-1.0f, 0.5f};
  dtBias.data = {0.3f, -0.7f};
  if (!run(package, "forward", {&q, &k, &v, &dt, &aLog, &dtBias, &o, &ht}))
    return 1;
  std::vector<float> target = o.data;

  // The student starts elsewhere and descends the gradient.
  aLog.data = {0.0f, 0.0f};
  dtBias.data = {0.0f, 0.0f};
  Buffer dOut = make("do", {B, T, H, V});
  Buffer dq = make("dq", {B, T, H, K}), dk = make("dk", {B, T, H, K}), dv = make("dv", {B, T, H, V});
  Buffer dh0 = make("dh0", {B, H, K, V}), ddt = make("ddt", {B, T, H});
  Buffer dALog = make("dA_log", {H}), dDtBias = make("ddt_bias", {H});
  // Adam on the four params.
  const double learningRate = 0.05, beta1 = 0.9, beta2 = 0.999;
  const double count = static_cast<double>(o.data.size());
  std::vector<double> moment(2 * H, 0.0), velocity(2 * H, 0.0);
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    if (!run(package, "forward", {&q, &k, &v, &dt, &aLog, &dtBias, &o, &ht}))
      return 1;
    double loss = 0;
    for (size_t i = 0; i < o.data.size(); ++i) {
      double error = o.data[i] - target[i];
      dOut.data[i] = static_cast<float>(error / count);
      loss += 0.5 * error * error / count;
    }
    if (!run(package, "backward",
             {&q, &k, &v, &dt, &aLog, &dtBias, &dOut, &dq, &dk, &dv, &dh0, &ddt, &dALog, &dDtBias}))
      return 1;
    for (int64_t i = 0; i < 2 * H; ++i) {
      float &param = i < H ? aLog.data[i] : dtBias.data[i - H];
      double gradient = i < H ? dALog.data[i] : dDtBias.data[i - H];
      moment[i] = beta1 * moment[i] + (1 - beta1) * gradient;
      velocity[i] = beta2 * velocity[i] + (1 - beta2) * gradient * gradient;
      double corrected = moment[i] / (1 - std::pow(beta1, step + 1));
      double scale = std::sqrt(velocity[i] / (1 - std::pow(beta2, step + 1))) + 1e-8;
      param -= static_cast<float>(learningRate * corrected / scale);
    }
    if (step == 0)
      first = loss;
    last = loss;
    if (step % 25 == 0 || step == 149)
      std::printf("step %2d  loss %.6f  A_log (%.3f, %.3f)  dt_bias (%.3f, %.3f)\n", step, loss,
                  aLog.data[0], aLog.data[1], dtBias.data[0], dtBias.data[1]);
  }
  decayrt_package_free(package);
  bool learned = std::isfinite(last) && last < 0.1 * first;
  std::printf("%s: loss %.6f -> %.6f\n", learned ? "trained" : "did not train", first, last);
  return learned ? 0 : 1;
}
