// Minimal NumPy .npy reader/writer: header parsing, validation and (de)serialization.
#include "decay/Support/Npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

namespace decay::npy {

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "float32";
  case DType::F64: return "float64";
  case DType::I32: return "int32";
  case DType::I64: return "int64";
  }
  return "?";
}

size_t dtypeSize(DType t) { return (t == DType::F32 || t == DType::I32) ? 4 : 8; }

const char *dtypeDescr(DType t) {
  switch (t) {
  case DType::F32: return "<f4";
  case DType::F64: return "<f8";
  case DType::I32: return "<i4";
  case DType::I64: return "<i8";
  }
  return "?";
}

namespace {

constexpr unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

// Byte-order independent little-endian load/store of n <= 8 bytes.
uint64_t loadLE(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i)
    v |= uint64_t(p[i]) << (8 * i);
  return v;
}

void storeLE(unsigned char *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<unsigned char>(v >> (8 * i));
}

bool hostIsLittleEndian() {
  const uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// Makes untrusted header text safe to embed in a one-line error message.
std::string printable(const std::string &s) {
  std::string r;
  for (size_t i = 0; i < s.size() && i < 32; ++i)
    r += (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
  return s.size() > 32 ? r + "..." : r;
}

template <typename T> Array fromValues(DType t, const std::vector<T> &v, std::vector<int64_t> shape) {
  static_assert(sizeof(T) <= 8, "element too wide");
  Array a;
  a.dtype = t;
  a.shape = std::move(shape);
  a.bytes.resize(v.size() * sizeof(T));
  for (size_t i = 0; i < v.size(); ++i) {
    uint64_t raw = 0;
    if (sizeof(T) == 4) {
      uint32_t u;
      std::memcpy(&u, &v[i], 4);
      raw = u;
    } else {
      std::memcpy(&raw, &v[i], 8);
    }
    storeLE(&a.bytes[i * sizeof(T)], raw, sizeof(T));
  }
  return a;
}

// Recursive-descent parser for the Python dict literal in a .npy header.
struct HeaderParser {
  const char *p, *end;
  std::string &error;

  bool fail(const std::string &msg) {
    error = "malformed header: " + msg;
    return false;
  }
  void skipSpace() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
      ++p;
  }
  bool peek(char c) {
    skipSpace();
    return p < end && *p == c;
  }
  bool expect(char c, const std::string &where) {
    if (peek(c)) {
      ++p;
      return true;
    }
    return fail(std::string("expected '") + c + "' " + where);
  }
  bool parseString(std::string &s) {
    skipSpace();
    if (p >= end || (*p != '\'' && *p != '"'))
      return fail("expected a quoted string");
    const char quote = *p++, *begin = p;
    while (p < end && *p != quote)
      ++p;
    if (p >= end)
      return fail("unterminated string");
    s.assign(begin, p++);
    return true;
  }
  bool parseBool(bool &v) {
    skipSpace();
    for (const char *word : {"True", "False"}) {
      size_t n = std::strlen(word);
      if (size_t(end - p) >= n && std::memcmp(p, word, n) == 0) {
        p += n;
        v = word[0] == 'T';
        return true;
      }
    }
    return fail("expected True or False for 'fortran_order'");
  }
  bool parseShape(std::vector<int64_t> &shape) {
    if (!expect('(', "to start the shape tuple"))
      return false;
    while (!peek(')')) {
      if (p >= end || *p < '0' || *p > '9')
        return fail("expected a non-negative integer in the shape");
      int64_t d = 0;
      for (; p < end && *p >= '0' && *p <= '9'; ++p) {
        int digit = *p - '0';
        if (d > (std::numeric_limits<int64_t>::max() - digit) / 10)
          return fail("shape dimension is too large");
        d = d * 10 + digit;
      }
      if (p < end && (*p == 'L' || *p == 'l')) // Python 2 long suffix
        ++p;
      shape.push_back(d);
      if (peek(','))
        ++p;
      else if (!peek(')'))
        return fail("expected ',' or ')' in the shape");
    }
    ++p;
    return true;
  }
};

bool parseDescr(const std::string &descr, DType &t, std::string &error) {
  const std::string shown = "'" + printable(descr) + "'";
  if (descr.size() == 3 && descr[0] == '>' && (descr[1] == 'f' || descr[1] == 'i'))
    return error = "big-endian dtype " + shown + " is not supported", false;
  // '=' (native) and '|' (not applicable) mean little-endian only on little-endian hosts.
  bool littleEndian = descr.size() == 3 && (descr[0] == '<' ||
                      ((descr[0] == '=' || descr[0] == '|') && hostIsLittleEndian()));
  std::string kind = descr.size() == 3 ? descr.substr(1) : "";
  if (littleEndian && kind == "f4") t = DType::F32;
  else if (littleEndian && kind == "f8") t = DType::F64;
  else if (littleEndian && kind == "i4") t = DType::I32;
  else if (littleEndian && kind == "i8") t = DType::I64;
  else return error = "unsupported dtype " + shown + " (expected <f4, <f8, <i4 or <i8)", false;
  return true;
}

bool parseHeader(const char *begin, const char *end, Array &out, std::string &error) {
  HeaderParser h{begin, end, error};
  bool haveDescr = false, haveOrder = false, haveShape = false, fortran = false;
  std::string descr;
  if (!h.expect('{', "at the start of the header dict"))
    return false;
  while (!h.peek('}')) {
    std::string key;
    if (!h.parseString(key) || !h.expect(':', "after key '" + printable(key) + "'"))
      return false;
    bool ok = false;
    bool *seen = nullptr;
    if (key == "descr") {
      seen = &haveDescr;
      ok = h.parseString(descr);
    } else if (key == "fortran_order") {
      seen = &haveOrder;
      ok = h.parseBool(fortran);
    } else if (key == "shape") {
      seen = &haveShape;
      out.shape.clear();
      ok = h.parseShape(out.shape);
    } else {
      return h.fail("unexpected key '" + printable(key) + "'");
    }
    if (!ok)
      return false;
    if (*seen)
      return h.fail("duplicate key '" + key + "'");
    *seen = true;
    if (h.peek(','))
      ++h.p;
    else if (!h.peek('}'))
      return h.fail("expected ',' or '}' after the value of '" + key + "'");
  }
  ++h.p;
  h.skipSpace();
  if (h.p != end)
    return h.fail("unexpected text after the header dict");
  if (!haveDescr || !haveOrder || !haveShape)
    return h.fail(std::string("missing key '") +
                  (!haveDescr ? "descr" : !haveOrder ? "fortran_order" : "shape") + "'");
  if (fortran)
    return error = "Fortran order is not supported", false;
  return parseDescr(descr, out.dtype, error);
}

} // namespace

