"""Shared types, config, text handling and the on-disk index format. Imports nothing of ours."""
