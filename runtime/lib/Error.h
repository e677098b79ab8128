// The runtime's internal error value and the per-thread last-error message behind decayrt_last_error.
#ifndef DECAYRT_LIB_ERROR_H
#define DECAYRT_LIB_ERROR_H

#include "decayrt/decayrt.h"

#include <new>
#include <string>
#include <utility>

namespace decayrt::detail {

/// A status with its one-line message; `ok()` when the status is DECAYRT_OK.
struct Error {
  decayrt_status status = DECAYRT_OK;
  std::string message;

  bool ok() const { return status == DECAYRT_OK; }
  static Error success() { return {}; }
};

/// An error of `status` saying `message`.
inline Error fail(decayrt_status status, std::string message) {
  return Error{status, std::move(message)};
}

/// Records `error` as this thread's last error and returns its status.
decayrt_status report(const Error &error);

/// Runs `body` (returning an Error) behind a C API function's guard: reports
/// its error, and turns exceptions into statuses (std::bad_alloc into
/// DECAYRT_ERROR_OUT_OF_MEMORY, anything else into `unexpected`).
template <typename Body>
decayrt_status guarded(const char *function, Body body,
                       decayrt_status unexpected = DECAYRT_ERROR_INVALID_ARGUMENT) {
  try {
    return report(body());
  } catch (const std::bad_alloc &) {
    return report(fail(DECAYRT_ERROR_OUT_OF_MEMORY, std::string(function) + ": out of memory"));
  } catch (...) {
    return report(fail(unexpected, std::string(function) + ": unexpected failure"));
  }
}

} // namespace decayrt::detail

#endif // DECAYRT_LIB_ERROR_H
