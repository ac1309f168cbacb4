"""Wire codecs: relay messages, smux, per-stream header, UDP framing, sniffers. Sans-IO."""
