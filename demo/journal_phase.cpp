// demo/journal_phase.cpp - the storage-engine phases: flushkit::journal, and pwrite + fdatasync per append.
//
// Both phases write the same bytes: records framed in the journal's on-disk
// format (journal_format: segment header, then length + LSN + CRC32C +
// payload) into 8 MiB zero-filled segment files, so the same reader checks
// both. They differ in how an append becomes durable: the journal stages
// records from all appenders and makes each batch durable with one write and
// one fdatasync; the baseline makes every record durable on its own.
#include "journal_phase.hpp"

#include "loop_thread.hpp"
#include "run_state.hpp"

#include <flushkit/journal/crc32c.hpp>
#include <flushkit/journal/journal.hpp>
#include <flushkit/journal/reader.hpp>
#include <flushkit/journal/record.hpp>
#include <flushkit/journal/segment_store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <latch>
#include <span>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace flushkit::demo {

namespace {

namespace asio = boost::asio;
namespace jf = flushkit::journal_format;

/// Counts an ended appender down (one that ended with an exception as aborted).
struct appender_done {
  phase_counters* c;
  std::latch* left;
  void operator()(const std::exception_ptr& e) const {
    if (e) c->aborted.fetch_add(1);
    left->count_down();
  }
};

std::string group_name(const storage_config& c) {
  return strprintf("storage engine: %zu B records, %u appenders", c.record_bytes, c.appenders);
}

// ---- checking a log --------------------------------------------------------------

/// What reading a log back found.
struct log_check {
  std::uint64_t acked = 0;          ///< acknowledged appends (the ledger)
  std::uint64_t verified = 0;       ///< of those: present with exactly their payload
  std::uint64_t missing = 0;        ///< of those: no record with their LSN
  std::uint64_t different = 0;      ///< of those: a record with their LSN but another payload
  std::uint64_t duplicates = 0;     ///< LSNs acknowledged to two appends (a bug)
  std::uint64_t unacknowledged = 0; ///< records in the log no append was acknowledged for
  std::uint64_t records = 0;        ///< records read
  lsn_t max_acked = 0;              ///< the highest acknowledged LSN
  status read_error;                ///< why reading stopped early (success: the end of the log)
};

/// Reopens the log in `dir` and reads it from its first record with
/// `journal_reader`; every LSN in `led` must be there with the payload
/// `fill_pattern(appender, seq)` of the append it was acknowledged for.
log_check check_log(const std::string& dir, const append_ledger& led, std::size_t record_bytes) {
  log_check k;
  for (const std::vector<lsn_t>& lsns : led.acked) {
    k.acked += lsns.size();
    for (const lsn_t lsn : lsns) k.max_acked = std::max(k.max_acked, lsn);
  }
  struct expected {
    std::uint32_t appender = 0;
    bool acked = false, seen = false;
    std::uint64_t seq = 0;
  };
  std::vector<expected> by_lsn(k.max_acked + 1);
  for (std::uint32_t a = 0; a < led.acked.size(); ++a)
    for (std::uint64_t seq = 0; seq < led.acked[a].size(); ++seq) {
      expected& e = by_lsn[led.acked[a][seq]];
      if (e.acked) ++k.duplicates;
      e = {a, true, false, seq};
    }

  auto store = segment_directory::open(dir.c_str(), {log_segment_bytes, pmem::preallocation::zero_fill, false});
  if (!store) {
    k.read_error = store.error();
    k.missing = k.acked;
    return k;
  }
  journal_reader<segment_directory> reader(std::move(store).value());
  std::vector<std::byte> want(record_bytes);
  journal_record rec;
  while (reader.next(rec)) {
    ++k.records;
    if (rec.lsn > k.max_acked || !by_lsn[rec.lsn].acked) {
      ++k.unacknowledged;
      continue;
    }
    expected& e = by_lsn[rec.lsn];
    e.seen = true;
    fill_pattern(want, e.appender, e.seq);
    const bool same =
        rec.payload.size() == want.size() && std::memcmp(rec.payload.data(), want.data(), want.size()) == 0;
    ++(same ? k.verified : k.different);
  }
  k.read_error = reader.error();
  for (const expected& e : by_lsn)
    if (e.acked && !e.seen) ++k.missing;
  return k;
}

void print_check(const log_check& k) {
  print_detail("read back with journal_reader: %s of %s acknowledged LSNs present with exactly their payload",
               grouped(k.verified).c_str(), grouped(k.acked).c_str());
  print_detail("  (%s records read; %s missing, %s different, %s never acknowledged%s%s)", grouped(k.records).c_str(),
               grouped(k.missing).c_str(), grouped(k.different).c_str(), grouped(k.unacknowledged).c_str(),
               k.read_error ? "; read error: " : "", k.read_error ? k.read_error.message().c_str() : "");
}

/// The failed checks of a phase, in words, into `r.problems`.
void judge(phase_result& r, const append_ledger& led, const log_check& k) {
  const phase_counters& c = led.counters;
  if (c.failed != 0)
    r.problems.push_back(grouped(c.failed) + " appends failed (the first: " + c.first_error.message() + ")");
  if (c.aborted != 0) r.problems.push_back(grouped(c.aborted) + " appenders ended with an exception");
  if (led.out_of_order) r.problems.push_back("an acknowledgement did not match its appender's sequence");
  if (k.read_error) r.problems.push_back("reading the log back: " + k.read_error.message());
  if (k.missing != 0) r.problems.push_back(grouped(k.missing) + " acknowledged LSNs are missing from the log");
  if (k.different != 0) r.problems.push_back(grouped(k.different) + " records differ from what was appended");
  if (k.duplicates != 0) r.problems.push_back(grouped(k.duplicates) + " LSNs were acknowledged twice");
  // After a failure, a record of a failed append may or may not be there; without one, every record is acknowledged.
  if (k.unacknowledged != 0 && c.failed == 0)
    r.problems.push_back(grouped(k.unacknowledged) + " records in the log were never acknowledged");
  if (k.acked != r.acks) r.problems.push_back("the ledger holds " + grouped(k.acked) + " acknowledgements, not " +
                                              grouped(r.acks));
}

void fill_latency(phase_result& r, const phase_counters& c) {
  r.acks = c.completed - c.failed;
  r.p50_ns = c.latency.percentile(0.50);
  r.p99_ns = c.latency.percentile(0.99);
}

// ---- flushkit::journal ------------------------------------------------------------

/// One appender: until `stop`, appends record `seq` (its pattern) and
/// awaits its durability; stops at the first failure.
asio::awaitable<void> journal_appender(flushkit::journal* j, append_ledger* led, std::uint32_t a, std::size_t bytes) {
  std::vector<std::byte> payload(bytes);
  for (std::uint64_t seq = 0; !led->counters.stop.load(std::memory_order_relaxed); ++seq) {
    fill_pattern(payload, a, seq);
    led->counters.submitted.fetch_add(1, std::memory_order_relaxed);
    const auto t0 = clock_type::now();
    // as_tuple: the error as a value (plain use_awaitable would throw it).
    const auto [ec, lsn] = co_await j->async_append(asio::buffer(payload), asio::as_tuple(asio::use_awaitable));
    led->record(a, seq, ec, lsn, t0, clock_type::now());
    if (ec) co_return;
  }
}

void print_recovery(const journal_recovery& rec) {
  print_detail("closed, then reopened: recovery read %s records (LSN %s..%s) in %s segment(s), deleted %s segment(s)",
               grouped(rec.records).c_str(), grouped(rec.first_lsn).c_str(), grouped(rec.last_lsn).c_str(),
               grouped(rec.segments).c_str(), grouped(rec.segments_discarded).c_str());
  print_detail("  past the end of the log (holding unacknowledged data), zeroed %s torn tail bytes; next LSN %s%s",
               grouped(rec.tail_bytes_zeroed).c_str(), grouped(rec.next_lsn).c_str(),
               rec.created ? "; it found NO journal and created one" : "");
}

/// Reopens the journal (recovery runs), prints the report, checks it against what was acknowledged, closes it.
void reopen_journal(const storage_config& c, const flushkit::journal_options& opts, const append_ledger& led,
                    phase_result& r) {
  lsn_t max_acked = 0;
  for (const std::vector<lsn_t>& lsns : led.acked)
    for (const lsn_t lsn : lsns) max_acked = std::max(max_acked, lsn);
  asio::io_context idle; // the reopened journal takes no append: no handler runs there
  auto j = flushkit::journal::open(idle, c.dir.c_str(), opts);
  if (!j) {
    r.problems.push_back("reopening the journal: " + j.error().message());
    return;
  }
  const journal_recovery& rec = j->recovery();
  print_recovery(rec);
  if (rec.created) r.problems.push_back("recovery found no journal");
  if (led.counters.failed == 0 && (rec.records != r.acks || rec.last_lsn != max_acked))
    r.problems.push_back("recovery found " + grouped(rec.records) + " records up to LSN " + grouped(rec.last_lsn) +
                         ", not " + grouped(r.acks) + " up to " + grouped(max_acked));
  j->close_and_wait();
}

// ---- the naive engine: pwrite + fdatasync per append ------------------------------------

/// What a naive storage engine does: each append is one `pwrite` of the
/// framed record at the next offset and one `fdatasync`, before the next
/// append starts. The segment files are `segment_directory`'s (zero-filled
/// and synced when created, so fdatasync writes data only); the next one is
/// created when a record does not fit. One thread at a time (`append`).
class naive_log {
public:
  /// What `append` returns: success and the record's LSN, or the error.
  struct outcome {
    status st;
    lsn_t lsn = 0;
  };

