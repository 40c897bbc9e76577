// bench/harness.cpp - closed-loop driver: slots, measured window, snapshots.
#include "harness.hpp"

#include "alloc_counter.hpp"
#include "histogram.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <time.h>
#include <unistd.h>

namespace flushkit::bench {

namespace {

using clock_type = std::chrono::steady_clock;

// op::state: who re-issues a slot whose completion raced with its submit.
enum slot_state : int { idle = 0, submitting = 1, done_in_submit = 2 };

std::uint64_t ns_between(clock_type::time_point a, clock_type::time_point b) noexcept {
  const auto d = std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
  return d > 0 ? static_cast<std::uint64_t>(d) : 0;
}

// CPU time of the whole process (every thread, user + sys) in ns.
std::uint64_t process_cpu_ns() noexcept {
  struct ::timespec ts {};
  if (::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

struct snapshot {
  clock_type::time_point at;
  std::uint64_t acks, errors, allocs, flushes, cpu_ns;
  std::int64_t device_flushes;
};

} // namespace

class harness {
public:
  harness(workload& w, const run_params& p) : w_(w), p_(p), ops_(new op[p.inflight]) {
    for (std::size_t i = 0; i < p.inflight; ++i) {
      ops_[i].index = i;
      ops_[i].owner = this;
      ops_[i].seg = {ops_[i].data.data(), ops_[i].data.size()};
    }
  }

  run_result run() {
    outstanding_.store(p_.inflight);
    kick();
    wait_phase("warm-up", p_.warmup);
    const snapshot a = take();
    measuring_.store(true, std::memory_order_release);
    wait_phase("measure", p_.seconds);
    const snapshot b = take();
    measuring_.store(false, std::memory_order_release);
    stop();
    return result(a, b);
  }

  void complete(op& o, const status& st) noexcept {
    if (o.timed && measuring_.load(std::memory_order_acquire))
      ack_latency_.record(ns_between(o.started, clock_type::now()));
    acks_.fetch_add(1, std::memory_order_relaxed);
    if (st) errors_.fetch_add(1, std::memory_order_relaxed);
    int expected = submitting;
    if (o.state.compare_exchange_strong(expected, done_in_submit, std::memory_order_acq_rel)) return;
    issue(o);
  }

private:
  // Issues `o` until a submit returns before its completion (or until stop).
  void issue(op& o) noexcept {
    for (;;) {
      if (stopping_.load(std::memory_order_acquire)) return retire();
      ++o.seq;
      o.offset = ((o.seq * p_.inflight + o.index) % p_.blocks) * block_size;
      std::memcpy(o.data.data(), &o.seq, sizeof o.seq);
      o.timed = (o.seq & p_.sample_mask) == 0;
      if (o.timed) o.started = clock_type::now();
      o.state.store(submitting, std::memory_order_release);
      w_.submit(o);
      if (o.timed && measuring_.load(std::memory_order_acquire))
        submit_latency_.record(ns_between(o.started, clock_type::now()));
      int expected = submitting;
      if (o.state.compare_exchange_strong(expected, idle, std::memory_order_acq_rel)) return;
    }
  }

  void retire() noexcept {
    if (outstanding_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    std::lock_guard lk(mu_);
    all_retired_ = true;
    cv_.notify_all();
  }

  void kick() {
    for (std::size_t i = 0; i < p_.inflight; ++i) {
      op& o = ops_[i];
      if (p_.blocking)
        threads_.emplace_back([this, &o] { issue(o); });
      else
        issue(o);
    }
  }

  void stop() {
    stopping_.store(true, std::memory_order_release);
    std::unique_lock lk(mu_);
    cv_.wait(lk, [this] { return all_retired_; });
    lk.unlock();
    for (std::thread& t : threads_) t.join();
    if (p_.progress) static_cast<void>(!::write(STDERR_FILENO, "\r\033[K", 4));
  }

  // Sleeps `seconds`, refreshing the progress line every 100 ms.
  void wait_phase(const char* phase, double seconds) {
    const auto end = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                             std::chrono::duration<double>(seconds));
    for (auto now = clock_type::now(); now < end; now = clock_type::now()) {
      std::this_thread::sleep_for(std::min<clock_type::duration>(end - now, std::chrono::milliseconds(100)));
      if (p_.progress) show_progress(phase, seconds - std::chrono::duration<double>(end - clock_type::now()).count(), seconds);
    }
  }

  // Formats into a stack buffer and write()s it: no allocation in the window.
  void show_progress(const char* phase, double elapsed, double total) const noexcept {
    char line[160];
    const int n = std::snprintf(line, sizeof line, "\r\033[K[%s] %-18s inflight=%-3zu %-7s %5.1f/%.1f s  %llu acks",
                                p_.scenario.c_str(), p_.model.c_str(), p_.inflight, phase, elapsed, total,
                                static_cast<unsigned long long>(acks_.load(std::memory_order_relaxed)));
    if (n > 0) static_cast<void>(!::write(STDERR_FILENO, line, std::min(static_cast<std::size_t>(n), sizeof line - 1)));
  }

  snapshot take() const noexcept {
    return {clock_type::now(),
            acks_.load(std::memory_order_relaxed),
            errors_.load(std::memory_order_relaxed),
            allocations(),
            w_.flushes(),
            process_cpu_ns(),
            p_.device_flushes ? p_.device_flushes(p_.device_context) : -1};
  }

  run_result result(const snapshot& a, const snapshot& b) const {
    run_result r;
    r.scenario = p_.scenario;
    r.model = p_.model;
    r.inflight = p_.inflight;
    r.ops = b.acks - a.acks;
    r.errors = b.errors - a.errors;
    r.seconds = std::chrono::duration<double>(b.at - a.at).count();
    r.flushes = b.flushes - a.flushes;
    const double ops = r.ops > 0 ? static_cast<double>(r.ops) : 1.0;
    if (alloc_counting_enabled()) r.allocs_per_op = static_cast<double>(b.allocs - a.allocs) / ops;
    r.cpu_us_per_ack = static_cast<double>(b.cpu_ns - a.cpu_ns) / 1e3 / ops;
    r.bytes_per_request = w_.bytes_per_request();
    if (a.device_flushes >= 0 && b.device_flushes >= a.device_flushes)
      r.device_flushes_per_ack = static_cast<double>(b.device_flushes - a.device_flushes) / ops;
    r.p50_us = ack_latency_.quantile(0.50) / 1e3;
    r.p99_us = ack_latency_.quantile(0.99) / 1e3;
    r.submit_p50_ns = submit_latency_.quantile(0.50);
    r.submit_p99_ns = submit_latency_.quantile(0.99);
    return r;
  }

  workload& w_;
  const run_params& p_;
  std::unique_ptr<op[]> ops_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> measuring_{false};
  std::atomic<std::uint64_t> acks_{0};
  std::atomic<std::uint64_t> errors_{0};
  std::atomic<std::size_t> outstanding_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool all_retired_ = false;
  histogram ack_latency_;
  histogram submit_latency_;
};

void op::done(const status& st) noexcept { owner->complete(*this, st); }

void op::prepare_fua_write() noexcept {
  req.prepare(req_op::write, offset, {&seg, 1}, req_flags::fua);
  req.on_complete([](void* ctx, request&, const status& st) { static_cast<op*>(ctx)->done(st); }, this);
}

run_result run_closed_loop(workload& w, const run_params& p) {
  auto h = std::make_unique<harness>(w, p);
  return h->run();
}

} // namespace flushkit::bench
