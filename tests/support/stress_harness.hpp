// tests/support/stress_harness.hpp - seeded random request mix, per-request completion ledger, submitter lanes.
//
// Used by tests/stress/. A run is a fixed number of operations, each with a
// unique id; every completion is recorded in the ledger under that id, so a
// lost request (0 completions) or a double completion (2+) is counted exactly.
// Submitter threads ("lanes") and coroutines each own a few slots (a request,
// its buffer and a private 4 KiB block of the medium, so concurrent slots
// never touch the same bytes).
#pragma once

#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace flushkit_test::stress {

/// Seed and request count of a run: FLUSHKIT_STRESS_SEED / FLUSHKIT_STRESS_REQUESTS, else a fresh seed and `def`.
struct run_config {
  std::uint64_t seed = 0;
  std::uint64_t requests = 0;

  static run_config from_env(std::uint64_t def) {
    run_config c;
    const char* s = std::getenv("FLUSHKIT_STRESS_SEED");
    c.seed = s != nullptr ? std::strtoull(s, nullptr, 0) : (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
    const char* n = std::getenv("FLUSHKIT_STRESS_REQUESTS");
    c.requests = n != nullptr ? std::strtoull(n, nullptr, 0) : def;
    return c;
  }
};

/// The request mix. Flagged kinds go through the provider; read and plain write do not.
enum class op_kind : std::uint8_t { read, write, preflush, fua, preflush_fua, flush, count_ };
inline constexpr std::size_t op_kinds = static_cast<std::size_t>(op_kind::count_);

inline bool flagged(op_kind k) noexcept { return k != op_kind::read && k != op_kind::write; }
inline bool has_data(op_kind k) noexcept { return k != op_kind::flush; }

inline flushkit::req_flags flags_of(op_kind k) noexcept {
  using flushkit::req_flags;
  switch (k) {
  case op_kind::preflush: return req_flags::preflush;
  case op_kind::fua: return req_flags::fua;
  case op_kind::preflush_fua: return req_flags::preflush | req_flags::fua;
  case op_kind::flush: return req_flags::preflush;
  default: return req_flags::none;
  }
}

/// Kind of operation `id` of a run: a pure function of (seed, id), so any op replays.
inline op_kind kind_of(std::uint64_t seed, std::uint64_t id) noexcept {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (id + 1); // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  static constexpr op_kind table[10] = {op_kind::read,     op_kind::read, op_kind::write,        op_kind::write,
                                        op_kind::preflush, op_kind::fua,  op_kind::preflush_fua, op_kind::fua,
                                        op_kind::flush,    op_kind::flush};
  return table[z % 10];
}

/// Outcome classes counted by the ledger.
enum class outcome : std::uint8_t { ok, io_error, no_memory, other, count_ };
inline constexpr std::size_t outcomes = static_cast<std::size_t>(outcome::count_);

inline outcome classify(const flushkit::status& st) noexcept {
  if (!st) return outcome::ok;
  if (st == flushkit::errc::io_error) return outcome::io_error;
  if (st == flushkit::errc::no_memory) return outcome::no_memory;
  return outcome::other;
}

/// Totals of a finished run.
struct summary {
  std::uint64_t requests = 0, completions = 0, lost = 0, doubles = 0, content_mismatches = 0;
  std::array<std::array<std::uint64_t, outcomes>, op_kinds> by_kind{};

  std::uint64_t count(op_kind k, outcome o) const { return by_kind[static_cast<std::size_t>(k)][static_cast<std::size_t>(o)]; }
  std::uint64_t total(outcome o) const {
    std::uint64_t n = 0;
    for (const auto& k : by_kind) n += k[static_cast<std::size_t>(o)];
    return n;
  }
  /// Failures among requests that never reach the provider (must be 0).
  std::uint64_t unflagged_failures() const {
    std::uint64_t n = 0;
    for (op_kind k : {op_kind::read, op_kind::write})
      for (std::size_t o = 1; o < outcomes; ++o) n += by_kind[static_cast<std::size_t>(k)][o];
    return n;
  }
  std::string to_string() const {
    return "requests " + std::to_string(requests) + ", completions " + std::to_string(completions) + ", lost " +
           std::to_string(lost) + ", double completions " + std::to_string(doubles) + ", ok " +
           std::to_string(total(outcome::ok)) + ", io_error " + std::to_string(total(outcome::io_error)) +
           ", no_memory " + std::to_string(total(outcome::no_memory)) + ", other " + std::to_string(total(outcome::other)) +
           ", content mismatches " + std::to_string(content_mismatches);
  }
};

/// One entry per operation id: completion count and outcome.
class ledger {
public:
  ledger(std::uint64_t seed, std::uint64_t n) : seed_(seed), n_(n), hits_(n), out_(n) {}

