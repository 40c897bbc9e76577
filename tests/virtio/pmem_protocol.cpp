#include <flushkit/virtio/pmem_protocol.hpp>

#include <doctest/doctest.h>

#include <type_traits>

namespace fv = flushkit::virtio;

TEST_SUITE("virtio/pmem_protocol") {

TEST_CASE("wire constants match the VIRTIO spec and Linux uapi") {
  CHECK(fv::pmem_device_id == 27);
  CHECK(fv::pmem_f_shmem_region == 1);
  CHECK(fv::f_version_1 == (std::uint64_t{1} << 32));
  CHECK(fv::f_indirect_desc == (std::uint64_t{1} << 28));
  CHECK(fv::f_event_idx == (std::uint64_t{1} << 29));
  CHECK(fv::pmem_req_type_flush == 0);
  CHECK(fv::pmem_req_bytes == 4);
  CHECK(fv::pmem_resp_bytes == 4);
  CHECK(fv::pmem_resp_ok == 0);
  CHECK(fv::pmem_resp_error == 1);
}

TEST_CASE("device status bits are the VIRTIO 1.x values") {
  namespace ds = fv::device_status;
  CHECK(ds::acknowledge == 1);
  CHECK(ds::driver == 2);
  CHECK(ds::driver_ok == 4);
  CHECK(ds::features_ok == 8);
  CHECK(ds::needs_reset == 64);
  CHECK(ds::failed == 128);
}

TEST_CASE("pmem_control starts zeroed and can live in shared memory") {
  fv::pmem_control c;
  CHECK(c.status.load() == 0);
  CHECK(c.device_features.load() == 0);
  CHECK(c.driver_features.load() == 0);
  CHECK(c.queue_size_max.load() == 0);
  CHECK(c.queue_size.load() == 0);
  CHECK(c.queue_enable.load() == 0);
  CHECK(c.config_start.load() == 0);
  CHECK(c.config_size.load() == 0);
  CHECK(c.config_generation.load() == 0);
  CHECK(std::is_standard_layout_v<fv::pmem_control>);
  CHECK(std::atomic<std::uint64_t>::is_always_lock_free);
}

} // TEST_SUITE
