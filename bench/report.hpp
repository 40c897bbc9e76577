// bench/report.hpp - result lines: JSON (one object per line) or a table.
#pragma once

#include "harness.hpp"
#include "system_info.hpp"

#include <cstdio>
#include <string>
#include <string_view>

namespace flushkit::bench {

/// What every line of a run shares.
struct run_context {
  machine_info machine;
  std::string fs_type = "none"; ///< of the bench file; "none" for anonymous memory
  std::string file;             ///< bench file path (empty: anonymous memory)
};

class reporter {
public:
  reporter(std::FILE* out, bool json) : out_(out), json_(json) {}

  /// Machine header (table mode only; JSON lines carry it per line).
  void machine(const machine_info& m) const;
  /// Start of a scenario: its medium and the column header.
  void scenario(std::string_view name, const run_context& ctx) const;
  void result(const run_result& r, const run_context& ctx) const;
  /// A model that could not run: a JSON object with a "skipped" key (the
  /// reason) in JSON mode, a line of the table otherwise.
  void skipped(std::string_view scenario, std::string_view model, std::string_view why, const run_context& ctx) const;

private:
  void json_line(const run_result& r, const run_context& ctx) const;
  void table_row(const run_result& r) const;

  std::FILE* out_;
  bool json_;
};

} // namespace flushkit::bench
