// flushkit/testing/volatile_cache.hpp - a simulated volatile write cache: flush, power cut, recovery.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/core/work_item.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/exec/ordered_executor.hpp>
#include <flushkit/testing/detail/seeded_random.hpp>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace flushkit::testing {

/// Sizes of a `volatile_cache`, fixed at construction.
struct volatile_cache_options {
  std::size_t size = 0;             ///< bytes of the medium (volatile view and durable image)
  std::size_t log_entries = 256;    ///< pending (unflushed) writes the log can hold
  std::size_t log_bytes = 1 << 20;  ///< pending data bytes the log can hold
  /// The cache finds writes itself, as a page cache does, instead of being
  /// told with `note_dirty`: before a flush takes its ticket and before a
  /// power cut it compares the view with what it recorded last and logs each
  /// changed run of bytes as a write. For stacks in which no layer tracks
  /// dirty bytes (a virtio-pmem guest writing into host memory).
  bool track_stores = false;
};

/// How a power cut treats the writes that no flush covered yet ("pending").
enum class crash_mode : std::uint8_t {
  drop_all,      ///< none of them reaches the durable image
  keep_subset,   ///< exactly the writes selected by `mask` (bit i = i-th oldest pending write), whole
  random_subset, ///< each write kept with probability 1/2 (seeded), applied in a random order
  torn,          ///< each write keeps a random subset of its `atomic_unit`s (seeded), writes in a random order
};

/// Order in which `keep_subset` applies the kept writes (matters when they overlap).
enum class apply_order : std::uint8_t { oldest_first, newest_first };

/// What `volatile_cache::crash` does with the pending writes. Every policy is
/// deterministic: the same policy on the same cache state gives the same image.
struct crash_policy {
  /// How pending writes are treated.
  crash_mode mode = crash_mode::drop_all;
  std::uint64_t mask = 0;                      ///< keep_subset: bit i selects the i-th oldest pending write (i < 64)
  apply_order order = apply_order::oldest_first; ///< keep_subset
  std::uint64_t seed = 0;                      ///< random_subset, torn
  std::size_t atomic_unit = 8;                 ///< torn: bytes of an atomic unit, aligned to medium offsets

  /// No pending write survives.
  static crash_policy drop_all() noexcept { return {}; }
  /// Exactly the pending writes selected by `mask` (bit i = i-th oldest), whole, applied in `order`.
  static crash_policy keep(std::uint64_t mask, apply_order order = apply_order::oldest_first) noexcept {
    return {crash_mode::keep_subset, mask, order, 0, 8};
  }
  /// Every pending write survives, whole, oldest first.
  static crash_policy keep_all() noexcept { return keep(~std::uint64_t{0}); }
  /// The `k` oldest pending writes, in order (k >= 64 keeps all).
  static crash_policy prefix(std::size_t k) noexcept {
    return keep(k >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << k) - 1);
  }
  /// Each pending write survives with probability 1/2 (from `seed`), in a random order.
  static crash_policy random_subset(std::uint64_t seed) noexcept {
    return {crash_mode::random_subset, 0, apply_order::oldest_first, seed, 8};
  }
  /// Typical units: 8 (a CPU store), 64 (a cache line), 512 (a sector), 4096 (a page).
  static crash_policy torn(std::size_t atomic_unit, std::uint64_t seed) noexcept {
    return {crash_mode::torn, 0, apply_order::oldest_first, seed, atomic_unit == 0 ? 1 : atomic_unit};
  }

  /// A short human-readable form ("torn(unit=64, seed=0x...)") for reports.
  std::string to_string() const {
    switch (mode) {
    case crash_mode::drop_all: return "drop_all";
    case crash_mode::keep_subset:
      return "keep(mask=" + hex(mask) + (order == apply_order::newest_first ? ", newest_first)" : ", oldest_first)");
    case crash_mode::random_subset: return "random_subset(seed=" + hex(seed) + ")";
    case crash_mode::torn: return "torn(unit=" + std::to_string(atomic_unit) + ", seed=" + hex(seed) + ")";
    }
    return "?";
  }

