// Typed reads of manifest JSON fields (strings, booleans, integers, numbers, arrays) with located errors.
#include "ManifestReader.h"

#include <limits>

namespace decayrt::detail {
namespace {

/// Reads `value` as an integer in [minimum, maximum]; false if it is not one.
bool toInteger(const nlohmann::json &value, int64_t minimum, int64_t maximum, int64_t &out) {
  if (!value.is_number_integer())
    return false;
  if (value.is_number_unsigned()) {
    uint64_t unsignedValue = value.get<uint64_t>();
    if (unsignedValue > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return false;
    out = static_cast<int64_t>(unsignedValue);
  } else {
    out = value.get<int64_t>();
  }
  return out >= minimum && out <= maximum;
}

} // namespace

bool isIdentifier(const std::string &name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9'))
    return false;
  for (char c : name)
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

bool isOneOf(const std::string &value, std::initializer_list<const char *> allowed) {
  for (const char *candidate : allowed)
    if (value == candidate)
      return true;
  return false;
}

bool Reader::fail(const std::string &path, const std::string &what) {
  if (firstError.empty())
    firstError = path + ": " + what;
  return false;
}

const Reader::json *Reader::field(const json &object, const std::string &where, const char *key) {
  auto it = object.find(key);
  if (it == object.end()) {
    fail(pathOf(where, key), "missing");
    return nullptr;
  }
  return &*it;
}

bool Reader::readString(const json &object, const std::string &where, const char *key,
                        std::string &out, bool nonEmpty) {
  const json *value = field(object, where, key);
  if (!value)
    return false;
  if (!value->is_string() || (nonEmpty && value->get_ref<const std::string &>().empty()))
    return fail(pathOf(where, key), nonEmpty ? "expected a non-empty string" : "expected a string");
  out = value->get<std::string>();
  return true;
}

bool Reader::readBool(const json &object, const std::string &where, const char *key, bool &out) {
  const json *value = field(object, where, key);
  if (!value)
    return false;
  if (!value->is_boolean())
    return fail(pathOf(where, key), "expected true or false");
  out = value->get<bool>();
  return true;
}

bool Reader::readOptionalBool(const json &object, const std::string &where, const char *key,
                              bool &out) {
  out = false;
  if (object.find(key) == object.end())
    return true;
  return readBool(object, where, key, out);
}

bool Reader::readInteger(const json &object, const std::string &where, const char *key,
                         int64_t minimum, int64_t &out, int64_t maximum) {
  const json *value = field(object, where, key);
  if (!value)
    return false;
  if (!toInteger(*value, minimum, maximum, out))
    return fail(pathOf(where, key),
                maximum == std::numeric_limits<int64_t>::max()
                    ? "expected an integer >= " + std::to_string(minimum)
                    : "expected an integer in [" + std::to_string(minimum) + ", " +
                          std::to_string(maximum) + "]");
  return true;
}

bool Reader::readOptionalSize(const json &object, const std::string &where, const char *key,
                              std::optional<int64_t> &out) {
  const json *value = field(object, where, key);
  if (!value)
    return false;
  out.reset();
  if (value->is_null())
    return true;
  int64_t size = 0;
  if (!toInteger(*value, 1, std::numeric_limits<int64_t>::max(), size))
    return fail(pathOf(where, key), "expected null or a positive integer");
  out = size;
  return true;
}

bool Reader::readNumber(const json &object, const std::string &where, const char *key,
                        double &out) {
  const json *value = field(object, where, key);
  if (!value)
    return false;
  if (value->is_number()) {
    out = value->get<double>();
    return true;
  }
  if (value->is_string()) {
    const std::string &text = value->get_ref<const std::string &>();
    if (text == "inf" || text == "+inf" || text == "-inf") {
      out = text == "-inf" ? -std::numeric_limits<double>::infinity()
                           : std::numeric_limits<double>::infinity();
      return true;
    }
    if (text == "nan") {
      out = std::numeric_limits<double>::quiet_NaN();
      return true;
    }
  }
  return fail(pathOf(where, key), "expected a number (or \"inf\", \"-inf\", \"nan\")");
}

const Reader::json *Reader::readArray(const json &object, const std::string &where,
                                      const char *key) {
  return readOfType(object, where, key, &json::is_array, "expected an array");
}

const Reader::json *Reader::readObject(const json &object, const std::string &where,
                                       const char *key) {
  return readOfType(object, where, key, &json::is_object, "expected an object");
}

const Reader::json *Reader::readOfType(const json &object, const std::string &where,
                                       const char *key, bool (json::*isType)() const noexcept,
                                       const char *expected) {
  const json *value = field(object, where, key);
  if (value && !(value->*isType)()) {
    fail(pathOf(where, key), expected);
    return nullptr;
  }
  return value;
}

bool Reader::expectObject(const json &value, const std::string &path) {
  return value.is_object() || fail(path, "expected an object");
}

} // namespace decayrt::detail
