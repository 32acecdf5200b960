"""The one family table (flex_models.family.FAMILY) names classes the installed transformers has,
and detection reads config.json of the tiny checkpoints the project builds."""
import importlib

import pytest
import transformers

from flex_models.family import FAMILIES, FAMILY, CheckpointError, family_of, load_checkpoint


@pytest.mark.parametrize("name", FAMILIES)
def test_family_classes_exist_in_transformers(name):
    f = FAMILY[name]
    cls = getattr(transformers, f.model_class)  # AttributeError if the table names a missing class
    layer_module = importlib.import_module(cls.__module__)
    assert isinstance(getattr(layer_module, f.decoder_layer), type)


def test_detection_from_config_not_name(tiny_vl, tiny_omni):
    assert load_checkpoint(str(tiny_vl)).family == "vl"
    assert load_checkpoint(str(tiny_omni)).family == "omni"
    assert family_of({"architectures": ["Qwen2VLForConditionalGeneration"]}) == "vl"
    with pytest.raises(CheckpointError, match="thinker-only"):
        family_of({"model_type": "qwen2_5_omni_thinker"}, "x")
    with pytest.raises(CheckpointError, match="not a supported family"):
        family_of({"model_type": "llama"}, "x")
