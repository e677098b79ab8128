// decayrt_decoder_save / _restore: one slot's states as versioned, checksummed little-endian bytes (docs/decoding.md).
#include "Decoder.h"

#include "Dtype.h"

#include <cstring>

using namespace decayrt::detail;

namespace {

/// "DCYSTATE": the first 8 bytes of a saved state.
constexpr char kMagic[8] = {'D', 'C', 'Y', 'S', 'T', 'A', 'T', 'E'};
/// The format this decayrt writes (each state with its dtype). It also
/// reads version 1, whose states are all f32 and carry no dtype.
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kVersionWithoutDtypes = 1;

/// FNV-1a, 64 bits, of `size` bytes.
uint64_t checksum(const unsigned char *bytes, size_t size) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i)
    hash = (hash ^ bytes[i]) * 0x100000001b3ull;
  return hash;
}

/// Element `i` of an array of `width`-byte (2 or 4) elements, as an integer.
uint32_t loadElement(const unsigned char *values, int64_t i, int width) {
  if (width == 2) {
    uint16_t half = 0;
    std::memcpy(&half, values + 2 * i, 2);
    return half;
  }
  uint32_t word = 0;
  std::memcpy(&word, values + 4 * i, 4);
  return word;
}

/// Sets element `i` of an array of `width`-byte (2 or 4) elements.
void storeElement(unsigned char *values, int64_t i, int width, uint32_t value) {
  if (width == 2) {
    auto half = static_cast<uint16_t>(value);
    std::memcpy(values + 2 * i, &half, 2);
    return;
  }
  std::memcpy(values + 4 * i, &value, 4);
}

/// Appends little-endian values.
struct Writer {
  std::vector<unsigned char> bytes;

  void unsignedValue(uint64_t value, int size) {
    for (int i = 0; i < size; ++i)
      bytes.push_back(static_cast<unsigned char>(value >> (8 * i)));
  }
  void u32(uint32_t value) { unsignedValue(value, 4); }
  void u64(uint64_t value) { unsignedValue(value, 8); }
  void i64(int64_t value) { u64(static_cast<uint64_t>(value)); }
  void text(const std::string &value) {
    u32(static_cast<uint32_t>(value.size()));
    bytes.insert(bytes.end(), value.begin(), value.end());
  }
  /// `count` elements of `width` bytes (a state's dtype: 4 for f32, 2 for bf16).
  void elements(const unsigned char *values, int64_t count, int width) {
    bytes.reserve(bytes.size() + static_cast<size_t>(count * width));
    for (int64_t i = 0; i < count; ++i)
      unsignedValue(loadElement(values, i, width), width);
  }
};

/// The bytes of `slot` (docs/decoding.md).
std::vector<unsigned char> serialize(const decayrt_decoder &decoder, int64_t slot) {
  Writer out;
  out.bytes.assign(kMagic, kMagic + sizeof kMagic);
  out.u32(kFormatVersion);
  out.text(decoder.package->manifest.spec.name);
  out.text(decoder.recurrence);
  for (int64_t size : {decoder.H, decoder.K, decoder.V, decoder.positions[slot]})
    out.i64(size);
  out.u32(static_cast<uint32_t>(decoder.components.size()));
  for (const CacheComponent &component : decoder.components) {
    out.text(component.name);
    out.text(dtypeName(component.dtype));
    out.u64(static_cast<uint64_t>(component.slotElements));
    out.elements(component.slot(slot), component.slotElements,
                 static_cast<int>(dtypeSize(component.dtype)));
  }
  out.u64(checksum(out.bytes.data(), out.bytes.size()));
  return out.bytes;
}

/// Reads little-endian values; every read fails past the end with a message
/// saying where the bytes stop.
struct Reader {
  const unsigned char *bytes;
  size_t size, at = 0;

