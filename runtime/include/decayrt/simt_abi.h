/* decayrt/simt_abi.h: the ABI between GPU kernels compiled for SIMT emulation (pass decay-gpu-to-simt) and decayrt's emulator. */
#ifndef DECAYRT_SIMT_ABI_H
#define DECAYRT_SIMT_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A GPU kernel compiled for emulation is a host function
 *
 *     void <symbol>(decay_simt_thread *thread, void **parameters);
 *
 * run once per GPU thread, each on its own fiber. `parameters` is marshalled
 * as for cuLaunchKernel: parameters[i] points to the i-th kernel parameter's
 * value (8 bytes: a pointer or an int64). Thread and block ids are read from
 * `thread`; every other GPU primitive is a call through `thread->ops`.
 * This is not a user API: decay-gpu-to-simt generates the calls and the
 * emulator (runtime/lib/simt/) implements them. The field order is fixed:
 * the pass indexes the structs by position (DECAY_SIMT_FIELD_*,
 * DECAY_SIMT_OP_*).
 */

typedef struct decay_simt_thread decay_simt_thread;

/** Shuffle modes of shfl.sync (the PTX ISA's .up, .down, .bfly, .idx). */
enum decay_simt_shuffle_mode {
  DECAY_SIMT_SHUFFLE_UP = 0,
  DECAY_SIMT_SHUFFLE_DOWN = 1,
  DECAY_SIMT_SHUFFLE_BFLY = 2,
  DECAY_SIMT_SHUFFLE_IDX = 3
};

/** What a shared-memory access does (decay_simt_ops.shared_access). */
enum decay_simt_access {
  DECAY_SIMT_READ = 0,
  DECAY_SIMT_WRITE = 1,
  DECAY_SIMT_ATOMIC = 2 /**< a read-modify-write atomic: races with plain accesses only */
};

/** The GPU primitives, implemented by the emulator. A primitive that finds
    the kernel misbehaving (divergence, an access out of bounds, a deadlock)
    records the error and never returns: the block is abandoned. */
typedef struct decay_simt_ops {
  /** bar.sync 0 (barrier0): waits for every thread of the block that has not exited. */
  void (*barrier)(decay_simt_thread *thread);
  /** mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, warp-collective: this lane's
      fragments a0..a3, b0, b1 (tf32 in b32) and c0..c3; stores d0..d3 in `d`. */
  void (*mma_m16n8k8_tf32)(decay_simt_thread *thread, uint32_t a0, uint32_t a1, uint32_t a2,
                           uint32_t a3, uint32_t b0, uint32_t b1, float c0, float c1, float c2,
                           float c3, float *d);
  /** shfl.sync, warp-collective: `mode` (decay_simt_shuffle_mode), the member mask, this
      lane's value, the lane or offset b and the packed clamp/segment-mask operand c.
      Returns the value read; stores the PTX predicate (source lane in range) in `*valid`. */
  uint32_t (*shuffle)(decay_simt_thread *thread, uint32_t mode, uint32_t member_mask,
                      uint32_t value, uint32_t lane_or_offset, uint32_t clamp_and_mask,
                      uint8_t *valid);
  /** cp.async.shared.global: copies `source_bytes` of `bytes` from `global` to `shared` and
      zero-fills the rest, in the thread's current (uncommitted) group. `bytes` is 4, 8 or 16
      (the cp-size), `shared` aligned to it, `source_bytes <= bytes`. Nothing lands in shared
      memory before the cp_async_wait that completes the group (or the thread's exit). */
  void (*cp_async)(decay_simt_thread *thread, void *shared, const void *global, uint32_t bytes,
                   uint32_t source_bytes);
  /** cp.async.commit_group. */
  void (*cp_async_commit)(decay_simt_thread *thread);
  /** cp.async.wait_group N: completes all but the `pending` most recent committed groups. */
  void (*cp_async_wait)(decay_simt_thread *thread, uint32_t pending);
  /** Called before every load, store or atomic on shared memory (address space 3):
      checks bounds and feeds the race detector. `kind` is a decay_simt_access. */
  void (*shared_access)(decay_simt_thread *thread, const void *address, uint32_t bytes,
                        uint32_t kind);
} decay_simt_ops;

/** One emulated GPU thread, as the kernel sees it. */
struct decay_simt_thread {
  uint32_t tid[3];   /**< %tid.x, .y, .z */
  uint32_t ntid[3];  /**< %ntid: the block's dimensions */
  uint32_t ctaid[3]; /**< %ctaid: the block's index in the grid */
  uint32_t nctaid[3]; /**< %nctaid: the grid's dimensions */
  uint32_t lane;     /**< %laneid */
  uint32_t warp;     /**< %warpid (the linear thread index / 32) */
  void *shared;      /**< the block's dynamic shared memory */
  const decay_simt_ops *ops;
  void *emulator;    /**< the emulator's own state of this thread */
};

/* Field positions in decay_simt_thread, as the pass indexes it. */
enum {
  DECAY_SIMT_FIELD_TID = 0,
  DECAY_SIMT_FIELD_NTID = 1,
  DECAY_SIMT_FIELD_CTAID = 2,
  DECAY_SIMT_FIELD_NCTAID = 3,
  DECAY_SIMT_FIELD_LANE = 4,
  DECAY_SIMT_FIELD_WARP = 5,
  DECAY_SIMT_FIELD_SHARED = 6,
  DECAY_SIMT_FIELD_OPS = 7,
  DECAY_SIMT_FIELD_EMULATOR = 8
};

/* Entry positions in decay_simt_ops. */
enum {
  DECAY_SIMT_OP_BARRIER = 0,
  DECAY_SIMT_OP_MMA_M16N8K8_TF32 = 1,
  DECAY_SIMT_OP_SHUFFLE = 2,
  DECAY_SIMT_OP_CP_ASYNC = 3,
  DECAY_SIMT_OP_CP_ASYNC_COMMIT = 4,
  DECAY_SIMT_OP_CP_ASYNC_WAIT = 5,
  DECAY_SIMT_OP_SHARED_ACCESS = 6
};

/** A kernel compiled for emulation. */
typedef void (*decay_simt_kernel)(decay_simt_thread *thread, void **parameters);

#ifdef __cplusplus
}
#endif

#endif /* DECAYRT_SIMT_ABI_H */
