// decayrt tensors made from the tests' float64 host tensors, and read back: for calls of decayrt_run_simt and the decoder.
#ifndef DECAY_TEST_UNIT_DECAYRTCALL_H
#define DECAY_TEST_UNIT_DECAYRTCALL_H

#include "decay/Runner/Signature.h"
#include "decay/Runner/SpecProgram.h"
#include "decay/Support/Bfloat16.h"
#include "decayrt/decayrt.h"

#include <deque>
#include <string>
#include <vector>

namespace decay::test {

/// decayrt tensors over f32, bf16 or i64 copies of host tensors (by their
/// dtype), kept alive with their names and shapes; read back as float64.
struct DecayrtCall {
  std::deque<std::vector<float>> floats;
  std::deque<std::vector<uint16_t>> halves;
  std::deque<std::vector<int64_t>> integers, shapes;
  std::deque<std::string> names;
  std::vector<decayrt_tensor> list;
  std::vector<std::string> written; ///< outputs and in-out tensors

  void add(const decay::TensorSpec &spec, const HostTensor &tensor, bool isWritten) {
    names.push_back(spec.name);
    shapes.push_back(tensor.shape);
    void *data = nullptr;
    decayrt_dtype dtype = DECAYRT_F32;
    if (spec.dtype == "i64") {
      data = integers.emplace_back(tensor.data.begin(), tensor.data.end()).data();
      dtype = DECAYRT_I64;
    } else if (spec.dtype == "bf16") {
      std::vector<uint16_t> &bits = halves.emplace_back();
      for (double value : tensor.data)
        bits.push_back(decay::toBfloat16(static_cast<float>(value)));
      data = bits.data();
      dtype = DECAYRT_BF16;
    } else {
      data = floats.emplace_back(tensor.data.begin(), tensor.data.end()).data();
    }
    if (isWritten)
      written.push_back(spec.name);
    list.push_back({names.back().c_str(), data, dtype, static_cast<int32_t>(shapes.back().size()),
                    shapes.back().data(), nullptr});
  }

  /// The tensor `name` as it is now, widened to float64.
  HostTensor read(const std::string &name) const {
    for (const decayrt_tensor &tensor : list) {
      if (tensor.name != name)
        continue;
      HostTensor out{std::vector<int64_t>(tensor.shape, tensor.shape + tensor.rank), {}};
      size_t count = 1;
      for (int64_t extent : out.shape)
        count *= static_cast<size_t>(extent);
      for (size_t i = 0; i < count; ++i)
        out.data.push_back(tensor.dtype == DECAYRT_BF16
                               ? decay::fromBfloat16(static_cast<const uint16_t *>(tensor.data)[i])
                               : static_cast<const float *>(tensor.data)[i]);
      return out;
    }
    return {};
  }
};

} // namespace decay::test

#endif
