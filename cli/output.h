#pragma once
// How the fencelock command line prints protobuf answers as JSON
// (--output json): field names as in the .proto files, defaults included.

#include <google/protobuf/util/json_util.h>

#include <string>

namespace fencelock::cli {

inline std::string to_json(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

}  // namespace fencelock::cli
