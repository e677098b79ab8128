// A fresh temporary folder for a test, removed with its contents at the end.
#ifndef DECAY_TEST_UNIT_TEMPDIR_H
#define DECAY_TEST_UNIT_TEMPDIR_H

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <stdlib.h>

namespace decay::test {

/// A fresh folder under /tmp (made with mkdtemp), removed with its contents at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/decay-test-XXXXXX";
    const char *made = mkdtemp(pattern);
    if (!made)
      ADD_FAILURE() << "mkdtemp failed";
    path = made ? made : "/tmp/decay-test-failed";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  std::string operator/(const std::string &name) const { return path + "/" + name; }
};

} // namespace decay::test

#endif
