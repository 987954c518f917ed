#include "net/client_request.h"

namespace fencelock::net {

DecodedRequest decode_client_request(std::string_view body) {
  DecodedRequest decoded;
  if (!decoded.request.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    decoded.request.Clear();
    decoded.status = Status(lockpb::MALFORMED_REQUEST, "frame is not a valid Request message");
  } else if (decoded.request.kind_case() == clientpb::Request::KIND_NOT_SET) {
    decoded.status = Status(lockpb::UNKNOWN_REQUEST, "request has no known kind (a newer client?)");
  }
  return decoded;
}

}  // namespace fencelock::net
