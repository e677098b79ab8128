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
 * Threading: a loaded package is immutable. Any number of threads may call
 * decayrt_run (and the accessors) on the same package at once; only
 * decayrt_package_free must not race with other calls on that package.
 * The only mutable state of the library is the per-thread error message
 * returned by decayrt_last_error.
 *
 * Errors: every function that returns a decayrt_status other than DECAYRT_OK
 * also sets a one-line message, read with decayrt_last_error on the same
 * thread. A failed call writes nothing to the caller's output tensors.
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
  DECAYRT_ERROR_UNSUPPORTED,        /**< the package has no kernel for the requested entry */
  DECAYRT_ERROR_OUT_OF_MEMORY       /**< the runtime could not allocate its temporary buffers */
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
      per-token tensors of a package compiled with dtype bf16), int32 or int64 for
      cu_seqlens. */
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
 * manifest (every field, docs/package.md) and resolves every CPU kernel symbol.
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
 * Runs the entry point `entry` ("forward" or "backward") of `package` on
 * `count` tensors, each given by name: the inputs of the entry (q, k, v, the
 * spec's inputs and params, the optional initial states, the backward's do and
 * optional final-state gradients, and the optional `cu_seqlens` [N+1],
 * int32 or int64, which needs B = 1) and caller-owned buffers for every output.
 *
 * B, T, H, K come from q [B,T,H,K], V from v [B,T,H,V], N from cu_seqlens
 * (offsets from 0 to T that never decrease), else N = B. Every tensor is checked
 * (name, presence, dtype, shape, layout, aliasing) before anything is written.
 * Absent optional inputs are zeros (scan states `scan_<name>_h0`: the scan's
 * init value). The backward's accumulating outputs are zeroed by the runtime.
 * A `k` or `dk` the kernel does not use (a spec that derives its key) may be
 * omitted; when passed it is checked, `k` is ignored and `dk` is filled with
 * zeros (its gradient).
 */
DECAYRT_API decayrt_status decayrt_run(decayrt_package *package, const char *entry,
                           const decayrt_tensor *tensors, size_t count);

/** The message of the last failed call on this thread ("" if none failed yet). Valid
    until the next failing call on this thread. */
DECAYRT_API const char *decayrt_last_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DECAYRT_DECAYRT_H */
