// The CUDA driver API as decayrt uses it: its types and constants (declared here, no cuda.h), and the table of entry points loaded with dlopen.
#ifndef DECAYRT_LIB_CUDADRIVER_H
#define DECAYRT_LIB_CUDADRIVER_H

#include "Error.h"

#include <cstddef>
#include <cstdint>
#include <string>

// The driver's opaque handles, as cuda.h declares them (at global scope, so
// that the function types are exactly the driver's).
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;

namespace decayrt::detail::cuda {

// The driver API's types, as cuda.h declares them (test/unit/CudaAbiTest.cpp
// checks them against cuda.h where the toolkit is installed).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = ::CUctx_st *;
using CUmodule = ::CUmod_st *;
using CUfunction = ::CUfunc_st *;
using CUstream = ::CUstream_st *;
using CUjit_option = int;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_INVALID_VALUE = 1;
constexpr CUresult CUDA_ERROR_INVALID_IMAGE = 200;
constexpr CUresult CUDA_ERROR_NO_BINARY_FOR_GPU = 209;
constexpr CUresult CUDA_ERROR_INVALID_PTX = 218;
constexpr CUresult CUDA_ERROR_JIT_COMPILER_NOT_FOUND = 221;
constexpr CUresult CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222;
constexpr CUresult CUDA_ERROR_JIT_COMPILATION_DISABLED = 223;
constexpr CUresult CUDA_ERROR_NOT_SUPPORTED = 801;

constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
constexpr int CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2;
constexpr unsigned CU_MEMORYTYPE_HOST = 1;
constexpr unsigned CU_MEMORYTYPE_DEVICE = 2;
constexpr unsigned CU_MEMORYTYPE_ARRAY = 3;
constexpr unsigned CU_MEMORYTYPE_UNIFIED = 4;
constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

/// The device address a caller's pointer holds.
inline CUdeviceptr deviceAddress(const void *data) {
  return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(data));
}

/// The driver entry points decayrt calls (the _v2 ABI where cuda.h maps a
/// name to one). Optional ones are null when the driver lacks them.
struct Driver {
  CUresult (*cuGetErrorName)(CUresult, const char **);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  CUresult (*cuInit)(unsigned int);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxGetCurrent)(CUcontext *);
  CUresult (*cuCtxGetDevice)(CUdevice *);
  CUresult (*cuCtxPushCurrent)(CUcontext);   ///< cuCtxPushCurrent_v2
  CUresult (*cuCtxPopCurrent)(CUcontext *);  ///< cuCtxPopCurrent_v2
  CUresult (*cuCtxGetId)(CUcontext, unsigned long long *); ///< optional (CUDA 12)
  CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned int, CUjit_option *, void **);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned int, unsigned int, unsigned int, unsigned int,
                             unsigned int, unsigned int, unsigned int, CUstream, void **, void **);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);                          ///< cuMemAlloc_v2
  CUresult (*cuMemFree)(CUdeviceptr);                                     ///< cuMemFree_v2
  CUresult (*cuMemAllocAsync)(CUdeviceptr *, size_t, CUstream);           ///< optional (11.2)
  CUresult (*cuMemFreeAsync)(CUdeviceptr, CUstream);                      ///< optional (11.2)
  CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);            ///< cuMemcpyHtoD_v2
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);                  ///< cuMemcpyDtoH_v2
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream); ///< _v2
  CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);       ///< _v2
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuPointerGetAttribute)(void *, int, CUdeviceptr);

  /// Success for CUDA_SUCCESS, else DECAYRT_ERROR_CUDA saying "<call> failed:
  /// <error name> (<error text>)".
  Error check(CUresult result, const std::string &call) const;
  /// "<error name> (<error text>)" of a driver result.
  std::string describe(CUresult result) const;
};

/// The process's driver, loaded on first use (thread-safe) from the library
/// named by DECAYRT_CUDA_DRIVER, else libcuda.so.1, and initialized with
/// cuInit. Fails with DECAYRT_ERROR_NO_CUDA_DRIVER ("no CUDA driver: ...")
/// when it cannot be loaded or lacks an entry point, DECAYRT_ERROR_NO_DEVICE
/// ("no CUDA device: ...") when cuInit fails or there is no device. The
/// outcome is decided once and kept for the life of the process.
Error loadDriver(const Driver *&out);

/// Device 0's primary context, retained on first use and kept for the life of
/// the process (thread-safe).
Error primaryContext(const Driver &driver, CUcontext &out);

} // namespace decayrt::detail::cuda

#endif // DECAYRT_LIB_CUDADRIVER_H
