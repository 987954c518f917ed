#pragma once
// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with
// everything in it when the object goes out of scope.
//
// Thread-safety: not thread-safe; one per test.

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace fencelock::storage::testing {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/fencelock-storage-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace fencelock::storage::testing
