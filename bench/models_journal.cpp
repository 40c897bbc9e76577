// bench/models_journal.cpp - the journal scenarios: durable appends of framed log records.
//
// journal-64, journal-256, journal-4k: one record per submit whose payload is
// the first 64, 256 or 4096 bytes of the slot's block; an ack means the record
// (and, for `journal`, every record before it) is durable. Each point gets a
// fresh directory next to the bench file (its path plus `.journal`), its
// files created (zero-filled and synced) before, and removed after, the
// measured window; `bench_env::medium_bytes` is the size of each file.
//
//  journal              flushkit::journal (default options but segment_bytes)
//                       in that directory, driven from the application event
//                       loop: async_append, the completion delivered there.
//                       open() creates the first segment and the spare one
//                       before it returns, so no zero-fill runs in the window.
//  group-commit-pwrite  the durable scenario's group commit (N threads, leader
//                       fdatasync) over framed records: each submit takes the
//                       next LSN, frames the record exactly as the journal does
//                       (journal_format::begin_record / seal_record, CRC32C of
//                       header bytes 4..15 then the payload) and pwrites it at
//                       the next record offset of one zero-filled file.
//  io_uring-batch       the durable scenario's io_uring-batch (writes at once,
//                       one drained fsync(DATASYNC) per batch) over the same
//                       framed records and file.
//
// The baselines' file is a segment made by `segment_directory::create`, the
// call that makes the journal's segments: same allocation, same page-cache
// state. When the records outrun the file, the baselines wrap around to its
// start and the journal rotates into its spare segment (whose replacement the
// keeper then zero-fills while appends go on).
#include "model.hpp"
#include "stacks.hpp"

#include <flushkit/journal/crc32c.hpp>
#include <flushkit/journal/journal.hpp>
#include <flushkit/journal/record.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

#include <dirent.h>
#include <unistd.h>

#if FLUSHKIT_BENCH_HAVE_URING
#include <liburing.h>

#include <cstdio>
#include <system_error>
#endif

namespace flushkit::bench {

namespace {

namespace jf = flushkit::journal_format;

/// Deletes every file in `dir`, then `dir` (whatever of it exists).
void remove_directory(const std::string& dir) noexcept {
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string_view name = e->d_name;
      if (name != "." && name != "..") static_cast<void>(::unlinkat(::dirfd(d), e->d_name, 0));
    }
    ::closedir(d);
  }
  static_cast<void>(::rmdir(dir.c_str()));
}

/// The point's directory next to the bench file: emptied of leftovers
/// before, removed with its files after.
class scratch_dir {
public:
  explicit scratch_dir(const bench_env& env) : path_(env.file_path + ".journal") { remove_directory(path_); }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  ~scratch_dir() { remove_directory(path_); }
  const std::string& path() const noexcept { return path_; }

private:
  std::string path_;
};

/// The file size both the journal's segments and the baselines' file get.
std::uint64_t log_bytes(const bench_env& env) {
  if (env.medium_bytes < 4096 || env.medium_bytes % 4096 != 0)
    throw std::runtime_error("journal scenarios need a medium size that is a multiple of 4096");
  return env.medium_bytes;
}

// ---- the baselines' log ------------------------------------------------------

/// The baselines' log: one zero-filled, synced file of `log_bytes(env)` in
/// the point's directory (made by `segment_directory::create`), LSN
/// assignment, and a framing buffer per slot.
class record_log {
public:
  record_log(const bench_env& env, std::size_t payload)
      : payload_(payload), record_bytes_(jf::record_bytes(payload)), dir_(env), fd_(create_file(dir_.path(), env)),
        capacity_(log_bytes(env) / record_bytes_),
        records_(std::make_unique<std::byte[]>(env.inflight * record_bytes_)) {
    if (capacity_ == 0) throw std::runtime_error("journal scenario: the file is smaller than one record");
  }

  int fd() const noexcept { return fd_.get(); }
  /// Bytes of one framed record.
  std::size_t record_bytes() const noexcept { return record_bytes_; }

  /// A framed record ready to write: `bytes` at file offset `offset`.
  struct framed {
    const std::byte* bytes;
    std::size_t size;
    std::uint64_t offset;
  };

