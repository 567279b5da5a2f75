"""The distributed tier: one local Ray per test module (2 CPUs, a 100 MB object store, usage statistics off, bound
to 127.0.0.1), shut down when the module ends; every test is bounded in time."""

import faulthandler
import os

import pytest

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
#: Seconds one test may take before the process dumps its stacks and exits (a hung Ray call fails, not blocks).
#: The slowest tests start several actors and take 50-90 s on a loaded 2-core machine; under pytest-xdist an exit
#: shows only as "node down: Not properly terminated", so the limit stays well above that.
TEST_LIMIT = 300


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",  # never a cluster another process started on this machine
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 1024**2,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _bounded():
    faulthandler.dump_traceback_later(TEST_LIMIT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.distributed)