int64_t Array::numElements() const {
  for (int64_t d : shape)
    if (d < 0)
      return -1;
  for (int64_t d : shape)
    if (d == 0)
      return 0;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (n > std::numeric_limits<int64_t>::max() / d)
      return -1;
    n *= d;
  }
  return n;
}

std::vector<double> Array::toF64() const {
  const size_t sz = dtypeSize(dtype), n = bytes.size() / sz;
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t raw = loadLE(&bytes[i * sz], sz);
    switch (dtype) {
    case DType::F32: {
      uint32_t u = static_cast<uint32_t>(raw);
      float f;
      std::memcpy(&f, &u, 4);
      out[i] = f;
      break;
    }
    case DType::F64: std::memcpy(&out[i], &raw, 8); break;
    case DType::I32: out[i] = static_cast<int32_t>(static_cast<uint32_t>(raw)); break;
    case DType::I64: out[i] = static_cast<double>(static_cast<int64_t>(raw)); break;
    }
  }
  return out;
}

std::vector<int64_t> Array::toI64() const {
  if (dtype != DType::I32 && dtype != DType::I64)
    return {};
  const size_t sz = dtypeSize(dtype), n = bytes.size() / sz;
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t raw = loadLE(&bytes[i * sz], sz);
    out[i] = sz == 4 ? int64_t(static_cast<int32_t>(static_cast<uint32_t>(raw)))
                     : static_cast<int64_t>(raw);
  }
  return out;
}

Array Array::fromF64(const std::vector<double> &v, std::vector<int64_t> s) { return fromValues(DType::F64, v, std::move(s)); }
Array Array::fromF32(const std::vector<float> &v, std::vector<int64_t> s) { return fromValues(DType::F32, v, std::move(s)); }
Array Array::fromI64(const std::vector<int64_t> &v, std::vector<int64_t> s) { return fromValues(DType::I64, v, std::move(s)); }
Array Array::fromI32(const std::vector<int32_t> &v, std::vector<int64_t> s) { return fromValues(DType::I32, v, std::move(s)); }

