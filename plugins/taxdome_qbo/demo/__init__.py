"""Demo data: synthetic TaxDome billing exports (`python -m taxdome_qbo.demo generate --help`)."""

from taxdome_qbo.demo.generator import DEFAULT_END, DEFAULT_START, MANIFEST_NAME, generate_export

__all__ = ["DEFAULT_END", "DEFAULT_START", "MANIFEST_NAME", "generate_export"]
