// decayrt tensors built one by one, with the names and shapes they point to kept alive beside them.
#ifndef DECAYC_TENSORLIST_H
#define DECAYC_TENSORLIST_H

#include "decayrt/decayrt.h"

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace decayc {

/// A call's decayrt tensors. Each keeps a copy of its name and shape here
/// (deques: adding never moves them), so the caller's strings may go.
class TensorList {
public:
  void add(const std::string &name, void *data, decayrt_dtype dtype, std::vector<int64_t> shape) {
    names.push_back(name);
    shapes.push_back(std::move(shape));
    tensors.push_back({names.back().c_str(), data, dtype,
                       static_cast<int32_t>(shapes.back().size()), shapes.back().data(), nullptr});
  }
  const decayrt_tensor *data() const { return tensors.data(); }
  size_t size() const { return tensors.size(); }

private:
  std::deque<std::string> names;
  std::deque<std::vector<int64_t>> shapes;
  std::vector<decayrt_tensor> tensors;
};

} // namespace decayc

#endif