  /// Takes the next LSN and frames the record (the first `payload` bytes of
  /// `o.data`) into slot `o.index`'s buffer, which stays untouched until
  /// that slot's next submit. LSN n goes to the n-th record offset of the
  /// file (wrapping at its end), so offsets follow LSN order. Thread-safe.
  framed frame_next(const op& o) noexcept {
    const lsn_t lsn = next_lsn_.fetch_add(1, std::memory_order_relaxed);
    std::byte* out = records_.get() + o.index * record_bytes_;
    jf::frame_record(out, std::span<const std::byte>(o.data.data(), payload_), lsn);
    return {out, record_bytes_, ((lsn - 1) % capacity_) * record_bytes_};
  }

private:
  static file_fd create_file(const std::string& dir, const bench_env& env) {
    auto d = segment_directory::open(dir.c_str(), {log_bytes(env), pmem::preallocation::zero_fill, true});
    if (!d) throw std::runtime_error("segment_directory " + dir + ": " + d.error().message());
    if (const status st = d->create(0))
      throw std::runtime_error("creating the log file in " + dir + ": " + st.message());
    return file_fd(dir + "/" + segment_directory::file_name(0).data());
  }

  std::size_t payload_;
  std::size_t record_bytes_;
  scratch_dir dir_;
  file_fd fd_;
  std::uint64_t capacity_; ///< records the file holds
  std::unique_ptr<std::byte[]> records_;
  std::atomic<lsn_t> next_lsn_{1};
};

// ---- journal -------------------------------------------------------------------

/// flushkit::journal in the point's directory, submitted to and completed on
/// the application event loop.
class journal_workload final : public workload {
public:
  journal_workload(const bench_env& env, std::size_t payload) : payload_(payload), dir_(env) {
    journal_options opts;
    opts.segment_bytes = log_bytes(env);
    auto j = flushkit::journal::open(app_.ctx, dir_.path().c_str(), opts);
    if (!j) throw std::runtime_error("journal::open " + dir_.path() + ": " + j.error().message());
    journal_.emplace(std::move(j).value());
  }
  journal_workload(const journal_workload&) = delete;
  journal_workload& operator=(const journal_workload&) = delete;
  ~journal_workload() override {
    if (journal_) journal_->close_and_wait(); // the harness has seen every ack: nothing is queued
    journal_.reset();
    app_.runner.join();
  }

  void submit(op& o) override {
    if (!app_.ctx.get_executor().running_in_this_thread())
      return boost::asio::post(app_.ctx, [this, &o] { submit(o); }); // first issue of a slot only
    journal_->async_append(boost::asio::buffer(o.data.data(), payload_), completion{&o});
  }
  /// Backend batches (one write per segment touched, then fdatasync).
  std::uint64_t flushes() const override { return journal_->stats().flushes; }
  /// The operation block async_append takes from the recycling allocator
  /// (the record itself sits in a staging buffer the journal preallocated).
  std::int64_t bytes_per_request() const override { return static_cast<std::int64_t>(sizeof(append_op)); }

private:
  struct completion {
    op* slot;
    void operator()(const boost::system::error_code& ec, lsn_t) const { slot->done(ec); }
  };
  using append_op = journal_detail::append_op<completion, flushkit::journal::executor_type,
                                              journal_detail::journal_core<segment_directory>>;

  std::size_t payload_;
  scratch_dir dir_;  // outlives the journal: removed last
  app_thread app_;   // outlives the journal: its completions run there
  std::optional<flushkit::journal> journal_;
};

// ---- group-commit-pwrite over framed records ------------------------------------

/// The durable scenario's group commit (models_baselines.cpp) over framed
/// records: a writer frames its record, pwrites it, then under the mutex
/// takes a sequence number (its pwrite has returned, so any fdatasync started
/// from now on covers it) and waits until `flushed_` reaches it, leading an
/// fdatasync of its own when none is in progress. A failed fdatasync fails
/// every slot it covered.
class group_commit_log_workload final : public workload {
public:
  group_commit_log_workload(const bench_env& env, std::size_t payload)
      : log_(env, payload), slots_(std::make_unique<slot[]>(env.inflight)), inflight_(env.inflight) {}

  void submit(op& o) override {
    const record_log::framed r = log_.frame_next(o);
    const ::ssize_t n = ::pwrite(log_.fd(), r.bytes, r.size, static_cast<::off_t>(r.offset));
    if (n != static_cast<::ssize_t>(r.size)) return o.done(make_error_code(errc::io_error));
    o.done(commit(slots_[o.index]));
  }
  std::uint64_t flushes() const override { return flushes_.load(std::memory_order_relaxed); }
  /// The slot's bookkeeping and its framed record.
  std::int64_t bytes_per_request() const override {
    return static_cast<std::int64_t>(sizeof(slot) + log_.record_bytes());
  }

private:
  struct slot {
    std::uint64_t seq = 0; ///< the sequence number this slot waits for
    status st;             ///< the covering flush's error, set by a failed leader
  };

  status commit(slot& s) {
    std::unique_lock lk(mu_);
    s.seq = ++written_;
    while (flushed_ < s.seq) {
      if (flushing_)
        cv_.wait(lk);
      else
        lead(lk);
    }
    return std::exchange(s.st, status{});
  }

