"""The Waypost benchmark: mock upstream, bare pass-through proxy, load driver and runner."""
