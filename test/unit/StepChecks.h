// Checks of a step kernel against the float64 reference, shared by the CPU and the emulated GPU step tests: recurrent mode, and prefill then decoding steps.
#ifndef DECAY_TEST_UNIT_STEPCHECKS_H
#define DECAY_TEST_UNIT_STEPCHECKS_H

#include "KernelCases.h"

#include "decay/Runner/Signature.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

namespace decay::test {

using Entry = SpecProgram::Entry;

/// Runs an entry of the kernels under test on `inputs` (a step's state
/// slots among them) into `outputs` (o, a forward's final states, a step's
/// updated state slots).
using EntryRunner = std::function<llvm::Error(Entry entry, const Tensors &inputs, Tensors &outputs)>;

/// How close a step's outputs (o) and its final states must be to the reference's.
struct StepTolerance {
  Tolerance outputs, states;
};

/// Values per sequence of a state tensor [N, ...].
inline int64_t rowSize(const HostTensor &tensor) {
  int64_t size = 1;
  for (size_t d = 1; d < tensor.shape.size(); ++d)
    size *= tensor.shape[d];
  return size;
}

/// Slot tensors of `slotCount` slots filled with `fill` (scan inits where the
/// spec says), with sequence n's initial states from `initial` (h0, ...)
/// placed in slot slots[n].
inline Tensors slotStates(const decay::SpecSummary &spec, const Tensors &initial,
                   const std::vector<int64_t> &slots, int64_t slotCount) {
  Tensors states;
  for (auto &[slotName, h0Name, htName, init] : decay::stepStatesOf(spec)) {
    const HostTensor &h0 = initial.at(h0Name);
    HostTensor tensor{h0.shape, {}};
    tensor.shape[0] = slotCount;
    int64_t row = rowSize(h0);
    tensor.data.assign(static_cast<size_t>(slotCount * row), 0.25); // visible if touched
    for (size_t n = 0; n < slots.size(); ++n)
      std::copy_n(h0.data.begin() + n * row, row, tensor.data.begin() + slots[n] * row);
    states[slotName] = std::move(tensor);
  }
  return states;
}

/// The forward's initial states for `c`: given ones, or zeros and scan inits.
inline Tensors initialStates(const decay::SpecSummary &spec, const Case &c, const Tensors &inputs) {
  Tensors initial;
  for (auto &[slotName, h0Name, htName, init] : decay::stepStatesOf(spec)) {
    if (inputs.count(h0Name)) {
      initial[h0Name] = inputs.at(h0Name);
      continue;
    }
    std::vector<int64_t> shape = {c.B, c.H};
    if (h0Name == "h0")
      shape = {c.B, c.H, c.K, c.V};
    else if (h0Name == "norm_h0" || spec.perChannel)
      shape = {c.B, c.H, c.K};
    int64_t count = 1;
    for (int64_t d : shape)
      count *= d;
    initial[h0Name] = HostTensor{shape, std::vector<double>(static_cast<size_t>(count), init)};
  }
  return initial;
}

/// `tensor` [B, T, ...] restricted to tokens [first, first + count).
inline HostTensor tokens(const HostTensor &tensor, int64_t first, int64_t count) {
  HostTensor part{tensor.shape, {}};
  part.shape[1] = count;
  int64_t inner = 1;
  for (size_t d = 2; d < tensor.shape.size(); ++d)
    inner *= tensor.shape[d];
  for (int64_t b = 0; b < tensor.shape[0]; ++b)
    for (int64_t t = first; t < first + count; ++t) {
      auto begin = tensor.data.begin() + (b * tensor.shape[1] + t) * inner;
      part.data.insert(part.data.end(), begin, begin + inner);
    }
  return part;
}

/// The per-token tensors of `inputs` (dims B, T, ...) cut to tokens [first, first + count).
inline Tensors tokenSlice(const SpecProgram &program, const Tensors &inputs, int64_t first, int64_t count) {
  Tensors part;
  for (const decay::TensorSpec &spec : program.inputsOf(Entry::Forward)) {
    auto found = inputs.find(spec.name);
    if (found == inputs.end())
      continue;
    part[spec.name] = spec.dims.rfind("BT", 0) == 0 ? tokens(found->second, first, count)
                                                    : found->second;
  }
  return part;
}

/// Expects the step's slot `slots[n]` to hold the reference's final state of
/// sequence n and every other slot to be untouched (0.25).
inline void expectSlots(const decay::SpecSummary &spec, const Tensors &expected, const Tensors &actual,
                 const std::vector<int64_t> &slots, const Tolerance &tolerance) {
  for (auto &[slotName, h0Name, htName, init] : decay::stepStatesOf(spec)) {
    SCOPED_TRACE(slotName);
    const HostTensor &final = expected.at(htName), &slot = actual.at(slotName);
    int64_t row = rowSize(final);
    Tensors want, got;
    want[htName] = final;
    got[htName] = HostTensor{final.shape, {}};
    for (size_t n = 0; n < slots.size(); ++n)
      got[htName].data.insert(got[htName].data.end(), slot.data.begin() + slots[n] * row,
                              slot.data.begin() + (slots[n] + 1) * row);
    expectMatches(want, got, tolerance);
    for (int64_t s = 0; s < slot.shape[0]; ++s)
      if (std::find(slots.begin(), slots.end(), s) == slots.end())
        for (int64_t i = 0; i < row; ++i)
          ASSERT_EQ(slot.data[s * row + i], 0.25) << "slot " << s << " was touched";
  }
}

inline const Case kStepCases[] = {
    {"T1", 2, 1, 2, 16, 12, true, {}},
    {"T37_odd_dims", 2, 37, 2, 5, 7, true, {}},
    {"T40_no_h0", 1, 40, 3, 16, 16, false, {}},
    {"strong_decay", 2, 30, 2, 8, 8, true, {}, 10.0},
};

// Recurrent mode: the step kernel over all T tokens from slots holding h0
// gives the reference forward's o, and its final states in those slots.
/// The rows' slots of a recurrent-mode call: in reverse order, slot 0 unused.
inline std::vector<int64_t> recurrentSlots(const Case &c) {
  std::vector<int64_t> slots;
  for (int64_t b = 0; b < c.B; ++b)
    slots.push_back(c.B - b);
  return slots;
}

/// A recurrent-mode step call over all of `inputs`' tokens (the forward's
/// tensors): the rows in recurrentSlots(c) of B + 1 slots holding the
/// forward's initial states (the other slot 0.25), at position 0.
inline Tensors recurrentCall(const SpecProgram &reference, const Case &c, const Tensors &inputs) {
  const decay::SpecSummary &spec = reference.spec();
  std::vector<int64_t> slots = recurrentSlots(c);
  Tensors step = tokenSlice(reference, inputs, 0, c.T);
  for (auto &[name, tensor] : slotStates(spec, initialStates(spec, c, inputs), slots, c.B + 1))
    step[name] = tensor;
  step["slots"] = HostTensor{{c.B}, std::vector<double>(slots.begin(), slots.end())};
  step["positions"] = HostTensor{{c.B}, std::vector<double>(static_cast<size_t>(c.B), 0.0)};
  return step;
}

inline void checkRecurrentMode(const SpecProgram &reference, const EntryRunner &run, const Case &c,
                               uint64_t seed, const StepTolerance &tolerance = {}) {
  const decay::SpecSummary &spec = reference.spec();
  Tensors inputs = randomInputs(reference, c, seed);
  Tensors expected;
  llvm::Error error = reference.run(Entry::Forward, inputs, nullptr, expected);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  std::vector<int64_t> slots = recurrentSlots(c);
  Tensors actual;
  error = run(Entry::Step, recurrentCall(reference, c, inputs), actual);
  if (error)
    FAIL() << llvm::toString(std::move(error));
  Tensors wantO{{"o", expected.at("o")}}, gotO{{"o", actual.at("o")}};
  expectMatches(wantO, gotO, tolerance.outputs);
  expectSlots(spec, expected, actual, slots, tolerance.states);
}

/// Row `row` of `tensor` [B, ...] as a tensor [1, ...].
inline HostTensor rowOf(const HostTensor &tensor, int64_t row) {
  HostTensor part{tensor.shape, {}};
  part.shape[0] = 1;
  int64_t inner = static_cast<int64_t>(tensor.data.size()) / tensor.shape[0];
  part.data.assign(tensor.data.begin() + row * inner, tensor.data.begin() + (row + 1) * inner);
  return part;
}

/// One token of each of `rows` of a per-token tensor [B, T, ...]: row
/// rows[i]'s token at[i], as a tensor [rows.size(), 1, ...].
inline HostTensor gatherTokens(const HostTensor &tensor, const std::vector<int64_t> &rows,
                               const std::vector<int64_t> &at) {
  HostTensor part{tensor.shape, {}};
  part.shape[0] = static_cast<int64_t>(rows.size());
  part.shape[1] = 1;
  int64_t inner = static_cast<int64_t>(tensor.data.size()) / (tensor.shape[0] * tensor.shape[1]);
  for (size_t i = 0; i < rows.size(); ++i) {
    auto begin = tensor.data.begin() + (rows[i] * tensor.shape[1] + at[i]) * inner;
    part.data.insert(part.data.end(), begin, begin + inner);
  }
  return part;
}

// Prefill then decode, each sequence at its own position: the chunked
// forward over the first prefill + b tokens of row b (one call per row), its
// final states moved into slot b, then decoding steps over the rows that
// still have tokens, each row at its own position (RoPE must rotate at it),
// rows leaving the batch as they finish: the outputs and final states equal
// one forward over all tokens.
inline void checkPrefillThenDecode(const SpecProgram &reference, const EntryRunner &run,
                                   const Case &c, int64_t prefill, uint64_t seed,
                                   const StepTolerance &tolerance = {}) {
  const decay::SpecSummary &spec = reference.spec();
  Tensors inputs = randomInputs(reference, c, seed);
  Tensors expected;
  llvm::Error error = reference.run(Entry::Forward, inputs, nullptr, expected);
  ASSERT_FALSE(error) << llvm::toString(std::move(error));
  Tensors initial = initialStates(spec, c, inputs);
  HostTensor o = expected.at("o"); // the prompts' outputs from the prefills, the rest from steps
  std::fill(o.data.begin(), o.data.end(), std::nan(""));
  int64_t inner = c.H * c.V;
  auto place = [&](const HostTensor &part, int64_t row, int64_t partRow, int64_t first) {
    int64_t count = part.shape[1];
    for (int64_t t = 0; t < count; ++t)
      std::copy_n(part.data.begin() + (partRow * count + t) * inner, inner,
                  o.data.begin() + (row * c.T + first + t) * inner);
  };
  std::vector<int64_t> slots, next;
  Tensors finals;
  for (int64_t b = 0; b < c.B; ++b) {
    int64_t length = std::min(prefill + b, c.T);
    Tensors prompt;
    for (const decay::TensorSpec &tensor : reference.inputsOf(Entry::Forward)) {
      auto found = inputs.find(tensor.name);
      if (found == inputs.end() || initial.count(tensor.name))
        continue;
      prompt[tensor.name] = tensor.dims.rfind("BT", 0) == 0
                                ? rowOf(tokens(found->second, 0, length), b)
                                : found->second;
    }
    for (auto &[name, tensor] : initial)
      prompt[name] = rowOf(tensor, b);
    Tensors prefilled;
    error = run(Entry::Forward, prompt, prefilled);
    ASSERT_FALSE(error) << llvm::toString(std::move(error));
    place(prefilled.at("o"), b, 0, 0);
    for (auto &[slotName, h0Name, htName, init] : decay::stepStatesOf(spec)) {
      HostTensor &all = finals[h0Name];
      const HostTensor &mine = prefilled.at(htName);
      all.shape = mine.shape;
      all.shape[0] = c.B;
      all.data.insert(all.data.end(), mine.data.begin(), mine.data.end());
    }
    slots.push_back(b);
    next.push_back(length);
  }
  Tensors states = slotStates(spec, finals, slots, c.B);
  for (;;) {
    std::vector<int64_t> rows, at;
    for (int64_t b = 0; b < c.B; ++b)
      if (next[b] < c.T)
        rows.push_back(b), at.push_back(next[b]);
    if (rows.empty())
      break;
    Tensors step;
    for (const decay::TensorSpec &tensor : reference.inputsOf(Entry::Forward))
      if (auto found = inputs.find(tensor.name); found != inputs.end() && !initial.count(tensor.name))
        step[tensor.name] = tensor.dims.rfind("BT", 0) == 0 ? gatherTokens(found->second, rows, at)
                                                            : found->second;
    for (auto &[name, tensor] : states)
      step[name] = tensor;
    step["slots"] = HostTensor{{static_cast<int64_t>(rows.size())}, std::vector<double>(rows.begin(), rows.end())};
    step["positions"] = HostTensor{{static_cast<int64_t>(rows.size())}, std::vector<double>(at.begin(), at.end())};
    Tensors stepped;
    error = run(Entry::Step, step, stepped);
    if (error)
      FAIL() << llvm::toString(std::move(error));
    for (auto &[name, tensor] : states)
      tensor = stepped.at(name);
    for (size_t i = 0; i < rows.size(); ++i) {
      place(stepped.at("o"), rows[i], static_cast<int64_t>(i), at[i]);
      ++next[rows[i]];
    }
  }
  Tensors wantO{{"o", expected.at("o")}}, gotO{{"o", o}};
  expectMatches(wantO, gotO, tolerance.outputs);
  expectSlots(spec, expected, states, slots, tolerance.states);
}

} // namespace decay::test

#endif