  Error truncated(const char *what) const {
    return fail(DECAYRT_ERROR_STATE,
                "decayrt_decoder_restore: truncated state: " + std::to_string(size) +
                    " bytes end inside the " + what + " at byte " + std::to_string(at));
  }
  Error unsignedValue(uint64_t &value, int width, const char *what) {
    if (size - at < static_cast<size_t>(width))
      return truncated(what);
    value = 0;
    for (int i = 0; i < width; ++i)
      value |= static_cast<uint64_t>(bytes[at++]) << (8 * i);
    return Error::success();
  }
  Error u32(uint32_t &value, const char *what) {
    uint64_t wide = 0;
    Error error = unsignedValue(wide, 4, what);
    value = static_cast<uint32_t>(wide);
    return error;
  }
  Error i64(int64_t &value, const char *what) {
    uint64_t wide = 0;
    Error error = unsignedValue(wide, 8, what);
    value = static_cast<int64_t>(wide);
    return error;
  }
  Error text(std::string &value, const char *what) {
    uint32_t length = 0;
    if (Error error = u32(length, what); !error.ok())
      return error;
    if (size - at < length)
      return truncated(what);
    value.assign(reinterpret_cast<const char *>(bytes + at), length);
    at += length;
    return Error::success();
  }
};

/// A restore failure: the bytes are not a state this decoder can take.
Error mismatch(const std::string &what) {
  return fail(DECAYRT_ERROR_STATE, "decayrt_decoder_restore: " + what);
}

/// The first `key=value` field where two recurrence descriptions differ.
std::string firstDifference(const std::string &saved, const std::string &own) {
  size_t begin = 0;
  while (true) {
    size_t savedEnd = saved.find(';', begin), ownEnd = own.find(';', begin);
    std::string savedField = saved.substr(begin, savedEnd - begin);
    std::string ownField = own.substr(begin, ownEnd - begin);
    if (savedField != ownField || savedEnd == std::string::npos || ownEnd == std::string::npos)
      return "saved '" + savedField + "', this decoder's '" + ownField + "'";
    begin = savedEnd + 1;
  }
}

/// Checks the header of saved bytes against the decoder: magic, version,
/// spec, recurrence, H, K, V; reads the version and the position.
Error readHeader(const decayrt_decoder &decoder, Reader &in, uint32_t &version,
                 int64_t &position) {
  if (in.size < sizeof kMagic || std::memcmp(in.bytes, kMagic, sizeof kMagic) != 0)
    return mismatch("not a saved decoder state (bad magic: the bytes do not start with "
                    "\"DCYSTATE\")");
  in.at = sizeof kMagic;
  if (Error error = in.u32(version, "format version"); !error.ok())
    return error;
  if (version != kFormatVersion && version != kVersionWithoutDtypes)
    return mismatch("format version " + std::to_string(version) + ", this decayrt reads versions " +
                    std::to_string(kVersionWithoutDtypes) + " and " +
                    std::to_string(kFormatVersion));
  std::string spec, recurrence;
  if (Error error = in.text(spec, "spec name"); !error.ok())
    return error;
  const std::string &own = decoder.package->manifest.spec.name;
  if (spec != own)
    return mismatch("the state is of spec @" + spec + ", this decoder runs @" + own);
  if (Error error = in.text(recurrence, "recurrence"); !error.ok())
    return error;
  const std::string &ownRecurrence =
      version == kVersionWithoutDtypes ? decoder.recurrenceV1 : decoder.recurrence;
  if (recurrence != ownRecurrence)
    return mismatch("the state is of another recurrence @" + spec + ": " +
                    firstDifference(recurrence, ownRecurrence));
  int64_t sizes[3] = {0, 0, 0};
  for (int64_t &size : sizes)
    if (Error error = in.i64(size, "sizes"); !error.ok())
      return error;
  if (sizes[0] != decoder.H || sizes[1] != decoder.K || sizes[2] != decoder.V)
    return mismatch("the state has H, K, V = " + std::to_string(sizes[0]) + ", " +
                    std::to_string(sizes[1]) + ", " + std::to_string(sizes[2]) + ", this decoder " +
                    std::to_string(decoder.H) + ", " + std::to_string(decoder.K) + ", " +
                    std::to_string(decoder.V));
  if (Error error = in.i64(position, "position"); !error.ok())
    return error;
  if (position < 0)
    return mismatch("negative position " + std::to_string(position));
  return Error::success();
}

