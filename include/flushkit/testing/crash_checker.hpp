// flushkit/testing/crash_checker.hpp - crash-consistency checker: crash at every boundary, recover, check durability.
#pragma once

#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/testing/detail/seeded_random.hpp>
#include <flushkit/testing/volatile_cache.hpp>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace flushkit::testing {

/// One operation of a checker workload. Writes carry a pattern the checker
/// chooses (distinct per operation, never zero).
struct crash_op {
  req_op kind = req_op::write;       ///< `write` or `flush` (an empty PREFLUSH)
  req_flags flags = req_flags::none; ///< preflush and/or fua
  /// Byte offset of a write on the medium.
  std::uint32_t offset = 0;
  /// Bytes of a write (> 0).
  std::uint32_t length = 0;

  /// A write of `length` bytes at `offset` with `flags`.
  static crash_op write(std::uint32_t offset, std::uint32_t length, req_flags flags = req_flags::none) noexcept {
    return {req_op::write, flags, offset, length};
  }
  /// An empty PREFLUSH (flush everything completed before it).
  static crash_op flush() noexcept { return {req_op::flush, req_flags::preflush, 0, 0}; }
};

/// Where in a workload a crash point lies.
enum class boundary_kind : std::uint8_t {
  before_submit,   ///< operation `op` is about to be submitted
  write_noted,     ///< the cache recorded a data write
  flush_issued,    ///< the cache issued a flush (ticket taken)
  flush_completed, ///< the cache finished a flush, before the device answers
  completed,       ///< operation `op` completed (its status was delivered)
  end,             ///< after the last operation and the device's destruction (a synchronous provider's removal flush comes before)
};

/// What the recovered image got wrong.
enum class violation_kind : std::uint8_t {
  lost_durable_write, ///< a byte acknowledged as durable has another value
  corrupted,          ///< a byte holds a value no allowed write could have left there
  not_idempotent,     ///< recovering again (or crashing during recovery) changed the image
  hang,               ///< an operation never completed
};

/// One violation, with everything needed to replay it: `seed` (random trial
/// seed; replay with `run_random_trial(seed)`) or `workload` + `crash_point`
/// + `policy` (replay with `check_at`).
struct crash_violation {
  std::uint64_t seed = 0;        ///< random trial seed; 0 for an exhaustive run
  std::size_t workload = 0;      ///< number of the workload run by this checker (0-based)
  std::size_t crash_point = 0;   ///< boundary index within the workload
  /// Kind of the crash point.
  boundary_kind boundary = boundary_kind::end;
  std::size_t op = 0;            ///< operation at or after which the boundary lies
  /// The power-cut policy applied at the crash point.
  crash_policy policy{};
  /// What the recovered image got wrong.
  violation_kind kind = violation_kind::corrupted;
  std::size_t offset = 0;        ///< first bad byte
  /// The byte found at `offset`.
  std::uint8_t found = 0;
  std::uint8_t expected = 0;     ///< the durable value (or 0 when none was durable)

  /// One line naming every field, for test output.
  std::string to_string() const {
    static constexpr const char* kinds[] = {"lost_durable_write", "corrupted", "not_idempotent", "hang"};
    static constexpr const char* bounds[] = {"before_submit", "write_noted", "flush_issued",
                                             "flush_completed", "completed", "end"};
    return std::string(kinds[static_cast<int>(kind)]) + " seed=" + std::to_string(seed) +
           " workload=" + std::to_string(workload) + " crash_point=" + std::to_string(crash_point) + " (" +
           bounds[static_cast<int>(boundary)] + " op " + std::to_string(op) + ") policy=" + policy.to_string() +
           " offset=" + std::to_string(offset) + " found=" + std::to_string(found) +
           " expected=" + std::to_string(expected);
  }
};

