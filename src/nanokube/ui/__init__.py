"""The web UI: a live, read-only map of Services -> endpoints -> pods -> nodes, served under /ui/ on the API port."""
