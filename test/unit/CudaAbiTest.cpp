// Checks decayrt's own declarations of the CUDA driver API (runtime/lib/CudaDriver.h) against the toolkit's cuda.h.
#include "CudaDriver.h"

#include <gtest/gtest.h>

#ifdef DECAY_HAVE_CUDA_H
#include <cuda.h>

namespace ours = decayrt::detail::cuda;

// Types: decayrt passes these through the driver's C ABI.
static_assert(sizeof(ours::CUresult) == sizeof(::CUresult), "CUresult");
static_assert(sizeof(ours::CUdevice) == sizeof(::CUdevice), "CUdevice");
static_assert(sizeof(ours::CUdeviceptr) == sizeof(::CUdeviceptr), "CUdeviceptr");
static_assert(sizeof(ours::CUjit_option) == sizeof(::CUjit_option), "CUjit_option");
static_assert(sizeof(int) == sizeof(::CUdevice_attribute), "attributes are passed as int");
static_assert(sizeof(int) == sizeof(::CUfunction_attribute), "attributes are passed as int");
static_assert(sizeof(int) == sizeof(::CUpointer_attribute), "attributes are passed as int");
static_assert(sizeof(unsigned) == sizeof(::CUmemorytype), "the memory type is read as unsigned");

// Results and enumerators.
#define EXPECT_SAME_VALUE(name) static_assert(ours::name == ::name, #name)
EXPECT_SAME_VALUE(CUDA_SUCCESS);
EXPECT_SAME_VALUE(CUDA_ERROR_INVALID_VALUE);
EXPECT_SAME_VALUE(CUDA_ERROR_INVALID_IMAGE);
EXPECT_SAME_VALUE(CUDA_ERROR_NO_BINARY_FOR_GPU);
EXPECT_SAME_VALUE(CUDA_ERROR_INVALID_PTX);
EXPECT_SAME_VALUE(CUDA_ERROR_JIT_COMPILER_NOT_FOUND);
EXPECT_SAME_VALUE(CUDA_ERROR_UNSUPPORTED_PTX_VERSION);
EXPECT_SAME_VALUE(CUDA_ERROR_JIT_COMPILATION_DISABLED);
EXPECT_SAME_VALUE(CUDA_ERROR_NOT_SUPPORTED);
EXPECT_SAME_VALUE(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
EXPECT_SAME_VALUE(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
EXPECT_SAME_VALUE(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES);
EXPECT_SAME_VALUE(CU_POINTER_ATTRIBUTE_MEMORY_TYPE);
EXPECT_SAME_VALUE(CU_MEMORYTYPE_HOST);
EXPECT_SAME_VALUE(CU_MEMORYTYPE_DEVICE);
EXPECT_SAME_VALUE(CU_MEMORYTYPE_ARRAY);
EXPECT_SAME_VALUE(CU_MEMORYTYPE_UNIFIED);
EXPECT_SAME_VALUE(CU_JIT_ERROR_LOG_BUFFER);
EXPECT_SAME_VALUE(CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES);
#undef EXPECT_SAME_VALUE

TEST(CudaAbi, DeclarationsMatchCudaH) { SUCCEED() << "checked at compile time against cuda.h"; }
#else
TEST(CudaAbi, DeclarationsMatchCudaH) { GTEST_SKIP() << "cuda.h is not installed"; }
#endif
