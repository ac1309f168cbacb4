"""Messages and state machines of the supervisor/worker bus. Sans-IO."""
