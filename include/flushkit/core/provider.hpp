// flushkit/core/provider.hpp - what a flush provider is (nd_region->flush).
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <concepts>
#include <type_traits>

namespace flushkit {

/// A provider whose flush finishes before it returns: `status flush()`.
/// Effects: everything written to the provider's medium before the call is
/// durable when it returns success.
template <class P>
concept sync_flush_provider = requires(P& p) {
  { p.flush() } -> std::same_as<status>;
};

/// A provider that may complete a flush later: `flush_result flush(request&)`.
/// It either returns `flush_result::done(st)` (finished now, the caller
/// completes the request), or `flush_result::async(req)` after taking
/// ownership: it must then call `req.complete(st)` exactly once, with success
/// only once everything written before the call is durable.
template <class P>
concept async_flush_provider = requires(P& p, request& r) {
  { p.flush(r) } -> std::same_as<flush_result>;
};

/// Either kind of provider.
template <class P>
concept flush_provider = sync_flush_provider<P> || async_flush_provider<P>;

/// The provider of a region that has no flush callback: its flush is a store
/// fence and always succeeds (the kernel's generic_nvdimm_flush). A fence
/// writes nothing back, so it declares `durability_scope::none`: a device
/// over a file or MAP_SYNC medium refuses it.
struct no_provider {
  /// Capability: nothing becomes durable.
  durability_scope durability() const noexcept { return durability_scope::none; }
};

namespace detail {

template <class P> constexpr bool check_provider() {
  using T = std::remove_cvref_t<P>;
  static_assert(flush_provider<T> || std::same_as<T, no_provider>,
                "flushkit: this type is not a flush provider. A provider has either "
                "`flushkit::status flush()` (synchronous) or "
                "`flushkit::flush_result flush(flushkit::request&)` (asynchronous); "
                "see docs/providers.md");
  return true;
}

} // namespace detail

} // namespace flushkit
