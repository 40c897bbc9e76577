// flushkit/pmem/pmem_device.hpp - the pmem block-device submit path (pmem_submit_bio) over real memory.
#pragma once

#include <flushkit/core/buffers.hpp>
#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/completion.hpp>
#include <flushkit/core/detail/completion_op.hpp>
#include <flushkit/core/detail/io_object.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/badblocks.hpp>
#include <flushkit/pmem/detail/file_io.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include <unistd.h>

namespace flushkit::pmem {

/// Clears poison over [offset, offset + len) of the medium (sector aligned).
/// Returns the number of bytes cleared from the start of the range (the
/// kernel's `nvdimm_clear_poison`), or a negative value on failure.
using clear_poison_fn = std::int64_t (*)(void* context, std::uint64_t offset, std::uint64_t len);

/// Machine-check-safe copy used by reads (`copy_mc_to_kernel`): copies `len`
/// bytes and returns how many were NOT copied (0 = success).
using copy_mc_fn = std::size_t (*)(void* context, void* dst, const void* src, std::size_t len);

/// Construction options of `pmem_device`.
/// How a write's data reaches the medium.
enum class data_step : std::uint8_t {
  /// `pwrite` for a page-cache file backing, `store` otherwise. The default.
  automatic,
  /// A copy into the mapping (`memcpy`; a cache-line provider is told the range).
  store,
  /// `pwrite(2)` into the backing's file, which the mapping shows (both are
  /// the same page cache). Only for a page-cache file backing. Page-cache
  /// dirt is then tracked per block, not per folio: a store through a
  /// shared mapping dirties its whole folio (up to megabytes when the pages
  /// were cached by large writes), and the next `fdatasync` writes all of it
  /// back. Measured here with 64 writes per fdatasync: 205 us after
  /// `pwrite`, 320-425 us after stores. A full file system or an I/O error
  /// is a status (`no_space`, `io_error`), where a store would raise SIGBUS.
  pwrite,
};

struct device_options {
  /// The device has a volatile write cache (the region needs flushes). False:
  /// PREFLUSH/FUA are stripped and an empty flush completes at once.
  bool write_cache = true;
  /// Capacity (ranges) of the device's badblocks set.
  std::size_t badblocks_capacity = 64;
  /// How stores to the medium become durable. Set from the `backing` by the
  /// constructor that takes one; when empty, the device looks it up from the
  /// kernel's description of the mapping (`persistence_of`).
  std::optional<persistence> medium{};
  /// Accept a configuration that acknowledges writes without making them
  /// durable (see `check_durable`). For volatile scratch devices only.
  bool unsafe_acknowledge_volatile = false;
  /// How a write's data reaches the medium. `pwrite` needs the constructor
  /// that takes a page-cache file `backing`; otherwise the device is refused
  /// with `invalid_request`.
  pmem::data_step data = pmem::data_step::automatic;
};

/// Why a device would acknowledge writes it does not make durable.
struct refusal {
  /// `not_supported` or `invalid_request`; success when the device accepts requests.
  status error{};
  /// What is wrong and how to fix it (static string); nullptr on success.
  const char* reason = nullptr;
};

/// Checks that a device over a medium with persistence `medium` (empty: not
/// known), a provider of scope `scope` that reports `usable`, and `opts` can
/// only acknowledge a FUA / PREFLUSH once it is durable.
/// Returns: `usable` when it is an error; otherwise, unless
/// `opts.unsafe_acknowledge_volatile`, `invalid_request` for
///  - `write_cache = false` where flushes matter (a page-cache or MAP_SYNC
///    medium, or a provider whose scope is page_cache / cpu_cache);
///  - cache-line write-back (`cpu_cache`) over a page-cache medium;
///  - a provider that makes nothing durable (`none`) over a durable medium.
/// A medium without persistence (anonymous memory) accepts any provider.
inline refusal check_durable(std::optional<persistence> medium, durability_scope scope, const status& usable,
                             const device_options& opts) noexcept {
  using ds = durability_scope;
  const status invalid = make_error_code(errc::invalid_request);
  if (usable)
    return {usable, "the provider cannot work on this machine (cacheline_provider: the CPU has no cache-line "
                    "write-back instruction); use file_sync_provider over a file backing"};
  if (opts.unsafe_acknowledge_volatile) return {};
  const bool durable_medium = medium == persistence::page_cache || medium == persistence::map_sync;
  if (!opts.write_cache && (durable_medium || scope == ds::page_cache || scope == ds::cpu_cache))
    return {invalid, "write_cache = false strips every PREFLUSH and FUA, so writes would be acknowledged "
                     "without a flush; keep write_cache = true"};
  if (medium == persistence::page_cache && scope == ds::cpu_cache)
    return {invalid, "cache-line write-back does not make stores to a page-cache mapping durable; use "
                     "file_sync_provider, or map the file with MAP_SYNC on a DAX file system"};
  if (durable_medium && scope == ds::none)
    return {invalid, "the provider makes nothing durable; use file_sync_provider for a page-cache mapping "
                     "or cacheline_provider for a MAP_SYNC one"};
  return {};
}

/// The pmem block device: the kernel's `pmem_submit_bio` as a reusable
/// component over a byte medium (a `backing`'s bytes) and a `region<P>`.
///
/// Submit order (`submit`):
///  0. A read with PREFLUSH/FUA fails with `invalid_request` (the kernel's
///     WARN path completes with BLK_STS_IOERR; flushkit's error contract calls
///     a malformed request invalid). Without a write cache, PREFLUSH/FUA are
///     stripped and a request left without data completes with success
///     without calling the provider.
///  1. PREFLUSH: region flush. An error completes the request with it and no
///     byte of its data reaches the medium. With an asynchronous provider the
///     submitter is not blocked: the rest continues when the provider
///     completes the step (on the provider's thread).
///  2. Data (only when the request has data): per segment, bounds check
///     (`invalid_request`), badblocks (a read of a bad sector: `io_error`,
///     nothing copied, nothing cleared; a write: poison is cleared first and a
///     failed or partial clear fails with `io_error` without writing), copy.
///     The first failing segment stops the loop; earlier segments stay written.
///  3. FUA, only when every earlier step succeeded: region flush on behalf of
///     the request. A synchronous result completes the request; an
///     asynchronous one leaves completion to the provider. A FUA never masks
///     an earlier error.
///
/// Capabilities: the device asks its region (never the provider type) for
/// `dirty_tracking` and reports every data write with `note_dirty` before
/// the FUA flush; a wrapper chain that would drop it does not compile.
///
/// Refusal: a configuration that could acknowledge a write it does not make
/// durable (`check_durable`) is refused at construction: `error()` says
/// why, and every request completes with that status.
///
/// Lifetime: neither `remove()` nor the destructor waits for an executor.
/// The medium, the region's provider and the device must outlive every
/// request in flight (`in_flight()` is 0 when none is).
///
/// Thread-safety: `submit` and the `async_*` functions may be called
/// concurrently; overlapping concurrent writes leave unspecified bytes, as on
/// any block device.
///
/// An Asio I/O object: `executor_type` / `get_executor()`; the `async_*`
/// functions take any completion token, by default `default_token`
/// (`deferred` for a plain executor, so `co_await dev.async_write(off, buf,
/// req_flags::fua)` works in a coroutine), and complete with
/// `void(boost::system::error_code)`.
template <class Region, class Executor = boost::asio::any_io_executor> class pmem_device {
public:
  /// The region type (provider and error policy).
  using region_type = Region;
  /// The executor a handler without an associated executor runs on.
  using executor_type = Executor;
  /// The token the `async_*` functions use when none is given.
  using default_token = flushkit::detail::default_token_t<Executor>;

  /// A device over `medium`, whose handlers default to `ex` (an executor or
  /// an execution context such as an `io_context`), constructing its region
  /// from `region_args` (a provider, a provider reference, or
  /// `std::in_place` + arguments).
  /// Effects: `check_durable(opts.medium, ...)` over the region's
  /// capabilities, with `opts.medium` looked up by `persistence_of(medium)`
  /// when empty; a refused device keeps the reason in `error()`.
  /// Allocates the badblocks set; nothing else, now or later.
  template <flushkit::detail::executor_source<Executor> ExecutorOrContext, class... RegionArgs>
  pmem_device(ExecutorOrContext&& ex, std::span<std::byte> medium, const device_options& opts,
              RegionArgs&&... region_args)
      : pmem_device(file_target{}, std::forward<ExecutorOrContext>(ex), medium, opts,
                    std::forward<RegionArgs>(region_args)...) {}
  /// A device over the bytes of `medium` (which must outlive it), with
  /// `opts.medium` set to the backing's persistence; a page-cache file
  /// backing's writes go through `pwrite` unless `opts.data` says `store`.
  template <flushkit::detail::executor_source<Executor> ExecutorOrContext, class... RegionArgs>
  pmem_device(ExecutorOrContext&& ex, const backing& medium, device_options opts, RegionArgs&&... region_args)
      : pmem_device(file_target_of(medium), std::forward<ExecutorOrContext>(ex), medium.bytes(),
                    with_medium(opts, medium.persistence_mode()), std::forward<RegionArgs>(region_args)...) {}
  pmem_device(const pmem_device&) = delete;
  pmem_device& operator=(const pmem_device&) = delete;
  /// Runs `remove()` if it has not run. Precondition: `in_flight() == 0`
  /// (checked in debug builds); it never waits for requests.
  ~pmem_device() {
    remove();
    FLUSHKIT_ASSERT(in_flight() == 0, "pmem_device destroyed with requests in flight");
  }

  /// Submits `req`; the request completes through its own waiter
  /// (`request::on_complete`, `async_wait`), exactly once.
  ///
  /// Effects: the submit order above. Errors: `invalid_request` (bounds,
  /// flags on a read), `io_error` (badblocks, copy failure, provider failure),
  /// `no_memory` (a provider resource shortage), `shutting_down` (after
  /// `remove()`; also a request whose PREFLUSH finished after `remove()`: its
  /// data is not written), `error()` of a refused device. Completion runs on the submitting thread for synchronous
  /// providers, on the provider's thread otherwise. Allocation: none.
  void submit(request& req) {
    if (removed_.load(std::memory_order_acquire)) return req.complete(make_error_code(errc::shutting_down));
    if (refusal_.error) return req.complete(refusal_.error);
    if (status st = admit(req)) return req.complete(st);
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    req.intercept_completion(&pmem_device::request_done, this);
    if (!has(req.flags(), req_flags::preflush | req_flags::fua) && !req.has_data()) return req.complete({});
    if (has(req.flags(), req_flags::preflush)) return start_preflush(req);
    data_and_fua(req);
  }

  /// The executor given at construction.
  executor_type get_executor() const noexcept { return ex_; }

  /// Writes `buffers` (a `const_buffer`, `mutable_buffer`, or a sequence of
  /// at most `max_io_buffers` buffers; see `const_buffers`) at byte `offset`
  /// with `flags`.
  ///
  /// Completion signature: `void(boost::system::error_code)`. Executor: the
  /// handler's associated executor, defaulting to `get_executor()`; never
  /// invoked inside this call (a result known at initiation is posted).
  /// Ordering: none between concurrent operations; PREFLUSH orders this
  /// write after everything completed before it. Durable at completion: with
  /// FUA, these bytes; with PREFLUSH, everything completed before the call;
  /// under the provider's contract. Cancellation: `terminal` detaches the
  /// handler with `operation_aborted` (posted): the buffers are the caller's
  /// again at once (a write still waiting for its PREFLUSH never copies
  /// them); the write may or may not be on the medium and durable - a later
  /// flush tells. The device finishes the request internally. Allocation: one
  /// block (request, segments, handler) from the handler's associated
  /// allocator, default `recycling_allocator`: none in steady state (see
  /// `flushkit::async_wait`). Errors: as `submit`; a sequence of more than
  /// `max_io_buffers` buffers gives `invalid_request` (or does not compile
  /// when its type fixes its length).
  template <const_buffers ConstBufferSequence, boost::asio::completion_token_for<completion_signature> Token>
  auto async_write(std::uint64_t offset, const ConstBufferSequence& buffers, req_flags flags, Token&& token) {
    return boost::asio::async_initiate<Token, completion_signature>(initiate_io{this}, token, req_op::write, offset,
                                                                     buffers, flags);
  }
  /// `async_write(offset, buffers, flags, default_token())`: an operation to
  /// `co_await` (or launch with a token); discarding it writes nothing, so
  /// that does not compile quietly.
  template <const_buffers ConstBufferSequence>
  [[nodiscard]] auto async_write(std::uint64_t offset, const ConstBufferSequence& buffers, req_flags flags) {
    return async_write(offset, buffers, flags, default_token());
  }

  /// Reads into `buffers` (see `mutable_buffers`) from byte `offset`.
  /// Completion, executor, cancellation, allocation and errors as
  /// `async_write`; nothing is made durable. A read copies inside this call,
  /// so its buffers are filled (or not) before the handler is posted.
  template <mutable_buffers MutableBufferSequence, boost::asio::completion_token_for<completion_signature> Token>
  auto async_read(std::uint64_t offset, const MutableBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, completion_signature>(initiate_io{this}, token, req_op::read, offset,
                                                                     buffers, req_flags::none);
  }
  /// `async_read(offset, buffers, default_token())`; not to be discarded.
  template <mutable_buffers MutableBufferSequence>
  [[nodiscard]] auto async_read(std::uint64_t offset, const MutableBufferSequence& buffers) {
    return async_read(offset, buffers, default_token());
  }

  /// An empty PREFLUSH (`blkdev_issue_flush`): everything completed before
  /// the call is durable under the provider's contract when it completes with
  /// success. Completion, executor, cancellation and allocation as
  /// `async_write`.
  template <boost::asio::completion_token_for<completion_signature> Token> auto async_flush(Token&& token) {
    return boost::asio::async_initiate<Token, completion_signature>(initiate_io{this}, token, req_op::flush,
                                                                     std::uint64_t{0}, boost::asio::const_buffer(),
                                                                     req_flags::preflush);
  }
  /// `async_flush(default_token())`; not to be discarded.
  [[nodiscard]] auto async_flush() { return async_flush(default_token()); }

  /// The remove/shutdown path (`nd_pmem_remove`): later submissions fail with
  /// `shutting_down`; then, when the region has a synchronous request-less
  /// flush (a `sync_flush_provider`, which by flushkit's naming rule never
  /// waits for an executor), one final flush runs and its result is ignored.
  /// An asynchronous provider gets no flush: nothing here waits for an
  /// executor. Requests in flight are not waited for; each still completes
  /// exactly once (a PREFLUSH that finishes after `remove()` completes its
  /// request with `shutting_down` without touching the medium). Idempotent.
  void remove() noexcept {
    if (removed_.exchange(true, std::memory_order_acq_rel)) return;
    if constexpr (Region::has_sync_flush) static_cast<void>(region_.flush());
  }
  /// True once `remove()` ran: every later submission fails with `shutting_down`.
  bool removed() const noexcept { return removed_.load(std::memory_order_acquire); }
  /// Requests accepted by `submit` that the device has not yet handed to
  /// their completion. At 0 nothing of the device runs for any request, so
  /// the device may be destroyed; a completion handed over may still be
  /// running (a request's own completion, or its handler, says when the
  /// request itself may be reused).
  std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_acquire); }
  /// Why the device refuses every request (success when it does not); see `check_durable`.
  const status& error() const noexcept { return refusal_.error; }
  /// What to change so that the device accepts requests (static string), or nullptr.
  const char* error_reason() const noexcept { return refusal_.reason; }

  /// Replaces the poison-clearing hook (default: clears everything).
  void set_clear_poison(clear_poison_fn fn, void* context) noexcept {
    clear_poison_ = fn;
    clear_context_ = context;
  }
  /// Replaces the read copy (default: memcpy, nothing left uncopied).
  void set_copy_mc(copy_mc_fn fn, void* context) noexcept {
    copy_mc_ = fn;
    copy_context_ = context;
  }

  /// The device's known-bad sectors (add to them to model poison).
  pmem::badblocks& bad_blocks() noexcept { return badblocks_; }
  /// The region (and through it the provider).
  Region& region() noexcept { return region_; }
  /// The byte medium given at construction.
  std::span<std::byte> medium() const noexcept { return medium_; }
  /// The construction options.
  const device_options& options() const noexcept { return opts_; }
  /// How writes reach the medium (`automatic` resolved).
  pmem::data_step data_step() const noexcept { return data_; }

