// Typed reads of manifest JSON fields that record the first failure as "<path>: <what is wrong>".
#ifndef DECAYRT_LIB_MANIFESTREADER_H
#define DECAYRT_LIB_MANIFESTREADER_H

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

namespace decayrt::detail {

/// Whether `name` is a C identifier (the names of tensors, specs and symbols).
bool isIdentifier(const std::string &name);

/// Whether `value` is one of `allowed`.
bool isOneOf(const std::string &value, std::initializer_list<const char *> allowed);

/// Reads typed fields of JSON objects; the first failure is kept in `error`
/// as "<path>: <what is wrong>". Every read returns false on failure.
class Reader {
public:
  using json = nlohmann::json;

  explicit Reader(std::string &error) : firstError(error) {}

  /// Records a failure at `path` and returns false.
  bool fail(const std::string &path, const std::string &what);

  /// The path of `key` inside the object at `where`.
  static std::string pathOf(const std::string &where, const std::string &key) {
    return where.empty() ? key : where + "." + key;
  }

  /// The member `key` of `object`, or null (and a failure) when it is absent.
  const json *field(const json &object, const std::string &where, const char *key);

  /// Reads a string member; `nonEmpty` rejects "".
  bool readString(const json &object, const std::string &where, const char *key, std::string &out,
                  bool nonEmpty = true);

  /// Reads a boolean member.
  bool readBool(const json &object, const std::string &where, const char *key, bool &out);

  /// Reads a boolean member that defaults to false when absent.
  bool readOptionalBool(const json &object, const std::string &where, const char *key, bool &out);

  /// Reads an integer member in [minimum, maximum].
  bool readInteger(const json &object, const std::string &where, const char *key, int64_t minimum,
                   int64_t &out, int64_t maximum = INT64_MAX);

  /// Reads a member that is null or a positive integer.
  bool readOptionalSize(const json &object, const std::string &where, const char *key,
                        std::optional<int64_t> &out);

  /// Reads a number member; the strings "inf", "-inf" and "nan" stand for the
  /// values JSON cannot spell.
  bool readNumber(const json &object, const std::string &where, const char *key, double &out);

  /// The array member `key`, or null (and a failure).
  const json *readArray(const json &object, const std::string &where, const char *key);

  /// The object member `key`, or null (and a failure).
  const json *readObject(const json &object, const std::string &where, const char *key);

  /// Fails unless `value` is an object.
  bool expectObject(const json &value, const std::string &path);

private:
  /// The member `key` if `isType` holds for it, else null (and a failure
  /// saying `expected`).
  const json *readOfType(const json &object, const std::string &where, const char *key,
                         bool (json::*isType)() const noexcept, const char *expected);

  std::string &firstError;
};

} // namespace decayrt::detail

#endif // DECAYRT_LIB_MANIFESTREADER_H