/// Counts of a run (or of several, added with `+=`).
struct crash_report {
  std::size_t workloads = 0;     ///< workload runs that simulated crashes
  std::size_t crash_points = 0;  ///< boundaries at which crashes were simulated
  std::size_t crash_states = 0;  ///< (crash point, policy) pairs recovered and checked
  std::size_t random_trials = 0; ///< seeded random trials (one crash state each)
  /// Crash states (or trials) whose recovered image broke an invariant.
  std::size_t violations = 0;
  std::vector<crash_violation> examples; ///< the first `crash_checker_options::max_examples` of each run

  /// Adds the counts of `o` and appends its examples.
  crash_report& operator+=(const crash_report& o) {
    workloads += o.workloads;
    crash_points += o.crash_points;
    crash_states += o.crash_states;
    random_trials += o.random_trials;
    violations += o.violations;
    examples.insert(examples.end(), o.examples.begin(), o.examples.end());
    return *this;
  }
};

/// Options of `crash_checker`.
struct crash_checker_options {
  /// Bytes of the simulated medium.
  std::size_t medium_size = 8192;
  /// Log entries of the simulated cache (see `volatile_cache_options`).
  std::size_t log_entries = 64;
  /// Log bytes of the simulated cache (see `volatile_cache_options`).
  std::size_t log_bytes = 64 * 1024;
  /// The simulated cache finds writes itself (`volatile_cache_options::track_stores`),
  /// for devices under test in which no layer calls `note_dirty`.
  bool track_stores = false;
  /// Exhaustive runs enumerate every subset of the pending writes (in both
  /// orders) up to this many pending writes; beyond, every prefix.
  std::size_t max_subset_writes = 6;
  /// Seeds per randomised policy (random_subset, and torn per unit) at each
  /// exhaustive crash point.
  std::size_t seeds_per_policy = 2;
  /// Atomic units (bytes) of the `torn` policies tried at each exhaustive crash point.
  std::array<std::size_t, 4> torn_units{8, 64, 512, 4096};
  std::uint64_t seed = 1;              ///< base of the policy seeds of exhaustive runs
  std::size_t min_random_ops = 5;      ///< random trials: workload length range
  /// Random trials: longest workload.
  std::size_t max_random_ops = 20;
  /// Most violations kept in `crash_report::examples` per run.
  std::size_t max_examples = 16;
};

/// A device under test: anything that takes a request.
template <class D>
concept crash_device = requires(D& d, request& r) { d.submit(r); };

/// Device options for a device over a `volatile_cache`'s view: the view is
/// ordinary heap memory (persistence `none`), said up front so building a
/// device per run does not ask the kernel about the mapping each time.
inline pmem::device_options cache_device_options() noexcept {
  pmem::device_options o;
  o.medium = pmem::persistence::none;
  return o;
}

/// The default device under test: a `pmem::pmem_device` whose region's
/// provider is the checker's `volatile_cache` (synchronous flushes).
/// The checker drives it through `submit` only; its executor (where handlers
/// of `async_*` calls would run) is an `io_context` the factory owns.
struct pmem_under_test {
  /// The device type.
  using device_type = pmem::pmem_device<region<volatile_cache&>, boost::asio::io_context::executor_type>;
  /// Returns a device over `cache.medium()` whose region's provider is `cache`.
  device_type operator()(volatile_cache& cache) const {
    return device_type(io->get_executor(), cache.medium(), cache_device_options(), cache);
  }
  /// The execution context of the devices built.
  std::shared_ptr<boost::asio::io_context> io = std::make_shared<boost::asio::io_context>(1);
};

