/* decayrt: the C API that loads decayc kernel packages (docs/package.md) and runs their entry points. */
#ifndef DECAYRT_DECAYRT_H
#define DECAYRT_DECAYRT_H

#include <stddef.h>
#include <stdint.h>

/* Marks the exported functions (the library hides everything else). */
#if defined(__GNUC__) || defined(__clang__)
#define DECAYRT_API __attribute__((visibility("default")))
#else
#define DECAYRT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Threading: any number of threads may call decayrt_run, decayrt_run_cuda
 * (and the accessors) on the same package at once; only decayrt_package_free
 * must not race with other calls on that package. A package's only mutable
 * state is its cache of loaded CUDA modules, guarded by a mutex. Besides the
 * per-thread error message returned by decayrt_last_error, the library's only
 * global state is the CUDA driver, loaded once by the first CUDA call.
 *
 * Errors: every function that returns a decayrt_status other than DECAYRT_OK
 * also sets a one-line message, read with decayrt_last_error on the same
 * thread. A failed call writes nothing to the caller's output tensors (on the
 * CUDA path: unless a driver call fails after every check passed).
 */

/** A loaded kernel package (one shared object written by `decayc compile`). Opaque. */
typedef struct decayrt_package decayrt_package;

/** What a call returned. */
typedef enum decayrt_status {
  DECAYRT_OK = 0,                   /**< success */
  DECAYRT_ERROR_INVALID_ARGUMENT,   /**< a NULL pointer, an unknown entry, a duplicate tensor name,
                                         NULL data, or invalid cu_seqlens values */
  DECAYRT_ERROR_PACKAGE,            /**< the package cannot be opened, lacks a symbol, or its
                                         manifest is malformed */
  DECAYRT_ERROR_MISSING_TENSOR,     /**< a required tensor was not passed */
  DECAYRT_ERROR_UNKNOWN_TENSOR,     /**< a tensor name the entry does not take */
  DECAYRT_ERROR_SHAPE,              /**< a wrong rank or shape */
  DECAYRT_ERROR_DTYPE,              /**< a wrong element type */
  DECAYRT_ERROR_LAYOUT,             /**< strides that are not contiguous row-major, or data not
                                         aligned to its element size */
  DECAYRT_ERROR_ALIASING,           /**< an output overlaps another tensor in memory */
  DECAYRT_ERROR_UNSUPPORTED,        /**< the package has no kernel for the requested entry (on
                                         the CUDA path: for the call's K, V or the device) */
  DECAYRT_ERROR_OUT_OF_MEMORY,      /**< the runtime could not allocate its temporary buffers */
  DECAYRT_ERROR_NO_CUDA_DRIVER,     /**< the CUDA driver library cannot be loaded (or lacks an
                                         entry point decayrt needs) */
  DECAYRT_ERROR_NO_DEVICE,          /**< the CUDA driver loaded, but cuInit failed or it reports no
                                         device */
  DECAYRT_ERROR_CUDA,               /**< a CUDA driver call failed; the message names the call and
                                         the driver's error name and text */
  DECAYRT_ERROR_SIMT,               /**< under SIMT emulation, a kernel misbehaved: a deadlock,
                                         divergence at a warp-collective operation, a shared-memory
                                         access out of bounds; the message names kernel and block */
  DECAYRT_ERROR_SIMT_RACE,          /**< under SIMT emulation, a shared-memory data race: two
                                         threads of a block accessed the same word between the same
                                         two barriers and one wrote it */
  DECAYRT_ERROR_STATE               /**< decayrt_decoder_restore: the bytes are not a state this
                                         decoder can take (truncated, bad magic, another format
                                         version, another spec or recurrence, other H, K, V,
                                         corrupt) */
} decayrt_status;

/** The enumerator's name without the DECAYRT_ prefix ("OK", "ERROR_SHAPE", ...); "UNKNOWN"
    for any other value. */
DECAYRT_API const char *decayrt_status_name(decayrt_status status);

