#include "storage/posix_file.h"

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace fencelock::storage {

std::string system_error() {
  return std::strerror(errno);
}

Result<std::string> read_to_end(int fd, std::string_view what, const std::filesystem::path& path) {
  std::string contents;
  std::array<char, 64 * 1024> buffer;
  for (;;) {
    ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status(lockpb::INTERNAL,
                    fmt::format("cannot read {} {}: {}", what, path.string(), system_error()));
    }
    if (got == 0) break;
    contents.append(buffer.data(), static_cast<size_t>(got));
  }
  return contents;
}

}  // namespace fencelock::storage