/// Crash-consistency checker.
///
/// Runs a workload of writes (plain, PREFLUSH, FUA) and empty flushes, one
/// operation at a time, through the device `Factory` builds over a fresh
/// `volatile_cache` (`Factory` is invocable as `f(volatile_cache&)` and
/// returns a `crash_device`; if the device has `std::size_t poll_one()`, the
/// checker calls it until the current operation completes, so asynchronous
/// devices are driven deterministically on the calling thread).
///
/// At every boundary (`boundary_kind`) it copies the cache, crashes the copy
/// with a policy, recovers it and checks:
///  1. every byte of a write acknowledged as durable (a FUA write completed
///     with success, or a write completed before a PREFLUSH that was
///     submitted after it and completed with success) and not overwritten by
///     a later submitted write holds that write's value;
///  2. every other byte holds the newest durable value or the value of a
///     write submitted after it (nothing else: no old, no foreign bytes);
///  3. recovering again, and crashing (drop_all) then recovering, give the
///     same image.
///
/// A hang stops the run; the device is then destroyed with that request
/// still in flight, so a device that cannot survive this may misbehave after
/// reporting the hang. Not thread-safe: one checker per thread. Allocates (it
/// is a test tool).
template <class Factory = pmem_under_test> class crash_checker {
public:
  /// A checker with `opts`; `factory(cache)` builds the device under test for each run.
  explicit crash_checker(const crash_checker_options& opts = {}, Factory factory = {})
      : opts_(opts), factory_(std::move(factory)), cache_(cache_options(opts)), scratch_(cache_options(opts)),
        first_image_(opts.medium_size), expected_(opts.medium_size), owner_(opts.medium_size) {}
  crash_checker(const crash_checker&) = delete;
  crash_checker& operator=(const crash_checker&) = delete;

  /// Crashes at every boundary of `workload` with every finite policy (drop
  /// all; every subset of the pending writes in both orders, or every prefix
  /// when there are more than `max_subset_writes`) and `seeds_per_policy`
  /// seeds of random_subset and of torn at each unit.
  crash_report run_exhaustive(std::span<const crash_op> workload) {
    mode_ = mode::exhaustive;
    return run(workload, 0);
  }

  /// `trials` seeded random trials with seeds `first_seed`, `first_seed + 1`, ...
  crash_report run_random(std::uint64_t first_seed, std::size_t trials) {
    crash_report total;
    for (std::size_t t = 0; t < trials; ++t) total += run_random_trial(first_seed + t);
    return total;
  }

  /// One random trial: a workload of `min_random_ops..max_random_ops`
  /// operations, one crash point and one policy, all drawn from `seed`.
  crash_report run_random_trial(std::uint64_t seed) {
    const std::vector<crash_op> w = random_workload(seed, opts_);
    mode_ = mode::count;
    run(w, seed);
    detail::seeded_random rng(detail::mix_seed(seed, 0xc7a5));
    target_ = rng.below(boundaries_);
    policy_ = random_policy(rng);
    mode_ = mode::single;
    crash_report r = run(w, seed);
    r.random_trials = 1;
    return r;
  }

  /// Replays one crash state of an exhaustive run.
  crash_report check_at(std::span<const crash_op> workload, std::size_t crash_point, const crash_policy& policy) {
    target_ = crash_point;
    policy_ = policy;
    mode_ = mode::single;
    return run(workload, 0);
  }

  /// The workload of a random trial.
  static std::vector<crash_op> random_workload(std::uint64_t seed, const crash_checker_options& opts) {
    detail::seeded_random rng(seed);
    const std::size_t span = opts.max_random_ops - std::min(opts.min_random_ops, opts.max_random_ops) + 1;
    std::vector<crash_op> w(opts.min_random_ops + rng.below(span));
    for (crash_op& op : w) op = random_op(rng, opts.medium_size);
    return w;
  }

  /// Everything this checker found so far.
  const crash_report& total() const noexcept { return total_; }
  /// The construction options.
  const crash_checker_options& options() const noexcept { return opts_; }

private:
  enum class mode : std::uint8_t { count, single, exhaustive };

  struct op_record {
    std::uint64_t submitted = 0; // clock value at submission (0: not submitted)
    std::uint64_t completed = 0; // clock value at completion (0: not completed)
    status st;
  };

  static volatile_cache_options cache_options(const crash_checker_options& o) {
    return {o.medium_size, o.log_entries, o.log_bytes, o.track_stores};
  }

  static std::uint8_t pattern(std::size_t op, std::size_t pos) noexcept {
    return static_cast<std::uint8_t>(1 + (37 * op + 11 * pos) % 251);
  }

  static crash_op random_op(detail::seeded_random& rng, std::size_t medium) {
    static constexpr req_flags kinds[] = {req_flags::none, req_flags::fua, req_flags::preflush,
                                          req_flags::preflush | req_flags::fua};
    if (rng.below(6) == 0) return crash_op::flush();
    const std::size_t len = 1 + (rng.below(8) == 0 ? rng.below(std::min<std::size_t>(medium, 6000))
                                                   : rng.below(std::min<std::size_t>(medium, 700)));
    const std::size_t off = rng.below(medium - len + 1);
    return crash_op::write(static_cast<std::uint32_t>(off), static_cast<std::uint32_t>(len), kinds[rng.below(4)]);
  }

  crash_policy random_policy(detail::seeded_random& rng) const {
    switch (rng.below(5)) {
    case 0: return crash_policy::drop_all();
    case 1: return crash_policy::keep(rng.next(), rng.coin() ? apply_order::newest_first : apply_order::oldest_first);
    case 2: return crash_policy::random_subset(rng.next());
    default: return crash_policy::torn(opts_.torn_units[rng.below(opts_.torn_units.size())], rng.next());
    }
  }

  // One pass over the workload, simulating crashes as `mode_` says.
  crash_report run(std::span<const crash_op> w, std::uint64_t seed) {
    report_ = {};
    ops_ = w;
    seed_ = seed;
    prepare_buffers(w);
    cache_.reset();
    cache_.set_hook(&crash_checker::on_cache_event, this);
    clock_ = 0;
    boundaries_ = 0;
    current_op_ = 0;
    {
      auto dev = factory_(cache_);
      static_assert(crash_device<decltype(dev)>, "crash_checker: the factory must return a device with submit(request&)");
      for (std::size_t i = 0; i < w.size() && execute(dev, i); ++i) {}
      current_op_ = w.size(); // the device's removal flush, if it has one, gives two more boundaries
    }
    at_boundary(boundary_kind::end);
    cache_.set_hook(nullptr, nullptr);
    if (mode_ != mode::count) {
      report_.workloads = 1;
      ++workload_index_;
      total_ += report_;
      if (total_.examples.size() > opts_.max_examples) total_.examples.resize(opts_.max_examples);
    }
    return report_;
  }

  void prepare_buffers(std::span<const crash_op> w) {
    if (requests_size_ < w.size()) {
      requests_ = std::make_unique<request[]>(w.size());
      requests_size_ = w.size();
    }
    records_.assign(w.size(), op_record{});
    segments_.resize(w.size());
    data_.resize(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
      data_[i].resize(w[i].length);
      std::uint8_t* out = data_[i].data();
      std::size_t v = pattern(i, w[i].offset) - 1u; // pattern(i, pos + 1) = pattern(i, pos) + 11 (mod 251)
      for (std::size_t k = 0; k < w[i].length; ++k, v = (v + 11) % 251) out[k] = static_cast<std::uint8_t>(v + 1);
      segments_[i] = {data_[i].data(), data_[i].size()};
    }
  }

  // Submits operation i and drives the device until it completes. Returns
  // false on a hang (the run stops; the request is abandoned).
  template <class Device> bool execute(Device& dev, std::size_t i) {
    current_op_ = i;
    at_boundary(boundary_kind::before_submit);
    request& req = requests_[i];
    const crash_op& op = ops_[i];
    const std::span<const segment> segs =
        op.kind == req_op::write ? std::span<const segment>(&segments_[i], 1) : std::span<const segment>();
    req.prepare(op.kind, op.offset, segs, op.flags);
    req.on_complete(&crash_checker::on_request_done, this);
    records_[i].submitted = ++clock_;
    dev.submit(req);
    while (!req.completed()) {
      if constexpr (requires { dev.poll_one(); }) {
        // poll_one() returning 0 means nothing is ready: the operation hangs.
        if (dev.poll_one() != 0) continue;
      }
      add_violation(violation_kind::hang, crash_policy::drop_all(), 0, 0, 0);
      return false;
    }
    return true;
  }

  static void on_request_done(void* self, request& req, const status& st) {
    auto* c = static_cast<crash_checker*>(self);
    const auto i = static_cast<std::size_t>(&req - c->requests_.get());
    c->records_[i].completed = ++c->clock_;
    c->records_[i].st = st;
    c->at_boundary(boundary_kind::completed);
  }

  static void on_cache_event(void* self, cache_event ev, volatile_cache&) {
    auto* c = static_cast<crash_checker*>(self);
    c->at_boundary(ev == cache_event::write_noted    ? boundary_kind::write_noted
                   : ev == cache_event::flush_issued ? boundary_kind::flush_issued
                                                     : boundary_kind::flush_completed);
  }

  void at_boundary(boundary_kind kind) {
    const std::size_t index = boundaries_++;
    if (mode_ == mode::count || (mode_ == mode::single && index != target_)) return;
    point_ = index;
    boundary_ = kind;
    build_oracle();
    ++report_.crash_points;
    if (mode_ == mode::single) return check(policy_);
    for_each_policy([this](const crash_policy& p) { check(p); });
  }

  template <class Fn> void for_each_policy(Fn&& fn) {
    fn(crash_policy::drop_all());
    const std::size_t pending = cache_.pending_writes();
    if (pending == 0) return;
    if (pending <= opts_.max_subset_writes && pending < 64) {
      for (std::uint64_t mask = 1; mask < (std::uint64_t{1} << pending); ++mask) {
        fn(crash_policy::keep(mask, apply_order::oldest_first));
        if (std::popcount(mask) > 1) fn(crash_policy::keep(mask, apply_order::newest_first));
      }
    } else {
      for (std::size_t k = 1; k <= pending; ++k) fn(crash_policy::prefix(k));
    }
    for (std::size_t s = 0; s < opts_.seeds_per_policy; ++s) {
      const std::uint64_t seed = detail::mix_seed(opts_.seed, (workload_index_ << 32) ^ (point_ << 8) ^ s);
      fn(crash_policy::random_subset(seed));
      for (std::size_t unit : opts_.torn_units) fn(crash_policy::torn(unit, seed + unit));
    }
  }

  // A write is acknowledged durable at the crash point when it completed with
  // success and either had FUA, or a PREFLUSH submitted after its completion
  // completed with success.
  bool acknowledged_durable(std::size_t i) const {
    const op_record& r = records_[i];
    if (ops_[i].kind != req_op::write || r.completed == 0 || r.st) return false;
    if (has(ops_[i].flags, req_flags::fua)) return true;
    for (std::size_t j = 0; j < ops_.size(); ++j) {
      const op_record& f = records_[j];
      if (has(ops_[j].flags, req_flags::preflush) && f.completed != 0 && !f.st && r.completed < f.submitted)
        return true;
    }
    return false;
  }

  // owner_[b]: the newest acknowledged-durable operation that wrote byte b
  // (-1: none); expected_[b]: its value there (0: none).
  void build_oracle() {
    std::fill(owner_.begin(), owner_.end(), -1);
    std::memset(expected_.data(), 0, expected_.size());
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      if (!acknowledged_durable(i)) continue;
      std::fill_n(owner_.begin() + ops_[i].offset, ops_[i].length, static_cast<int>(i));
      std::memcpy(expected_.data() + ops_[i].offset, data_[i].data(), ops_[i].length);
    }
  }

  std::uint8_t durable_value(std::size_t b) const noexcept { return static_cast<std::uint8_t>(expected_[b]); }

  // Could byte b hold `v` after a crash? The durable value, or the value of
  // a write submitted after the durable owner.
  bool allowed(std::size_t b, std::uint8_t v) const noexcept {
    if (v == durable_value(b)) return true;
    for (std::size_t k = static_cast<std::size_t>(owner_[b] + 1); k < ops_.size(); ++k) {
      const crash_op& op = ops_[k];
      if (records_[k].submitted != 0 && op.kind == req_op::write && b >= op.offset && b - op.offset < op.length &&
          data_[k][b - op.offset] == v)
        return true;
    }
    return false;
  }

  void check(const crash_policy& p) {
    ++report_.crash_states;
    scratch_.assign(cache_);
    scratch_.set_hook(nullptr, nullptr);
    scratch_.crash(p);
    const std::span<const std::byte> image = scratch_.recover();
    check_image(image, p);
    std::memcpy(first_image_.data(), image.data(), image.size());
    check_same(scratch_.recover(), p);
    scratch_.crash(crash_policy::drop_all());
    check_same(scratch_.recover(), p);
  }

  void check_image(std::span<const std::byte> image, const crash_policy& p) {
    constexpr std::size_t block = 64;
    for (std::size_t start = 0; start < image.size(); start += block) {
      const std::size_t n = std::min(block, image.size() - start);
      if (std::memcmp(image.data() + start, expected_.data() + start, n) == 0) continue;
      for (std::size_t b = start; b < start + n; ++b) {
        const auto v = static_cast<std::uint8_t>(image[b]);
        if (allowed(b, v)) continue;
        const bool was_durable = owner_[b] >= 0;
        add_violation(was_durable ? violation_kind::lost_durable_write : violation_kind::corrupted, p, b, v,
                      durable_value(b));
        return; // one violation per crash state
      }
    }
  }

  void check_same(std::span<const std::byte> again, const crash_policy& p) {
    if (std::memcmp(again.data(), first_image_.data(), again.size()) == 0) return;
    const auto diff = std::mismatch(again.begin(), again.end(), first_image_.begin());
    if (diff.first == again.end()) return;
    const auto b = static_cast<std::size_t>(diff.first - again.begin());
    add_violation(violation_kind::not_idempotent, p, b, static_cast<std::uint8_t>(*diff.first),
                  static_cast<std::uint8_t>(*diff.second));
  }

  void add_violation(violation_kind kind, const crash_policy& p, std::size_t offset, std::uint8_t found,
                     std::uint8_t expected) {
    ++report_.violations;
    if (report_.examples.size() >= opts_.max_examples) return;
    report_.examples.push_back(
        {seed_, workload_index_, point_, boundary_, current_op_, p, kind, offset, found, expected});
  }

  crash_checker_options opts_;
  Factory factory_;
  volatile_cache cache_;
  volatile_cache scratch_;
  std::vector<std::byte> first_image_;
  std::vector<std::byte> expected_; // durable_value of every byte
  std::vector<int> owner_;
  std::unique_ptr<request[]> requests_;
  std::size_t requests_size_ = 0;
  std::vector<op_record> records_;
  std::vector<segment> segments_;
  std::vector<std::vector<std::uint8_t>> data_;
  std::span<const crash_op> ops_;
  mode mode_ = mode::exhaustive;
  std::size_t target_ = 0;
  crash_policy policy_{};
  std::uint64_t seed_ = 0;
  std::uint64_t clock_ = 0;
  std::size_t boundaries_ = 0;
  std::size_t point_ = 0;
  boundary_kind boundary_ = boundary_kind::end;
  std::size_t current_op_ = 0;
  std::size_t workload_index_ = 0;
  crash_report report_;
  crash_report total_;
};

} // namespace flushkit::testing