  naive_log(segment_directory dir, std::size_t max_payload)
      : dir_(std::move(dir)), frame_(jf::segment_header_bytes + jf::record_bytes(max_payload)) {
    if (const status st = dir_.create(0))
      throw std::runtime_error("creating the baseline's segment in " + dir_.path() + ": " + st.message());
  }

  /// Appends `payload` as the next record and makes it durable.
  outcome append(std::span<const std::byte> payload) noexcept {
    const std::size_t rec = jf::record_bytes(payload.size());
    if (offset_ + rec > dir_.segment_bytes()) { // full: the next segment file, made now (a naive engine waits)
      if (const status st = dir_.create(index_ + 1)) return {st, 0};
      ++index_;
      offset_ = 0;
    }
    std::byte* p = frame_.data();
    std::size_t n = 0;
    if (offset_ == 0) { // a segment's header goes with its first record, as the journal writes it
      jf::encode_segment_header({index_, next_lsn_, dir_.segment_bytes()},
                                std::span<std::byte, jf::segment_header_bytes>(p, jf::segment_header_bytes));
      n = jf::segment_header_bytes;
    }
    jf::frame_record(p + n, payload, next_lsn_);
    n += rec;
    if (const status st = dir_.write(index_, offset_, std::span<const std::byte>(p, n))) return {st, 0}; // pwrite
    syncs_.fetch_add(1, std::memory_order_relaxed);
    if (const status st = dir_.sync(index_)) return {st, 0}; // fdatasync
    offset_ += n;
    return {{}, next_lsn_++};
  }
  /// fdatasync calls so far (any thread).
  std::uint64_t syncs() const noexcept { return syncs_.load(std::memory_order_relaxed); }
  /// Segment files used.
  std::uint64_t segments() const noexcept { return index_ + 1; }

private:
  segment_directory dir_;
  std::vector<std::byte> frame_;
  std::uint64_t index_ = 0, offset_ = 0;
  lsn_t next_lsn_ = 1;
  std::atomic<std::uint64_t> syncs_{0};
};

/// Runs on the I/O thread: one append, start to durable.
asio::awaitable<naive_log::outcome> append_on_io_thread(naive_log* log, std::span<const std::byte> payload) {
  co_return log->append(payload);
}

/// One appender of the baseline: until `stop`, hands record `seq` to the
/// I/O thread (which runs appends in arrival order, one at a time) and
/// waits for its durability; stops at the first failure.
asio::awaitable<void> baseline_appender(asio::thread_pool::executor_type io_thread, naive_log* log,
                                        append_ledger* led, std::uint32_t a, std::size_t bytes) {
  std::vector<std::byte> payload(bytes);
  for (std::uint64_t seq = 0; !led->counters.stop.load(std::memory_order_relaxed); ++seq) {
    fill_pattern(payload, a, seq);
    led->counters.submitted.fetch_add(1, std::memory_order_relaxed);
    const auto t0 = clock_type::now();
    const naive_log::outcome out =
        co_await asio::co_spawn(io_thread, append_on_io_thread(log, payload), asio::use_awaitable);
    led->record(a, seq, out.st, out.lsn, t0, clock_type::now());
    if (out.st) co_return;
  }
}

} // namespace