/** The element type of a tensor. */
typedef enum decayrt_dtype {
  DECAYRT_F32,  /**< IEEE binary32 (the float tensors of the CPU kernels, states and params) */
  DECAYRT_F64,  /**< IEEE binary64 */
  DECAYRT_BF16, /**< bfloat16, stored as uint16_t (the per-token tensors of a bf16 package) */
  DECAYRT_I32,  /**< int32_t (cu_seqlens) */
  DECAYRT_I64   /**< int64_t (cu_seqlens) */
} decayrt_dtype;

/**
 * A tensor passed to decayrt_run, by name. The runtime neither copies nor
 * keeps it: every pointer must stay valid for the duration of the call.
 */
typedef struct decayrt_tensor {
  /** The tensor's name as in docs/semantics.md: "q", "k", "v", "h0", "cu_seqlens", a spec
      input or param, "o", "ht", "dq", ... */
  const char *name;
  /** The first element. Inputs are only read. Outputs are written; they must not overlap
      any other tensor of the call. May be NULL only when the tensor has no elements. */
  void *data;
  /** The element type: the manifest's `dtype` of the tensor (f32, or bf16 for the
      per-token tensors of a package compiled with dtype bf16 and for the step's
      `state` cache of a package compiled with state dtype bf16), int32 or int64
      for cu_seqlens. */
  decayrt_dtype dtype;
  /** The number of dimensions. */
  int32_t rank;
  /** `rank` sizes, outermost first. May be NULL when rank is 0. */
  const int64_t *shape;
  /** `rank` strides in elements, or NULL for contiguous row-major. Given strides must be
      those of a contiguous row-major tensor (strides of dimensions of size 1 are not
      checked); the kernels do not take other layouts. */
  const int64_t *strides;
} decayrt_tensor;

/**
 * Opens the package at `path` (dlopen with RTLD_NOW | RTLD_LOCAL; a path without
 * a slash is taken relative to the current directory), reads and validates its
 * manifest (every field, docs/package.md), resolves every CPU kernel symbol
 * and the PTX and cubin symbols of every GPU module (the cubin must be an ELF
 * image of at least cubin_size bytes). Loading needs no CUDA driver.
 * On success stores a new package in `*out`, to be released with
 * decayrt_package_free. On failure returns DECAYRT_ERROR_PACKAGE (unreadable
 * file, not a shared object, missing symbol, malformed manifest),
 * DECAYRT_ERROR_INVALID_ARGUMENT (NULL or empty arguments) or
 * DECAYRT_ERROR_OUT_OF_MEMORY, and sets `*out` to NULL when `out` is not NULL.
 */
DECAYRT_API decayrt_status decayrt_package_load(const char *path, decayrt_package **out);

/** Releases a package and closes its shared object. NULL is ignored. */
DECAYRT_API void decayrt_package_free(decayrt_package *package);

/** The package's manifest, the JSON text it exports; valid until the package is freed.
    NULL for a NULL package. */
DECAYRT_API const char *decayrt_package_manifest(const decayrt_package *package);

/** The recurrence's name (the manifest's spec.name, e.g. "mamba2"); valid until the
    package is freed. NULL for a NULL package. */
DECAYRT_API const char *decayrt_package_spec_name(const decayrt_package *package);

