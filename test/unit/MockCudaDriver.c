/* A mock CUDA driver for decayrt's tests: device memory is host memory, module loads and launches are recorded, any call can be made to fail. */
/*
 * decayrt loads it in place of libcuda.so.1 (DECAYRT_CUDA_DRIVER); the tests
 * dlopen the same library and drive it through the mock_cuda_* functions.
 *
 * Images: a fake cubin starts with "\x7f" "ELF", a fake PTX does not; both
 * hold the text "target=sm_XY" and "functions=name:count,name:count" (the
 * number of 8-byte parameters of each function). A cubin loads only on a
 * device of exactly its target; PTX loads on a device of its target or
 * above, unless it holds "jit-fail" (then CUDA_ERROR_UNSUPPORTED_PTX_VERSION
 * with a message in the JIT error log).
 *
 * Environment: MOCK_CUDA_DEVICES (default 1) and MOCK_CUDA_CAPABILITY
 * (default 80, i.e. 8.0) are read by cuInit and mock_cuda_reset;
 * MOCK_CUDA_INIT_RESULT makes cuInit fail with that code.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
/* The handle types as cuda.h declares them: decayrt calls these functions
   through pointers of exactly these types (UBSan checks it). */
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;

enum {
  SUCCESS = 0,
  ERROR_INVALID_VALUE = 1,
  ERROR_NO_DEVICE = 100,
  ERROR_INVALID_CONTEXT = 201,
  ERROR_NO_BINARY_FOR_GPU = 209,
  ERROR_INVALID_PTX = 218,
  ERROR_UNSUPPORTED_PTX_VERSION = 222,
  ERROR_NOT_FOUND = 500,
};

#define MAX_RECORDS 256
#define MAX_PARAMETERS 32
#define MAX_FUNCTIONS 8
#define MAX_FAILURES 8
#define MAX_ALLOCATIONS 256

/* ---- What the tests read ---- */

/** One cuLaunchKernel. */
typedef struct MockLaunch {
  char function[64];
  unsigned grid[3], block[3];
  unsigned sharedBytes;
  void *stream;
  int parameterCount;
  uint64_t parameters[MAX_PARAMETERS];
  unsigned long long context; /* the id of the context current at launch */
} MockLaunch;

/** One cuMemsetD8Async or host-to-device copy. */
typedef struct MockWrite {
  uint64_t address;
  size_t bytes;
  int value; /* the memset byte, or -1 for a copy */
} MockWrite;

/** One cuModuleLoadDataEx that succeeded. */
typedef struct MockLoad {
  int cubin; /* 1: the cubin, 0: PTX */
  int target;
  unsigned long long context;
} MockLoad;

/* ---- State ---- */

/* A function (struct CUfunc_st behind CUfunction). */
struct CUfunc_st {
  char name[64];
  int parameterCount;
  int maxDynamicShared;
};
typedef struct CUfunc_st Function;

/* A module (struct CUmod_st behind CUmodule). */
struct CUmod_st {
  int functionCount;
  Function functions[MAX_FUNCTIONS];
};
typedef struct CUmod_st Module;

/* A context (struct CUctx_st behind CUcontext): its id (cuCtxGetId). */
struct CUctx_st {
  unsigned long long id;
};
typedef struct CUctx_st Context;

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static int capability = 80, devices = 1;
static Context primary = {1};
static unsigned long long nextContextId = 2;
static struct {
  char call[48];
  CUresult result;
} failures[MAX_FAILURES];
static int failureCount;
static MockLaunch launches[MAX_RECORDS];
static int launchCount;
static MockWrite writes[MAX_RECORDS];
static int writeCount;
static MockLoad loads[MAX_RECORDS];
static int loadCount, unloadCount, attributeCount, synchronizeCount;
static struct {
  char *begin;
  size_t bytes;
} allocations[MAX_ALLOCATIONS];
static int allocationCount;
/* The thread's context stack (its top is current). */
static __thread Context *stack[16];
static __thread int depth;

static int environmentInteger(const char *name, int fallback) {
  const char *text = getenv(name);
  return text && *text ? atoi(text) : fallback;
}

