#pragma once
// The byte encoding of snapshots: fixed-width little-endian integers,
// length-prefixed byte strings, and a trailing FNV-1a 64 checksum. Every
// read is bounds-checked so a damaged snapshot fails cleanly.
//
// Thread-safety: value types; one thread per object.

#include <cstdint>
#include <string>
#include <string_view>

namespace fencelock::sm::detail {

inline constexpr uint64_t kFnv1a64Offset = 14695981039346656037ULL;

// FNV-1a 64 of `bytes`, continuing from `hash` (kFnv1a64Offset to start).
// Every step is a bijection of the running state, so any change confined
// to one byte changes the result.
uint64_t fnv1a64(std::string_view bytes, uint64_t hash = kFnv1a64Offset);

// Appends values to a growing buffer; finish() seals it.
class SnapshotWriter {
 public:
  // Append one value: integers little-endian, bytes as a u32 length then
  // the bytes (at most 4 GiB - 1; callers bound their strings far lower).
  void put_u8(uint8_t value) { out_.push_back(static_cast<char>(value)); }
  void put_u32(uint32_t value);
  void put_u64(uint64_t value);
  void put_bytes(std::string_view bytes);
  // Makes room for `bytes` in all, so that a large snapshot is not copied
  // as it grows.
  void reserve(size_t bytes) { out_.reserve(bytes); }

  // Appends the checksum of everything written and returns the bytes.
  std::string finish() &&;

 private:
  std::string out_;
};

// Reads back what SnapshotWriter wrote, refusing anything out of bounds.
class SnapshotReader {
 public:
  // Reads `bytes` (not owned; must outlive the reader) without its trailing
  // checksum; ok() is false from the start if the checksum is missing or
  // wrong.
  explicit SnapshotReader(std::string_view bytes);

  // Each get_ returns false (and leaves ok() false) when the data ends early.
  bool get_u8(uint8_t& value);
  bool get_u32(uint32_t& value);
  bool get_u64(uint64_t& value);
  bool get_bytes(std::string& value);

  // False once the checksum failed or a read ran past the end.
  bool ok() const { return ok_; }
  // True when every byte before the checksum was read.
  bool at_end() const { return pos_ == data_.size(); }
  // Bytes left before the checksum.
  size_t remaining() const { return data_.size() - pos_; }

 private:
  bool take(size_t n, const char*& out);

  std::string_view data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace fencelock::sm::detail