  void lead(std::unique_lock<std::mutex>& lk) {
    flushing_ = true;
    const std::uint64_t from = flushed_;
    const std::uint64_t target = written_;
    lk.unlock();
    flushes_.fetch_add(1, std::memory_order_relaxed);
    const status st = ::fdatasync(log_.fd()) == 0 ? status{} : status(errno, boost::system::generic_category());
    lk.lock();
    if (st)
      for (std::size_t i = 0; i < inflight_; ++i)
        if (slots_[i].seq > from && slots_[i].seq <= target) slots_[i].st = st;
    flushed_ = target;
    flushing_ = false;
    cv_.notify_all();
  }

  record_log log_;
  std::unique_ptr<slot[]> slots_;
  std::size_t inflight_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t written_ = 0; ///< sequence numbers taken (writes whose pwrite returned)
  std::uint64_t flushed_ = 0; ///< every sequence number up to this one is durable (or failed)
  bool flushing_ = false;     ///< a leader is in fdatasync
  std::atomic<std::uint64_t> flushes_{0};
};

// ---- io_uring-batch over framed records ------------------------------------------

#if FLUSHKIT_BENCH_HAVE_URING

constexpr std::uint64_t stop_tag = 0;  // user_data of the NOP that stops the reaper
constexpr std::uint64_t fsync_tag = 2; // user_data of a batch's fsync (not a slot pointer, no write_tag bit)
constexpr std::uint64_t write_tag = 1; // low bit of a write SQE's user_data (a slot pointer otherwise)

status from_res(int res) noexcept { return res < 0 ? status(-res, boost::system::generic_category()) : status{}; }

/// The durable scenario's io_uring-batch (models_io_uring.cpp) over framed
/// records: every submit frames its record and queues its write at once;
/// when no fsync is in flight, an fsync(DATASYNC) with IOSQE_IO_DRAIN follows
/// and covers every write submitted before it. Writes submitted meanwhile
/// wait for the next fsync, submitted once the current one's CQE has
/// acknowledged its batch. One reaper thread; submissions under a mutex.
class uring_batch_log_workload final : public workload {
public:
  uring_batch_log_workload(const bench_env& env, std::size_t payload)
      : log_(env, payload), slots_(std::make_unique<slot[]>(env.inflight)) {
    unsigned entries = 8; // two SQEs per slot (its write and its share of an fsync) and the stop NOP
    while (entries < 2 * env.inflight + 2) entries *= 2;
    if (const int rc = ::io_uring_queue_init(entries, &ring_, 0); rc < 0)
      throw std::system_error(-rc, std::generic_category(), "io_uring_queue_init");
    reaper_ = std::thread([this] { reap(); });
  }
  uring_batch_log_workload(const uring_batch_log_workload&) = delete;
  uring_batch_log_workload& operator=(const uring_batch_log_workload&) = delete;
  ~uring_batch_log_workload() override {
    locked_submit([&] {
      io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
      ::io_uring_prep_nop(sqe);
      ::io_uring_sqe_set_data64(sqe, stop_tag);
    });
    reaper_.join();
    ::io_uring_queue_exit(&ring_);
  }

  void submit(op& o) override {
    slot& s = slots_[o.index];
    const record_log::framed r = log_.frame_next(o);
    s.o = &o;
    s.size = r.size;
    s.write_res = 0;
    locked_submit([&] {
      io_uring_sqe* write = ::io_uring_get_sqe(&ring_);
      ::io_uring_prep_write(write, log_.fd(), r.bytes, static_cast<unsigned>(r.size), r.offset);
      ::io_uring_sqe_set_data64(write, reinterpret_cast<std::uintptr_t>(&s) | write_tag);
      waiting_.push(s);
      if (!fsync_in_flight_) start_fsync();
    });
  }
  std::uint64_t flushes() const override { return flushes_.load(std::memory_order_relaxed); }
  /// The slot's bookkeeping, its framed record and the ring entries it
  /// occupies: one SQE and its CQE (the batch's fsync SQE is shared).
  std::int64_t bytes_per_request() const override {
    return static_cast<std::int64_t>(sizeof(slot) + log_.record_bytes() + sizeof(io_uring_sqe) + sizeof(io_uring_cqe));
  }

private:
  struct slot {
    op* o = nullptr;
    slot* next = nullptr;  ///< in `waiting_` or `covered_`
    std::size_t size = 0;  ///< bytes of the framed record
    int write_res = 0;     ///< the write's CQE result
  };

  /// FIFO of slots, linked through `slot::next`.
  struct slot_list {
    slot* head = nullptr;
    slot* tail = nullptr;
    bool empty() const noexcept { return head == nullptr; }
    void push(slot& s) noexcept {
      s.next = nullptr;
      (tail != nullptr ? tail->next : head) = &s;
      tail = &s;
    }
  };

