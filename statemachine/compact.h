#pragma once
// Small storage types that keep a lock and its holders compact (issue #4's
// budget: <= 400 bytes per session holding one lock) and let a snapshot
// image share the state's records instead of copying them
// (LockStateMachine::Image). Most locks have no waiters and most grants no
// value, so both cost one null pointer then.
//
// Thread-safety: the reference counts below are plain integers (this
// module has no atomics): copying or destroying a SharedBytes or a Cow, and
// mut(), happen on the thread that owns the state machine. Other threads
// may read the bytes or the record of one whose owner keeps it alive and
// leaves it unchanged — which Cow::mut() guarantees for a shared record.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace fencelock::sm::detail {

// Immutable bytes shared by reference count: a lock's name and a grant's
// value. Copying one copies a pointer. Empty bytes cost no allocation.
class SharedBytes {
 public:
  SharedBytes() = default;
  // `bytes` must be shorter than 4 GiB (names and values are at most a few KiB).
  explicit SharedBytes(std::string_view bytes) {
    if (bytes.empty()) return;
    void* memory = ::operator new(sizeof(Header) + bytes.size());
    header_ = new (memory) Header{1, static_cast<uint32_t>(bytes.size())};
    std::memcpy(data(), bytes.data(), bytes.size());
  }
  SharedBytes(const SharedBytes& other) noexcept : header_(other.header_) {
    if (header_) ++header_->refs;
  }
  SharedBytes(SharedBytes&& other) noexcept : header_(std::exchange(other.header_, nullptr)) {}
  SharedBytes& operator=(SharedBytes other) noexcept {
    std::swap(header_, other.header_);
    return *this;
  }
  ~SharedBytes() {
    if (header_ && --header_->refs == 0) {
      header_->~Header();
      ::operator delete(header_);
    }
  }

  std::string_view view() const {
    return header_ ? std::string_view(data(), header_->size) : std::string_view();
  }
  size_t size() const { return header_ ? header_->size : 0; }
  bool empty() const { return header_ == nullptr; }
  operator std::string_view() const { return view(); }  // NOLINT: a name compares as its bytes

 private:
  struct Header {
    uint32_t refs;
    uint32_t size;
  };
  char* data() const { return reinterpret_cast<char*>(header_ + 1); }

  Header* header_ = nullptr;
};

// Orders SharedBytes, strings and string_views by their bytes, so a table
// keyed by SharedBytes is searched with a std::string or a string_view.
struct BytesLess {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a < b; }
};

// A value `T` shared copy-on-write: copying a Cow shares the value (a
// snapshot image does this for every record); mut() gives a value no
// other Cow shares, copying it first when one does, so a shared value
// never changes. Never empty except when moved from.
template <typename T>
class Cow {
 public:
  Cow() : block_(new Block(T{})) {}
  explicit Cow(T value) : block_(new Block(std::move(value))) {}
  Cow(const Cow& other) noexcept : block_(other.block_) { ++block_->refs; }
  Cow(Cow&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  Cow& operator=(Cow other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  ~Cow() { release(); }

  const T& operator*() const { return *block_; }
  const T* operator->() const { return block_; }

  // The value, to change: copied first when another Cow shares it.
  T& mut() {
    if (block_->refs != 1) {
      Block* copy = new Block(static_cast<const T&>(*block_));
      release();
      block_ = copy;
    }
    return *block_;
  }

 private:
  // The count after the value: a record with padding at its end (a Lock)
  // keeps it there at no cost.
  struct Block : T {
    explicit Block(T value) : T(std::move(value)) {}
    uint32_t refs = 1;
  };
  void release() {
    if (block_ && --block_->refs == 0) delete block_;
    block_ = nullptr;
  }

  Block* block_;
};

// Bytes that are usually empty (a grant's value): shared, never changed.
using Payload = SharedBytes;

// A vector that is usually empty: one pointer inline, allocated on first
// insert and freed when it becomes empty again. Offers the subset of
// std::vector the state machine uses, with the same meaning. Copying one
// copies its items.
template <typename T>
class LazyVector {
 public:
  using iterator = T*;
  using const_iterator = const T*;

  LazyVector() = default;
  LazyVector(const LazyVector& other)
      : items_(other.items_ ? std::make_unique<std::vector<T>>(*other.items_) : nullptr) {}
  LazyVector(LazyVector&&) noexcept = default;
  LazyVector& operator=(const LazyVector& other) {
    if (this != &other) {
      items_ = other.items_ ? std::make_unique<std::vector<T>>(*other.items_) : nullptr;
    }
    return *this;
  }
  LazyVector& operator=(LazyVector&&) noexcept = default;

  bool empty() const { return !items_ || items_->empty(); }
  size_t size() const { return items_ ? items_->size() : 0; }

  iterator begin() { return items_ ? items_->data() : nullptr; }
  iterator end() { return items_ ? items_->data() + items_->size() : nullptr; }
  const_iterator begin() const { return items_ ? items_->data() : nullptr; }
  const_iterator end() const { return items_ ? items_->data() + items_->size() : nullptr; }

  // Precondition for the accessors below: index < size() / !empty().
  T& operator[](size_t index) { return (*items_)[index]; }
  const T& operator[](size_t index) const { return (*items_)[index]; }
  const T& front() const { return items_->front(); }

  void push_back(T item) {
    if (!items_) items_ = std::make_unique<std::vector<T>>();
    items_->push_back(std::move(item));
  }
  // Erases [first, last), which must lie within [begin(), end()).
  void erase(iterator first, iterator last) {
    if (first == last) return;
    items_->erase(items_->begin() + (first - begin()), items_->begin() + (last - begin()));
    if (items_->empty()) items_.reset();
  }
  void erase(iterator position) { erase(position, position + 1); }

 private:
  std::unique_ptr<std::vector<T>> items_;
};

// A vector of trivially copyable items in 16 bytes (a pointer and two
// 32-bit counts) instead of std::vector's 24: a session's list of its
// locks, so that a session's table entry stays within its allocator size
// class. The subset of std::vector the state machine uses, with the same
// meaning; move-only.
template <typename T>
class CompactVector {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  CompactVector() = default;
  CompactVector(const CompactVector&) = delete;
  CompactVector& operator=(const CompactVector&) = delete;
  CompactVector(CompactVector&& other) noexcept
      : items_(std::exchange(other.items_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  CompactVector& operator=(CompactVector&& other) noexcept {
    if (this != &other) {
      ::operator delete(items_);
      items_ = std::exchange(other.items_, nullptr);
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  ~CompactVector() { ::operator delete(items_); }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T* begin() { return items_; }
  T* end() { return items_ + size_; }
  const T* begin() const { return items_; }
  const T* end() const { return items_ + size_; }
  // Precondition: !empty().
  T& back() { return items_[size_ - 1]; }
  void pop_back() { --size_; }

  // At most 2^32 - 1 items (a session lists at most Limits::max_locks_per_session).
  void push_back(const T& item) {
    if (size_ == capacity_) {
      const uint32_t capacity = capacity_ == 0 ? 1 : 2 * capacity_;
      T* items = static_cast<T*>(::operator new(capacity * sizeof(T)));
      if (size_ > 0) std::memcpy(static_cast<void*>(items), items_, size_ * sizeof(T));
      ::operator delete(items_);
      items_ = items;
      capacity_ = capacity;
    }
    items_[size_++] = item;
  }

 private:
  T* items_ = nullptr;
  uint32_t size_ = 0;
  uint32_t capacity_ = 0;
};

}  // namespace fencelock::sm::detail