private:
  static std::string hex(std::uint64_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s = "0x";
    for (int shift = 60; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xf];
    return s;
  }
};

/// Where the cache is when it calls its hook.
enum class cache_event : std::uint8_t {
  write_noted,     ///< a write was recorded in the log (it is on the volatile view)
  flush_issued,    ///< a flush took its ticket (covers every write noted before)
  flush_completed, ///< a flush finished (committed, failed or dropped its writes); its caller is not answered yet
};

/// Counters of a `volatile_cache` (all since construction or `reset`).
struct volatile_cache_counters {
  /// Data writes recorded by `note_dirty`.
  std::uint64_t writes_noted = 0;
  /// Bytes recorded by `note_dirty`.
  std::uint64_t bytes_noted = 0;
  /// Flushes that took a ticket.
  std::uint64_t flushes_issued = 0;
  std::uint64_t flushes_completed = 0;     ///< successful and failed
  std::uint64_t flushes_failed = 0;        ///< injected with `fail_next_flush`
  std::uint64_t writes_made_durable = 0;   ///< by successful flushes
  /// Pending writes discarded by a failed flush.
  std::uint64_t writes_dropped_by_flush_error = 0;
  std::uint64_t forced_writebacks = 0;     ///< times a full log was written back on its own
  std::uint64_t writes_through = 0;        ///< writes larger than the whole log, made durable at once
  /// Calls of `crash`.
  std::uint64_t crashes = 0;
  /// Calls of `recover`.
  std::uint64_t recoveries = 0;
  std::uint64_t writes_kept_at_crash = 0;  ///< entirely or partly
  std::uint64_t writes_lost_at_crash = 0;  ///< entirely
  std::uint64_t writes_torn_at_crash = 0;  ///< partly
};

/// A simulated volatile write cache over a durable image, for testing
/// durability code (dm-log-writes / LazyFS semantics, see docs/power-loss.md).
///
/// * `medium()` is the volatile view: give it to a `pmem::pmem_device` and
///   make this cache (or `volatile_cache&`) the region's provider. The cache is
///   `dirty_tracking`: the device reports every data write with `note_dirty`
///   after the bytes reached the view, and the cache appends a log entry
///   (offset, a copy of the bytes, a sequence number). No allocation.
/// * `durable()` is a separate byte array: what survives a power cut.
/// * A flush makes durable exactly the writes noted before it was issued:
///   `status flush()` (synchronous), or `issue_flush()` + `complete_flush()`
///   (what `async_volatile_cache` does for an asynchronous provider).
/// * `crash(policy)` cuts the power: the pending writes reach the durable image
///   or not according to the policy, the log is emptied and the view lost;
///   `recover()` returns the durable image and resets the view to it.
///
/// Full log: when a write does not fit (entries or bytes), every pending write
/// is first written back to the durable image (as a real cache evicts under
/// pressure; counted in `forced_writebacks`); a write larger than `log_bytes`
/// is then made durable at once (`writes_through`). The model stays correct
/// (a cache may always write back early) but offers fewer crash states: a
/// test that wants full coverage checks both counters are 0.
///
/// Store tracking (`volatile_cache_options::track_stores`): the cache logs
/// the bytes that changed on the view since it last looked, at each flush
/// issue and power cut, so unflushed writes are pending as with `note_dirty`.
///
/// Thread-safety: every member function may be called concurrently; the hook
/// runs on the calling thread without the cache's lock held. Copying (copy
/// constructor, `assign`) must not race with writes to the source.
class volatile_cache {
public:
  /// Identifies an issued flush (`issue_flush` / `complete_flush`).
  using flush_ticket = std::uint64_t;
  /// Hook called at every `cache_event`, on the calling thread, without the cache's lock.
  using hook_fn = void (*)(void* context, cache_event event, volatile_cache& cache);

