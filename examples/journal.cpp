// examples/journal.cpp - a storage engine's write-ahead log on flushkit::journal.
//
// 16 coroutines append "put" records concurrently; each awaits durability
// before it acknowledges its client. Then the engine restarts: the journal
// is reopened (recovery), replayed from the last checkpoint, and the
// segments below the checkpoint are released.
#include <flushkit/journal/journal.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <stdlib.h>

namespace asio = boost::asio;

// One client's writes: each record is durable - and so is every record
// before it - when the co_await returns.
asio::awaitable<void> client(flushkit::journal& wal, int id, int* failures) {
  for (int i = 0; i < 100; ++i) {
    const std::string rec = "put k" + std::to_string(id) + "." + std::to_string(i) + "=v" + std::to_string(i);
    auto [ec, lsn] = co_await wal.async_append(asio::buffer(rec), asio::as_tuple(asio::use_awaitable));
    if (ec) {
      std::fprintf(stderr, "append failed: %s\n", ec.message().c_str());
      ++*failures;
      co_return;
    }
    static_cast<void>(lsn); // the record's position in the log: a checkpoint names one
  }
}

// Restart: rebuild the table from every record at or after `checkpoint`.
std::map<std::string, std::string> replay(flushkit::journal& wal, flushkit::lsn_t checkpoint) {
  std::map<std::string, std::string> table;
  auto reader = wal.read_from(checkpoint);
  flushkit::journal_record rec;
  while (reader.next(rec)) {
    const std::string s(reinterpret_cast<const char*>(rec.payload.data()), rec.payload.size());
    const auto eq = s.find('=');
    table[s.substr(4, eq - 4)] = s.substr(eq + 1);
  }
  return table;
}

int main() {
  char dir[] = "/tmp/flushkit-wal-XXXXXX";
  if (::mkdtemp(dir) == nullptr) return EXIT_FAILURE;
  flushkit::journal_options opts;
  opts.segment_bytes = 1 << 20; // small segments, so the example rotates
  asio::io_context io;
  int failures = 0;
  {
    auto wal = flushkit::journal::open(io, dir, opts);
    if (!wal) return std::fprintf(stderr, "open: %s\n", wal.error().message().c_str()), EXIT_FAILURE;
    for (int c = 0; c < 16; ++c) asio::co_spawn(io, client(*wal, c, &failures), asio::detached);
    io.run();
    const flushkit::journal_stats s = wal->stats();
    std::printf("appended %llu records in %llu flushes (%.1f per flush), durable up to LSN %llu\n",
                static_cast<unsigned long long>(s.appends), static_cast<unsigned long long>(s.flushes),
                s.average_batch(), static_cast<unsigned long long>(s.durable_lsn));
  } // closed: every append completed
  auto wal = flushkit::journal::open(io, dir, opts);
  if (!wal) return EXIT_FAILURE;
  const flushkit::journal_recovery& r = wal->recovery();
  std::printf("recovered LSN %llu..%llu (%llu records)\n", static_cast<unsigned long long>(r.first_lsn),
              static_cast<unsigned long long>(r.last_lsn), static_cast<unsigned long long>(r.records));
  const auto table = replay(*wal, r.first_lsn);
  std::printf("table has %zu keys\n", table.size());
  wal->release(r.last_lsn); // a checkpoint of the table made the older segments unnecessary
  wal->close_and_wait();
  std::filesystem::remove_all(dir);
  const bool ok = failures == 0 && table.size() == 1600 && r.records == 1600;
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
