"""Import-only stand-in for `decord` (video decoding), used by the benchmark's peer run only.

lmms-eval 0.7.3's `qwen2_5_vl` model imports decord at module load; the benchmark feeds it images
only, so no decord function is ever called. Put on the path only when the real package is absent.
"""


class VideoReader:  # pragma: no cover - never called for image requests
    def __init__(self, *args, **kwargs):
        raise RuntimeError("decord stub: video decoding is not available in this benchmark environment")


class cpu:  # noqa: N801 - mirrors decord's API name
    def __init__(self, *args, **kwargs):
        pass
