import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection tests (SIGKILL of `kplug serve` subprocesses); "
                                       "select with -m faults, skip with -m 'not faults'")