/**
 * Runs the entry point `entry` ("forward", "backward" or "step") of `package` on
 * `count` tensors, each given by name: the inputs of the entry (q, k, v, the
 * spec's inputs and params, the optional initial states, the backward's do and
 * optional final-state gradients, and the optional `cu_seqlens` [N+1],
 * int32 or int64, which needs B = 1) and caller-owned buffers for every output.
 *
 * The step entry (a decoding step, or recurrent mode over T tokens) takes no
 * cu_seqlens, initial or final states, but `slots` and `positions` (int64
 * [B]: the state slot of batch row b and the RoPE position of its first
 * token) and the state caches it updates in place: `state` [S,H,K,V] (S, the
 * number of slots, is its first size), `norm_state` [S,H,K] with a
 * normalizer, `scan_<name>_state` [S,H] or [S,H,K] for every scan, all
 * required and f32, except `state` in bf16 (uint16_t bits) when the package
 * was compiled with state dtype bf16 (its manifest says which; the other
 * dtype fails with DECAYRT_ERROR_DTYPE). Row b advances slot slots[b]
 * through its T tokens. Every slot must lie in [0, S) and appear once,
 * every position must be >= 0; the state caches count as written for the
 * aliasing check. docs/decoding.md has a decoder that keeps the caches for you.
 *
 * B, T, H, K come from q [B,T,H,K], V from v [B,T,H,V], N from cu_seqlens
 * (offsets from 0 to T that never decrease), else N = B. Every tensor is checked
 * (name, presence, dtype, shape, layout, aliasing) before anything is written.
 * Absent optional inputs are zeros (scan states `scan_<name>_h0`: the scan's
 * init value). The backward's accumulating outputs are zeroed by the runtime
 * (not those the package's manifest marks "overwritten": the kernel stores
 * every element of them).
 * A `k` or `dk` the kernel does not use (a spec that derives its key) may be
 * omitted; when passed it is checked, `k` is ignored and `dk` is filled with
 * zeros (its gradient).
 */
DECAYRT_API decayrt_status decayrt_run(decayrt_package *package, const char *entry,
                           const decayrt_tensor *tensors, size_t count);

/* ---- SIMT emulation (docs/simt.md) ----
 *
 * A package compiled with `--target simt` holds its GPU kernels (the same
 * NVVM IR every chip's PTX is made from) compiled for the host: the manifest's
 * modules with target "simt". decayrt_run_simt runs them on host memory under
 * an emulator with GPU semantics: every block's threads run as fibers that
 * meet at barriers and at warp-collective operations (mma.sync, shfl.sync),
 * each block has its own shared memory, cp.async data lands at its wait. It
 * is how the GPU kernels are verified without a GPU; it is slow.
 */

/** How decayrt_run_simt emulates. Zero-initialize, then set fields. */
typedef struct decayrt_simt_options {
  /** Nonzero: report shared-memory data races (two threads of a block access the same 4-byte
      word between the same two barriers and one writes it) as DECAYRT_ERROR_SIMT_RACE.
      decayrt_run_simt with NULL options checks races. */
  int ignore_races;
  /** OS threads that run blocks (each block's GPU threads run as fibers on one of them);
      0: one per hardware thread. */
  unsigned workers;
} decayrt_simt_options;

/**
 * Runs the GPU kernels of `entry` ("forward", "backward" or "step") of
 * `package` under SIMT emulation, on host tensors passed exactly as to
 * decayrt_run (same names, shapes, dtypes and checks). The module is the package's simt
 * module of `entry` whose key_dim and value_dim equal the call's K and V
 * (none: DECAYRT_ERROR_UNSUPPORTED listing what the package has). Its
 * launches run in order, each on every block of its grid.
 *
 * The kernels write into runtime-owned copies of the outputs, filled with NaN
 * (or zeros, for accumulating outputs) before the first launch, so that an
 * output the kernels fail to write shows; the caller's outputs are written
 * only when every launch succeeded. The workspace is likewise filled with NaN.
 * A step call's state caches (updated in place) are staged the same way:
 * the kernels update runtime-owned copies of them, which are copied back
 * only when every launch succeeded, so a failed call leaves them untouched.
 *
 * Errors: those of decayrt_run, plus DECAYRT_ERROR_SIMT (a kernel deadlocked,
 * diverged at a warp-collective operation or accessed shared memory out of
 * bounds: the message names the kernel, the block and the threads) and
 * DECAYRT_ERROR_SIMT_RACE (the first data race: kernel, block, threads,
 * shared-memory offset, and how many there were). `options` may be NULL.
 */
DECAYRT_API decayrt_status decayrt_run_simt(decayrt_package *package, const char *entry,
                                            const decayrt_tensor *tensors, size_t count,
                                            const decayrt_simt_options *options);