  /// Allocates the view, the durable image and the log (all zero / empty).
  explicit volatile_cache(const volatile_cache_options& opts)
      : opts_(opts), view_(opts.size), durable_(opts.size), recorded_(opts.track_stores ? opts.size : 0),
        entries_(opts.log_entries), arena_(opts.log_bytes), order_(opts.log_entries) {}
  /// A copy of `other`'s state (view, durable image, log, pending failure,
  /// counters), without its hook. Allocates like the constructor.
  volatile_cache(const volatile_cache& other) : volatile_cache(other.opts_) { assign(other); }
  volatile_cache& operator=(const volatile_cache&) = delete;

  /// Copies `other`'s state into this cache without allocating.
  /// Precondition: both were constructed with the same options.
  void assign(const volatile_cache& other) {
    FLUSHKIT_ASSERT(other.opts_.size == opts_.size && other.opts_.log_entries == opts_.log_entries &&
                        other.opts_.log_bytes == opts_.log_bytes && other.opts_.track_stores == opts_.track_stores,
                    "volatile_cache::assign between caches of different sizes");
    if (&other == this) return;
    std::scoped_lock lk(mu_, other.mu_);
    std::copy(other.view_.begin(), other.view_.end(), view_.begin());
    std::copy(other.durable_.begin(), other.durable_.end(), durable_.begin());
    std::copy(other.recorded_.begin(), other.recorded_.end(), recorded_.begin());
    std::copy_n(other.entries_.begin(), other.count_, entries_.begin());
    std::copy_n(other.arena_.begin(), other.arena_used_, arena_.begin());
    count_ = other.count_;
    arena_used_ = other.arena_used_;
    next_seq_ = other.next_seq_;
    fail_ = other.fail_;
    counters_ = other.counters_;
  }

  /// The volatile view (the device's medium).
  std::span<std::byte> medium() noexcept { return view_; }
  /// The durable image: what a power cut right now with `drop_all` keeps.
  std::span<const std::byte> durable() const noexcept { return durable_; }
  /// The construction options.
  const volatile_cache_options& options() const noexcept { return opts_; }

  /// Installs `fn(context, event, *this)` at every `cache_event`
  /// (nullptr removes it).
  void set_hook(hook_fn fn, void* context) noexcept {
    hook_ = fn;
    hook_context_ = context;
  }

  /// Records that `[addr, addr + len)` of the view was written (the bytes are
  /// already there). Precondition: the range lies inside `medium()`.
  /// Allocation: none.
  void note_dirty(const void* addr, std::size_t len) {
    const auto* p = static_cast<const std::byte*>(addr);
    FLUSHKIT_ASSERT(p >= view_.data() && len <= view_.size() && p - view_.data() <= std::ptrdiff_t(view_.size() - len),
                    "note_dirty outside the cache's medium");
    if (len == 0) return;
    {
      std::lock_guard lk(mu_);
      record_locked(static_cast<std::size_t>(p - view_.data()), len);
    }
    notify(cache_event::write_noted);
  }

  /// Takes a flush ticket: the flush will cover exactly the writes noted
  /// before this call.
  flush_ticket issue_flush() {
    flush_ticket t;
    bool found = false;
    {
      std::lock_guard lk(mu_);
      found = track_stores_locked();
      t = next_seq_;
      ++counters_.flushes_issued;
    }
    if (found) notify(cache_event::write_noted);
    notify(cache_event::flush_issued);
    return t;
  }

  /// Finishes the flush that took `ticket`. Effects: without an injected
  /// failure, makes every pending write noted before the ticket durable (in
  /// order) and returns success. With one (`fail_next_flush`), returns its
  /// status and, when it said so, drops those writes: they never become
  /// durable, whatever later flushes do (they stay on the view until a crash).
  [[nodiscard]] status complete_flush(flush_ticket ticket) {
    status st;
    {
      std::lock_guard lk(mu_);
      st = finish_flush_locked(ticket);
    }
    notify(cache_event::flush_completed);
    return st;
  }

