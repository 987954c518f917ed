#include "statemachine/snapshot_codec.h"

#include <cstring>

namespace fencelock::sm::detail {

uint64_t fnv1a64(std::string_view bytes, uint64_t hash) {
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return hash;
}

void SnapshotWriter::put_u32(uint32_t value) {
  for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

void SnapshotWriter::put_u64(uint64_t value) {
  for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

void SnapshotWriter::put_bytes(std::string_view bytes) {
  put_u32(static_cast<uint32_t>(bytes.size()));
  out_.append(bytes);
}

std::string SnapshotWriter::finish() && {
  put_u64(fnv1a64(out_));
  return std::move(out_);
}

SnapshotReader::SnapshotReader(std::string_view bytes) {
  if (bytes.size() < 8) {
    ok_ = false;
    return;
  }
  data_ = bytes.substr(0, bytes.size() - 8);
  uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) {
    stored |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[data_.size() + i])) << (8 * i);
  }
  ok_ = stored == fnv1a64(data_);
}

bool SnapshotReader::take(size_t n, const char*& out) {
  if (!ok_ || remaining() < n) {
    ok_ = false;
    return false;
  }
  out = data_.data() + pos_;
  pos_ += n;
  return true;
}

bool SnapshotReader::get_u8(uint8_t& value) {
  const char* p;
  if (!take(1, p)) return false;
  value = static_cast<unsigned char>(*p);
  return true;
}

bool SnapshotReader::get_u32(uint32_t& value) {
  const char* p;
  if (!take(4, p)) return false;
  value = 0;
  for (int i = 0; i < 4; ++i)
    value |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return true;
}

bool SnapshotReader::get_u64(uint64_t& value) {
  const char* p;
  if (!take(8, p)) return false;
  value = 0;
  for (int i = 0; i < 8; ++i)
    value |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return true;
}

bool SnapshotReader::get_bytes(std::string& value) {
  uint32_t length;
  if (!get_u32(length)) return false;
  const char* p;
  if (!take(length, p)) return false;
  value.assign(p, length);
  return true;
}

}  // namespace fencelock::sm::detail
