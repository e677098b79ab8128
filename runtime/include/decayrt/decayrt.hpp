// decayrt: a thin C++ wrapper over the C API (RAII package and decoder, owning tensor views); errors are Status values.
#ifndef DECAYRT_DECAYRT_HPP
#define DECAYRT_DECAYRT_HPP

#include "decayrt/decayrt.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace decayrt {

/// The result of a call; DECAYRT_OK on success, else decayrt::lastError() says why.
using Status = decayrt_status;

/// The name of a status ("OK", "ERROR_SHAPE", ...).
inline const char *statusName(Status status) { return decayrt_status_name(status); }

/// The message of the last failed call on this thread.
inline const char *lastError() { return decayrt_last_error(); }

/// Whether CUDA is usable (see decayrt_cuda_available).
inline Status cudaAvailable() { return decayrt_cuda_available(); }

/// The dtype of a C++ element type: float, double, int32_t, int64_t.
template <typename T> struct DtypeOf;
template <> struct DtypeOf<float> { static constexpr decayrt_dtype value = DECAYRT_F32; };
template <> struct DtypeOf<double> { static constexpr decayrt_dtype value = DECAYRT_F64; };
template <> struct DtypeOf<int32_t> { static constexpr decayrt_dtype value = DECAYRT_I32; };
template <> struct DtypeOf<int64_t> { static constexpr decayrt_dtype value = DECAYRT_I64; };
/// uint16_t holds bfloat16 bits (the bf16 tensors of a package).
template <> struct DtypeOf<uint16_t> { static constexpr decayrt_dtype value = DECAYRT_BF16; };

/// A named tensor that owns its name, shape and strides (not its data), so
/// that the decayrt_tensor it views stays valid as long as it lives.
class Tensor {
public:
  /// A tensor of any dtype; empty `strides` means contiguous row-major.
  Tensor(std::string name, void *data, decayrt_dtype dtype, std::vector<int64_t> shape,
         std::vector<int64_t> strides = {})
      : name_(std::move(name)), data_(data), dtype_(dtype), shape_(std::move(shape)),
        strides_(std::move(strides)) {}

  /// An output (or input) whose dtype follows from T.
  template <typename T>
  Tensor(std::string name, T *data, std::vector<int64_t> shape)
      : Tensor(std::move(name), static_cast<void *>(data), DtypeOf<T>::value, std::move(shape)) {}

  /// An input whose dtype follows from T; decayrt only reads it.
  template <typename T>
  Tensor(std::string name, const T *data, std::vector<int64_t> shape)
      : Tensor(std::move(name), const_cast<T *>(data), std::move(shape)) {}

  /// The C view; valid while this Tensor lives and is not modified.
  decayrt_tensor view() const {
    decayrt_tensor tensor;
    tensor.name = name_.c_str();
    tensor.data = data_;
    tensor.dtype = dtype_;
    tensor.rank = static_cast<int32_t>(shape_.size());
    tensor.shape = shape_.data();
    tensor.strides = strides_.empty() ? nullptr : strides_.data();
    return tensor;
  }

  const std::string &name() const { return name_; }
  const std::vector<int64_t> &shape() const { return shape_; }

private:
  std::string name_;
  void *data_;
  decayrt_dtype dtype_;
  std::vector<int64_t> shape_, strides_;
};

/// The C views of owning tensors.
inline std::vector<decayrt_tensor> views(const std::vector<Tensor> &tensors) {
  std::vector<decayrt_tensor> result;
  result.reserve(tensors.size());
  for (const Tensor &tensor : tensors)
    result.push_back(tensor.view());
  return result;
}

