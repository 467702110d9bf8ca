"""The local platform: clusters of network-namespace pods on one machine, state in SQLite."""
