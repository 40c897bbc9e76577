// tests/journal/segment_store.cpp - the directory of segment files: creation, listing, I/O, removal, errors.
#include <flushkit/journal/segment_store.hpp>

#include "support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include <sys/stat.h>

namespace fs = std::filesystem;
using flushkit::errc;
using flushkit::segment_directory;

static_assert(flushkit::segment_store<segment_directory>);

TEST_CASE("segment_directory: create makes a whole zero-filled file; list, write, read, sync, remove") {
  flushkit::test::temp_dir tmp("flushkit-segments");
  const std::string path = tmp / "log";
  auto d = segment_directory::open(path.c_str(), {.segment_bytes = 8192});
  REQUIRE(d);
  CHECK(fs::is_directory(path)); // created
  std::vector<std::uint64_t> idx;
  CHECK_FALSE(d->list(idx));
  CHECK(idx.empty());
  REQUIRE_FALSE(d->create(3));
  REQUIRE_FALSE(d->create(4));
  CHECK_FALSE(d->list(idx));
  CHECK(idx == std::vector<std::uint64_t>{3, 4});
  const std::string file = path + "/" + segment_directory::file_name(3).data();
  CHECK(segment_directory::file_name(3).data() == std::string("0000000000000003.seg"));
  CHECK(fs::file_size(file) == 8192);
  struct stat sb {};
  REQUIRE(::stat(file.c_str(), &sb) == 0);
  CHECK(sb.st_blocks * 512 >= 8192); // allocated, not sparse
  const std::vector<std::byte> data(100, std::byte{0x5a});
  CHECK_FALSE(d->write(3, 8000, data));
  CHECK(d->write(3, 8100, data) == errc::invalid_request); // past the end
  CHECK_FALSE(d->sync(3));
  std::vector<std::byte> back(100);
  CHECK_FALSE(d->read(3, 8000, back));
  CHECK(back == data);
  std::vector<std::byte> zeros(8000);
  CHECK_FALSE(d->read(3, 0, zeros));
  CHECK(std::all_of(zeros.begin(), zeros.end(), [](std::byte b) { return b == std::byte{0}; }));
  CHECK_FALSE(d->remove(3));
  CHECK_FALSE(fs::exists(file));
  CHECK_FALSE(d->list(idx));
  CHECK(idx == std::vector<std::uint64_t>{4});
  CHECK(d->read(3, 0, back)); // gone: an error, not a crash
}

TEST_CASE("segment_directory: files that are not segments are ignored; bad sizes and paths are refused") {
  flushkit::test::temp_dir tmp("flushkit-segments");
  std::ofstream(tmp / "notes.txt") << "x";
  std::ofstream(tmp / "00000000000000zz.seg") << "x";
  std::ofstream(tmp / "0000000000000001.seg.tmp") << "x"; // an interrupted create
  auto d = segment_directory::open(tmp.path().c_str(), {.segment_bytes = 4096});
  REQUIRE(d);
  std::vector<std::uint64_t> idx;
  CHECK_FALSE(d->list(idx));
  CHECK(idx.empty());
  REQUIRE_FALSE(d->create(1)); // reuses the leftover .tmp name
  CHECK_FALSE(fs::exists(tmp / "0000000000000001.seg.tmp"));
  CHECK(segment_directory::open(tmp.path().c_str(), {.segment_bytes = 1000}).error() == errc::invalid_request);
  CHECK(segment_directory::open("/nonexistent-dir/x", {.create_directory = true}).error() ==
        boost::system::errc::no_such_file_or_directory);
  CHECK(segment_directory::open((tmp / "notes.txt").c_str()).error() == boost::system::errc::not_a_directory);
}