  /// Synchronous flush (the `sync_flush_provider` interface):
  /// `complete_flush(issue_flush())`.
  [[nodiscard]] status flush() { return complete_flush(issue_flush()); }

  /// The next flush to complete fails with `st` (must be an error); with
  /// `drop_covered` the writes it covered are dropped (Linux write-back error
  /// semantics), otherwise they stay pending and a later flush may succeed.
  void fail_next_flush(status st, bool drop_covered) {
    std::lock_guard lk(mu_);
    fail_ = {st, drop_covered, true};
  }

  /// Power cut. Effects: the pending writes reach the durable image as the
  /// policy says, the log is emptied, the view becomes the durable image, and
  /// a pending injected failure is forgotten. Allocation: none.
  void crash(const crash_policy& policy) {
    std::lock_guard lk(mu_);
    track_stores_locked();
    crash_locked(policy);
  }

  /// Reboot. Effects: if writes are pending (no crash since they were noted),
  /// they are discarded as by `crash(drop_all)`; the view is reset to the
  /// durable image. Returns: the durable image. Idempotent.
  std::span<const std::byte> recover() {
    std::lock_guard lk(mu_);
    if (count_ != 0) crash_locked(crash_policy::drop_all());
    std::copy(durable_.begin(), durable_.end(), view_.begin());
    if (opts_.track_stores) std::copy(durable_.begin(), durable_.end(), recorded_.begin());
    ++counters_.recoveries;
    return durable_;
  }

  /// Back to the state after construction (zeros, empty log, zero counters).
  void reset() {
    std::lock_guard lk(mu_);
    std::fill(view_.begin(), view_.end(), std::byte{0});
    std::fill(durable_.begin(), durable_.end(), std::byte{0});
    std::fill(recorded_.begin(), recorded_.end(), std::byte{0});
    count_ = arena_used_ = 0;
    next_seq_ = 0;
    fail_ = {};
    counters_ = {};
  }

  /// Writes noted and neither durable nor dropped yet.
  std::size_t pending_writes() const {
    std::lock_guard lk(mu_);
    return count_;
  }
  /// A snapshot of the counters.
  volatile_cache_counters counters() const {
    std::lock_guard lk(mu_);
    return counters_;
  }

private:
  struct entry {
    std::uint64_t seq;
    std::size_t offset;
    std::size_t len;
    std::size_t data; // position in arena_
  };
  struct injected_failure {
    status st;
    bool drop = false;
    bool armed = false;
  };

  void notify(cache_event ev) {
    if (hook_ != nullptr) hook_(hook_context_, ev, *this);
  }

  void record_locked(std::size_t offset, std::size_t len) {
    ++counters_.writes_noted;
    counters_.bytes_noted += len;
    const std::uint64_t seq = next_seq_++;
    if (count_ == entries_.size() || len > arena_.size() - arena_used_) {
      if (count_ != 0) ++counters_.forced_writebacks;
      retire_locked(count_, true);
    }
    if (len > arena_.size() || entries_.empty()) {
      ++counters_.writes_through;
      std::memcpy(durable_.data() + offset, view_.data() + offset, len);
      return;
    }
    entries_[count_++] = {seq, offset, len, arena_used_};
    std::memcpy(arena_.data() + arena_used_, view_.data() + offset, len);
    arena_used_ += len;
  }

