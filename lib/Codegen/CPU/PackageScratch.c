// The scratch allocator compiled into every CPU package: the kernels' memref.alloc/dealloc, from a reused pool.
//
// The kernels allocate the same buffers for every work item and
// every call; malloc hands large ones back to the OS on free, so each call
// would page-fault them in again. Freed blocks are instead kept in a pool of
// the package (guarded by a mutex: kernels run on several threads, and hosts
// may call from several threads) and reused for the next allocation they
// fit. The pool holds at most what was in use at once; it is freed when the
// package is unloaded. The functions are hidden: each package binds to its
// own pool, never to a host's or another package's definitions.
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define PACKAGE_LOCAL __attribute__((visibility("hidden")))

enum { kPooledBlocks = 256, kHeaderBytes = 64 };

/// The kHeaderBytes before every block: what free needs.
typedef struct {
  size_t capacity; // bytes usable after the header; 0: over-aligned, never pooled
  void *base;      // what aligned_alloc returned
} Header;

static pthread_mutex_t poolLock = PTHREAD_MUTEX_INITIALIZER;
static void *pool[kPooledBlocks]; // free blocks (user pointers)
static int pooled;

static Header *headerOf(void *block) { return (Header *)((char *)block - kHeaderBytes); }
static size_t capacityOf(void *block) { return headerOf(block)->capacity; }
static void release(void *block) { free(headerOf(block)->base); }

/// The smallest pooled block of at least `size` bytes, taken out of the pool.
static void *takePooled(size_t size) {
  void *block = NULL;
  pthread_mutex_lock(&poolLock);
  int best = -1;
  for (int i = 0; i < pooled; ++i) {
    size_t capacity = capacityOf(pool[i]);
    if (capacity >= size && (best < 0 || capacity < capacityOf(pool[best])))
      best = i;
  }
  if (best >= 0) {
    block = pool[best];
    pool[best] = pool[--pooled];
  }
  pthread_mutex_unlock(&poolLock);
  return block;
}

/// A fresh block of `size` bytes aligned to `alignment` (a power of two >= 64),
/// its header in the kHeaderBytes before it.
static void *allocateFresh(size_t alignment, size_t size) {
  size_t capacity = (size + alignment - 1) & ~(alignment - 1);
  size_t lead = alignment; // >= kHeaderBytes, keeps the block aligned
  if (capacity < size || capacity + lead < capacity)
    return NULL;
  char *base = (char *)aligned_alloc(alignment, capacity + lead);
  if (!base)
    return NULL;
  void *block = base + lead;
  Header *header = headerOf(block);
  header->capacity = alignment == 64 ? capacity : 0;
  header->base = base;
  return block;
}

PACKAGE_LOCAL void *_mlir_memref_to_llvm_alloc(size_t size) {
  void *block = takePooled(size);
  return block ? block : allocateFresh(64, size);
}

PACKAGE_LOCAL void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size) {
  // Every pooled block is 64-byte aligned; larger alignments get fresh blocks.
  if (alignment <= 64)
    return _mlir_memref_to_llvm_alloc(size);
  if (alignment & (alignment - 1))
    return NULL;
  return allocateFresh(alignment, size);
}

PACKAGE_LOCAL void _mlir_memref_to_llvm_free(void *block) {
  if (!block)
    return;
  if (capacityOf(block) > 0) {
    pthread_mutex_lock(&poolLock);
    int kept = pooled < kPooledBlocks;
    if (kept)
      pool[pooled++] = block;
    pthread_mutex_unlock(&poolLock);
    if (kept)
      return;
  }
  release(block);
}

/// Frees the pool when the package is unloaded.
__attribute__((destructor)) static void releasePool(void) {
  pthread_mutex_lock(&poolLock);
  for (int i = 0; i < pooled; ++i)
    release(pool[i]);
  pooled = 0;
  pthread_mutex_unlock(&poolLock);
}
