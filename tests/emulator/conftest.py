"""Fixtures beyond tests/conftest.py's shared emulator and per-test company: clients and tunable emulators."""

import pytest

from qbo_emulator.config import EmulatorConfig
from qbo_emulator.testing import EmulatorHandle, running_emulator


@pytest.fixture
def qb(emulator: EmulatorHandle, company: dict):
    return emulator.quickbooks(company)


@pytest.fixture(scope="module")
def isolated_emulator() -> EmulatorHandle:
    """An emulator of the module's own, for tests that change its configuration."""
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def tuned_emulator(isolated_emulator: EmulatorHandle) -> EmulatorHandle:
    """The module's emulator, with QBO's default settings restored after the test."""
    yield isolated_emulator
    isolated_emulator.configure(**EmulatorConfig().as_dict())