/* ---- CUDA (docs/cuda.md) ----
 *
 * decayrt launches a package's GPU kernels (the manifest's modules with target
 * "sm_XY", docs/package.md) through the CUDA driver API. It does not link the
 * driver: the first CUDA call loads libcuda.so.1 (or the library the
 * environment variable DECAYRT_CUDA_DRIVER names) with dlopen, calls cuInit,
 * and keeps both for the life of the process. Without a driver the CPU path
 * works as before and the CUDA calls fail with DECAYRT_ERROR_NO_CUDA_DRIVER.
 *
 * Context: a CUDA call runs in the context current on the calling thread
 * (cuCtxGetCurrent); when none is, device 0's primary context (retained once
 * and kept for the process) is made current for the duration of the call.
 * Device addresses belong to that context.
 */

/**
 * Whether CUDA is usable: DECAYRT_OK, DECAYRT_ERROR_NO_CUDA_DRIVER (message
 * "no CUDA driver: " and the dynamic linker's reason) or
 * DECAYRT_ERROR_NO_DEVICE ("no CUDA device: " and why: cuInit failed or the
 * driver reports no device). The first call loads the driver.
 */
DECAYRT_API decayrt_status decayrt_cuda_available(void);

/**
 * Runs the GPU kernels of `entry` ("forward", "backward" or "step") on device
 * tensors, asynchronously on `stream`. A step call's state caches are updated
 * in place on the device; it needs no workspace.
 *
 * Tensors are passed as to decayrt_run (same names, shapes, dtypes and
 * checks, the same absent optional inputs and zeroed accumulating outputs),
 * but `data` is a device address (a CUdeviceptr of the current context),
 * except for cu_seqlens (below). Every check happens on the host before
 * anything is enqueued: names, presence, dtypes, shapes, strides, alignment,
 * and that no output overlaps another tensor or the workspace.
 *
 * The module: among the package's modules of `entry` whose key_dim and
 * value_dim equal the call's K and V, the one whose target equals the
 * device's compute capability (sm_86 for 8.6) is loaded from its cubin;
 * without one (or if its cubin does not load) the PTX of the highest target
 * below the capability that the driver JIT-compiles. No module for the entry,
 * for K and V, or for the device: DECAYRT_ERROR_UNSUPPORTED, the message
 * listing what the package has. Loaded modules are cached in the package, per
 * context, and unloaded by decayrt_package_free (free a package before
 * destroying a context it ran in).
 *
 * stream: a CUstream of the current context, or NULL for the default stream.
 * The sequence table's copy, the fills of absent optional inputs, the zeroing
 * of accumulating outputs and every launch of the module are enqueued on it
 * in order; the call returns without waiting for them. The tensors must stay
 * valid (and inputs unchanged) until the stream has run the call's work.
 *
 * workspace: device memory of at least decayrt_cuda_workspace_bytes bytes,
 * aligned to 256 bytes, that the call may use until the stream has run its
 * work (its contents on entry do not matter); or NULL (then
 * workspace_bytes is ignored): decayrt allocates it on the stream with
 * cuMemAllocAsync and frees it after the last launch with cuMemFreeAsync (or,
 * where the driver or device lacks stream-ordered allocation, with cuMemAlloc,
 * and cuStreamSynchronize + cuMemFree after the launches).
 *
 * cu_seqlens: its values set the sequence table and the grids, so decayrt
 * reads them on the host: host memory (pageable or pinned) is read in place;
 * device or managed memory is copied back with cuMemcpyDtoHAsync on `stream`
 * and cuStreamSynchronize, so that such a call waits for the stream. A step
 * call's slots and positions (device memory the kernel reads) are read the
 * same way for their checks, before anything is enqueued.
 *
 * Errors: those of decayrt_run, plus DECAYRT_ERROR_NO_CUDA_DRIVER,
 * DECAYRT_ERROR_NO_DEVICE, DECAYRT_ERROR_UNSUPPORTED (above) and
 * DECAYRT_ERROR_CUDA: a driver call failed (the message names it with the
 * driver's error name and text; an error of earlier asynchronous work on the
 * stream may surface this way). Nothing is enqueued before every check has
 * passed; a driver failure after that may leave outputs partly written.
 */
