"""Pebble-compatibility scenario runner (see pebble-compat/run)."""
