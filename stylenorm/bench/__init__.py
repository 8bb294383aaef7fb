"""Benchmarks behind `stylenorm bench …`: each writes a markdown table through `common`."""