DECAYRT_API decayrt_status decayrt_run_cuda(decayrt_package *package, const char *entry,
                                            const decayrt_tensor *tensors, size_t count,
                                            void *stream, void *workspace, size_t workspace_bytes);

/**
 * Stores in `*bytes` the size of the workspace decayrt_run_cuda needs for the
 * same `entry` and tensors: the module's scratch (its manifest `workspace`),
 * the sequence table, buffers for absent optional inputs and unused
 * arguments, each aligned to 256 bytes. It is the largest any module of
 * `entry` for the call's K and V needs, so it holds on every device. The
 * tensors are checked as by decayrt_run_cuda; the driver is needed only when
 * cu_seqlens (or a step's slots and positions) is device memory (it is then
 * read on `stream` as there). A step call without unused arguments needs 0.
 * Errors: those of the checks, DECAYRT_ERROR_UNSUPPORTED without a module for
 * `entry`, K and V, and the driver's when cu_seqlens must be copied.
 */
DECAYRT_API decayrt_status decayrt_cuda_workspace_bytes(const decayrt_package *package,
                                                        const char *entry,
                                                        const decayrt_tensor *tensors,
                                                        size_t count, void *stream,
                                                        size_t *bytes);

/*
 * Device memory helpers for tools and tests (`decayc run --device cuda`):
 * synchronous, in the current context (else device 0's primary context).
 * Not meant for a trainer's hot path: use the framework's allocator and
 * streams there.
 */

/** Allocates `bytes` (at least 1) of device memory (cuMemAlloc) into `*device`. */
DECAYRT_API decayrt_status decayrt_cuda_alloc(size_t bytes, void **device);
/** Frees memory of decayrt_cuda_alloc (cuMemFree); NULL is ignored. */
DECAYRT_API decayrt_status decayrt_cuda_free(void *device);
/** Copies `bytes` from host memory to device memory (cuMemcpyHtoD). */
DECAYRT_API decayrt_status decayrt_cuda_copy_to_device(void *device, const void *host,
                                                       size_t bytes);
/** Copies `bytes` from device memory to host memory (cuMemcpyDtoH). */
DECAYRT_API decayrt_status decayrt_cuda_copy_to_host(void *host, const void *device,
                                                     size_t bytes);

/* ---- Decoding (docs/decoding.md) ----
 *
 * A decoder holds a cache of `slots` state slots for one package, each the
 * state of one sequence: the state [H,K,V] (f32, or bf16 when the package's
 * step kernel keeps it so), the normalizer's [H,K] if the spec has one, every
 * scan's [H] or [H,K] (f32), and the sequence's position (the
 * tokens it has consumed, where its RoPE continues). A prompt goes into a slot
 * with decayrt_decoder_prefill (the chunked forward kernel for a fresh slot,
 * the step kernel in recurrent mode for a slot that already holds tokens);
 * decayrt_decoder_step then runs one token of a batch of slots. Slots are
 * independent: sequences join (reset or restore a slot, prefill it) and leave
 * (stop passing the slot) between steps at will.
 *
 * Tensors are passed as to decayrt_run, without the ones the decoder passes
 * itself (h0, ht, the normalizer and scan states, cu_seqlens, slots,
 * positions, the state caches: passing one fails with
 * DECAYRT_ERROR_UNKNOWN_TENSOR).
 *
 * Errors: a failed call changes no slot (states and positions) and writes
 * none of the caller's outputs; everything is checked before the kernel
 * runs. The messages name the call.
 *
 * Threading: a decoder is not safe for concurrent calls, on any slots; guard
 * it with a lock, or give each thread its own decoder. Different decoders
 * (also of the same package) may be used from different threads at once.
 * The package must outlive its decoders.
 */

/** A cache of state slots for decoding with one package. Opaque. */
typedef struct decayrt_decoder decayrt_decoder;