  // Store tracking: logs every run of bytes that differs from `recorded_`.
  // Returns whether it found any.
  bool track_stores_locked() {
    bool found = false;
    constexpr std::size_t block = 64; // skip equal blocks with memcmp
    for (std::size_t pos = 0; pos < recorded_.size();) {
      const std::size_t n = std::min(block - pos % block, recorded_.size() - pos);
      if (std::memcmp(view_.data() + pos, recorded_.data() + pos, n) == 0) {
        pos += n;
        continue;
      }
      if (view_[pos] == recorded_[pos]) {
        ++pos;
        continue;
      }
      std::size_t end = pos;
      while (end < recorded_.size() && view_[end] != recorded_[end]) ++end;
      std::memcpy(recorded_.data() + pos, view_.data() + pos, end - pos);
      record_locked(pos, end - pos);
      found = true;
      pos = end;
    }
    return found;
  }

  [[nodiscard]] status finish_flush_locked(flush_ticket ticket) {
    ++counters_.flushes_completed;
    std::size_t covered = 0;
    while (covered < count_ && entries_[covered].seq < ticket) ++covered;
    if (!fail_.armed) {
      counters_.writes_made_durable += covered;
      retire_locked(covered, true);
      return {};
    }
    const injected_failure f = fail_;
    fail_ = {};
    ++counters_.flushes_failed;
    if (f.drop) {
      counters_.writes_dropped_by_flush_error += covered;
      retire_locked(covered, false);
    }
    return f.st;
  }

  // Removes the `n` oldest entries, applying them to the durable image first
  // when `apply`.
  void retire_locked(std::size_t n, bool apply) {
    if (apply)
      for (std::size_t i = 0; i < n; ++i) apply_locked(entries_[i], 0, nullptr);
    if (n == 0) return;
    const std::size_t shift = n < count_ ? entries_[n].data : arena_used_;
    std::memmove(arena_.data(), arena_.data() + shift, arena_used_ - shift);
    arena_used_ -= shift;
    for (std::size_t i = n; i < count_; ++i) {
      entries_[i - n] = entries_[i];
      entries_[i - n].data -= shift;
    }
    count_ -= n;
  }

  // Copies an entry (all of it, or with `unit` != 0 the atomic units `rng`
  // keeps) to the durable image. Returns the bytes copied.
  std::size_t apply_locked(const entry& e, std::size_t unit, detail::seeded_random* rng) {
    if (unit == 0) {
      std::memcpy(durable_.data() + e.offset, arena_.data() + e.data, e.len);
      return e.len;
    }
    std::size_t kept = 0;
    for (std::size_t pos = e.offset; pos < e.offset + e.len;) {
      const std::size_t end = std::min(e.offset + e.len, (pos / unit + 1) * unit);
      if (rng->coin()) {
        std::memcpy(durable_.data() + pos, arena_.data() + e.data + (pos - e.offset), end - pos);
        kept += end - pos;
      }
      pos = end;
    }
    return kept;
  }