/// A loaded package; closes it when destroyed. Movable, not copyable. A loaded
/// Package may run on several threads at once.
class Package {
public:
  Package() = default;
  ~Package() { decayrt_package_free(handle_); }
  Package(Package &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Package &operator=(Package &&other) noexcept {
    if (this != &other) {
      decayrt_package_free(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  Package(const Package &) = delete;
  Package &operator=(const Package &) = delete;

  /// Loads the package at `path`, replacing (and closing) the one held. On
  /// failure the Package is left empty.
  Status load(const std::string &path) {
    decayrt_package_free(handle_);
    handle_ = nullptr;
    return decayrt_package_load(path.c_str(), &handle_);
  }

  /// Whether a package is loaded.
  bool loaded() const { return handle_ != nullptr; }
  explicit operator bool() const { return loaded(); }

  /// The manifest JSON ("" when empty).
  const char *manifest() const { return handle_ ? decayrt_package_manifest(handle_) : ""; }
  /// The recurrence's name ("" when empty).
  const char *specName() const { return handle_ ? decayrt_package_spec_name(handle_) : ""; }

  /// Runs `entry` ("forward", "backward" or "step") on C tensor views (see decayrt_run).
  Status run(const std::string &entry, const std::vector<decayrt_tensor> &tensors) const {
    return decayrt_run(handle_, entry.c_str(), tensors.data(), tensors.size());
  }
  /// Runs `entry` on owning tensors.
  Status run(const std::string &entry, const std::vector<Tensor> &tensors) const {
    return run(entry, views(tensors));
  }

  /// Runs `entry` on device tensors on a CUDA stream (see decayrt_run_cuda):
  /// `stream` a CUstream or null (the default stream), `workspace` device
  /// memory of `workspaceBytes` or null (decayrt allocates it on the stream).
  Status runCuda(const std::string &entry, const std::vector<decayrt_tensor> &tensors,
                 void *stream = nullptr, void *workspace = nullptr,
                 size_t workspaceBytes = 0) const {
    return decayrt_run_cuda(handle_, entry.c_str(), tensors.data(), tensors.size(), stream,
                            workspace, workspaceBytes);
  }
  /// Runs `entry` on owning device tensors on a CUDA stream.
  Status runCuda(const std::string &entry, const std::vector<Tensor> &tensors,
                 void *stream = nullptr, void *workspace = nullptr,
                 size_t workspaceBytes = 0) const {
    return runCuda(entry, views(tensors), stream, workspace, workspaceBytes);
  }

  /// The workspace decayrt_run_cuda needs for these tensors (see
  /// decayrt_cuda_workspace_bytes).
  Status cudaWorkspaceBytes(const std::string &entry, const std::vector<decayrt_tensor> &tensors,
                            size_t &bytes, void *stream = nullptr) const {
    return decayrt_cuda_workspace_bytes(handle_, entry.c_str(), tensors.data(), tensors.size(),
                                        stream, &bytes);
  }
  Status cudaWorkspaceBytes(const std::string &entry, const std::vector<Tensor> &tensors,
                            size_t &bytes, void *stream = nullptr) const {
    return cudaWorkspaceBytes(entry, views(tensors), bytes, stream);
  }

  /// The C handle (still owned by this Package).
  decayrt_package *get() const { return handle_; }

private:
  decayrt_package *handle_ = nullptr;
};

/// A decoder's cache of state slots (see decayrt_decoder_create); frees it
/// when destroyed. Movable, not copyable; not safe for concurrent calls. The
/// Package must outlive it.
class Decoder {
public:
  Decoder() = default;
  ~Decoder() { decayrt_decoder_free(handle_); }
  Decoder(Decoder &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Decoder &operator=(Decoder &&other) noexcept {
    if (this != &other) {
      decayrt_decoder_free(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  Decoder(const Decoder &) = delete;
  Decoder &operator=(const Decoder &) = delete;

  /// Makes `slots` empty sequences of H, K, V on `package`, replacing (and
  /// freeing) the cache held. On failure the Decoder is left empty.
  Status create(const Package &package, int64_t slots, int64_t heads, int64_t keyDim,
                int64_t valueDim) {
    decayrt_decoder_free(handle_);
    handle_ = nullptr;
    return decayrt_decoder_create(package.get(), slots, heads, keyDim, valueDim, &handle_);
  }

  /// Whether a cache is held.
  explicit operator bool() const { return handle_ != nullptr; }

  /// Makes `slot` an empty sequence.
  Status reset(int64_t slot) { return decayrt_decoder_reset(handle_, slot); }

  /// Runs a prompt (B = 1) into `slot` (see decayrt_decoder_prefill).
  Status prefill(int64_t slot, const std::vector<decayrt_tensor> &tensors) {
    return decayrt_decoder_prefill(handle_, slot, tensors.data(), tensors.size());
  }
  Status prefill(int64_t slot, const std::vector<Tensor> &tensors) {
    return prefill(slot, views(tensors));
  }

  /// Runs one token of each slot of `slots` (see decayrt_decoder_step).
  Status step(const std::vector<int64_t> &slots, const std::vector<decayrt_tensor> &tensors) {
    return decayrt_decoder_step(handle_, slots.data(), slots.size(), tensors.data(),
                                tensors.size());
  }
  Status step(const std::vector<int64_t> &slots, const std::vector<Tensor> &tensors) {
    return step(slots, views(tensors));
  }

  /// The tokens `slot` has consumed.
  Status position(int64_t slot, int64_t &position) const {
    return decayrt_decoder_position(handle_, slot, &position);
  }

  /// Saves `slot` into `bytes` (resized to fit; see decayrt_decoder_save).
  Status save(int64_t slot, std::vector<unsigned char> &bytes) const {
    size_t size = 0;
    if (Status status = decayrt_decoder_save(handle_, slot, nullptr, 0, &size);
        status != DECAYRT_OK)
      return status;
    bytes.resize(size);
    return decayrt_decoder_save(handle_, slot, bytes.data(), bytes.size(), &size);
  }

  /// Replaces `slot` with saved bytes (see decayrt_decoder_restore).
  Status restore(int64_t slot, const std::vector<unsigned char> &bytes) {
    return decayrt_decoder_restore(handle_, slot, bytes.data(), bytes.size());
  }

  /// The C handle (still owned by this Decoder).
  decayrt_decoder *get() const { return handle_; }

private:
  decayrt_decoder *handle_ = nullptr;
};

} // namespace decayrt

#endif // DECAYRT_DECAYRT_HPP
