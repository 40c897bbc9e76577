// flushkit/core/region.hpp - a flushable region and its error policy (nvdimm_flush).
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/provider.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <atomic>
#include <optional>
#include <type_traits>
#include <utility>

namespace flushkit {

/// The error policy of `region`: success stays success, a resource shortage
/// (`no_memory`, or ENOMEM in any category) stays `no_memory`, and every other
/// provider error becomes `io_error`. Host and backend values never leak
/// through as their own codes.
[[nodiscard]] inline status region_error_policy(const status& st) noexcept {
  if (!st) return {};
  if (st == std::errc::not_enough_memory) return make_error_code(errc::no_memory);
  return make_error_code(errc::io_error);
}

/// A region of a medium together with its flush provider; the analog of
/// `nd_region` and `nvdimm_flush()`.
///
/// `Provider` is a provider type (held by value), a reference to one (held by
/// reference; the provider must outlive the region), or `no_provider`.
///
/// Capabilities: the region has each capability of its provider
/// (`dirty_tracking`, `durability()`, `usable()`, see core/capabilities.hpp),
/// forwarded unchanged; a device asks the region, never the provider type.
/// A chain of wrappers that loses a capability on the way does not compile.
template <class Provider = no_provider>
class region : public forward_capabilities<region<Provider>, std::remove_reference_t<Provider>> {
  static_assert(detail::check_provider<Provider>());
  using provider_type = std::remove_reference_t<Provider>;
  static_assert(detail::check_capability_chain<provider_type>());

public:
  /// True when the provider is an `async_flush_provider`: `flush(request&)` may return an asynchronous result.
  static constexpr bool is_async = async_flush_provider<provider_type>;
  /// True when the request-less `status flush()` is available (a synchronous provider, or `no_provider`).
  static constexpr bool has_sync_flush =
      sync_flush_provider<provider_type> || std::same_as<std::remove_cvref_t<Provider>, no_provider>;

  region() requires std::default_initializable<Provider> = default;
  /// A region holding `p` (moved in, or bound by reference for `Provider = P&`).
  explicit region(Provider p) : provider_(std::forward<Provider>(p)) {}
  /// A region whose provider is constructed in place from `args`.
  template <class... Args>
  explicit region(std::in_place_t, Args&&... args) : provider_(std::forward<Args>(args)...) {}

  /// The provider.
  provider_type& provider() noexcept { return provider_; }
  /// The provider.
  const provider_type& provider() const noexcept { return provider_; }

  /// Request-less flush: always synchronous. Returns the provider's status
  /// after the error policy. Requires a provider with `status flush()` or
  /// `no_provider`.
  [[nodiscard]] status flush() requires has_sync_flush {
    if constexpr (std::same_as<std::remove_cvref_t<Provider>, no_provider>) {
      std::atomic_thread_fence(std::memory_order_seq_cst);
      return {};
    } else {
      try {
        return region_error_policy(provider_.flush());
      } catch (...) {
        return make_error_code(errc::io_error); // a provider that throws failed the flush
      }
    }
  }

  /// Flush on behalf of `req`.
  ///
  /// Effects: a synchronous provider (or `no_provider`) flushes now and the
  /// result is synchronous. An asynchronous provider either answers now
  /// (synchronous result) or takes ownership of `req` (`is_async()`): it then
  /// completes `req` later, on its own executor, and the status it gives
  /// passes through the same error policy before it reaches the waiter.
  /// Returns: the result with `region_error_policy` applied. The region does
  /// not complete `req` for a synchronous result; the caller does. A
  /// provider that throws gives `io_error` (an asynchronous one that throws
  /// has not taken ownership of `req`); no exception leaves the region.
  /// Allocation: none.
  [[nodiscard]] flush_result flush(request& req) {
    if constexpr (is_async) {
      req.intercept_completion(&region::apply_policy, nullptr);
      std::optional<flush_result> attempted = guarded_flush(req);
      if (!attempted) { // it threw: it did not take ownership of `req`
        req.cancel_interception();
        return flush_result::done(make_error_code(errc::io_error));
      }
      const flush_result r = *attempted;
      if (r.is_async() && &r.handle().get_request() == &req) return r;
      // A handle for another request is a provider bug: reported, and `req`
      // fails now instead of waiting for a completion that never comes.
      FLUSHKIT_ASSERT(!r.is_async(), "provider returned a handle for another request");
      req.cancel_interception();
      return flush_result::done(r.is_async() ? make_error_code(errc::io_error) : region_error_policy(r.sync_status()));
    } else {
      return flush_result::done(flush());
    }
  }

private:
  std::optional<flush_result> guarded_flush(request& req) noexcept {
    try {
      return provider_.flush(req);
    } catch (...) {
      return std::nullopt;
    }
  }

  static void apply_policy(void*, request& req, const status& st) noexcept {
    req.complete(region_error_policy(st));
  }

  Provider provider_;
};

} // namespace flushkit
