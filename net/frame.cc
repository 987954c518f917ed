#include "net/frame.h"

#include <google/protobuf/message_lite.h>

#include <cstring>

namespace fencelock::net {
namespace {

void put_length(uint32_t length, std::string& out) {
  char header[kFrameHeaderBytes] = {
      static_cast<char>(length >> 24), static_cast<char>(length >> 16),
      static_cast<char>(length >> 8), static_cast<char>(length)};
  out.append(header, kFrameHeaderBytes);
}

uint32_t get_length(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

}  // namespace

bool append_frame(const google::protobuf::MessageLite& message, std::string& out,
                  uint32_t max_frame_bytes) {
  size_t size = message.ByteSizeLong();
  if (size > max_frame_bytes) return false;
  put_length(static_cast<uint32_t>(size), out);
  size_t at = out.size();
  out.resize(at + size);
  message.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out.data() + at));
  return true;
}

bool append_frame_body(std::string_view body, std::string& out, uint32_t max_frame_bytes) {
  if (body.size() > max_frame_bytes) return false;
  put_length(static_cast<uint32_t>(body.size()), out);
  out.append(body);
  return true;
}

std::string_view decode_status_name(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::kFrame: return "frame";
    case DecodeStatus::kNeedMore: return "need more";
    case DecodeStatus::kTooLarge: return "frame too large";
    case DecodeStatus::kMalformed: return "malformed frame";
  }
  return "unknown";
}

FrameDecoder::FrameDecoder(uint32_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}

void FrameDecoder::compact() {
  if (begin_ == 0) return;
  if (begin_ == end_) {
    begin_ = end_ = 0;
    return;
  }
  std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
}

std::span<char> FrameDecoder::prepare(size_t min_bytes) {
  if (buffer_.size() - end_ < min_bytes) {
    compact();
    if (buffer_.size() - end_ < min_bytes) buffer_.resize(end_ + min_bytes);
  }
  return {buffer_.data() + end_, buffer_.size() - end_};
}

void FrameDecoder::commit(size_t bytes) { end_ += bytes; }

void FrameDecoder::feed(std::string_view bytes) {
  std::span<char> region = prepare(bytes.size());
  std::memcpy(region.data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

DecodeStatus FrameDecoder::next(std::string_view& body) {
  if (poisoned_) return DecodeStatus::kTooLarge;
  size_t available = end_ - begin_;
  if (available < kFrameHeaderBytes) return DecodeStatus::kNeedMore;
  uint32_t length = get_length(buffer_.data() + begin_);
  if (length > max_frame_bytes_) {
    poisoned_ = true;
    rejected_length_ = length;
    return DecodeStatus::kTooLarge;
  }
  if (available - kFrameHeaderBytes < length) return DecodeStatus::kNeedMore;
  body = std::string_view(buffer_.data() + begin_ + kFrameHeaderBytes, length);
  begin_ += kFrameHeaderBytes + length;
  return DecodeStatus::kFrame;
}

DecodeStatus FrameDecoder::next_message(google::protobuf::MessageLite& message) {
  std::string_view body;
  DecodeStatus status = next(body);
  if (status != DecodeStatus::kFrame) return status;
  if (!message.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return DecodeStatus::kMalformed;
  }
  return DecodeStatus::kFrame;
}

}  // namespace fencelock::net
