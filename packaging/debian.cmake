# CPack: the Debian package `fencelock` (cpack -G DEB --config
# build/CPackConfig.cmake). One package holds the programs, the unit, the
# example configuration and the client library with its headers.
# Included from packaging/CMakeLists.txt.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME fencelock)
set(CPACK_PACKAGE_VENDOR fencelock)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "distributed lock service with fencing tokens")
set(CPACK_PACKAGE_DESCRIPTION "fencelock replicates lock operations through its own Raft log
(RocksDB) and grants exclusive, shared and semaphore locks in fair FIFO queues,
each grant carrying a fencing token that only ever grows. This package holds
the server (fencelockd, with a systemd unit), the command line (fencelock), the
benchmark and simulator, and the C++ client library with its headers, CMake
package and pkg-config file.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Install with DESTDIR=<staging> and the prefix /usr, so that
# install_generated.cmake sees the real prefix (and puts the configuration in
# /etc).
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_FENCELOCK_STRIP "${CMAKE_STRIP}")
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_SOURCE_DIR}/cpack_strip_archives.cmake)
set(CPACK_PACKAGE_CHECKSUM SHA256)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)          # fencelock_<version>-<release>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "fencelock maintainers <maintainers@users.noreply.b-seed-5ac825b5.example>")
# Shared libraries' packages (librocksdb, libprotobuf, libboost-system, libspdlog,
# libfmt, libssl, libstdc++...) come from dpkg-shlibdeps; the maintainer
# scripts need adduser.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
# Building a program against libfencelock.a needs these.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS
    "libprotobuf-dev (>= 3.21), libspdlog-dev (>= 1.10), libboost-system-dev (>= 1.74), pkg-config")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_SOURCE_DIR}/debian/conffiles
    ${CMAKE_CURRENT_SOURCE_DIR}/debian/postinst
    ${CMAKE_CURRENT_SOURCE_DIR}/debian/prerm
    ${CMAKE_CURRENT_SOURCE_DIR}/debian/postrm)

include(CPack)