phase_result run_journal_phase(const storage_config& c) {
  print_phase(c.number, "storage engine: flushkit::journal (write-ahead log, group commit)",
              strprintf("%u coroutine appenders on one io_context; each: async_append of a %zu B record, co_await\n"
                        "until it is durable, next record. The journal's flusher thread takes all staged records,\n"
                        "writes them with one pwrite per segment touched, then one fdatasync.\n"
                        "log: %s (%s MiB segments)",
                        c.appenders, c.record_bytes, c.dir.c_str(), grouped(log_segment_bytes >> 20).c_str()));
  flushkit::journal_options opts;
  opts.segment_bytes = log_segment_bytes;
  append_ledger led(c.appenders);
  phase_result r;
  r.group = group_name(c);
  r.model = "flushkit::journal (group commit)";
  flushkit::journal_stats st;
  {
    loop_thread app; // the appenders' event loop
    auto j = flushkit::journal::open(app.io, c.dir.c_str(), opts);
    if (!j) throw std::runtime_error("journal::open " + c.dir + ": " + j.error().message());
    app.start();
    std::latch done(c.appenders);
    const auto t0 = clock_type::now(); // before the first append: co_spawn only queues the appenders
    for (std::uint32_t a = 0; a < c.appenders; ++a)
      asio::co_spawn(app.io, journal_appender(&*j, &led, a, c.record_bytes), appender_done{&led.counters, &done});
    run_window(c.seconds, t0, led.counters, "appends", [&] { return j->stats().flushes; });
    done.wait(); // every appender has its last append completed
    app.join();
    r.seconds = window_seconds(t0, led.counters);
    st = j->stats();
    j->close_and_wait();
  }
  fill_latency(r, led.counters);
  r.flushes = st.flushes;
  print_detail("%s appends durable in %s flushes (%.1f appends per write + fdatasync); %s segment rotations",
               grouped(st.appends).c_str(), grouped(st.flushes).c_str(), st.average_batch(),
               grouped(st.rotations).c_str());
  if (st.appends != r.acks)
    r.problems.push_back("the journal counted " + grouped(st.appends) + " appends, the appenders " + grouped(r.acks));

  reopen_journal(c, opts, led, r);
  const log_check k = check_log(c.dir, led, c.record_bytes); // what recovery left, read with a fresh reader
  print_check(k);
  r.to_verify = k.acked;
  r.verified = k.verified;
  judge(r, led, k);
  std::printf("\n");
  return r;
}

