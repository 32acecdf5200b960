"""lmms-eval entry point (`lmms_eval.models: flex = flex_models.manifest:manifests`)."""
from __future__ import annotations


def manifests():
    """The `flex` model (chat class); `flex_judge` is an alias. Imports stay lazy."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id="flex", chat_class_path="flex_models.model.FlexJudge",
                          aliases=("flex_judge",))]
