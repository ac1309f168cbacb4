"""Process and socket ownership: CLI, supervisor, registry broker."""