phase_result run_baseline_phase(const storage_config& c) {
  print_phase(c.number, "storage engine baseline: pwrite + fdatasync per append",
              strprintf("the same %u appenders and records; they hand each append to one I/O thread, which does\n"
                        "them one at a time in arrival order: pwrite of the framed record (the journal's format) at\n"
                        "the next offset of a zero-filled segment file, then fdatasync, then the next append.\n"
                        "log: %s (%s MiB segments)",
                        c.appenders, c.dir.c_str(), grouped(log_segment_bytes >> 20).c_str()));
  auto dir = segment_directory::open(c.dir.c_str(), {log_segment_bytes, pmem::preallocation::zero_fill, true});
  if (!dir) throw std::runtime_error("segment_directory " + c.dir + ": " + dir.error().message());
  append_ledger led(c.appenders);
  phase_result r;
  r.group = group_name(c);
  r.model = "pwrite + fdatasync per append";
  r.baseline = true;
  std::uint64_t syncs = 0, segments = 0;
  {
    naive_log log(std::move(dir).value(), c.record_bytes); // its first segment is made before the window
    asio::thread_pool io_thread(1);
    loop_thread app;
    app.start();
    std::latch done(c.appenders);
    const auto t0 = clock_type::now();
    for (std::uint32_t a = 0; a < c.appenders; ++a)
      asio::co_spawn(app.io, baseline_appender(io_thread.get_executor(), &log, &led, a, c.record_bytes),
                     appender_done{&led.counters, &done});
    run_window(c.seconds, t0, led.counters, "appends", [&] { return log.syncs(); });
    done.wait();
    app.join();
    io_thread.join();
    r.seconds = window_seconds(t0, led.counters);
    syncs = log.syncs();
    segments = log.segments();
  } // the files are closed
  fill_latency(r, led.counters);
  r.flushes = syncs;
  print_detail("%s appends durable with %s fdatasync calls, in %s segment file(s); closed",
               grouped(r.acks).c_str(), grouped(syncs).c_str(), grouped(segments).c_str());
  const log_check k = check_log(c.dir, led, c.record_bytes);
  print_check(k);
  r.to_verify = k.acked;
  r.verified = k.verified;
  judge(r, led, k);
  std::printf("\n");
  return r;
}

} // namespace flushkit::demo
