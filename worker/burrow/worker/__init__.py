"""The worker process: one uvloop event loop serving every service of the config."""