  // Fills order_ with the indices of the entries the policy keeps, in the
  // order they are applied; returns how many.
  std::size_t select_locked(const crash_policy& p, detail::seeded_random& rng) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < count_; ++i) {
      bool keep = true;
      if (p.mode == crash_mode::drop_all) keep = false;
      else if (p.mode == crash_mode::keep_subset) keep = i < 64 && ((p.mask >> i) & 1U) != 0;
      else if (p.mode == crash_mode::random_subset) keep = rng.coin();
      if (keep) order_[n++] = i;
    }
    const std::span<std::size_t> chosen(order_.data(), n);
    if (p.mode == crash_mode::keep_subset && p.order == apply_order::newest_first)
      std::reverse(chosen.begin(), chosen.end());
    if (p.mode == crash_mode::random_subset || p.mode == crash_mode::torn) rng.shuffle(chosen);
    return n;
  }

  void crash_locked(const crash_policy& p) {
    detail::seeded_random rng(p.seed);
    const std::size_t n = select_locked(p, rng);
    const std::size_t unit = p.mode == crash_mode::torn ? std::max<std::size_t>(p.atomic_unit, 1) : 0;
    std::size_t kept_writes = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const entry& e = entries_[order_[k]];
      const std::size_t kept = apply_locked(e, unit, &rng);
      if (kept == 0) continue;
      ++kept_writes;
      if (kept != e.len) ++counters_.writes_torn_at_crash;
    }
    counters_.writes_kept_at_crash += kept_writes;
    counters_.writes_lost_at_crash += count_ - kept_writes;
    count_ = arena_used_ = 0;
    fail_ = {};
    std::copy(durable_.begin(), durable_.end(), view_.begin());
    if (opts_.track_stores) std::copy(durable_.begin(), durable_.end(), recorded_.begin());
    ++counters_.crashes;
  }

  volatile_cache_options opts_;
  std::vector<std::byte> view_;
  std::vector<std::byte> durable_;
  std::vector<std::byte> recorded_; // track_stores: the view as last logged
  std::vector<entry> entries_;
  std::vector<std::byte> arena_;
  std::vector<std::size_t> order_;
  std::size_t count_ = 0;
  std::size_t arena_used_ = 0;
  std::uint64_t next_seq_ = 0;
  injected_failure fail_{};
  volatile_cache_counters counters_{};
  hook_fn hook_ = nullptr;
  void* hook_context_ = nullptr;
  mutable std::mutex mu_;
};

/// An asynchronous provider over a `volatile_cache` (the `NVDIMM_FLUSH_ASYNC`
/// shape): `flush(request&)` takes a ticket at once, so the flush covers
/// exactly the writes noted before the call, and completes the request later
/// on an `ordered_executor` over `Executor`, in issue order.
///
/// Completion: `request::complete(st)` with `volatile_cache::complete_flush`'s
/// status, run on the executor (a thread running its `io_context`). Durable at
/// completion with success: every write noted before the call. Allocation:
/// none (the request's own `work` item is queued). A provider wrapper of the
/// cache: `dirty_tracking` like it (through `forward_capabilities`); also
/// offers the synchronous request-less `flush()`.
/// The executor must be run until every flush completed before destruction.
template <class Executor = boost::asio::io_context::executor_type>
class async_volatile_cache : public forward_capabilities<async_volatile_cache<Executor>, volatile_cache> {
public:
  /// A provider over `cache` (which must outlive it) completing flushes on an ordered executor over `ex`.
  async_volatile_cache(volatile_cache& cache, const Executor& ex) : cache_(&cache), exec_(ex) {}
  async_volatile_cache(const async_volatile_cache&) = delete;
  async_volatile_cache& operator=(const async_volatile_cache&) = delete;

  /// Effects: takes the ticket (`req.epoch` holds it), queues the request's
  /// work item. Returns: `flush_result::async(req)`, or `done(shutting_down)`
  /// if the executor was shut down (nothing covered becomes durable by it).
  [[nodiscard]] flush_result flush(request& req) {
    req.epoch = cache_->issue_flush();
    req.work.set(&async_volatile_cache::run, this);
    if (status st = exec_.submit(req.work)) return flush_result::done(st);
    return flush_result::async(req);
  }
  /// Request-less synchronous flush: `volatile_cache::flush()`.
  [[nodiscard]] status flush() { return cache_->flush(); }

  /// The wrapped cache.
  volatile_cache& cache() noexcept { return *cache_; }
  /// The wrapped cache (the provider this one wraps).
  volatile_cache& provider() noexcept { return *cache_; }
  /// The wrapped cache (the provider this one wraps).
  const volatile_cache& provider() const noexcept { return *cache_; }

private:
  static void run(work_item& item, void* context) {
    auto* self = static_cast<async_volatile_cache*>(context);
    request& req = request::from_work(item);
    const status st = self->cache_->complete_flush(req.epoch);
    self->exec_.finish(item);
    req.complete(st);
  }

  volatile_cache* cache_;
  ordered_executor<Executor> exec_;
};

} // namespace flushkit::testing
