"""Configuration: one schema, three front doors (TOML, gost YAML, gost -L/-F). Sans-IO."""
