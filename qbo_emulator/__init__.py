"""A local emulator of the QuickBooks Online Accounting API v3 and Intuit OAuth 2 (see README.md)."""

from qbo_emulator.app import EmulatorApp, create_app
from qbo_emulator.config import EmulatorConfig

__all__ = ["EmulatorApp", "EmulatorConfig", "create_app"]
