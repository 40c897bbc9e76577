#include <flushkit/core/capabilities.hpp>

#include <flushkit/core/provider.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/testing/volatile_cache.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace fk = flushkit;

namespace {

/// A provider wrapper that counts flushes and forwards everything else.
template <class Inner>
class counting_wrapper : public flushkit::forward_capabilities<counting_wrapper<Inner>, Inner> {
public:
  explicit counting_wrapper(Inner& inner) : inner_(&inner) {}
  Inner& provider() noexcept { return *inner_; }
  const Inner& provider() const noexcept { return *inner_; }
  flushkit::status flush() {
    ++flushes;
    return inner_->flush();
  }
  std::uint64_t flushes = 0;

private:
  Inner* inner_;
};

/// Every capability, observable.
struct full_provider {
  fk::status flush() { return {}; }
  void note_dirty(const void*, std::size_t len) { noted += len; }
  fk::durability_scope durability() const noexcept { return fk::durability_scope::cpu_cache; }
  fk::status usable() const noexcept { return make_error_code(fk::errc::not_supported); }
  std::size_t noted = 0;
};

/// No capability.
struct plain_provider {
  fk::status flush() { return {}; }
};

/// Exposes provider() but forwards nothing: the chain check rejects it
/// (as a static_assert, see tests/compile_fail/hides_note_dirty.cpp).
struct forgetful {
  full_provider* p;
  full_provider& provider() { return *p; }
  fk::status flush() { return {}; }
};

static_assert(fk::dirty_tracking<full_provider> && fk::declares_durability<full_provider> &&
              fk::reports_usability<full_provider>);
static_assert(!fk::dirty_tracking<plain_provider> && !fk::declares_durability<plain_provider> &&
              !fk::reports_usability<plain_provider>);
// The helper gives a wrapper exactly its provider's capabilities.
static_assert(fk::dirty_tracking<counting_wrapper<full_provider>> &&
              fk::declares_durability<counting_wrapper<full_provider>> &&
              fk::reports_usability<counting_wrapper<full_provider>>);
static_assert(!fk::dirty_tracking<counting_wrapper<plain_provider>> &&
              !fk::declares_durability<counting_wrapper<plain_provider>> &&
              !fk::reports_usability<counting_wrapper<plain_provider>>);
static_assert(fk::provider_wrapper<counting_wrapper<plain_provider>> && !fk::provider_wrapper<plain_provider>);
static_assert(fk::detail::check_capability_chain<counting_wrapper<counting_wrapper<full_provider>>>());
static_assert(fk::provider_wrapper<forgetful> && !fk::dirty_tracking<forgetful>);
// The chain check follows provider() whether it returns a reference or a pointer.
struct points_to_inner {
  full_provider* p;
  full_provider* provider() { return p; }
  fk::status flush() { return {}; }
};
static_assert(std::is_same_v<fk::detail::wrapped_provider_t<points_to_inner>, full_provider>);
static_assert(std::is_same_v<fk::detail::wrapped_provider_t<forgetful>, full_provider>);
// A region is a wrapper too, and a device asks it.
static_assert(fk::dirty_tracking<fk::region<counting_wrapper<full_provider>>>);
static_assert(!fk::dirty_tracking<fk::region<plain_provider>> && !fk::dirty_tracking<fk::region<>>);

} // namespace

TEST_SUITE("core/capabilities") {

TEST_CASE("forwarded capabilities reach the innermost provider") {
  full_provider inner;
  counting_wrapper<full_provider> once(inner);
  counting_wrapper<counting_wrapper<full_provider>> twice(once);
  fk::region<counting_wrapper<counting_wrapper<full_provider>>&> r(twice);
  r.note_dirty(&inner, 7);
  CHECK(inner.noted == 7);
  CHECK(fk::durability_of(r) == fk::durability_scope::cpu_cache);
  CHECK(fk::usability_of(r) == fk::errc::not_supported);
  CHECK_FALSE(r.flush());
  CHECK(once.flushes == 1);
  CHECK(twice.flushes == 1);
}

TEST_CASE("a provider that says nothing is unspecified and usable") {
  plain_provider p;
  CHECK(fk::durability_of(p) == fk::durability_scope::unspecified);
  CHECK_FALSE(fk::usability_of(p));
  const fk::region<plain_provider> r;
  CHECK(fk::durability_of(r) == fk::durability_scope::unspecified);
}

TEST_CASE("the region forwards note_dirty to a volatile cache: the write becomes pending") {
  fk::testing::volatile_cache cache({4096});
  counting_wrapper<fk::testing::volatile_cache> w(cache);
  fk::region<counting_wrapper<fk::testing::volatile_cache>&> r(w);
  cache.medium()[10] = std::byte{1};
  r.note_dirty(cache.medium().data() + 10, 1);
  CHECK(cache.pending_writes() == 1);
  CHECK_FALSE(r.flush());
  CHECK(cache.pending_writes() == 0);
  CHECK(cache.durable()[10] == std::byte{1});
}

} // TEST_SUITE
