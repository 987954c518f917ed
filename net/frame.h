#pragma once
// Length-prefixed frames (docs/design.md "Wire protocol"): a 4-byte big-endian
// body length, then one protobuf message. The length is checked against the
// maximum before any memory is reserved for the body.
//
// Thread-safety: FrameDecoder is not thread-safe; use one per connection.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace google::protobuf {
class MessageLite;
}

namespace fencelock::net {

inline constexpr size_t kFrameHeaderBytes = 4;
inline constexpr uint32_t kDefaultMaxFrameBytes = 4u << 20;

// Appends header and body of `message` to `out`, so a writer can coalesce
// several frames into one buffer. Returns false, appending nothing, when the
// serialized body would exceed max_frame_bytes.
bool append_frame(const google::protobuf::MessageLite& message, std::string& out,
                  uint32_t max_frame_bytes = kDefaultMaxFrameBytes);

// Appends a frame around an already serialized body.
bool append_frame_body(std::string_view body, std::string& out,
                       uint32_t max_frame_bytes = kDefaultMaxFrameBytes);

enum class DecodeStatus {
  kFrame,      // one complete frame was returned
  kNeedMore,   // no complete frame buffered; feed more bytes
  kTooLarge,   // the next frame's length exceeds the maximum; the stream is unusable
  kMalformed,  // a complete frame whose body is not a valid message (next_message only)
};

std::string_view decode_status_name(DecodeStatus status);

// Incremental decoder: accepts bytes in pieces of any size (a frame may be
// split at any point, and one piece may hold many frames) and yields whole
// frames in order.
class FrameDecoder {
 public:
  explicit FrameDecoder(uint32_t max_frame_bytes = kDefaultMaxFrameBytes);

  // Copies `bytes` into the buffer.
  void feed(std::string_view bytes);

  // Zero-copy receive: returns a writable region of at least `min_bytes`
  // into which the caller reads, then calls commit() with the count read.
  // The region is invalidated by any other call.
  std::span<char> prepare(size_t min_bytes);
  void commit(size_t bytes);

  // Takes the next complete frame. On kFrame, `body` views the frame's body
  // and stays valid until the next call on this decoder. Once kTooLarge is
  // returned, every later call returns it too: the byte stream can no longer
  // be trusted to be in step.
  DecodeStatus next(std::string_view& body);

  // next() and then parses the body into `message`. A body that does not
  // parse gives kMalformed; the frame is consumed.
  DecodeStatus next_message(google::protobuf::MessageLite& message);

  // Length announced by the header that caused kTooLarge (for the error text).
  uint64_t rejected_length() const { return rejected_length_; }
  uint32_t max_frame_bytes() const { return max_frame_bytes_; }
  // Changes the maximum for the frames not yet taken (a peer connection
  // raises it once the Hello is accepted).
  void set_max_frame_bytes(uint32_t max_frame_bytes) { max_frame_bytes_ = max_frame_bytes; }
  size_t buffered_bytes() const { return end_ - begin_; }

 private:
  void compact();

  uint32_t max_frame_bytes_;
  std::string buffer_;
  size_t begin_ = 0;  // first unconsumed byte
  size_t end_ = 0;    // one past the last received byte
  uint64_t rejected_length_ = 0;
  bool poisoned_ = false;
};

}  // namespace fencelock::net
