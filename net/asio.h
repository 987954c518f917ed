#pragma once
// The one way the project includes Boost.Asio. Boost 1.74's awaitable.hpp
// uses std::exchange without including <utility>, which GCC 12 no longer
// pulls in transitively, so <utility> must come first.

#include <utility>

#include <boost/asio.hpp>
