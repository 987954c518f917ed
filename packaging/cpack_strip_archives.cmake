# CPack pre-build script (CPACK_PRE_BUILD_SCRIPTS): drops the debug
# information from the static libraries staged for the package, as
# CPACK_STRIP_FILES does for the programs (it leaves archives alone), which
# takes libfencelock.a from about 50 MB to a few.
file(GLOB_RECURSE archives "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*.a")
foreach(archive ${archives})
  execute_process(COMMAND "${CPACK_FENCELOCK_STRIP}" --strip-debug "${archive}" RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "cannot strip ${archive}")
  endif()
endforeach()
