// The per-thread last-error message and the names of the status codes.
#include "Error.h"

#include "Dtype.h"

namespace {
/// The message of the last failed call on this thread.
thread_local std::string lastErrorMessage;
} // namespace

decayrt_status decayrt::detail::report(const Error &error) {
  if (!error.ok())
    lastErrorMessage = error.message;
  return error.status;
}

extern "C" const char *decayrt_last_error(void) { return lastErrorMessage.c_str(); }

extern "C" const char *decayrt_status_name(decayrt_status status) {
  switch (decayrt::detail::rawEnumValue(status)) { // a C caller may pass any int
  case DECAYRT_OK:
    return "OK";
  case DECAYRT_ERROR_INVALID_ARGUMENT:
    return "ERROR_INVALID_ARGUMENT";
  case DECAYRT_ERROR_PACKAGE:
    return "ERROR_PACKAGE";
  case DECAYRT_ERROR_MISSING_TENSOR:
    return "ERROR_MISSING_TENSOR";
  case DECAYRT_ERROR_UNKNOWN_TENSOR:
    return "ERROR_UNKNOWN_TENSOR";
  case DECAYRT_ERROR_SHAPE:
    return "ERROR_SHAPE";
  case DECAYRT_ERROR_DTYPE:
    return "ERROR_DTYPE";
  case DECAYRT_ERROR_LAYOUT:
    return "ERROR_LAYOUT";
  case DECAYRT_ERROR_ALIASING:
    return "ERROR_ALIASING";
  case DECAYRT_ERROR_UNSUPPORTED:
    return "ERROR_UNSUPPORTED";
  case DECAYRT_ERROR_OUT_OF_MEMORY:
    return "ERROR_OUT_OF_MEMORY";
  case DECAYRT_ERROR_NO_CUDA_DRIVER:
    return "ERROR_NO_CUDA_DRIVER";
  case DECAYRT_ERROR_NO_DEVICE:
    return "ERROR_NO_DEVICE";
  case DECAYRT_ERROR_CUDA:
    return "ERROR_CUDA";
  case DECAYRT_ERROR_SIMT:
    return "ERROR_SIMT";
  case DECAYRT_ERROR_SIMT_RACE:
    return "ERROR_SIMT_RACE";
  case DECAYRT_ERROR_STATE:
    return "ERROR_STATE";
  default:
    return "UNKNOWN";
  }
}