  // Runs `prep` with the submission queue locked, then submits what it
  // prepared (no system call when that is nothing). The release pairs with
  // the reaper's acquire.
  template <class Prep> void locked_submit(Prep&& prep) {
    std::lock_guard lk(mu_);
    prep();
    submits_.fetch_add(1, std::memory_order_release);
    ::io_uring_submit(&ring_);
  }

  // Submission queue locked: an fsync ordered after every write submitted so far, which it covers.
  void start_fsync() {
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
    ::io_uring_prep_fsync(sqe, log_.fd(), IORING_FSYNC_DATASYNC);
    sqe->flags |= IOSQE_IO_DRAIN;
    ::io_uring_sqe_set_data64(sqe, fsync_tag);
    covered_ = std::exchange(waiting_, {});
    fsync_in_flight_ = true;
    flushes_.fetch_add(1, std::memory_order_relaxed);
  }

  void reap() {
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      if (::io_uring_wait_cqe(&ring_, &cqe) < 0) continue; // EINTR
      const std::uint64_t data = ::io_uring_cqe_get_data64(cqe);
      const int res = cqe->res;
      ::io_uring_cqe_seen(&ring_, cqe);
      if (data == stop_tag) return;
      static_cast<void>(submits_.load(std::memory_order_acquire));
      on_cqe(data, res);
    }
  }

  void on_cqe(std::uint64_t data, int res) {
    if ((data & write_tag) != 0) {
      reinterpret_cast<slot*>(static_cast<std::uintptr_t>(data & ~write_tag))->write_res = res;
      return; // acknowledged with the fsync that covers it
    }
    // The fsync's CQE: the drain made every covered write's CQE come first.
    slot_list batch;
    locked_submit([&] { batch = std::exchange(covered_, {}); });
    ack(batch, from_res(res));
    // The acks re-issued their slots into `waiting_`: one fsync covers them all.
    locked_submit([&] {
      fsync_in_flight_ = false;
      if (!waiting_.empty()) start_fsync();
    });
  }

  // Acks every slot of `batch`: with its write's error, else the fsync's status.
  static void ack(slot_list batch, const status& fsync_status) {
    for (slot* s = batch.head; s != nullptr;) {
      slot* next = s->next; // done() re-issues the slot, which relinks it
      const int w = s->write_res;
      const status st = w < 0                             ? from_res(w)
                        : static_cast<std::size_t>(w) != s->size ? make_error_code(errc::io_error)
                                                          : fsync_status;
      s->o->done(st);
      s = next;
    }
  }

  record_log log_;
  std::unique_ptr<slot[]> slots_;
  slot_list waiting_;            ///< written, not yet covered by an fsync
  slot_list covered_;            ///< covered by the fsync in flight
  bool fsync_in_flight_ = false; ///< waiting_, covered_ and this: under mu_
  std::atomic<std::uint64_t> flushes_{0};
  std::mutex mu_;
  std::atomic<std::uint64_t> submits_{0};
  io_uring ring_{};
  std::thread reaper_; // last: starts after, and is joined before, the rest
};

const char* uring_unavailable() {
  static char reason[128];
  io_uring ring{};
  const int rc = ::io_uring_queue_init(8, &ring, 0);
  if (rc == 0) {
    ::io_uring_queue_exit(&ring);
    return nullptr;
  }
  std::snprintf(reason, sizeof reason, "io_uring_queue_init failed: %s", std::strerror(-rc));
  return reason;
}

#else // no liburing at build time

using uring_batch_log_workload = void;
const char* uring_unavailable() {
  return "flushkit-bench was built without liburing (install liburing-dev and reconfigure)";
}

#endif

// ---- registration ------------------------------------------------------------------

template <class W, std::size_t Payload> std::unique_ptr<workload> make(const bench_env& env) {
  if constexpr (std::is_void_v<W>)
    return nullptr; // never called: the model is unavailable
  else
    return std::make_unique<W>(env, Payload);
}

/// The three models of one journal scenario.
template <std::size_t Payload> void add_scenario(model_registry& r, std::string_view scenario) {
  r.push_back({scenario, "journal", &make<journal_workload, Payload>});
  r.push_back({scenario, "group-commit-pwrite", &make<group_commit_log_workload, Payload>, true});
  r.push_back({scenario, "io_uring-batch", &make<uring_batch_log_workload, Payload>, false, 0, &uring_unavailable});
}

} // namespace

void add_journal_models(model_registry& r) {
  add_scenario<64>(r, "journal-64");
  add_scenario<256>(r, "journal-256");
  add_scenario<4096>(r, "journal-4k");
}

} // namespace flushkit::bench
