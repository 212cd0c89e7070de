import os

import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")


@pytest.fixture(scope="session")
def spark():
    from spark_jobs.session import get_spark

    session = get_spark("interest-tests", shuffle_partitions=2, driver_memory="2g", master="local[2]")
    yield session
    session.stop()
