#pragma once
// Validation of the strings commands carry (lock names, client names).
//
// Thread-safety: pure functions; callable from any thread.

#include <string_view>

#include "statemachine/status.h"

namespace fencelock::sm {

// Returns true when `bytes` is well-formed UTF-8 (RFC 3629 §4): no overlong
// forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
// truncated sequence.
bool is_valid_utf8(std::string_view bytes);

// Returns OK when `name` is a valid lock name: non-empty, at most 512 bytes,
// well-formed UTF-8, no NUL; otherwise INVALID_ARGUMENT saying why.
Status validate_lock_name(std::string_view name);

}  // namespace fencelock::sm
