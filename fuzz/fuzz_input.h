#pragma once
// FuzzInput: the fuzzer's bytes read as a stream of choices, as LLVM's
// FuzzedDataProvider does, but written here so that the replay build (gcc,
// no clang headers) compiles the same targets. Reads past the end give
// zeros and empty strings, so every input decodes to something.
//
// Thread-safety: not thread-safe; one per input.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fencelock::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : bytes_(reinterpret_cast<const char*>(data), size) {}

  bool empty() const { return pos_ >= bytes_.size(); }
  size_t remaining() const { return bytes_.size() - pos_; }

  uint8_t u8() { return empty() ? 0 : static_cast<uint8_t>(bytes_[pos_++]); }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (uint16_t{u8()} << 8)); }
  uint32_t u32() { return u16() | (uint32_t{u16()} << 16); }
  uint64_t u64() { return u32() | (uint64_t{u32()} << 32); }
  bool boolean() { return (u8() & 1) != 0; }

  // A value in [0, n) for n > 0, from one byte when n <= 256.
  uint64_t below(uint64_t n) { return (n <= 256 ? u8() : u64()) % n; }

  // The next `n` bytes, or fewer at the end.
  std::string bytes(size_t n) {
    n = std::min(n, remaining());
    std::string out(bytes_.substr(pos_, n));
    pos_ += n;
    return out;
  }
  // A string whose length (at most `max`) comes first.
  std::string short_bytes(size_t max = 255) { return bytes(below(max + 1)); }
  std::string rest() { return bytes(remaining()); }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

}  // namespace fencelock::fuzz