/// Checks saved bytes completely and finds where each state's values start.
Error parse(const decayrt_decoder &decoder, Reader &in, int64_t &position,
            std::vector<size_t> &valuesAt) {
  uint32_t version = 0;
  if (Error error = readHeader(decoder, in, version, position); !error.ok())
    return error;
  uint32_t count = 0;
  if (Error error = in.u32(count, "number of states"); !error.ok())
    return error;
  if (count != decoder.components.size())
    return mismatch("the state has " + std::to_string(count) + " states, this decoder " +
                    std::to_string(decoder.components.size()));
  for (const CacheComponent &component : decoder.components) {
    std::string name, dtype = dtypeName(DECAYRT_F32);
    int64_t elements = 0;
    if (Error error = in.text(name, "state name"); !error.ok())
      return error;
    if (version != kVersionWithoutDtypes)
      if (Error error = in.text(dtype, "state dtype"); !error.ok())
        return error;
    if (Error error = in.i64(elements, "state size"); !error.ok())
      return error;
    if (name != component.name || elements != component.slotElements)
      return mismatch("saved state '" + name + "' of " + std::to_string(elements) +
                      " values where this decoder has '" + component.name + "' of " +
                      std::to_string(component.slotElements));
    if (dtype != dtypeName(component.dtype))
      return mismatch("saved state '" + name + "' is " + dtype + ", this decoder keeps it in " +
                      dtypeName(component.dtype));
    size_t width = static_cast<size_t>(dtypeSize(component.dtype));
    if ((in.size - in.at) / width < static_cast<size_t>(elements))
      return in.truncated("state values");
    valuesAt.push_back(in.at);
    in.at += static_cast<size_t>(elements) * width;
  }
  size_t body = in.at;
  uint64_t sum = 0;
  if (Error error = in.unsignedValue(sum, 8, "checksum"); !error.ok())
    return error;
  if (in.at != in.size)
    return mismatch(std::to_string(in.size - in.at) + " bytes after the end of the state");
  if (sum != checksum(in.bytes, body))
    return mismatch("checksum mismatch: the bytes are corrupt");
  return Error::success();
}

/// Replaces `slot` with the saved state after checking all of it.
Error restore(decayrt_decoder &decoder, int64_t slot, const unsigned char *bytes, size_t size) {
  Reader in{bytes, size};
  int64_t position = 0;
  std::vector<size_t> valuesAt;
  if (Error error = parse(decoder, in, position, valuesAt); !error.ok())
    return error;
  for (size_t i = 0; i < valuesAt.size(); ++i) {
    CacheComponent &component = decoder.components[i];
    int width = static_cast<int>(dtypeSize(component.dtype));
    for (int64_t j = 0; j < component.slotElements; ++j) {
      uint32_t word = 0;
      for (int b = 0; b < width; ++b)
        word |= static_cast<uint32_t>(bytes[valuesAt[i] + width * j + b]) << (8 * b);
      storeElement(component.slot(slot), j, width, word);
    }
  }
  decoder.positions[static_cast<size_t>(slot)] = position;
  return Error::success();
}

} // namespace

extern "C" decayrt_status decayrt_decoder_save(const decayrt_decoder *decoder, int64_t slot,
                                               void *buffer, size_t capacity, size_t *size) {
  return guarded("decayrt_decoder_save", [&] {
    const char *function = "decayrt_decoder_save";
    if (!decoder || !size)
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  std::string(function) + (decoder ? ": size is NULL" : ": decoder is NULL"));
    if (Error error = checkSlot(*decoder, slot, function); !error.ok())
      return error;
    std::vector<unsigned char> bytes = serialize(*decoder, slot);
    *size = bytes.size();
    if (!buffer || capacity == 0)
      return Error::success();
    if (capacity < bytes.size())
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  std::string(function) + ": the buffer holds " + std::to_string(capacity) +
                      " bytes, the state of slot " + std::to_string(slot) + " needs " +
                      std::to_string(bytes.size()));
    std::memcpy(buffer, bytes.data(), bytes.size());
    return Error::success();
  });
}

extern "C" decayrt_status decayrt_decoder_restore(decayrt_decoder *decoder, int64_t slot,
                                                  const void *bytes, size_t size) {
  return guarded("decayrt_decoder_restore", [&] {
    const char *function = "decayrt_decoder_restore";
    if (!decoder || (!bytes && size > 0))
      return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                  std::string(function) + (decoder ? ": bytes is NULL" : ": decoder is NULL"));
    if (Error error = checkSlot(*decoder, slot, function); !error.ok())
      return error;
    return restore(*decoder, slot, static_cast<const unsigned char *>(bytes), size);
  });
}
