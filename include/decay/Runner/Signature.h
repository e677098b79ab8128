// What a recurrence's entry points take and give: its summary and the ordered argument list every back end shares.
#ifndef DECAY_RUNNER_SIGNATURE_H
#define DECAY_RUNNER_SIGNATURE_H

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace decay {
class RecurrenceOp;

/// A tensor a recurrence reads or writes: its name, its dims as letters of
/// "BTHKVNS" (N = number of sequences, S = number of state slots of a step),
/// whether it may be absent, and the element type the kernels store it in
/// ("f32" or "bf16"; "i64" for a step's slots and positions).
struct TensorSpec {
  std::string name;
  std::string dims;
  bool optional = false;
  std::string dtype = "f32";
};

/// What a spec declares, in the terms a driver needs (no MLIR types).
struct SpecSummary {
  std::string name;
  std::string granularity; ///< none, constant_scalar, constant_vector, scalar, vector
  std::string featureMap;  ///< identity, elu1, exp, silu, relu
  bool derivedKey = false;
  bool perChannel = false; ///< vector or constant_vector decay
  bool normalizer = false;
  bool rope = false;
  /// Storage of the per-token tensors (dims starting with B, T: q, k, v, o,
  /// do, dq, dk, dv, the spec's inputs and their gradients) in the kernels:
  /// "f32" or "bf16". States and params are always f32.
  std::string dtype = "f32";
  /// Storage of the step's attention state (its `state` slots): "f32" or
  /// "bf16" (f32 arithmetic). Every other state is f32.
  std::string stateDtype = "f32";
  std::optional<int64_t> keyDim, valueDim;
  std::vector<std::pair<std::string, std::string>> inputs, params; // name, dims
  std::vector<std::pair<std::string, double>> scans;               // name, init
};

/// The entry points of a recurrence. Step advances state slots in place, one
/// or more tokens per batch row (MATH.md section 4: decoding, and the
/// recurrent mode).
enum class Entry { Forward, Backward, Step };
const char *entryName(Entry entry);

/// One argument of an entry's function: a tensor it reads or writes, or the
/// sequence table. `placeholder` marks k and dk of a spec that derives its
/// key: the function neither reads nor writes them.
struct Argument {
  /// InOut: read and written in place (a step's state slots).
  enum Kind { Input, Output, Sequences, InOut } kind;
  TensorSpec tensor;
  bool placeholder = false;
};

/// The arguments of `entry`, in the order of its function (see
/// RecurrenceEmitter::createFunction): forward (q, k, v, h0, seqs, inputs...,
/// params..., [norm_h0], scan_h0..., o, ht, [norm_ht], scan_ht...), backward
/// (..., do, dht, [dnorm_ht], dscan_ht..., dq, dk, dv, dh0, d<inputs>...,
/// d<params>..., [dnorm_h0], dscan_h0...), step (q, k, v, slots [B] i64,
/// positions [B] i64, inputs..., params..., state [S,H,K,V] (in-out),
/// [norm_state [S,H,K]], scan_<name>_state [S,H(,K)]..., o).
std::vector<Argument> signatureOf(const SpecSummary &summary, Entry entry);

/// A state the step keeps in slots, with the forward's initial and final
/// state of the same recurrence: (state, h0, ht), (norm_state, norm_h0,
/// norm_ht), (scan_<name>_state, scan_<name>_h0, scan_<name>_ht); `init` is
/// the value of an absent initial state (a scan's init, else 0).
struct StepState {
  std::string slots, initial, final;
  double init = 0.0;
};

/// The step's states of `summary`, in the order of its signature.
std::vector<StepState> stepStatesOf(const SpecSummary &summary);

/// Reads what a driver needs to know from a verified recurrence.
SpecSummary summarize(RecurrenceOp op);

} // namespace decay

#endif
