#include "fencelock/version.h"

namespace fencelock {

const char* library_version() {
  return FENCELOCK_VERSION;
}

}  // namespace fencelock
