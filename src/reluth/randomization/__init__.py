"""Allocation methods (pure) and the concurrency-safe allocation service."""
