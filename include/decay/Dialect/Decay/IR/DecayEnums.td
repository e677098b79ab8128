// Enumerations of the `decay` dialect: decay granularity and feature maps.
#ifndef DECAY_ENUMS_TD
#define DECAY_ENUMS_TD

include "mlir/IR/EnumAttr.td"

def Decay_Granularity : I32EnumAttr<"Granularity", "granularity of the decay", [
    I32EnumAttrCase<"none", 0>,
    I32EnumAttrCase<"constant_scalar", 1>,
    I32EnumAttrCase<"constant_vector", 2>,
    I32EnumAttrCase<"scalar", 3>,
    I32EnumAttrCase<"vector", 4>]> {
  let cppNamespace = "::decay";
}

def Decay_FeatureMap : I32EnumAttr<"FeatureMap", "feature map applied to q and k", [
    I32EnumAttrCase<"identity", 0>,
    I32EnumAttrCase<"elu1", 1>,
    I32EnumAttrCase<"exp", 2>,
    I32EnumAttrCase<"silu", 3>,
    I32EnumAttrCase<"relu", 4>]> {
  let cppNamespace = "::decay";
}

#endif // DECAY_ENUMS_TD
