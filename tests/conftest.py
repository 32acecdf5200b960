"""Shared test fixtures: tiny checkpoints built offline once per session, offline env."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_vl(tmp_path_factory) -> Path:
    from flex_models.tiny import make_tiny

    return make_tiny("vl", tmp_path_factory.mktemp("tiny") / "vl")


@pytest.fixture(scope="session")
def tiny_omni(tmp_path_factory) -> Path:
    from flex_models.tiny import make_tiny

    return make_tiny("omni", tmp_path_factory.mktemp("tiny") / "omni")