  std::uint64_t seed() const noexcept { return seed_; }
  std::uint64_t size() const noexcept { return n_; }

  /// Next operation id, or size() when the run is exhausted.
  std::uint64_t take() noexcept {
    const std::uint64_t id = next_.fetch_add(1, std::memory_order_relaxed);
    return id < n_ ? id : n_;
  }

  void record(std::uint64_t id, const flushkit::status& st) {
    if (id >= n_) return;
    out_[id].store(static_cast<std::uint8_t>(classify(st)), std::memory_order_relaxed);
    if (hits_[id].fetch_add(1, std::memory_order_acq_rel) == 0 && done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      std::lock_guard lk(mu_);
      cv_.notify_all();
    }
  }
  void mismatch() noexcept { mismatches_.fetch_add(1, std::memory_order_relaxed); }

  std::uint64_t completed() const noexcept { return done_.load(std::memory_order_acquire); }

  /// Waits until every operation completed once; false on timeout.
  bool wait(std::chrono::seconds limit) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, limit, [&] { return completed() == n_; });
  }

  summary totals() const {
    summary s;
    s.requests = n_;
    s.content_mismatches = mismatches_.load();
    for (std::uint64_t id = 0; id < n_; ++id) {
      const unsigned h = hits_[id].load(std::memory_order_acquire);
      s.completions += h;
      if (h == 0) ++s.lost;
      if (h > 1) ++s.doubles;
      if (h != 0) ++s.by_kind[static_cast<std::size_t>(kind_of(seed_, id))][out_[id].load()];
    }
    return s;
  }

private:
  std::uint64_t seed_, n_;
  std::vector<std::atomic<std::uint8_t>> hits_;
  std::vector<std::atomic<std::uint8_t>> out_;
  std::atomic<std::uint64_t> next_{0}, done_{0}, mismatches_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

inline constexpr std::size_t block_bytes = 4096; ///< private medium block per slot
inline constexpr std::size_t io_bytes = 512;

/// One outstanding operation: buffer, medium block, and what its block holds.
struct slot_state {
  std::uint64_t base = 0; ///< offset of this slot's private medium block
  std::array<std::byte, io_bytes> buf{};
  int expect = -1; ///< byte the block holds at offset 0 of the last write, -1 unknown
  std::uint64_t last_off = 0;
  std::uint64_t id = 0;
  op_kind kind = op_kind::read;

  /// Fills the buffer for operation `id`; returns the byte offset to use.
  std::uint64_t prepare(std::uint64_t seed, std::uint64_t op) {
    id = op;
    kind = kind_of(seed, op);
    if (!has_data(kind) || kind == op_kind::read) return base + last_off;
    last_off = (op % (block_bytes / io_bytes)) * io_bytes;
    buf.fill(static_cast<std::byte>(1 + op % 251));
    return base + last_off;
  }
  /// Records the completion; checks a read against the last write whose data is known to be there.
  void check(ledger& l, const flushkit::status& st) {
    if (kind == op_kind::read && !st && expect >= 0 && std::to_integer<int>(buf[0]) != expect) l.mismatch();
    if (has_data(kind) && kind != op_kind::read) {
      // A failed PREFLUSH writes no data; a failed FUA leaves it written: unknown unless success or FUA-only.
      const bool written = !st || kind == op_kind::fua;
      expect = written ? std::to_integer<int>(buf[0]) : -1;
    }
  }
  void finish(ledger& l, const flushkit::status& st) {
    check(l, st);
    l.record(id, st);
  }
};

/// A submitter thread with `width` slots of callbacks-driven requests: each
/// completion frees its slot, the thread submits the next operation into it.
template <class Device> class lane {
public:
  lane(Device& dev, ledger& l, std::uint64_t first_block, std::size_t width)
      : dev_(dev), ledger_(l), slots_(width) {
    for (std::size_t i = 0; i < width; ++i) {
      slots_[i].s.base = (first_block + i) * block_bytes;
      slots_[i].owner = this;
      free_.push_back(i);
    }
  }
  void start() { thread_ = std::thread([this] { run(); }); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  static std::size_t blocks(std::size_t width) { return width; }

private:
  struct slot {
    slot_state s;
    flushkit::request req;
    flushkit::segment seg{};
    lane* owner = nullptr;
  };

  void run() {
    for (;;) {
      std::size_t i = 0;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return !free_.empty(); });
        i = free_.back();
        free_.pop_back();
      }
      const std::uint64_t id = ledger_.take();
      if (id == ledger_.size()) return;
      submit(slots_[i], id);
    }
  }

  void submit(slot& sl, std::uint64_t id) {
    const std::uint64_t off = sl.s.prepare(ledger_.seed(), id);
    sl.seg = {sl.s.buf.data(), sl.s.buf.size()};
    const op_kind k = sl.s.kind;
    const auto op = k == op_kind::read ? flushkit::req_op::read : flushkit::req_op::write;
    const std::span<const flushkit::segment> segs =
        has_data(k) ? std::span<const flushkit::segment>(&sl.seg, 1) : std::span<const flushkit::segment>();
    sl.req.prepare(op, has_data(k) ? off : 0, segs, flags_of(k));
    sl.req.on_complete(&lane::done, &sl);
    dev_.submit(sl.req);
  }

  static void done(void* ctx, flushkit::request&, const flushkit::status& result) {
    const flushkit::status st = result; // `result` lives in the request, which is reused once the slot is free
    auto* sl = static_cast<slot*>(ctx);
    lane* self = sl->owner;
    ledger& l = self->ledger_;
    sl->s.check(l, st);
    const std::uint64_t id = sl->s.id;
    {
      std::lock_guard lk(self->mu_);
      self->free_.push_back(static_cast<std::size_t>(sl - self->slots_.data()));
      self->cv_.notify_one();
    }
    l.record(id, st); // last: the run may end here
  }

  Device& dev_;
  ledger& ledger_;
  std::vector<slot> slots_;
  std::vector<std::size_t> free_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

