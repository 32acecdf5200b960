"""Shared writers for the bundled mini fixtures (``python -m flex_tasks.make_fixtures``): seeded
synthetic images, videos and voiced audio with known degradations, hub-style parquet files and
text files. Each benchmark module's ``write_fixtures`` lays them out in its real layout."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

SR = 16000

# (snr dB, clip level, MOS-like label): cleaner -> higher
DEGRADATIONS = [(None, None, 4.6), (30.0, None, 4.1), (20.0, None, 3.4), (10.0, 0.2, 2.5), (0.0, 0.08, 1.4), (5.0, None, 2.2)]


def image(seed: int, size: int = 40):
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 255, 3)))
    d = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
        d.rectangle([x0, y0, x0 + size // 3, y0 + size // 3], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    image(seed).save(buf, format="PNG")
    return buf.getvalue()


def parquet(rows: list[dict], features, path: Path):
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))


def video(path: Path, seed: int, frames: int = 4, fps: int = 2):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            arr = np.full((32, 32, 3), rng.integers(0, 255, 3), dtype=np.uint8)
            arr[i * 8:(i + 1) * 8] = 255 - arr[i * 8:(i + 1) * 8]
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def voice(seed: int, seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal (speech-like enough for a fixture)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 60 * rng.random()
    sig = sum((0.6 / h) * np.sin(2 * np.pi * f0 * h * t + rng.random()) for h in range(1, 6))
    env = 0.5 * (1 - np.cos(2 * np.pi * 4 * t))  # ~4 syllables per second
    return (0.5 * sig * env / np.max(np.abs(sig))).astype(np.float32)


def degrade(x: np.ndarray, snr_db: float | None, clip: float | None, seed: int) -> np.ndarray:
    y = x.copy()
    if snr_db is not None:
        noise = np.random.default_rng(seed).normal(size=y.shape).astype(np.float32)
        noise *= np.sqrt(np.mean(y ** 2) / (10 ** (snr_db / 10)) / np.mean(noise ** 2))
        y = y + noise
    if clip is not None:
        y = np.clip(y, -clip, clip)
    return np.clip(y, -1, 1).astype(np.float32)


def wav(path: Path, x: np.ndarray, sr: int = SR):
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="PCM_16")


def write_text(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
