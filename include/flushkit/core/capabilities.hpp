// flushkit/core/capabilities.hpp - optional provider capabilities, and the one helper every wrapper forwards them with.
#pragma once

#include <flushkit/core/status.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace flushkit {

/// Capability: the provider must be told which bytes a data step wrote
/// (`void note_dirty(const void* addr, std::size_t len)`), and its flush makes
/// durable only what it was told about (cache-line write-back, a simulated
/// volatile cache). A device calls it after the bytes reached the medium and
/// before it flushes on behalf of that write.
template <class P>
concept dirty_tracking = requires(P& p, const void* addr, std::size_t len) { p.note_dirty(addr, len); };

/// From where a provider's successful flush makes stores durable.
enum class durability_scope : std::uint8_t {
  unspecified, ///< the provider does not say; accepted with any medium
  none,        ///< nothing becomes durable (a volatile region, or no write-back instruction)
  page_cache,  ///< stores to a shared file mapping reach stable storage (msync / fdatasync)
  cpu_cache,   ///< stores leave the CPU cache for the memory's persistence domain: durable on
               ///< MAP_SYNC (DAX) or real pmem only, not on a page-cache mapping
};

/// Capability: the provider declares its scope
/// (`durability_scope durability() const noexcept`).
template <class P>
concept declares_durability = requires(const P& p) {
  { p.durability() } noexcept -> std::same_as<durability_scope>;
};

/// Capability: the provider can say whether it works at all on this machine
/// (`status usable() const noexcept`; success when it does). A device built
/// over a provider that is not usable refuses every request with that status.
template <class P>
concept reports_usability = requires(const P& p) {
  { p.usable() } noexcept -> std::same_as<status>;
};

/// The scope `p` declares, or `unspecified`.
template <class P> durability_scope durability_of(const P& p) noexcept {
  if constexpr (declares_durability<P>)
    return p.durability();
  else
    return durability_scope::unspecified;
}

/// Whether `p` works here: its `usable()`, or success when it does not say.
template <class P> status usability_of(const P& p) noexcept {
  if constexpr (reports_usability<P>)
    return p.usable();
  else
    return {};
}

/// A provider wrapper: a provider that exposes the provider it wraps through
/// `provider()` (region, coalescer, fault_injector, ...). Every wrapper must
/// have each capability its wrapped provider has; flushkit checks that, for
/// the whole chain, wherever it takes a provider.
template <class W>
concept provider_wrapper = requires(W& w) { w.provider(); };

namespace detail {

/// The provider `W::provider()` leads to (a reference or a pointer to it).
template <class W>
using wrapped_provider_t =
    std::remove_cvref_t<std::remove_pointer_t<std::remove_cvref_t<decltype(std::declval<W&>().provider())>>>;

/// True when `W` has every capability `Inner` has.
template <class W, class Inner> constexpr bool keeps_capabilities() {
  static_assert(!dirty_tracking<Inner> || dirty_tracking<W>,
                "flushkit: this wrapper hides its provider's note_dirty, so writes would be acknowledged "
                "without being made durable; derive the wrapper from flushkit::forward_capabilities "
                "(see docs/write-a-provider.md)");
  static_assert(!declares_durability<Inner> || declares_durability<W>,
                "flushkit: this wrapper hides its provider's durability(); derive the wrapper from "
                "flushkit::forward_capabilities (see docs/write-a-provider.md)");
  static_assert(!reports_usability<Inner> || reports_usability<W>,
                "flushkit: this wrapper hides its provider's usable(); derive the wrapper from "
                "flushkit::forward_capabilities (see docs/write-a-provider.md)");
  return true;
}

/// Checks every link of a chain of wrappers down to the innermost provider.
template <class P> constexpr bool check_capability_chain() {
  using T = std::remove_cvref_t<P>;
  if constexpr (provider_wrapper<T>) {
    using inner = wrapped_provider_t<T>;
    static_assert(keeps_capabilities<T, inner>());
    return check_capability_chain<inner>();
  } else {
    return true;
  }
}

} // namespace detail

/// Base class of a provider wrapper: gives `Derived` each capability of
/// `Inner`, forwarded to `Derived::provider()`, and nothing else.
///
/// `Derived` has `Inner& provider()` and `const Inner& provider() const`.
/// Inherit publicly: `class my_wrapper : public forward_capabilities<my_wrapper<P>, P>`.
template <class Derived, class Inner> class forward_capabilities {
  using inner_type = std::remove_cvref_t<Inner>;

public:
  /// Forwards to the wrapped provider's `note_dirty` (only when it has one).
  void note_dirty(const void* addr, std::size_t len) requires dirty_tracking<inner_type>
  {
    static_cast<Derived&>(*this).provider().note_dirty(addr, len);
  }
  /// The wrapped provider's `durability()` (only when it declares one).
  durability_scope durability() const noexcept requires declares_durability<inner_type>
  {
    return static_cast<const Derived&>(*this).provider().durability();
  }
  /// The wrapped provider's `usable()` (only when it reports one).
  status usable() const noexcept requires reports_usability<inner_type>
  {
    return static_cast<const Derived&>(*this).provider().usable();
  }

protected:
  forward_capabilities() = default;
  ~forward_capabilities() = default;
};

} // namespace flushkit
