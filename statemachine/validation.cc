#include "statemachine/validation.h"

#include <cstdint>

#include "statemachine/lock_state_machine.h"

namespace fencelock::sm {

bool is_valid_utf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* end = p + bytes.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t length;
    uint32_t min_code_point;
    uint32_t code_point;
    if ((c & 0xE0) == 0xC0) {
      length = 2;
      min_code_point = 0x80;
      code_point = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      min_code_point = 0x800;
      code_point = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      min_code_point = 0x10000;
      code_point = c & 0x07;
    } else {
      return false;  // a continuation byte first, or 0xF8..0xFF
    }
    if (static_cast<size_t>(end - p) < length) return false;
    for (size_t i = 1; i < length; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (p[i] & 0x3F);
    }
    if (code_point < min_code_point) return false;                   // overlong
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;  // surrogate
    if (code_point > 0x10FFFF) return false;
    p += length;
  }
  return true;
}

Status validate_lock_name(std::string_view name) {
  if (name.empty()) return Status(Code::kInvalidArgument, "lock name is empty");
  if (name.size() > kMaxLockNameBytes) {
    return Status(Code::kInvalidArgument, "lock name is longer than 512 bytes");
  }
  if (name.find('\0') != std::string_view::npos) {
    return Status(Code::kInvalidArgument, "lock name contains NUL");
  }
  if (!is_valid_utf8(name)) return Status(Code::kInvalidArgument, "lock name is not UTF-8");
  return Status();
}

}  // namespace fencelock::sm
