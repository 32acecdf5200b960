"""Judging outside lmms-eval's task loop: your own JSONL files (file), items and verdicts (items), the
Python API (api) and lmms-eval's judge provider (provider)."""
