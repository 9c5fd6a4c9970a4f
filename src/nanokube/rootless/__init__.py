"""Rootless mode: the node in its own user + network + mount namespaces, reached through host ports."""
