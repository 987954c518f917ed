#pragma once
// Small storage types that keep a lock and its holders compact (issue #4's
// budget: <= 400 bytes per session holding one lock). Most locks have no
// waiters and most grants no value, so both cost one null pointer then.
//
// Thread-safety: value types; one thread per object.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fencelock::sm::detail {

// Bytes that are usually empty: 8 bytes inline, a heap string otherwise.
class Payload {
 public:
  Payload() = default;
  explicit Payload(std::string_view bytes) {
    if (!bytes.empty()) bytes_ = std::make_unique<std::string>(bytes);
  }

  std::string_view view() const { return bytes_ ? std::string_view(*bytes_) : std::string_view(); }
  size_t size() const { return bytes_ ? bytes_->size() : 0; }

 private:
  std::unique_ptr<std::string> bytes_;
};

// A vector that is usually empty: one pointer inline, allocated on first
// insert and freed when it becomes empty again. Offers the subset of
// std::vector the state machine uses, with the same meaning.
template <typename T>
class LazyVector {
 public:
  using iterator = T*;
  using const_iterator = const T*;

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

}  // namespace fencelock::sm::detail
