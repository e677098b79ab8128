// Unit tests for the .npy reader/writer in decay/Support/Npy.h.
#include "decay/Support/Npy.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <limits>

using namespace decay::npy;

namespace {

std::string u16le(size_t v) { return {char(v & 0xff), char((v >> 8) & 0xff)}; }
std::string u32le(size_t v) { return u16le(v & 0xffff) + u16le(v >> 16); }

// Builds a version-1.0 file the way numpy does: dict, spaces, '\n', data at `align`.
std::string v1File(const std::string &dict, const std::string &data, size_t align = 64) {
  size_t total = (10 + dict.size() + 1 + align - 1) / align * align;
  std::string header = dict + std::string(total - 10 - dict.size() - 1, ' ') + "\n";
  return std::string("\x93NUMPY\x01\x00", 8) + u16le(header.size()) + header + data;
}

std::string f64Bytes(std::initializer_list<double> vals) {
  Array a = Array::fromF64(vals, {int64_t(vals.size())});
  return std::string(a.bytes.begin(), a.bytes.end());
}

bool parse(const std::string &s, Array &a, std::string &err) {
  return parseNpy(reinterpret_cast<const unsigned char *>(s.data()), s.size(), a, err);
}

// Expects parsing to fail with an error containing `needle`.
void expectError(const std::string &file, const std::string &needle) {
  Array a;
  std::string err;
  EXPECT_FALSE(parse(file, a, err)) << "expected failure containing: " << needle;
  EXPECT_NE(err.find(needle), std::string::npos) << "error was: " << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << "error is not one line: " << err;
  EXPECT_TRUE(a.bytes.empty() && a.shape.empty());
}

Array roundTrip(const Array &in) {
  std::string s = serializeNpy(in);
  EXPECT_EQ(s.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)), 0);
  size_t headerLen = (unsigned char)s[8] | ((unsigned char)s[9] << 8);
  EXPECT_EQ((10 + headerLen) % 64, 0u);
  EXPECT_EQ(s[10 + headerLen - 1], '\n');
  Array out;
  std::string err;
  EXPECT_TRUE(parse(s, out, err)) << err;
  EXPECT_EQ(out.dtype, in.dtype);
  EXPECT_EQ(out.shape, in.shape);
  EXPECT_EQ(out.bytes, in.bytes);
  return out;
}

} // namespace

TEST(Npy, DTypeNames) {
  EXPECT_STREQ(dtypeName(DType::F32), "float32");
  EXPECT_STREQ(dtypeName(DType::F64), "float64");
  EXPECT_STREQ(dtypeName(DType::I32), "int32");
  EXPECT_STREQ(dtypeName(DType::I64), "int64");
}

TEST(Npy, NumElements) {
  Array a;
  EXPECT_EQ(a.numElements(), 1); // 0-d
  a.shape = {2, 3, 4};
  EXPECT_EQ(a.numElements(), 24);
  a.shape = {5, 0, 7};
  EXPECT_EQ(a.numElements(), 0);
  a.shape = {-1};
  EXPECT_EQ(a.numElements(), -1);
  a.shape = {int64_t(1) << 40, int64_t(1) << 40};
  EXPECT_EQ(a.numElements(), -1);
}

TEST(Npy, RoundTripEveryDTypeAndShape) {
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {3}, {2, 3, 4}};
  for (const auto &shape : shapes) {
    Array probe;
    probe.shape = shape;
    const size_t n = size_t(probe.numElements());
    std::vector<double> d(n);
    std::vector<float> f(n);
    std::vector<int64_t> l(n);
    std::vector<int32_t> i(n);
    for (size_t k = 0; k < n; ++k) {
      d[k] = 0.5 * double(k) - 3.25;
      f[k] = float(d[k]);
      l[k] = (int64_t(k) - 5) * 1000000007LL * 1000;
      i[k] = int32_t(k) * -7;
    }
    Array a = roundTrip(Array::fromF64(d, shape));
    EXPECT_EQ(a.toF64(), d);
    EXPECT_TRUE(a.toI64().empty()); // floats are never converted to ints
    Array b = roundTrip(Array::fromF32(f, shape));
    EXPECT_EQ(b.toF64(), std::vector<double>(f.begin(), f.end()));
    EXPECT_TRUE(b.toI64().empty());
    Array c = roundTrip(Array::fromI64(l, shape));
    EXPECT_EQ(c.toI64(), l);
    Array e = roundTrip(Array::fromI32(i, shape));
    EXPECT_EQ(e.toI64(), std::vector<int64_t>(i.begin(), i.end()));
    EXPECT_EQ(e.toF64(), std::vector<double>(i.begin(), i.end()));
  }
}

