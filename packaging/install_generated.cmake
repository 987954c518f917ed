# Runs at install time (cmake --install, cpack), after install(CODE) has set
# FENCELOCK_PACKAGING_DIR, FENCELOCK_VERSION and FENCELOCK_{BIN,LIB,INCLUDE,
# DOC,SYSCONF}DIR (GNUInstallDirs' values at configure time).
#
# Installs what must name absolute paths under the prefix given at install
# time, which configure time does not know (`cmake --install build --prefix
# P`; cpack installs to /usr):
#
#   <libdir>/pkgconfig/fencelock.pc      prefix=<the prefix>
#   lib/systemd/system/fencelockd.service  ExecStart=<prefix>/bin/fencelockd
#   <sysconfdir>/fencelock/fencelockd.toml the example for node 1, only if
#                                        missing: an edited one is kept
#
# <sysconfdir> is /etc for the prefix /usr (as GNUInstallDirs has it),
# <prefix>/etc otherwise, or CMAKE_INSTALL_SYSCONFDIR if that was absolute.
# DESTDIR is honoured (cpack stages into it).

function(fencelock_full out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

if(IS_ABSOLUTE "${FENCELOCK_SYSCONFDIR}")
  set(sysconfdir "${FENCELOCK_SYSCONFDIR}")
elseif(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(sysconfdir "/etc")
else()
  set(sysconfdir "${CMAKE_INSTALL_PREFIX}/${FENCELOCK_SYSCONFDIR}")
endif()

set(FENCELOCK_PREFIX "${CMAKE_INSTALL_PREFIX}")
# fencelock.pc names its directories relative to ${prefix} where it can.
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${FENCELOCK_${dir}}")
    set(FENCELOCK_PC_${dir} "${FENCELOCK_${dir}}")
  else()
    set(FENCELOCK_PC_${dir} "\${prefix}/${FENCELOCK_${dir}}")
  endif()
endforeach()
fencelock_full(FENCELOCK_LIBDIR "${FENCELOCK_LIBDIR}")
fencelock_full(FENCELOCK_INCLUDEDIR "${FENCELOCK_INCLUDEDIR}")
fencelock_full(FENCELOCK_DOCDIR "${FENCELOCK_DOCDIR}")
fencelock_full(bindir "${FENCELOCK_BINDIR}")
set(FENCELOCKD "${bindir}/fencelockd")
set(FENCELOCK_CONFIG "${sysconfdir}/fencelock/fencelockd.toml")

# Writes `template` configured with the variables above to `dir`/`name`
# under DESTDIR, and records it in the install manifest.
function(fencelock_install_configured template dir name)
  set(path "$ENV{DESTDIR}${dir}/${name}")
  message(STATUS "Installing: ${path}")
  configure_file("${FENCELOCK_PACKAGING_DIR}/${template}" "${path}" @ONLY)
  file(CHMOD "${path}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  set(CMAKE_INSTALL_MANIFEST_FILES ${CMAKE_INSTALL_MANIFEST_FILES} "${path}" PARENT_SCOPE)
endfunction()

fencelock_install_configured(fencelock.pc.in "${FENCELOCK_LIBDIR}/pkgconfig" fencelock.pc)
fencelock_install_configured(fencelockd.service.in "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
                             fencelockd.service)

if(EXISTS "$ENV{DESTDIR}${FENCELOCK_CONFIG}")
  message(STATUS "Keeping: $ENV{DESTDIR}${FENCELOCK_CONFIG} (already there)")
else()
  file(INSTALL "${FENCELOCK_PACKAGING_DIR}/config/node1.toml" DESTINATION "${sysconfdir}/fencelock"
       RENAME fencelockd.toml PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
