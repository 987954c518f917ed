// Fuzz target: net::FrameDecoder fed arbitrary bytes in arbitrary pieces,
// through feed() or prepare()/commit(), drained by next() or next_message().
// Every answer is checked against a model that splits the same byte stream
// by hand: frames come out whole and in order, kNeedMore only when the next
// frame is incomplete, kTooLarge exactly for a length over the maximum (and
// for ever after), kMalformed only for a body that does not parse.
//
// Input: 1 byte choosing max_frame_bytes, then pieces of [control, bytes]:
// control's low 6 bits are the piece's length, bit 6 drains with
// next_message(), bit 7 writes through prepare()/commit().

#include <cstdint>
#include <cstring>
#include <string>

#include "common/check.h"
#include "fuzz/fuzz_input.h"
#include "net/frame.h"
#include "proto/client.pb.h"

namespace fencelock::fuzz {
namespace {

// The same stream split by hand.
struct Model {
  std::string stream;
  size_t consumed = 0;
  bool poisoned = false;

  uint64_t next_length() const {
    const auto* p = reinterpret_cast<const unsigned char*>(stream.data() + consumed);
    return (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
  }
};

void drain(net::FrameDecoder& decoder, Model& model, bool as_message) {
  while (true) {
    std::string_view body;
    clientpb::Request request;
    size_t available = model.stream.size() - model.consumed;
    net::DecodeStatus status = as_message ? decoder.next_message(request) : decoder.next(body);
    if (model.poisoned) {
      FL_CHECK(status == net::DecodeStatus::kTooLarge, "a poisoned decoder answered {}",
               net::decode_status_name(status));
      return;
    }
    if (available < net::kFrameHeaderBytes) {
      FL_CHECK(status == net::DecodeStatus::kNeedMore, "{} with {} bytes buffered",
               net::decode_status_name(status), available);
      return;
    }
    uint64_t length = model.next_length();
    if (length > decoder.max_frame_bytes()) {
      FL_CHECK(status == net::DecodeStatus::kTooLarge, "{} for a length of {} over {}",
               net::decode_status_name(status), length, decoder.max_frame_bytes());
      FL_CHECK(decoder.rejected_length() == length, "rejected_length {} for {}",
               decoder.rejected_length(), length);
      model.poisoned = true;
      return;
    }
    if (available - net::kFrameHeaderBytes < length) {
      FL_CHECK(status == net::DecodeStatus::kNeedMore, "{} for a frame of {} with {} buffered",
               net::decode_status_name(status), length, available);
      return;
    }
    std::string_view expected =
        std::string_view(model.stream).substr(model.consumed + net::kFrameHeaderBytes, length);
    model.consumed += net::kFrameHeaderBytes + length;
    if (as_message) {
      clientpb::Request parsed;
      bool parses = parsed.ParseFromArray(expected.data(), static_cast<int>(expected.size()));
      FL_CHECK(status == (parses ? net::DecodeStatus::kFrame : net::DecodeStatus::kMalformed),
               "{} for a body that {} parse", net::decode_status_name(status),
               parses ? "does" : "does not");
      if (parses) {
        FL_CHECK(parsed.SerializeAsString() == request.SerializeAsString(),
                 "next_message gave another message than the body's");
      }
    } else {
      FL_CHECK(status == net::DecodeStatus::kFrame, "{} for a complete frame of {} bytes",
               net::decode_status_name(status), length);
      FL_CHECK(body == expected, "frame body differs from the stream's ({} bytes)", length);
    }
    FL_CHECK(decoder.buffered_bytes() == model.stream.size() - model.consumed,
             "{} bytes buffered, {} expected", decoder.buffered_bytes(),
             model.stream.size() - model.consumed);
  }
}

}  // namespace
}  // namespace fencelock::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fencelock;
  fuzz::FuzzInput in(data, size);
  // Small maxima reach kTooLarge often; the default one guards real traffic.
  static constexpr uint32_t kMaxima[] = {0, 1, 7, 64, 1000, net::kDefaultMaxFrameBytes};
  net::FrameDecoder decoder(kMaxima[in.below(std::size(kMaxima))]);
  fuzz::Model model;
  while (!in.empty()) {
    uint8_t control = in.u8();
    std::string piece = in.bytes(control & 0x3f);
    if (control & 0x80) {
      std::span<char> region = decoder.prepare(piece.size());
      FL_CHECK(region.size() >= piece.size(), "prepare({}) gave {} bytes", piece.size(),
               region.size());
      std::memcpy(region.data(), piece.data(), piece.size());
      decoder.commit(piece.size());
    } else {
      decoder.feed(piece);
    }
    model.stream += piece;
    fuzz::drain(decoder, model, (control & 0x40) != 0);
  }
  return 0;
}
