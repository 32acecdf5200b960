"""The `flex` judge model: model_args, family detection, rendering, media, vLLM/transformers
backends, tiny checkpoints and the lm-eval registration (see docs/architecture.md)."""
