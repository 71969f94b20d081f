"""The procedural phantom: fundus-like images with exact masks and grades (test data, embedded default)."""