TEST(Npy, SerializedHeaderMatchesNumpy) {
  std::string s = serializeNpy(Array::fromF64({1, 2, 3, 4, 5, 6}, {2, 3}));
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT_EQ(s, v1File(dict, f64Bytes({1, 2, 3, 4, 5, 6})));
  EXPECT_NE(serializeNpy(Array::fromI64({7}, {1})).find("'shape': (1,), }"), std::string::npos);
  EXPECT_NE(serializeNpy(Array::fromF32({7}, {})).find("'descr': '<f4', 'fortran_order': False, 'shape': (), }"),
            std::string::npos);
}

TEST(Npy, HandWrittenNumpy1xBytes) {
  // np.save of np.arange(3.0) by numpy < 1.14: 16-byte aligned, header length 70 (0x46).
  std::string file = std::string("\x93NUMPY\x01\x00\x46\x00", 10) +
                     "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }" +
                     "            \n" + f64Bytes({0.0, 1.0, 2.0});
  ASSERT_EQ(file.size(), 80u + 24u);
  Array a;
  std::string err;
  ASSERT_TRUE(parse(file, a, err)) << err;
  EXPECT_EQ(a.dtype, DType::F64);
  EXPECT_EQ(a.shape, std::vector<int64_t>{3});
  EXPECT_EQ(a.toF64(), (std::vector<double>{0.0, 1.0, 2.0}));

  // int32 little-endian, 64-byte aligned header length 118 (0x76), data 1, -2.
  std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
  std::string ints = std::string("\x01\x00\x00\x00\xfe\xff\xff\xff", 8);
  file = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict + std::string(118 - dict.size() - 1, ' ') + "\n" + ints;
  ASSERT_TRUE(parse(file, a, err)) << err;
  EXPECT_EQ(a.dtype, DType::I32);
  EXPECT_EQ(a.toI64(), (std::vector<int64_t>{1, -2}));
}

TEST(Npy, HeaderVariations) {
  const std::string data = f64Bytes({1, 2, 3, 4, 5, 6});
  const char *dicts[] = {
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}",
      "{'shape': (2,3), 'fortran_order': False, 'descr': '<f8'}",
      "{ \"fortran_order\" : False , \"shape\" : ( 2 , 3 , ) , \"descr\" : \"<f8\" , }",
      "{'descr': '=f8', 'fortran_order': False, 'shape': (2L, 3L), }",
      "{'descr': '|f8', 'fortran_order': False, 'shape': (2, 3), }",
  };
  for (const char *dict : dicts) {
    Array a;
    std::string err;
    EXPECT_TRUE(parse(v1File(dict, data), a, err)) << dict << ": " << err;
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3})) << dict;
    EXPECT_EQ(a.toF64(), (std::vector<double>{1, 2, 3, 4, 5, 6})) << dict;
  }
}

