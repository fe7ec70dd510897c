"""The Anthropic dialect: the Messages API (``messages`` is the import point)."""
