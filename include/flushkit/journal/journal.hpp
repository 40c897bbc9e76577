// flushkit/journal/journal.hpp - a segmented write-ahead log with group commit and in-order durable appends.
#pragma once

#include <flushkit/core/buffers.hpp>
#include <flushkit/core/detail/io_object.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/journal/detail/append_op.hpp>
#include <flushkit/journal/detail/journal_core.hpp>
#include <flushkit/journal/journal_types.hpp>
#include <flushkit/journal/reader.hpp>
#include <flushkit/journal/record.hpp>
#include <flushkit/journal/segment_store.hpp>
#include <flushkit/pmem/result.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <memory>
#include <type_traits>
#include <utility>

namespace flushkit {

/// An append-only, segmented write-ahead log: records of bytes, numbered
/// with consecutive LSNs, made durable in batches (group commit) and
/// acknowledged in LSN order.
///
/// Guarantees:
/// * **Durable at completion.** An append that completes with success has
///   its record on stable storage (written and synced, `sync` of the store:
///   `fdatasync` for `segment_directory`), and so has every record with a
///   lower LSN: a successful completion of LSN n implies LSNs < n are durable.
/// * **In order.** Completions are handed to their handlers' executors one
///   after another in LSN order, by one thread (handlers on one event-loop
///   thread run in LSN order).
/// * **Recovery** (`open`): the log is read from its oldest segment; the
///   first invalid record (length, LSN continuity or CRC32C) ends it; what
///   follows it in its segment is zeroed and synced; later segments are kept
///   as spares when all zero, deleted otherwise.
///   Every acknowledged record is recovered; no record that was never
///   appended is.
///
/// How it works: appenders frame their records (header, LSN, CRC32C) into a
/// staging buffer in one critical section, so the buffer always holds a
/// contiguous range of LSNs. A flusher thread takes the whole buffer - the
/// other buffer takes the next records meanwhile - writes it with one
/// `write` per segment touched, syncs, and completes the batch. A keeper
/// thread creates zero-filled spare segments ahead of need and deletes
/// released ones (each with a directory sync), off the append path.
///
/// Failures (PostgreSQL's lesson): a failed write or sync fails every append
/// of its batch and every one queued behind it with that status, and the
/// journal becomes read-only: every later append fails with the same status
/// (`error()`) until it is reopened, since the page cache may have dropped
/// the data that failed; a record of a failed append may or may not be
/// recovered. When no segment can be created for a record (`no_space`:
/// disk, quota or file size limit), the records before it are acknowledged,
/// it and every record queued after it fail with `no_space`, their LSNs are
/// reused, and the journal stays writable (a later append tries again).
///
/// Thread-safety: every member function may be called from any thread,
/// concurrently. Lifetime: `close_and_wait()` (or the destructor, which
/// calls it) completes every queued append before returning.
template <segment_store_or_ref Store, class Executor = boost::asio::any_io_executor> class basic_journal {
  using core_type = journal_detail::journal_core<Store>;

public:
  /// The store type (a `segment_store`, or a reference to one that must outlive the journal).
  using store_type = std::remove_reference_t<Store>;
  /// The executor a handler without an associated executor runs on.
  using executor_type = Executor;
  /// The token `async_append` uses when none is given.
  using default_token = flushkit::detail::default_token_t<Executor>;
  /// Completion signature of `async_append`.
  using completion_signature = void(boost::system::error_code, lsn_t);

  /// Opens the journal kept in `store` (moved in, or bound by reference for
  /// `Store = S&`), recovering it, or creates a new one when it holds no
  /// segment. Handlers default to `ex` (an executor or an execution context).
  /// Blocks: recovery reads every segment and may zero and sync a torn tail;
  /// then the missing spare segments are created (`spare_segments`), so the
  /// first rotation finds one ready (one that cannot be created, for lack of
  /// space say, is tried again at that rotation).
  /// Errors: `invalid_request` for options that cannot work; `io_error` for
  /// a store that holds something that is not a journal (a gap in the
  /// segment numbers, or a first segment that is neither valid nor zero);
  /// the store's error. Allocation: the state, two staging buffers, a scan
  /// window, two threads.
  template <flushkit::detail::executor_source<Executor> ExecutorOrContext>
  [[nodiscard]] static pmem::result<basic_journal> open(ExecutorOrContext&& ex, Store store,
                                                        const journal_options& opts = {}) {
    if (status st = core_type::check(opts, store.segment_bytes())) return st;
    auto core = std::make_unique<core_type>(std::forward<Store>(store), opts);
    if (status st = core->start()) return st;
    return basic_journal(flushkit::detail::to_executor<Executor>(std::forward<ExecutorOrContext>(ex)), std::move(core));
  }

  /// `open(ex, segment_directory::open(path, ...), opts)`: the journal in
  /// the directory `path`, with `opts.segment_bytes`, `opts.preallocate`
  /// and `opts.create_directory`.
  template <flushkit::detail::executor_source<Executor> ExecutorOrContext>
    requires std::is_same_v<Store, segment_directory>
  [[nodiscard]] static pmem::result<basic_journal> open(ExecutorOrContext&& ex, const char* path,
                                                        const journal_options& opts = {}) {
    auto dir = segment_directory::open(path, {opts.segment_bytes, opts.preallocate, opts.create_directory});
    if (!dir) return dir.error();
    return open(std::forward<ExecutorOrContext>(ex), std::move(dir).value(), opts);
  }

  basic_journal(basic_journal&&) noexcept = default;
  basic_journal& operator=(basic_journal&&) noexcept = default;
  ~basic_journal() = default;

  executor_type get_executor() const noexcept { return ex_; }

  /// Appends one record whose payload is the concatenation of `buffers`
  /// (see `const_buffers`; they must stay valid until the completion).
  ///
  /// Effects: the record gets the next LSN and is framed into a staging
  /// buffer at once, or, when both buffers are in use, as soon as one is
  /// free (in the order the appends were initiated). Completion signature:
  /// `void(boost::system::error_code, lsn_t)`: success and the record's LSN
  /// once it and every record before it are durable; or the error and 0:
  /// `invalid_request` (empty, larger than `max_record_bytes()`, or more
  /// than `max_io_buffers` buffers), `shutting_down` (after
  /// `close_and_wait()` began), the write or sync error (and, after one,
  /// the same error for every later append), `no_space` (see the class).
  /// Executor: the handler's associated executor, defaulting to
  /// `get_executor()`; never inside this call. Ordering: see the class.
  /// Cancellation: `terminal` withdraws an append still waiting for buffer
  /// space (`operation_aborted`, nothing appended, no LSN used); once
  /// framed, an append cannot be cancelled and its result is delivered.
  /// Allocation: one operation block from the handler's allocator, none in
  /// steady state (`recycling_allocator`).
  template <const_buffers ConstBufferSequence, boost::asio::completion_token_for<completion_signature> Token>
  auto async_append(const ConstBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, completion_signature>(initiate_append{ex_, core_.get()}, token,
                                                                     buffers);
  }
  /// `async_append(buffers, default_token())`: an operation to `co_await`
  /// (or launch with a token); discarding it appends nothing.
  template <const_buffers ConstBufferSequence> [[nodiscard]] auto async_append(const ConstBufferSequence& buffers) {
    return async_append(buffers, default_token());
  }

  /// The request-level append for callers that own their requests: `req` is
  /// a prepared `req_op::write` request whose segments are the payload. It
  /// completes as `async_append` does (callback waiter or `async_wait`);
  /// `lsn_of(req)` is then its LSN. Allocation: none.
  void append(request& req) { core_->submit(req); }
  /// The LSN of a request `append` completed with success (0 otherwise).
  static lsn_t lsn_of(const request& req) noexcept { return req.epoch; }

  /// The highest LSN known durable (every LSN up to it is).
  lsn_t durable_lsn() const { return core_->durable_lsn(); }
  /// The sticky error that made the journal read-only (success if none).
  status error() const { return core_->error(); }
  /// What `open` recovered.
  const journal_recovery& recovery() const noexcept { return core_->recovery(); }
  /// Largest payload an append accepts.
  std::size_t max_record_bytes() const noexcept { return core_->max_record_bytes(); }
  /// A consistent snapshot of the counters.
  journal_stats stats() const { return core_->stats(); }
  /// The store (for a reader, or for inspection).
  store_type& store() noexcept { return core_->store(); }

  /// Checkpoint: records with an LSN below `lsn` are no longer needed. Every
  /// segment holding only such records (never the one being written) is
  /// deleted by the background keeper, oldest first, with a directory sync
  /// each, once the segment after it is durable; returns how many were
  /// scheduled. A failed deletion keeps that segment and stops the later
  /// ones until the next `release` call (so no gap is ever left in the
  /// numbering). Does not block.
  std::size_t release(lsn_t lsn) { return core_->release(lsn); }

  /// A reader over the records from `from` (0: the oldest kept) up to the
  /// durable LSN at this call. It reads the store directly; releasing the
  /// segment it reads makes it fail with the store's error.
  journal_reader<store_type&> read_from(lsn_t from = 0) {
    return journal_reader<store_type&>(core_->store(), from, core_->durable_lsn());
  }

  /// Refuses new appends (`shutting_down`), waits until every queued append
  /// completed (made durable or failed), and stops the threads after the
  /// scheduled deletions. Idempotent. Not from a completion handler run by
  /// the flusher (a handler bound to `system_executor`).
  void close_and_wait() {
    if (core_) core_->close_and_wait();
  }

private:
  basic_journal(Executor ex, std::unique_ptr<core_type> core) : ex_(std::move(ex)), core_(std::move(core)) {}

  // Holds the state, not the handle: a deferred append stays valid when the
  // journal object is moved before it is launched.
  struct initiate_append {
    using executor_type = Executor;
    Executor ex;
    core_type* core;
    executor_type get_executor() const noexcept { return ex; }

    template <class Handler, class ConstBufferSequence>
    void operator()(Handler&& h, const ConstBufferSequence& buffers) const {
      journal_detail::append_op<std::decay_t<Handler>, Executor, core_type>::start(std::move(h), ex, *core, buffers);
    }
  };

  Executor ex_;
  std::unique_ptr<core_type> core_;
};

/// The journal over a directory of segment files.
using journal = basic_journal<segment_directory>;

} // namespace flushkit
