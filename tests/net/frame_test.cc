#include "net/frame.h"

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "proto/client.pb.h"

namespace fencelock::net {
namespace {

clientpb::Request make_request(uint64_t id, const std::string& lock) {
  clientpb::Request request;
  request.set_id(id);
  request.mutable_acquire()->set_lock(lock);
  request.mutable_acquire()->mutable_key()->set_session_id(id * 3);
  return request;
}

// Drains every complete frame from the decoder into `out`; returns the
// status that stopped it.
DecodeStatus drain(FrameDecoder& decoder, std::vector<clientpb::Request>& out) {
  while (true) {
    clientpb::Request request;
    DecodeStatus status = decoder.next_message(request);
    if (status != DecodeStatus::kFrame) return status;
    out.push_back(std::move(request));
  }
}

std::string three_frames() {
  std::string wire;
  REQUIRE(append_frame(make_request(1, "jobs/nightly"), wire));
  REQUIRE(append_frame(clientpb::Request(), wire));  // zero-length body
  REQUIRE(append_frame(make_request(3, std::string(300, 'x')), wire));
  return wire;
}

void check_three(const std::vector<clientpb::Request>& got) {
  REQUIRE(got.size() == 3);
  CHECK(got[0].id() == 1);
  CHECK(got[0].acquire().lock() == "jobs/nightly");
  CHECK(got[0].acquire().key().session_id() == 3);
  CHECK(got[1].id() == 0);
  CHECK(got[1].kind_case() == clientpb::Request::KIND_NOT_SET);
  CHECK(got[2].id() == 3);
  CHECK(got[2].acquire().lock().size() == 300);
}

}  // namespace

TEST_CASE("a frame is a 4-byte big-endian length then the body", "[frame]") {
  std::string wire;
  REQUIRE(append_frame_body("abc", wire));
  REQUIRE(wire.size() == 7);
  CHECK(wire.substr(0, 4) == std::string("\0\0\0\3", 4));
  CHECK(wire.substr(4) == "abc");
}

TEST_CASE("frames decode when the stream is split at every point", "[frame]") {
  std::string wire = three_frames();
  for (size_t split = 0; split <= wire.size(); ++split) {
    FrameDecoder decoder;
    std::vector<clientpb::Request> got;
    decoder.feed(std::string_view(wire).substr(0, split));
    REQUIRE(drain(decoder, got) == DecodeStatus::kNeedMore);
    decoder.feed(std::string_view(wire).substr(split));
    REQUIRE(drain(decoder, got) == DecodeStatus::kNeedMore);
    INFO("split at " << split);
    check_three(got);
    CHECK(decoder.buffered_bytes() == 0);
  }
}

TEST_CASE("frames decode when split at every pair of points", "[frame]") {
  std::string wire = three_frames();
  for (size_t a = 0; a <= wire.size(); a += 7) {
    for (size_t b = a; b <= wire.size(); ++b) {
      FrameDecoder decoder;
      std::vector<clientpb::Request> got;
      std::string_view view(wire);
      decoder.feed(view.substr(0, a));
      drain(decoder, got);
      decoder.feed(view.substr(a, b - a));
      drain(decoder, got);
      decoder.feed(view.substr(b));
      REQUIRE(drain(decoder, got) == DecodeStatus::kNeedMore);
      INFO("splits at " << a << " and " << b);
      check_three(got);
    }
  }
}

TEST_CASE("frames decode when fed one byte at a time through prepare/commit", "[frame]") {
  std::string wire = three_frames();
  FrameDecoder decoder;
  std::vector<clientpb::Request> got;
  for (char c : wire) {
    std::span<char> region = decoder.prepare(1);
    REQUIRE(region.size() >= 1);
    region[0] = c;
    decoder.commit(1);
    REQUIRE(drain(decoder, got) == DecodeStatus::kNeedMore);
  }
  check_three(got);
}

TEST_CASE("random chunking of many frames yields every frame in order", "[frame]") {
  std::mt19937_64 rng(Catch::rngSeed());
  std::string wire;
  for (uint64_t i = 1; i <= 500; ++i) {
    REQUIRE(append_frame(make_request(i, std::string(rng() % 2000, 'k')), wire));
  }
  FrameDecoder decoder;
  std::vector<clientpb::Request> got;
  size_t at = 0;
  while (at < wire.size()) {
    size_t n = std::min<size_t>(wire.size() - at, 1 + rng() % 5000);
    decoder.feed(std::string_view(wire).substr(at, n));
    at += n;
    REQUIRE(drain(decoder, got) == DecodeStatus::kNeedMore);
  }
  REQUIRE(got.size() == 500);
  for (uint64_t i = 0; i < 500; ++i) CHECK(got[i].id() == i + 1);
}

TEST_CASE("a length above the maximum is rejected before the body arrives", "[frame]") {
  FrameDecoder decoder(1024);
  std::string wire;
  REQUIRE(append_frame_body(std::string(1024, 'a'), wire));  // exactly the maximum: fine
  std::string oversized;
  REQUIRE(append_frame_body(std::string(1025, 'b'), oversized));
  decoder.feed(wire);
  decoder.feed(std::string_view(oversized).substr(0, 4));  // only the header

  std::string_view body;
  REQUIRE(decoder.next(body) == DecodeStatus::kFrame);
  CHECK(body.size() == 1024);
  CHECK(decoder.next(body) == DecodeStatus::kTooLarge);
  CHECK(decoder.rejected_length() == 1025);
  // Sticky: the stream is out of step and stays rejected.
  decoder.feed(wire);
  CHECK(decoder.next(body) == DecodeStatus::kTooLarge);
}

TEST_CASE("a huge length prefix allocates nothing and is rejected", "[frame]") {
  FrameDecoder decoder;
  decoder.feed(std::string("\xff\xff\xff\xff", 4));
  std::string_view body;
  CHECK(decoder.next(body) == DecodeStatus::kTooLarge);
  CHECK(decoder.rejected_length() == 0xffffffffu);
  CHECK(decoder.buffered_bytes() == 4);
}

TEST_CASE("the encoder refuses a message larger than the maximum", "[frame]") {
  std::string out;
  CHECK_FALSE(append_frame(make_request(1, std::string(2000, 'z')), out, 1000));
  CHECK(out.empty());
  CHECK_FALSE(append_frame_body(std::string(1001, 'z'), out, 1000));
  CHECK(out.empty());
}

TEST_CASE("a zero-length frame is an empty message", "[frame]") {
  FrameDecoder decoder;
  decoder.feed(std::string("\0\0\0\0", 4));
  clientpb::Request request;
  request.set_id(99);
  REQUIRE(decoder.next_message(request) == DecodeStatus::kFrame);
  CHECK(request.id() == 0);
  CHECK(decoder.next_message(request) == DecodeStatus::kNeedMore);
}

TEST_CASE("garbage that frames correctly but does not parse is malformed", "[frame]") {
  FrameDecoder decoder;
  std::string wire;
  // 0xff... is an invalid protobuf tag (field number 0 / truncated varint).
  REQUIRE(append_frame_body(std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11), wire));
  REQUIRE(append_frame(make_request(5, "after"), wire));
  decoder.feed(wire);
  clientpb::Request request;
  CHECK(decoder.next_message(request) == DecodeStatus::kMalformed);
  // The bad frame is consumed; framing itself is intact.
  REQUIRE(decoder.next_message(request) == DecodeStatus::kFrame);
  CHECK(request.id() == 5);
}

TEST_CASE("random garbage never crashes the decoder", "[frame]") {
  std::mt19937_64 rng(Catch::rngSeed());
  for (int round = 0; round < 2000; ++round) {
    FrameDecoder decoder(4096);
    std::string garbage(rng() % 256, '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    decoder.feed(garbage);
    clientpb::Request request;
    DecodeStatus status;
    int frames = 0;
    while ((status = decoder.next_message(request)) == DecodeStatus::kFrame ||
           status == DecodeStatus::kMalformed) {
      ++frames;
      REQUIRE(frames <= 64);  // each frame consumes at least its 4-byte header
    }
    CHECK((status == DecodeStatus::kNeedMore || status == DecodeStatus::kTooLarge));
  }
}

}  // namespace fencelock::net
