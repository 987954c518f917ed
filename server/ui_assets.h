#pragma once
// The operator page's files (server/ui/), compiled into fencelockd so that
// a node serves its page with no files to install (server/embed_ui.cmake
// generates the table).

#include <cstddef>
#include <string_view>

namespace fencelock::server {

struct UiAsset {
  const char* path;  // "/" for index.html, "/ui/<file>" for the others
  const char* content_type;
  const char* data;
  size_t size;
};

// The asset served at `path`, or null.
const UiAsset* find_ui_asset(std::string_view path);

}  // namespace fencelock::server
