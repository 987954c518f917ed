#pragma once
// POSIX file helpers shared by storage's own files (snapshot files, the
// write-ahead-log tail check): the text of errno, and reading a whole file.
//
// Thread-safety: free functions without shared state (system_error() reads
// the calling thread's errno).

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fencelock::storage {

// strerror(errno), for messages right after a failed call.
std::string system_error();

// Reads `fd` from its current offset to the end, retrying on EINTR. On a
// failed read returns INTERNAL "cannot read <what> <path>: <error>". Does
// not close `fd`.
Result<std::string> read_to_end(int fd, std::string_view what, const std::filesystem::path& path);

}  // namespace fencelock::storage
