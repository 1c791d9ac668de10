"""Compatibility shims for scripts written against other libraries."""
