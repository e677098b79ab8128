// What a recurrence's entry points take and give: its summary and the ordered argument list every back end shares.
#include "decay/Runner/Signature.h"

#include "decay/Dialect/Decay/IR/DecayDialect.h"

using namespace mlir;
using namespace decay;

const char *decay::entryName(Entry entry) {
  switch (entry) {
  case Entry::Forward:
    return "forward";
  case Entry::Backward:
    return "backward";
  case Entry::Step:
    return "step";
  }
  return "";
}

/// Reads what a driver needs to know from the recurrence op.
SpecSummary decay::summarize(RecurrenceOp op) {
  SpecSummary summary;
  summary.name = op.getSymName().str();
  summary.granularity = stringifyGranularity(op.getGranularity()).str();
  summary.featureMap = stringifyFeatureMap(op.getEffectiveFeatureMap()).str();
  summary.derivedKey = op.hasDerivedKey();
  summary.normalizer = op.getNormalizer();
  summary.perChannel = op.isPerChannel();
  summary.rope = op.getRopeTheta().has_value();
  summary.dtype = op.getEffectiveDtype().isBF16() ? "bf16" : "f32";
  summary.stateDtype = op.getEffectiveStateDtype().isBF16() ? "bf16" : "f32";
  summary.keyDim = op.getKeyDim();
  summary.valueDim = op.getValueDim();
  auto collect = [](ArrayAttr names, ArrayAttr dims,
                    std::vector<std::pair<std::string, std::string>> &out) {
    for (auto [name, dim] : llvm::zip(names, dims))
      out.emplace_back(cast<StringAttr>(name).str(), cast<StringAttr>(dim).str());
  };
  collect(op.getInputNames(), op.getInputDims(), summary.inputs);
  collect(op.getParamNames(), op.getParamDims(), summary.params);
  op.walk([&](Operation *scan) {
    if (isa<CumSumOp, LogCumSumExpOp>(scan))
      summary.scans.emplace_back(scan->getAttrOfType<StringAttr>("name").str(),
                                 scan->getAttrOfType<FloatAttr>("init").getValueAsDouble());
  });
  return summary;
}

std::vector<Argument> decay::signatureOf(const SpecSummary &summary, Entry entry) {
  std::vector<Argument> slots;
  auto dtypeOf = [&](const std::string &dims) {
    return dims.rfind("BT", 0) == 0 ? summary.dtype : std::string("f32");
  };
  auto in = [&](std::string name, std::string dims, bool optional = false) {
    std::string dtype = dtypeOf(dims);
    slots.push_back({Argument::Input, {std::move(name), std::move(dims), optional, dtype}});
  };
  auto out = [&](std::string name, std::string dims) {
    std::string dtype = dtypeOf(dims);
    slots.push_back({Argument::Output, {std::move(name), std::move(dims), false, dtype}});
  };
  std::string scanDims = summary.perChannel ? "NHK" : "NH";
  // States: prefix + name + suffix for the normalizer and every scan.
  auto states = [&](auto add, const std::string &prefix, const std::string &suffix) {
    if (summary.normalizer)
      add(prefix + "norm_" + suffix, "NHK");
    for (auto &[name, init] : summary.scans)
      add(prefix + "scan_" + name + "_" + suffix, scanDims);
  };
  auto optionalIn = [&](std::string name, std::string dims) { in(std::move(name), std::move(dims), true); };
  auto specTensors = [&](auto add, const std::string &prefix) {
    for (auto &list : {summary.inputs, summary.params})
      for (auto &[name, dims] : list)
        add(prefix + name, dims);
  };
  in("q", "BTHK");
  in("k", "BTHK");
  slots.back().placeholder = summary.derivedKey;
  in("v", "BTHV");
  if (entry == Entry::Step) {
    for (const char *name : {"slots", "positions"})
      slots.push_back({Argument::Input, {name, "B", false, "i64"}});
    specTensors([&](std::string name, std::string dims) { in(name, dims); }, "");
    slots.push_back({Argument::InOut, {"state", "SHKV", false, summary.stateDtype}});
    states([&](std::string name, std::string dims) {
      slots.push_back({Argument::InOut, {std::move(name), "S" + dims.substr(1)}});
    }, "", "state");
    out("o", "BTHV");
    return slots;
  }
  in("h0", "NHKV", true);
  slots.push_back({Argument::Sequences, {"seqs", ""}});
  specTensors([&](std::string name, std::string dims) { in(name, dims); }, "");
  states(optionalIn, "", "h0");
  if (entry == Entry::Forward) {
    out("o", "BTHV");
    out("ht", "NHKV");
    states(out, "", "ht");
    return slots;
  }
  in("do", "BTHV");
  in("dht", "NHKV", true);
  states(optionalIn, "d", "ht");
  out("dq", "BTHK");
  out("dk", "BTHK");
  slots.back().placeholder = summary.derivedKey;
  out("dv", "BTHV");
  out("dh0", "NHKV");
  specTensors(out, "d");
  states(out, "d", "h0");
  return slots;
}


std::vector<StepState> decay::stepStatesOf(const SpecSummary &summary) {
  std::vector<StepState> states = {{"state", "h0", "ht"}};
  if (summary.normalizer)
    states.push_back({"norm_state", "norm_h0", "norm_ht"});
  for (auto &[name, init] : summary.scans)
    states.push_back({"scan_" + name + "_state", "scan_" + name + "_h0", "scan_" + name + "_ht", init});
  return states;
}
