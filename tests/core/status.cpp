#include <flushkit/core/status.hpp>

#include <doctest/doctest.h>

#include <boost/asio/error.hpp>
#include <boost/system/errc.hpp>
#include <boost/system/system_error.hpp>

#include <cerrno>
#include <future>
#include <system_error>

using flushkit::errc;
using flushkit::status;

TEST_SUITE("core/status") {

TEST_CASE("the category is named flushkit and every value has a message") {
  const status st = errc::io_error;
  CHECK(std::string(st.category().name()) == "flushkit");
  for (int v = 1; v <= static_cast<int>(errc::cancelled); ++v)
    CHECK(flushkit::flushkit_category().message(v) != "unknown flushkit error");
  CHECK(flushkit::flushkit_category().message(999) == "unknown flushkit error");
}

TEST_CASE("a default status is success and an errc value is an error") {
  CHECK_FALSE(status{});
  CHECK(status{errc::timeout});
}

TEST_CASE("every errc converts to errno and back unchanged") {
  const std::pair<errc, int> table[] = {
      {errc::io_error, EIO},           {errc::no_memory, ENOMEM},       {errc::no_space, ENOSPC},
      {errc::device_broken, ENXIO},    {errc::shutting_down, ESHUTDOWN}, {errc::invalid_request, EINVAL},
      {errc::not_supported, EOPNOTSUPP}, {errc::timeout, ETIMEDOUT},    {errc::cancelled, ECANCELED},
  };
  for (auto [e, err] : table) {
    CHECK(flushkit::to_errno(e) == err);
    CHECK(flushkit::status_from_errno(err) == e);
  }
}

TEST_CASE("errno zero is success and unknown errno values become io_error") {
  CHECK_FALSE(flushkit::status_from_errno(0));
  CHECK(flushkit::status_from_errno(EROFS) == errc::io_error);
  CHECK(flushkit::status_from_errno(EBADF) == errc::io_error);
  CHECK(flushkit::status_from_errno(EAGAIN) == errc::no_space);
  CHECK(flushkit::to_errno(status{}) == 0);
}

TEST_CASE("system and generic codes keep their errno and foreign codes become EIO") {
  CHECK(flushkit::to_errno(std::error_code(EROFS, std::system_category())) == EROFS);
  CHECK(flushkit::to_errno(std::make_error_code(std::errc::bad_file_descriptor)) == EBADF);
  CHECK(flushkit::to_errno(std::make_error_code(std::future_errc::broken_promise)) == EIO);
  CHECK(flushkit::to_errno(status(4242, flushkit::flushkit_category())) == EIO);
}

TEST_CASE("flushkit values compare equal to the portable std::errc conditions") {
  CHECK(status{errc::io_error} == std::errc::io_error);
  CHECK(status{errc::no_memory} == std::errc::not_enough_memory);
  CHECK(status{errc::timeout} == std::errc::timed_out);
  CHECK(status{errc::cancelled} == std::errc::operation_canceled);
  CHECK(status{errc::io_error} != std::errc::timed_out);
}

TEST_CASE("status is boost::system::error_code and compares with Boost and standard conditions alike") {
  static_assert(std::is_same_v<status, boost::system::error_code>);
  const status st = errc::io_error;
  CHECK(st == boost::system::errc::io_error);
  CHECK(st == std::errc::io_error);
  CHECK(st != boost::system::errc::timed_out);
  CHECK(status{errc::invalid_request} == boost::system::errc::invalid_argument);
  CHECK(status{errc::invalid_request} == std::errc::invalid_argument);
}

TEST_CASE("a status converts to std::error_code keeping its category and conditions") {
  const std::error_code sc = status{errc::timeout};
  CHECK(std::string(sc.category().name()) == "flushkit");
  CHECK(sc == std::errc::timed_out);
  CHECK(sc == errc::timeout);
  const std::error_code direct = errc::no_space; // through std::is_error_code_enum
  CHECK(direct == std::errc::no_space_on_device);
  CHECK(direct == status{errc::no_space});
}

TEST_CASE("a std::error_code from a provider converts to status and keeps its errno") {
  const status st = std::error_code(EROFS, std::generic_category());
  CHECK(st == std::errc::read_only_file_system);
  CHECK(flushkit::to_errno(st) == EROFS);
  CHECK(flushkit::to_errno(status(EROFS, boost::system::generic_category())) == EROFS);
  CHECK(flushkit::to_errno(status(EROFS, boost::system::system_category())) == EROFS);
}

TEST_CASE("a cancelled waiter's operation_aborted is the portable operation_canceled condition") {
  const status aborted = boost::asio::error::operation_aborted;
  CHECK(aborted == std::errc::operation_canceled);
  CHECK(aborted == boost::system::errc::operation_canceled);
  CHECK(status{errc::cancelled} == std::errc::operation_canceled);
  CHECK(status{errc::cancelled} != aborted); // different codes, same condition
}

TEST_CASE("system_error carries a flushkit status and its message") {
  const boost::system::system_error e(errc::io_error);
  CHECK(e.code() == errc::io_error);
  CHECK(std::string(e.what()).find("input/output error") != std::string::npos);
}

} // TEST_SUITE
