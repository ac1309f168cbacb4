"""Small shared types: IDs, exit codes, log formatting."""
