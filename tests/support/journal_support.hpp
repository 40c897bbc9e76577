// tests/support/journal_support.hpp - payloads with a checkable identity, and appending from a test.
#pragma once

#include <flushkit/journal/journal.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace flushkit::test {

/// A payload of `size` bytes (>= 8) whose first 8 bytes are `id` and whose
/// other bytes are derived from it, so a record read back tells exactly
/// which append it came from (`payload_id`).
inline std::vector<std::byte> make_payload(std::uint64_t id, std::size_t size) {
  std::vector<std::byte> p(size);
  std::memcpy(p.data(), &id, sizeof id);
  for (std::size_t i = sizeof id; i < size; ++i) p[i] = static_cast<std::byte>((id * 131 + i * 7) & 0xff);
  return p;
}

/// The id of a payload made by `make_payload`, or ~0 when it is not one.
inline std::uint64_t payload_id(std::span<const std::byte> p) {
  std::uint64_t id = ~std::uint64_t{0};
  if (p.size() < sizeof id) return id;
  std::memcpy(&id, p.data(), sizeof id);
  const std::vector<std::byte> expected = make_payload(id, p.size());
  return std::memcmp(expected.data(), p.data(), p.size()) == 0 ? id : ~std::uint64_t{0};
}

/// What one append completed with.
struct append_outcome {
  boost::system::error_code ec;
  lsn_t lsn = 0;
};

/// Appends every payload (all initiated at once) and runs `io` until they
/// completed; returns the outcomes in completion order.
template <class Journal>
std::vector<append_outcome> append_all(Journal& j, boost::asio::io_context& io,
                                       const std::vector<std::vector<std::byte>>& payloads) {
  std::vector<append_outcome> out;
  out.reserve(payloads.size());
  for (const auto& p : payloads)
    j.async_append(boost::asio::buffer(p), [&out](boost::system::error_code ec, lsn_t lsn) {
      out.push_back({ec, lsn});
    });
  io.restart();
  io.run();
  return out;
}

/// Every record of the journal in `store`, in order: (lsn, payload id).
template <class Store> std::vector<std::pair<lsn_t, std::uint64_t>> read_ids(Store&& store, status* error = nullptr) {
  journal_reader<Store> reader(std::forward<Store>(store));
  std::vector<std::pair<lsn_t, std::uint64_t>> out;
  journal_record rec;
  while (reader.next(rec)) out.emplace_back(rec.lsn, payload_id(rec.payload));
  if (error != nullptr) *error = reader.error();
  return out;
}

} // namespace flushkit::test