private:
  struct initiate_io {
    using executor_type = Executor;
    pmem_device* dev;
    executor_type get_executor() const noexcept { return dev->ex_; }

    template <class Handler, class BufferSequence>
    void operator()(Handler&& h, req_op op, std::uint64_t offset, const BufferSequence& buffers,
                    req_flags flags) const {
      pmem_device* d = dev;
      flushkit::detail::request_op<std::decay_t<Handler>, Executor>::start(
          std::move(h), d->ex_, op, offset, buffers, flags, [d](request& r) { d->submit(r); });
    }
  };

  static device_options with_medium(device_options opts, std::optional<persistence> p) noexcept {
    opts.medium = p;
    return opts;
  }

  /// Where `pwrite` writes: a page-cache file's descriptor and the offset of
  /// the mapping in it (fd -1: no file to write to).
  struct file_target {
    int fd = -1;
    std::uint64_t offset = 0;
  };
  static file_target file_target_of(const backing& b) noexcept {
    if (b.kind() != backing_kind::file || b.persistence_mode() != persistence::page_cache) return {};
    return {b.fd(), b.offset()};
  }

  template <class ExecutorOrContext, class... RegionArgs>
  pmem_device(file_target file, ExecutorOrContext&& ex, std::span<std::byte> medium, const device_options& opts,
              RegionArgs&&... region_args)
      : ex_(flushkit::detail::to_executor<Executor>(std::forward<ExecutorOrContext>(ex))), medium_(medium),
        opts_(with_medium(opts, opts.medium ? opts.medium : persistence_of(medium))),
        region_(std::forward<RegionArgs>(region_args)...), badblocks_(opts.badblocks_capacity), file_(file),
        data_(resolve_data_step(opts.data, file)),
        refusal_(refuse(opts_, durability_of(region_), usability_of(region_), data_)) {}

  static pmem::data_step resolve_data_step(pmem::data_step asked, file_target file) noexcept {
    if (asked != pmem::data_step::automatic) return asked;
    return file.fd >= 0 ? pmem::data_step::pwrite : pmem::data_step::store;
  }

  // check_durable, and a pwrite data step without a file to write to.
  refusal refuse(const device_options& opts, durability_scope scope, const status& usable, pmem::data_step d) const {
    if (d == pmem::data_step::pwrite && file_.fd < 0)
      return {make_error_code(errc::invalid_request),
              "data_step::pwrite writes into the backing's file: construct the device from a page-cache file "
              "backing, or use data_step::store"};
    return check_durable(opts.medium, scope, usable, opts);
  }

  // The last interception of every accepted request: counts it out.
  static void request_done(void* self, request& req, const status& st) noexcept {
    static_cast<pmem_device*>(self)->in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    req.complete(st);
  }

  // Step 0: op/flag rules and the no-write-cache stripping.
  [[nodiscard]] status admit(request& req) const noexcept {
    const req_flags both = req_flags::preflush | req_flags::fua;
    if (req.op() == req_op::read && has(req.flags(), both)) return make_error_code(errc::invalid_request);
    if (!opts_.write_cache) req.set_flags(without(req.flags(), both));
    return {};
  }

  // Step 1.
  void start_preflush(request& req) {
    if constexpr (Region::is_async) {
      req.intercept_completion(&pmem_device::preflush_done, this);
      const flush_result r = region_.flush(req);
      if (r.is_async()) return; // preflush_done continues
      req.cancel_interception();
      finish_preflush(req, r.sync_status());
    } else {
      finish_preflush(req, region_.flush(req).sync_status());
    }
  }

  static void preflush_done(void* self, request& req, const status& st) {
    static_cast<pmem_device*>(self)->finish_preflush(req, st);
  }

  void finish_preflush(request& req, const status& st) {
    if (st) return req.complete(st);
    if (removed()) return req.complete(make_error_code(errc::shutting_down));
    data_and_fua(req);
  }

  // Steps 2 and 3. A request whose waiter was cancelled while its PREFLUSH
  // ran has withdrawn its segments: nothing is copied.
  void data_and_fua(request& req) {
    const status st = req.has_data() ? copy_unless_withdrawn(req) : status{};
    if (st || !has(req.flags(), req_flags::fua)) return req.complete(st);
    const flush_result r = region_.flush(req);
    if (!r.is_async()) req.complete(r.sync_status());
  }

  [[nodiscard]] status copy_unless_withdrawn(request& req) {
    if (!req.begin_segment_use()) return make_error_code(errc::cancelled);
    const status st = copy_data(req);
    req.end_segment_use();
    return st;
  }

  [[nodiscard]] status copy_data(const request& req) {
    std::uint64_t pos = req.offset();
    for (const segment& s : req.segments()) {
      if (pos > medium_.size() || s.len > medium_.size() - pos) return make_error_code(errc::invalid_request);
      const status st = req.op() == req_op::read ? read_segment(pos, s) : write_segment(pos, s);
      if (st) return st;
      pos += s.len;
    }
    return {};
  }

  [[nodiscard]] status read_segment(std::uint64_t pos, const segment& s) {
    if (s.len == 0) return {};
    if (badblocks_.overlaps(first_sector(pos), sector_count(pos, s.len))) return make_error_code(errc::io_error);
    if (copy_mc_(copy_context_, s.base, medium_.data() + pos, s.len) != 0) return make_error_code(errc::io_error);
    return {};
  }

  [[nodiscard]] status write_segment(std::uint64_t pos, const segment& s) {
    if (s.len == 0) return {};
    if (status st = clear_poison(pos, s.len)) return st;
    std::byte* dst = medium_.data() + pos;
    if (data_ == pmem::data_step::pwrite) {
      if (status st = detail::pwrite_all(file_.fd, file_.offset + pos, s.base, s.len)) return st;
    } else {
      std::memcpy(dst, s.base, s.len);
    }
    // Whichever way the bytes went, the range is the mapping's: a provider
    // that syncs only what was noted (msync of the range) must be told.
    if constexpr (dirty_tracking<Region>) region_.note_dirty(dst, s.len);
    return {};
  }

  // pmem_clear_poison: clear the sectors under [pos, pos + len) if any is
  // bad; remove what was cleared from badblocks; fail unless all of it was.
  [[nodiscard]] status clear_poison(std::uint64_t pos, std::size_t len) {
    const std::uint64_t first = first_sector(pos), count = sector_count(pos, len);
    if (!badblocks_.overlaps(first, count)) return {};
    const std::uint64_t bytes = count * badblocks::sector_size;
    const std::int64_t cleared = clear_poison_(clear_context_, first * badblocks::sector_size, bytes);
    if (cleared > 0) {
      const auto cleared_sectors = static_cast<std::uint64_t>(cleared) / badblocks::sector_size;
      if (badblocks_.clear(first, cleared_sectors)) return make_error_code(errc::io_error);
    }
    if (cleared < 0 || static_cast<std::uint64_t>(cleared) < bytes) return make_error_code(errc::io_error);
    return {};
  }

  static std::uint64_t first_sector(std::uint64_t pos) noexcept { return pos / badblocks::sector_size; }
  static std::uint64_t sector_count(std::uint64_t pos, std::size_t len) noexcept {
    return (pos + len + badblocks::sector_size - 1) / badblocks::sector_size - first_sector(pos);
  }

  static std::int64_t clear_all(void*, std::uint64_t, std::uint64_t len) { return static_cast<std::int64_t>(len); }
  static std::size_t plain_copy(void*, void* dst, const void* src, std::size_t len) {
    std::memcpy(dst, src, len);
    return 0;
  }

  Executor ex_;
  std::span<std::byte> medium_;
  device_options opts_;
  Region region_;
  pmem::badblocks badblocks_;
  file_target file_;
  pmem::data_step data_;
  refusal refusal_;
  std::atomic<std::size_t> in_flight_{0};
  clear_poison_fn clear_poison_ = &pmem_device::clear_all;
  void* clear_context_ = nullptr;
  copy_mc_fn copy_mc_ = &pmem_device::plain_copy;
  void* copy_context_ = nullptr;
  std::atomic<bool> removed_{false};
};

} // namespace flushkit::pmem