/* The failure set for `call`, or SUCCESS. */
static CUresult failure(const char *call) {
  CUresult result = SUCCESS;
  pthread_mutex_lock(&mutex);
  for (int i = 0; i < failureCount; ++i)
    if (strcmp(failures[i].call, call) == 0)
      result = failures[i].result;
  pthread_mutex_unlock(&mutex);
  return result;
}
#define FAIL_IF_SET(call)                                                                          \
  do {                                                                                             \
    CUresult injected = failure(call);                                                             \
    if (injected != SUCCESS)                                                                       \
      return injected;                                                                             \
  } while (0)

static unsigned long long currentContextId(void) { return depth ? stack[depth - 1]->id : 0; }

static void recordWrite(CUdeviceptr address, size_t bytes, int value) {
  pthread_mutex_lock(&mutex);
  if (writeCount < MAX_RECORDS)
    writes[writeCount++] = (MockWrite){address, bytes, value};
  pthread_mutex_unlock(&mutex);
}

/* ---- Control API ---- */

/* Reads the device's description from the environment. */
static void readEnvironment(void) {
  capability = environmentInteger("MOCK_CUDA_CAPABILITY", 80);
  devices = environmentInteger("MOCK_CUDA_DEVICES", 1);
}

EXPORT void mock_cuda_reset(void) {
  pthread_mutex_lock(&mutex);
  readEnvironment();
  failureCount = launchCount = writeCount = loadCount = unloadCount = 0;
  attributeCount = synchronizeCount = 0;
  pthread_mutex_unlock(&mutex);
}
EXPORT void mock_cuda_set_capability(int major, int minor) {
  pthread_mutex_lock(&mutex);
  capability = 10 * major + minor;
  pthread_mutex_unlock(&mutex);
}
/* Makes every later call of `call` (the exported name, e.g. "cuLaunchKernel")
   return `result`, until mock_cuda_reset. */
EXPORT void mock_cuda_fail(const char *call, int result) {
  pthread_mutex_lock(&mutex);
  if (failureCount < MAX_FAILURES) {
    snprintf(failures[failureCount].call, sizeof failures[failureCount].call, "%s", call);
    failures[failureCount++].result = result;
  }
  pthread_mutex_unlock(&mutex);
}
/* A new context (as cuCtxCreate would make), to push with cuCtxPushCurrent_v2;
   NULL after MAX_CONTEXTS. */
#define MAX_CONTEXTS 64
static Context contexts[MAX_CONTEXTS];
static int contextCount;
EXPORT CUcontext mock_cuda_new_context(void) {
  Context *context = NULL;
  pthread_mutex_lock(&mutex);
  if (contextCount < MAX_CONTEXTS) {
    context = &contexts[contextCount++];
    context->id = nextContextId++;
  }
  pthread_mutex_unlock(&mutex);
  return context;
}
EXPORT int mock_cuda_launch_count(void) { return launchCount; }
EXPORT const MockLaunch *mock_cuda_launch(int i) { return &launches[i]; }
EXPORT int mock_cuda_write_count(void) { return writeCount; }
EXPORT const MockWrite *mock_cuda_write(int i) { return &writes[i]; }
EXPORT int mock_cuda_load_count(void) { return loadCount; }
EXPORT const MockLoad *mock_cuda_load(int i) { return &loads[i]; }
EXPORT int mock_cuda_unload_count(void) { return unloadCount; }
/* How many cuFuncSetAttribute and cuStreamSynchronize calls, and live allocations. */
EXPORT int mock_cuda_attribute_count(void) { return attributeCount; }
EXPORT int mock_cuda_synchronize_count(void) { return synchronizeCount; }
EXPORT int mock_cuda_live_allocations(void) { return allocationCount; }

/* ---- Errors and initialization ---- */