/// A coroutine that runs operations one after another through the device's
/// async_* API (as_tuple(use_awaitable): each status is recorded, none thrown)
/// on its private medium block.
template <class Device>
boost::asio::awaitable<void> coroutine_lane(Device* dev, ledger* l, std::uint64_t block) {
  slot_state s;
  s.base = block * block_bytes;
  for (std::uint64_t id = l->take(); id != l->size(); id = l->take()) {
    const std::uint64_t off = s.prepare(l->seed(), id);
    const auto token = boost::asio::as_tuple(boost::asio::use_awaitable);
    flushkit::status st;
    if (s.kind == op_kind::read)
      std::tie(st) = co_await dev->async_read(off, boost::asio::buffer(s.buf), token);
    else if (s.kind == op_kind::flush)
      std::tie(st) = co_await dev->async_flush(token);
    else
      std::tie(st) = co_await dev->async_write(off, boost::asio::buffer(s.buf), flags_of(s.kind), token);
    s.finish(*l, st);
  }
}

/// Shape of the load: submitter threads x slots each, plus coroutines on an io_context run by `coroutine_threads`.
struct load_shape {
  std::size_t threads = 3;
  std::size_t width = 8;
  std::size_t coroutines = 8;
  std::size_t coroutine_threads = 2;
  std::size_t blocks() const { return threads * width + coroutines; }
};

/// Runs a ledger's operations through `dev` with the given shape and waits
/// for all of them. Bounded: when the run does not finish within `limit`,
/// `on_timeout` prints what it knows and the process exits with status 1 (a
/// failure, not a hang; objects still in flight cannot be destroyed safely).
template <class Device> class driver {
public:
  driver(Device& dev, ledger& l, const load_shape& shape) : ledger_(l), shape_(shape) {
    for (std::size_t t = 0; t < shape.threads; ++t)
      lanes_.push_back(std::make_unique<lane<Device>>(dev, l, t * shape.width, shape.width));
    for (std::size_t c = 0; c < shape.coroutines; ++c)
      boost::asio::co_spawn(io_, coroutine_lane(&dev, &l, shape.threads * shape.width + c), boost::asio::detached);
  }
  driver(const driver&) = delete;
  driver& operator=(const driver&) = delete;
  ~driver() { join(); }

  void start() {
    for (auto& l : lanes_) l->start();
    for (std::size_t i = 0; i < shape_.coroutine_threads; ++i) io_threads_.emplace_back([this] { io_.run(); });
  }

  /// Waits for every operation; returns the elapsed time.
  std::chrono::duration<double> wait(std::chrono::seconds limit, const std::function<void()>& on_timeout) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!ledger_.wait(limit)) {
      std::fprintf(stderr, "stress: run did not finish within %llds: %llu of %llu operations completed (seed %llu)\n",
                   static_cast<long long>(limit.count()), static_cast<unsigned long long>(ledger_.completed()),
                   static_cast<unsigned long long>(ledger_.size()), static_cast<unsigned long long>(ledger_.seed()));
      if (on_timeout) on_timeout();
      std::fflush(stderr);
      std::_Exit(1);
    }
    return std::chrono::steady_clock::now() - t0;
  }

  void join() {
    for (auto& l : lanes_) l->join();
    for (auto& t : io_threads_)
      if (t.joinable()) t.join();
  }

private:
  ledger& ledger_;
  load_shape shape_;
  std::vector<std::unique_ptr<lane<Device>>> lanes_;
  boost::asio::io_context io_;
  std::vector<std::thread> io_threads_;
};

} // namespace flushkit_test::stress
