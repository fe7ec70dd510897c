"""Canonical model shared by every wire format and provider. Imports nothing else of ours."""