bool parseNpy(const unsigned char *data, size_t size, Array &out, std::string &error) {
  out = Array();
  auto fail = [&](const std::string &msg) {
    out = Array();
    error = msg;
    return false;
  };
  if (!data || size < 6 || std::memcmp(data, kMagic, 6) != 0)
    return fail("not a .npy file (bad magic)");
  if (size < 8)
    return fail("header is truncated: missing format version");
  const unsigned major = data[6], minor = data[7];
  if (major < 1 || major > 3 || minor != 0)
    return fail("unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
  const size_t lenBytes = major == 1 ? 2 : 4, prefix = 8 + lenBytes;
  if (size < prefix)
    return fail("header is truncated: missing header length");
  const uint64_t headerLen = loadLE(data + 8, lenBytes);
  if (headerLen > size - prefix)
    return fail("header is truncated: expected " + std::to_string(headerLen) + " header bytes, found " +
                std::to_string(size - prefix));
  const char *header = reinterpret_cast<const char *>(data + prefix);
  if (!parseHeader(header, header + headerLen, out, error))
    return fail(error);

  // Element count and byte size, rejecting overflow before any allocation.
  const int64_t count = out.numElements();
  const uint64_t itemSize = dtypeSize(out.dtype);
  if (count < 0 || uint64_t(count) > uint64_t(std::numeric_limits<int64_t>::max()) / itemSize)
    return fail("shape is too large: element count overflows");
  const uint64_t expected = count * itemSize, found = size - prefix - headerLen;
  if (found < expected)
    return fail("data is truncated: expected " + std::to_string(expected) + " bytes, found " + std::to_string(found));
  if (found > expected)
    return fail(std::to_string(found - expected) + " extra bytes after the data (expected " +
                std::to_string(expected) + ")");
  const unsigned char *body = data + prefix + headerLen;
  out.bytes.assign(body, body + expected);
  error.clear();
  return true;
}

bool readNpy(const std::string &path, Array &out, std::string &error) {
  out = Array();
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return error = "cannot open '" + path + "': " + std::strerror(errno), false;
  std::vector<unsigned char> buf;
  unsigned char chunk[65536];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0)
    buf.insert(buf.end(), chunk, chunk + n);
  const bool readError = std::ferror(f) != 0;
  const int savedErrno = errno;
  std::fclose(f);
  if (readError)
    return error = "cannot read '" + path + "': " + std::strerror(savedErrno), false;
  if (!parseNpy(buf.data(), buf.size(), out, error))
    return error = path + ": " + error, false;
  return true;
}

std::string serializeNpy(const Array &a) {
  std::string dict = std::string("{'descr': '") + dtypeDescr(a.dtype) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < a.shape.size(); ++i)
    dict += (i ? ", " : "") + std::to_string(a.shape[i]);
  dict += a.shape.size() == 1 ? ",), }" : "), }";

  unsigned major = 1;
  size_t prefix = 10, total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  if (total - prefix > 0xffff) { // header too long for a 2-byte length field
    major = 2, prefix = 12;
    total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  }
  const size_t headerLen = total - prefix;
  std::string out(reinterpret_cast<const char *>(kMagic), 6);
  out += char(major);
  out += '\0';
  unsigned char len[4];
  storeLE(len, headerLen, prefix - 8);
  out.append(reinterpret_cast<const char *>(len), prefix - 8);
  out += dict;
  out.append(headerLen - dict.size() - 1, ' ');
  out += '\n';
  out.append(reinterpret_cast<const char *>(a.bytes.data()), a.bytes.size());
  return out;
}

bool writeNpy(const std::string &path, const Array &a, std::string &error) {
  const int64_t count = a.numElements();
  if (count < 0 || uint64_t(count) > std::numeric_limits<uint64_t>::max() / dtypeSize(a.dtype))
    return error = "cannot write '" + path + "': invalid shape (negative or overflowing)", false;
  const uint64_t expected = uint64_t(count) * dtypeSize(a.dtype);
  if (a.bytes.size() != expected)
    return error = "cannot write '" + path + "': array has " + std::to_string(a.bytes.size()) +
                   " data bytes but its shape needs " + std::to_string(expected),
           false;
  const std::string data = serializeNpy(a);
  std::FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return error = "cannot open '" + path + "' for writing: " + std::strerror(errno), false;
  const bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  const int savedErrno = errno;
  if (std::fclose(f) != 0 || !ok)
    return error = "cannot write '" + path + "': " + std::strerror(ok ? errno : savedErrno), false;
  return true;
}

} // namespace decay::npy