TEST(Npy, ScalarAndZeroSized) {
  Array a;
  std::string err;
  ASSERT_TRUE(parse(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", f64Bytes({42})), a, err));
  EXPECT_TRUE(a.shape.empty());
  EXPECT_EQ(a.toF64(), std::vector<double>{42});
  // A zero dimension makes the array empty even when other dimensions are huge.
  ASSERT_TRUE(parse(v1File("{'descr': '<i8', 'fortran_order': False, 'shape': (0, 9223372036854775807), }", ""), a,
                    err))
      << err;
  EXPECT_EQ(a.numElements(), 0);
}

TEST(Npy, Version2And3Headers) {
  std::string dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }";
  std::string header = dict + std::string(128 - 12 - dict.size() - 1, ' ') + "\n";
  std::string data = serializeNpy(Array::fromI64({-1, 1LL << 40}, {2})).substr(128);
  for (char major : {'\x02', '\x03'}) {
    std::string file = std::string("\x93NUMPY", 6) + major + '\0' + u32le(header.size()) + header + data;
    Array a;
    std::string err;
    ASSERT_TRUE(parse(file, a, err)) << err;
    EXPECT_EQ(a.toI64(), (std::vector<int64_t>{-1, 1LL << 40}));
  }
}

TEST(Npy, Errors) {
  const std::string good = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  const std::string data = f64Bytes({1, 2, 3});
  expectError("", "bad magic");
  expectError("\x93NUMPX", "bad magic");
  expectError("PK\x03\x04 this is a zip file", "bad magic");
  expectError(std::string("\x93NUMPY\x04\x00", 8) + "xxxx", "unsupported .npy format version 4.0");
  expectError(std::string("\x93NUMPY\x01\x01", 8) + "xxxx", "unsupported .npy format version 1.1");
  expectError(std::string("\x93NUMPY\x01\x00\xff\x00{}", 12), "header is truncated");
  expectError(v1File("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", data), "unsupported dtype '<c8'");
  expectError(v1File("{'descr': '<u4', 'fortran_order': False, 'shape': (3,), }", data), "unsupported dtype '<u4'");
  expectError(v1File("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (3,), }", data),
              "malformed header");
  expectError(v1File("{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }", data), "big-endian");
  expectError(v1File("{'descr': '<f8', 'fortran_order': True, 'shape': (3,), }", data),
              "Fortran order is not supported");
  expectError(v1File(good, data.substr(0, 16)), "data is truncated: expected 24 bytes, found 16");
  expectError(v1File("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", std::string(40, '\0')),
              "data is truncated: expected 96 bytes, found 40");
  expectError(v1File(good, data + "junk"), "4 extra bytes after the data");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False}", data), "missing key 'shape'");
  expectError(v1File("{'descr': '<f8', 'shape': (3,)}", data), "missing key 'fortran_order'");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'extra': 1}", data),
              "unexpected key 'extra'");
  expectError(v1File("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (3,)}", data),
              "duplicate key 'descr'");
  expectError(v1File("{'descr': '<f8', 'fortran_order': false, 'shape': (3,)}", data), "True or False");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (-3,)}", data), "non-negative integer");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (3 4)}", data), "expected ',' or ')'");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': [3]}", data), "malformed header");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (3,)", data), "malformed header");
  expectError(v1File("{'descr': '<f8, 'fortran_order': False, 'shape': (3,)}", data), "malformed header");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (3,)} x", data), "after the header dict");
  expectError(v1File("'descr': '<f8'", data), "malformed header");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,)}", data),
              "too large");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", data),
              "too large");
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (1152921504606846976,)}", data),
              "too large");
  // A huge but representable shape must be rejected without allocating.
  expectError(v1File("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 100)}", data),
              "data is truncated: expected 800000000000 bytes, found 24");
  // Untrusted text in messages is sanitized to stay on one line.
  expectError(v1File("{'descr': 'a\nb', 'fortran_order': False, 'shape': (3,)}", data), "unsupported dtype 'a?b'");
}

TEST(Npy, EveryTruncationFails) {
  for (const Array &a : {Array::fromF64({1, 2, 3, 4, 5, 6}, {2, 3}), Array::fromI32({1}, {})}) {
    const std::string file = serializeNpy(a);
    for (size_t len = 0; len < file.size(); ++len) {
      std::vector<unsigned char> buf(file.begin(), file.begin() + len); // exact-size heap buffer for ASan
      Array out;
      std::string err;
      EXPECT_FALSE(parseNpy(buf.data(), buf.size(), out, err)) << "length " << len;
      EXPECT_FALSE(err.empty()) << "length " << len;
    }
  }
}

TEST(Npy, FileIO) {
  const std::string path = ::testing::TempDir() + "npy_test_roundtrip.npy";
  Array a = Array::fromF32({1.5f, -2.0f}, {2, 1});
  std::string err;
  ASSERT_TRUE(writeNpy(path, a, err)) << err;
  Array b;
  ASSERT_TRUE(readNpy(path, b, err)) << err;
  EXPECT_EQ(b.shape, a.shape);
  EXPECT_EQ(b.toF64(), (std::vector<double>{1.5, -2.0}));
  std::remove(path.c_str());

  EXPECT_FALSE(readNpy(path, b, err));
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
  EXPECT_NE(err.find("No such file or directory"), std::string::npos) << err;

  Array bad = Array::fromF64({1, 2}, {3});
  EXPECT_FALSE(writeNpy(path, bad, err));
  EXPECT_NE(err.find("shape needs 24"), std::string::npos) << err;
  EXPECT_FALSE(writeNpy("/nonexistent-dir/x.npy", a, err));
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}