/**
 * Makes a decoder of `slots` empty sequences (zero states, scans at their
 * init, position 0) of `heads` heads, key dim `key_dim` and value dim
 * `value_dim`, running the forward and step CPU kernels of `package`. Stores
 * it in `*out` (NULL on failure), to be released with decayrt_decoder_free.
 * Errors: DECAYRT_ERROR_INVALID_ARGUMENT (NULL package or out, a size below
 * 1), DECAYRT_ERROR_SHAPE (K, V other than the spec's fixed ones, an odd K
 * with RoPE, a cache too large to address), DECAYRT_ERROR_UNSUPPORTED (no
 * forward or step kernel, or kernels whose states do not match),
 * DECAYRT_ERROR_OUT_OF_MEMORY.
 */
DECAYRT_API decayrt_status decayrt_decoder_create(decayrt_package *package, int64_t slots,
                                                  int64_t heads, int64_t key_dim,
                                                  int64_t value_dim, decayrt_decoder **out);

/** Releases a decoder and its cache (not the package). NULL is ignored. */
DECAYRT_API void decayrt_decoder_free(decayrt_decoder *decoder);

/** Makes `slot` an empty sequence: zero states, scans at their init, position 0. */
DECAYRT_API decayrt_status decayrt_decoder_reset(decayrt_decoder *decoder, int64_t slot);

/**
 * Runs a prompt of T >= 0 tokens into `slot`: q [1,T,H,K], k, v [1,T,H,V], the
 * spec's inputs (B = 1) and params, and the output o [1,T,H,V], with the
 * decoder's H, K, V. At position 0 it runs the chunked forward kernel with the
 * slot's states as initial states and stores the final states into the slot
 * (the forward's states are f32: a bf16 state cache is widened for it, and its
 * final state rounded to nearest even bf16);
 * at a later position it runs the step kernel over the T tokens, from the
 * slot's position. Advances the slot's position by T.
 */
DECAYRT_API decayrt_status decayrt_decoder_prefill(decayrt_decoder *decoder, int64_t slot,
                                                   const decayrt_tensor *tensors, size_t count);

/**
 * Runs one token of `batch` sequences: row b of the tensors (q [batch,1,H,K],
 * k, v [batch,1,H,V], the spec's inputs [batch,1,...], params, and the output
 * o [batch,1,H,V]) advances slot slots[b], at that slot's position. Every
 * slot must be in [0, slots) and appear once. Advances those slots'
 * positions by 1; the other slots are untouched. batch 0 is allowed (the
 * tensors then have B = 0).
 */
DECAYRT_API decayrt_status decayrt_decoder_step(decayrt_decoder *decoder, const int64_t *slots,
                                                size_t batch, const decayrt_tensor *tensors,
                                                size_t count);

/** Stores in `*position` the tokens `slot` has consumed (where its next token's RoPE is). */
DECAYRT_API decayrt_status decayrt_decoder_position(const decayrt_decoder *decoder, int64_t slot,
                                                    int64_t *position);

/**
 * Saves `slot` (its states and position) as bytes that decayrt_decoder_restore
 * takes back, in this or another decoder of the same recurrence, sizes and
 * state dtypes (the format: docs/decoding.md). Stores the size the state
 * needs in `*size`; with a NULL `buffer` or `capacity` 0 writes nothing
 * else. A smaller non-zero capacity fails with DECAYRT_ERROR_INVALID_ARGUMENT,
 * writing nothing into `buffer`.
 */
DECAYRT_API decayrt_status decayrt_decoder_save(const decayrt_decoder *decoder, int64_t slot,
                                                void *buffer, size_t capacity, size_t *size);

/**
 * Replaces `slot` with a state saved by decayrt_decoder_save. Checks all the
 * bytes first (magic, format version, spec name, recurrence, H, K, V, the
 * states' names, dtypes and sizes, the exact length, a checksum) and fails with
 * DECAYRT_ERROR_STATE and a message saying what differs, leaving the slot
 * unchanged.
 */
DECAYRT_API decayrt_status decayrt_decoder_restore(decayrt_decoder *decoder, int64_t slot,
                                                   const void *bytes, size_t size);

/** The message of the last failed call on this thread ("" if none failed yet). Valid
    until the next failing call on this thread. */
DECAYRT_API const char *decayrt_last_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DECAYRT_DECAYRT_H */