EXPORT CUresult cuGetErrorName(CUresult error, const char **name) {
  switch (error) {
  case SUCCESS: *name = "CUDA_SUCCESS"; return SUCCESS;
  case ERROR_INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; return SUCCESS;
  case 2: *name = "CUDA_ERROR_OUT_OF_MEMORY"; return SUCCESS;
  case ERROR_NO_DEVICE: *name = "CUDA_ERROR_NO_DEVICE"; return SUCCESS;
  case ERROR_NO_BINARY_FOR_GPU: *name = "CUDA_ERROR_NO_BINARY_FOR_GPU"; return SUCCESS;
  case ERROR_INVALID_PTX: *name = "CUDA_ERROR_INVALID_PTX"; return SUCCESS;
  case ERROR_UNSUPPORTED_PTX_VERSION: *name = "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"; return SUCCESS;
  case ERROR_NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; return SUCCESS;
  case 701: *name = "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"; return SUCCESS;
  case 801: *name = "CUDA_ERROR_NOT_SUPPORTED"; return SUCCESS;
  default: *name = NULL; return ERROR_INVALID_VALUE;
  }
}
EXPORT CUresult cuGetErrorString(CUresult error, const char **text) {
  const char *name = NULL;
  if (cuGetErrorName(error, &name) != SUCCESS)
    return ERROR_INVALID_VALUE;
  *text = "mock description";
  return SUCCESS;
}
/* Fails with MOCK_CUDA_INIT_RESULT when that is set (decayrt calls cuInit once per process). */
EXPORT CUresult cuInit(unsigned flags) {
  (void)flags;
  pthread_mutex_lock(&mutex);
  readEnvironment();
  pthread_mutex_unlock(&mutex);
  return environmentInteger("MOCK_CUDA_INIT_RESULT", SUCCESS);
}
EXPORT CUresult cuDeviceGetCount(int *count) {
  *count = devices;
  return SUCCESS;
}
EXPORT CUresult cuDeviceGet(CUdevice *device, int ordinal) {
  if (ordinal < 0 || ordinal >= devices)
    return ERROR_INVALID_VALUE;
  *device = ordinal;
  return SUCCESS;
}
EXPORT CUresult cuDeviceGetAttribute(int *value, int attribute, CUdevice device) {
  (void)device;
  FAIL_IF_SET("cuDeviceGetAttribute");
  if (attribute == 75)
    *value = capability / 10;
  else if (attribute == 76)
    *value = capability % 10;
  else
    return ERROR_INVALID_VALUE;
  return SUCCESS;
}

/* ---- Contexts ---- */

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *context, CUdevice device) {
  (void)device;
  *context = &primary;
  return SUCCESS;
}
EXPORT CUresult cuCtxGetCurrent(CUcontext *context) {
  *context = depth ? stack[depth - 1] : NULL;
  return SUCCESS;
}
EXPORT CUresult cuCtxGetDevice(CUdevice *device) {
  if (!depth)
    return ERROR_INVALID_CONTEXT;
  *device = 0;
  return SUCCESS;
}
EXPORT CUresult cuCtxGetId(CUcontext context, unsigned long long *id) {
  *id = ((Context *)context)->id;
  return SUCCESS;
}
EXPORT CUresult cuCtxPushCurrent_v2(CUcontext context) {
  if (depth == 16)
    return ERROR_INVALID_VALUE;
  stack[depth++] = context;
  return SUCCESS;
}
EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *context) {
  if (!depth)
    return ERROR_INVALID_CONTEXT;
  *context = stack[--depth];
  return SUCCESS;
}

/* ---- Modules ---- */

/* Reads "functions=a:1,b:2" of an image into `module`. */
static void readFunctions(const char *image, Module *module) {
  const char *list = strstr(image, "functions=");
  module->functionCount = 0;
  if (!list)
    return;
  list += strlen("functions=");
  while (*list && *list != '\n' && module->functionCount < MAX_FUNCTIONS) {
    Function *function = &module->functions[module->functionCount++];
    size_t length = strcspn(list, ":");
    snprintf(function->name, sizeof function->name, "%.*s", (int)length, list);
    function->parameterCount = atoi(list + length + 1);
    function->maxDynamicShared = 48 * 1024;
    list += strcspn(list, ",\n");
    if (*list == ',')
      ++list;
  }
}

