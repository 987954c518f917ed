# Wire and log schemas. Generated code stays in the build tree.
# Included from the top-level CMakeLists.txt (not add_subdirectory) because
# protobuf_generate names outputs relative to the current source directory,
# and the generated code must include each other as "proto/x.pb.h".
set(FENCELOCK_PROTOS
  ${CMAKE_SOURCE_DIR}/proto/raft.proto
  ${CMAKE_SOURCE_DIR}/proto/command.proto
  ${CMAKE_SOURCE_DIR}/proto/client.proto
  ${CMAKE_SOURCE_DIR}/proto/peer.proto)

add_library(fencelock_proto STATIC)
protobuf_generate(
  TARGET fencelock_proto
  LANGUAGE cpp
  PROTOS ${FENCELOCK_PROTOS}
  IMPORT_DIRS ${CMAKE_SOURCE_DIR}
  PROTOC_OUT_DIR ${CMAKE_BINARY_DIR}/gen)
target_sources(fencelock_proto PRIVATE ${FENCELOCK_PROTOS})
target_include_directories(fencelock_proto PUBLIC ${CMAKE_BINARY_DIR}/gen)
target_link_libraries(fencelock_proto PUBLIC protobuf::libprotobuf)
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/gen)
