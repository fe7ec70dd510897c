"""The Bedrock dialect: Converse and ConverseStream (``converse`` is the import point) and the
InvokeModel embedding bodies (``embeddings``). The binary event-stream framing is shared, in
``waypost.wire.eventstream``."""