EXPORT CUresult cuModuleLoadDataEx(CUmodule *out, const void *image, unsigned count, int *options,
                                   void **values) {
  FAIL_IF_SET("cuModuleLoadDataEx");
  const char *text = image;
  int cubin = memcmp(text, "\x7f" "ELF", 4) == 0;
  const char *target = strstr(text, "target=sm_");
  int imageTarget = target ? atoi(target + strlen("target=sm_")) : 0;
  CUresult result = SUCCESS;
  if (cubin && imageTarget != capability)
    result = ERROR_NO_BINARY_FOR_GPU;
  else if (!cubin && imageTarget > capability)
    result = ERROR_INVALID_PTX;
  else if (!cubin && strstr(text, "jit-fail")) {
    result = ERROR_UNSUPPORTED_PTX_VERSION;
    char *log = NULL;
    size_t logBytes = 0;
    for (unsigned i = 0; i < count; ++i) {
      if (options[i] == 5)
        log = values[i];
      if (options[i] == 6)
        logBytes = (size_t)(uintptr_t)values[i];
    }
    if (log && logBytes)
      snprintf(log, logBytes, "ptxas fatal   : Unsupported .version 9.9\nsecond line");
  }
  if (result != SUCCESS)
    return result;
  Module *module = calloc(1, sizeof *module);
  readFunctions(text, module);
  pthread_mutex_lock(&mutex);
  if (loadCount < MAX_RECORDS)
    loads[loadCount++] = (MockLoad){cubin, imageTarget, currentContextId()};
  pthread_mutex_unlock(&mutex);
  *out = module;
  return SUCCESS;
}
EXPORT CUresult cuModuleUnload(CUmodule module) {
  if (!depth)
    return ERROR_INVALID_CONTEXT;
  free(module);
  pthread_mutex_lock(&mutex);
  ++unloadCount;
  pthread_mutex_unlock(&mutex);
  return SUCCESS;
}
EXPORT CUresult cuModuleGetFunction(CUfunction *out, CUmodule handle, const char *name) {
  Module *module = handle;
  for (int i = 0; i < module->functionCount; ++i)
    if (strcmp(module->functions[i].name, name) == 0) {
      *out = &module->functions[i];
      return SUCCESS;
    }
  return ERROR_NOT_FOUND;
}
EXPORT CUresult cuFuncSetAttribute(CUfunction handle, int attribute, int value) {
  FAIL_IF_SET("cuFuncSetAttribute");
  if (attribute != 8 || value > 227 * 1024)
    return ERROR_INVALID_VALUE;
  ((Function *)handle)->maxDynamicShared = value;
  pthread_mutex_lock(&mutex);
  ++attributeCount;
  pthread_mutex_unlock(&mutex);
  return SUCCESS;
}
EXPORT CUresult cuLaunchKernel(CUfunction handle, unsigned gx, unsigned gy, unsigned gz,
                               unsigned bx, unsigned by, unsigned bz, unsigned shared,
                               CUstream stream, void **parameters, void **extra) {
  FAIL_IF_SET("cuLaunchKernel");
  Function *function = handle;
  if (extra || !depth || shared > (unsigned)function->maxDynamicShared || gx == 0 || gy == 0 ||
      gz == 0 || bx * by * bz > 1024)
    return ERROR_INVALID_VALUE;
  MockLaunch launch;
  memset(&launch, 0, sizeof launch);
  snprintf(launch.function, sizeof launch.function, "%s", function->name);
  launch.grid[0] = gx, launch.grid[1] = gy, launch.grid[2] = gz;
  launch.block[0] = bx, launch.block[1] = by, launch.block[2] = bz;
  launch.sharedBytes = shared;
  launch.stream = stream;
  launch.parameterCount = function->parameterCount;
  for (int i = 0; i < function->parameterCount && i < MAX_PARAMETERS; ++i)
    memcpy(&launch.parameters[i], parameters[i], sizeof(uint64_t));
  launch.context = currentContextId();
  pthread_mutex_lock(&mutex);
  if (launchCount < MAX_RECORDS)
    launches[launchCount++] = launch;
  pthread_mutex_unlock(&mutex);
  return SUCCESS;
}

/* ---- Memory: host memory stands for device memory ---- */

static CUresult allocate(CUdeviceptr *address, size_t bytes) {
  char *memory = malloc(bytes ? bytes : 1);
  memset(memory, 0xAB, bytes); /* not zero: the tests see what the runtime zeroes */
  pthread_mutex_lock(&mutex);
  if (allocationCount == MAX_ALLOCATIONS) {
    pthread_mutex_unlock(&mutex);
    free(memory);
    return 2; /* out of memory */
  }
  allocations[allocationCount].begin = memory;
  allocations[allocationCount++].bytes = bytes;
  pthread_mutex_unlock(&mutex);
  *address = (CUdeviceptr)(uintptr_t)memory;
  return SUCCESS;
}
static CUresult release(CUdeviceptr address) {
  pthread_mutex_lock(&mutex);
  for (int i = 0; i < allocationCount; ++i)
    if ((CUdeviceptr)(uintptr_t)allocations[i].begin == address) {
      free(allocations[i].begin);
      allocations[i] = allocations[--allocationCount];
      pthread_mutex_unlock(&mutex);
      return SUCCESS;
    }
  pthread_mutex_unlock(&mutex);
  return ERROR_INVALID_VALUE;
}
EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *address, size_t bytes) {
  FAIL_IF_SET("cuMemAlloc_v2");
  return allocate(address, bytes);
}
EXPORT CUresult cuMemFree_v2(CUdeviceptr address) { return release(address); }
EXPORT CUresult cuMemAllocAsync(CUdeviceptr *address, size_t bytes, CUstream stream) {
  (void)stream;
  FAIL_IF_SET("cuMemAllocAsync");
  return allocate(address, bytes);
}
EXPORT CUresult cuMemFreeAsync(CUdeviceptr address, CUstream stream) {
  (void)stream;
  return release(address);
}
EXPORT CUresult cuMemsetD8Async(CUdeviceptr address, unsigned char value, size_t bytes,
                                CUstream stream) {
  (void)stream;
  FAIL_IF_SET("cuMemsetD8Async");
  memset((void *)(uintptr_t)address, value, bytes);
  recordWrite(address, bytes, value);
  return SUCCESS;
}
EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr to, const void *from, size_t bytes) {
  memcpy((void *)(uintptr_t)to, from, bytes);
  return SUCCESS;
}
EXPORT CUresult cuMemcpyDtoH_v2(void *to, CUdeviceptr from, size_t bytes) {
  memcpy(to, (const void *)(uintptr_t)from, bytes);
  return SUCCESS;
}
EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr to, const void *from, size_t bytes,
                                     CUstream stream) {
  (void)stream;
  FAIL_IF_SET("cuMemcpyHtoDAsync_v2");
  memcpy((void *)(uintptr_t)to, from, bytes);
  recordWrite(to, bytes, -1);
  return SUCCESS;
}
EXPORT CUresult cuMemcpyDtoHAsync_v2(void *to, CUdeviceptr from, size_t bytes, CUstream stream) {
  (void)stream;
  memcpy(to, (const void *)(uintptr_t)from, bytes);
  return SUCCESS;
}
EXPORT CUresult cuStreamSynchronize(CUstream stream) {
  (void)stream;
  pthread_mutex_lock(&mutex);
  ++synchronizeCount;
  pthread_mutex_unlock(&mutex);
  return SUCCESS;
}
/* Device memory is what cuMemAlloc* returned; anything else is host memory
   the driver does not know (CUDA_ERROR_INVALID_VALUE, as the real driver). */
EXPORT CUresult cuPointerGetAttribute(void *data, int attribute, CUdeviceptr address) {
  if (attribute != 2)
    return ERROR_INVALID_VALUE;
  pthread_mutex_lock(&mutex);
  int found = 0;
  for (int i = 0; i < allocationCount; ++i) {
    CUdeviceptr begin = (CUdeviceptr)(uintptr_t)allocations[i].begin;
    found |= address >= begin && address < begin + allocations[i].bytes;
  }
  pthread_mutex_unlock(&mutex);
  if (!found)
    return ERROR_INVALID_VALUE;
  *(unsigned *)data = 2; /* CU_MEMORYTYPE_DEVICE */
  return SUCCESS;
}
