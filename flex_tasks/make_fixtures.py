"""Write the bundled mini fixtures, deterministically, in each benchmark's real layout.

    python -m flex_tasks.make_fixtures [OUT_DIR]   (default: flex_tasks/fixtures)

Hub benchmarks are stored the way a user's offline copy of the hub repo looks (parquet
files with embedded images, hub file names) and go through the same local-copy loader.
MLLM-as-a-Judge and the audio corpora use their upstream folder layouts. Audio clips are
synthetic voiced signals with known degradations (white noise at a set SNR, hard clipping)
whose MOS-like labels fall with the degradation.
"""
from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from flex_tasks.data import FIXTURES_DIR

SR = 16000


# ------------------------------------------------------------------ helpers
def _image(seed: int, size: int = 40):
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 255, 3)))
    d = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
        d.rectangle([x0, y0, x0 + size // 3, y0 + size // 3], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    _image(seed).save(buf, format="PNG")
    return buf.getvalue()


def _parquet(rows: list[dict], features, path: Path):
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))


def _video(path: Path, seed: int, frames: int = 4, fps: int = 2):
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


def _voice(seed: int, seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal (speech-like enough for a fixture)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 60 * rng.random()
    sig = sum((0.6 / h) * np.sin(2 * np.pi * f0 * h * t + rng.random()) for h in range(1, 6))
    env = 0.5 * (1 - np.cos(2 * np.pi * 4 * t))  # ~4 syllables per second
    return (0.5 * sig * env / np.max(np.abs(sig))).astype(np.float32)


def _degrade(x: np.ndarray, snr_db: float | None, clip: float | None, seed: int) -> np.ndarray:
    y = x.copy()
    if snr_db is not None:
        noise = np.random.default_rng(seed).normal(size=y.shape).astype(np.float32)
        noise *= np.sqrt(np.mean(y ** 2) / (10 ** (snr_db / 10)) / np.mean(noise ** 2))
        y = y + noise
    if clip is not None:
        y = np.clip(y, -clip, clip)
    return np.clip(y, -1, 1).astype(np.float32)


# (snr dB, clip level, MOS-like label): cleaner -> higher
DEGRADATIONS = [(None, None, 4.6), (30.0, None, 4.1), (20.0, None, 3.4), (10.0, 0.2, 2.5), (0.0, 0.08, 1.4), (5.0, None, 2.2)]


def _wav(path: Path, x: np.ndarray, sr: int = SR):
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="PCM_16")


def _write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------ hub-shaped benchmarks
def vl_rewardbench(root: Path):
    import datasets as d

    ids = ["wildvision-battle_0", "VLFeedback_1", "RLAIF-V-Dataset_2", "hallucination_pair_3", "mathverse_4", "mmmu-pro_5"]
    rows = [{"id": i, "query": f"What is shown in picture {n}?", "response": [f"Answer one for {n}.", f"Answer two for {n}."],
             "image": {"bytes": _png(100 + n), "path": None}, "human_ranking": [0, 1] if n % 2 == 0 else [1, 0],
             "models": ["model-a", "model-b"], "judge": "human", "rationale": "", "query_source": i.split("_")[0],
             "ground_truth": ""} for n, i in enumerate(ids)]
    feats = d.Features({"id": d.Value("string"), "query": d.Value("string"), "response": d.Sequence(d.Value("string")),
                        "image": d.Image(), "human_ranking": d.Sequence(d.Value("int64")), "models": d.Sequence(d.Value("string")),
                        "judge": d.Value("string"), "rationale": d.Value("string"), "query_source": d.Value("string"),
                        "ground_truth": d.Value("string")})
    _parquet(rows, feats, root / "data" / "test-00000-of-00001.parquet")


def mj_bench(root: Path):
    import datasets as d

    feats = d.Features({"id": d.Value("string"), "caption": d.Value("string"), "image0": d.Image(), "image1": d.Image(),
                        "label": d.Value("int64"), "label_0": d.Value("float64"), "label_1": d.Value("float64")})
    for s, split in enumerate(("alignment", "safety", "quality")):
        rows = []
        for n in range(4):
            tie = n == 3
            label = n % 2
            rows.append({"id": f"{split}-{n}", "caption": f"A {split} caption number {n}",
                         "image0": {"bytes": _png(200 + 10 * s + n), "path": None},
                         "image1": {"bytes": _png(300 + 10 * s + n), "path": None}, "label": label,
                         "label_0": 0.5 if tie else float(label == 0), "label_1": 0.5 if tie else float(label == 1)})
        _parquet(rows, feats, root / "data" / f"{split}-00000-of-00001.parquet")


def genai_bench(root: Path):
    import datasets as d

    votes = ["leftvote", "rightvote", "tievote", "bothbad_vote"]
    img = {"image_generation": ["left_image", "right_image"],
           "image_edition": ["source_image", "left_output_image", "right_output_image"]}
    for c, (config, cols) in enumerate(img.items()):
        rows = []
        for n, v in enumerate(votes):
            row = {"left_model": "m1", "right_model": "m2", "vote_type": v, "tstamp": float(n), "judge": "arena"}
            row["prompt" if config == "image_generation" else "source_prompt"] = f"a red cube {n}"
            if config == "image_edition":
                row.update(target_prompt=f"a blue cube {n}", instruct_prompt=f"make the cube {n} blue")
            for k, col in enumerate(cols):
                row[col] = {"bytes": _png(400 + 50 * c + 5 * n + k), "path": None}
            rows.append(row)
        feats = d.Features({**{k: d.Value("string") for k in rows[0] if k not in cols and k != "tstamp"},
                            "tstamp": d.Value("float64"), **{col: d.Image() for col in cols}})
        _parquet(rows, feats, root / config / "test_v1-00000-of-00001.parquet")
    rows = []
    for n, v in enumerate(votes[:3]):
        left, right = f"clip_{n}_left.mp4", f"clip_{n}_right.mp4"
        _video(root / "videos" / left, 500 + 2 * n)
        _video(root / "videos" / right, 501 + 2 * n)
        rows.append({"prompt": f"a ball bouncing {n}", "left_model": "v1", "right_model": "v2", "vote_type": v,
                     "left_video": f"https://example.invalid/videos/{left}", "right_video": f"https://example.invalid/videos/{right}",
                     "tstamp": float(n), "judge": "arena"})
    feats = d.Features({k: (d.Value("float64") if k == "tstamp" else d.Value("string")) for k in rows[0]})
    _parquet(rows, feats, root / "video_generation" / "test_v1-00000-of-00001.parquet")


# ------------------------------------------------------------------ upstream-folder benchmarks
def mllm_judge(root: Path):
    data = root / "Dataset"
    for n in range(4):
        path = data / "image" / ("COCO" if n < 2 else "ChartQA") / f"img_{n}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        _image(600 + n).save(path)
    img = lambda n: f"{'COCO' if n < 2 else 'ChartQA'}/img_{n}.png"
    pair = [{"id": n, "pair_id": 100 + n, "image_path": img(n % 4), "original_dataset": "COCO" if n % 4 < 2 else "ChartQA",
             "instruction": f"Describe image {n}.", "answer1": {"name": "m1", "answer": f"First answer {n}."},
             "answer2": {"name": "m2", "answer": f"Second answer {n}."}, "human": "ABCA"[n], "true_answers": ""} for n in range(4)]
    score = [{"id": n, "score_id": 200 + n, "image_path": img(n % 4), "original_dataset": ["COCO", "COCO", "COCO", "ChartQA", "MathVista"][n],
              "instruction": f"What is in image {n}?", "answer": f"An answer {n}.", "name": "m1",
              "human": str(n % 5 + 1) if n == 2 else n % 5 + 1, "true_answers": ""} for n in range(5)]
    batch = []
    for n, ranking in enumerate(["ABC", "CAB", "BCA"]):
        row = {"id": n, "image_path": img(n), "original_dataset": "COCO" if n < 2 else "ChartQA",
               "instruction": f"Rank the answers for image {n}.",
               "answers": [{"name": f"m{k}", "answer": f"Answer {k} to {n}."} for k in range(3)]}
        row["human_answer" if n != 1 else "human"] = ranking
        batch.append(row)
    for name, rows in (("pair", pair), ("score", score), ("batch", batch)):
        _write(data / "Benchmark" / f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def nisqa(root: Path):
    for s, name in enumerate(("FOR", "LIVETALK", "P501")):
        d = root / f"NISQA_TEST_{name}"
        lines = ["db,con,file,con_description,filename_deg,filename_ref,source,lang,votes,mos,noi,col,dis,loud,filepath_deg,filepath_ref"]
        for n in range(3):
            snr, clip, mos_label = DEGRADATIONS[(n * 2 + s) % len(DEGRADATIONS)]
            sr = 48000 if name == "P501" else SR  # P501 at 48 kHz exercises resampling
            x = _degrade(_voice(700 + 10 * s + n, sr=sr), snr, clip, 800 + 10 * s + n)
            fn = f"c{n:05d}_{name.lower()}.wav"
            _wav(d / "deg" / fn, x, sr)
            mos = mos_label + 0.03 * n
            lines.append(f"NISQA_TEST_{name},{n},{n},snr={snr} clip={clip},{fn},,synthetic,en,5,{mos:.4f},0,0,0,0,deg/{fn},")
        _write(d / f"NISQA_TEST_{name}_file.csv", "\n".join(lines) + "\n")


def bvcc(root: Path):
    data = root / "main" / "DATA"
    systems = {"sys0a1b2": 0, "sys3c4d5": 2, "sys6e7f8": 4}
    lst, sys_lines = [], ["system_ID,mean"]
    for sid, deg in systems.items():
        sys_lines.append(f"{sid},{DEGRADATIONS[deg][2]:.3f}")
        for u in range(2):
            snr, clip, label = DEGRADATIONS[(deg + u) % len(DEGRADATIONS)]
            wav = f"{sid}-utt{u:05x}{deg}.wav"
            _wav(data / "wav" / wav, _degrade(_voice(900 + deg * 3 + u), snr, clip, 950 + deg + u))
            lst.append(f"{wav},{label + 0.125:.3f}")
    _write(data / "sets" / "test_mos_list.txt", "\n".join(lst) + "\n")
    _write(data / "mydata_system.csv", "\n".join(sys_lines) + "\n")


def somos(root: Path):
    clean = root / "training_files" / "split1" / "clean"
    systems = {"001": 0, "007": 3, "012": 5}
    lst, sys_lines = ["utteranceId,mean"], ["systemId,mean"]
    for sid, deg in systems.items():
        sys_lines.append(f"{sid},{DEGRADATIONS[deg][2]:.3f}")
        for u in range(2):
            snr, clip, label = DEGRADATIONS[(deg + u) % len(DEGRADATIONS)]
            wav = f"booksent_2012_{u:04d}_{sid}.wav"
            _wav(root / "audios" / wav, _degrade(_voice(1000 + deg * 3 + u), snr, clip, 1050 + deg + u))
            lst.append(f"{wav},{label + 0.06:.2f}")
    _write(clean / "test_mos_list.txt", "\n".join(lst) + "\n")
    _write(clean / "test_system.csv", "\n".join(sys_lines) + "\n")


def voxsim(root: Path):
    # two "speakers" = two voice seeds; same-speaker pairs get high similarity
    clips = {}
    for spk in range(2):
        for u in range(2):
            rel = f"id{spk:04d}/utt{u}.wav"
            _wav(root / "wav" / rel, _degrade(_voice(1100 + spk), 25.0 - 10 * u, None, 1150 + 2 * spk + u))
            clips[(spk, u)] = rel
    pairs = [((0, 0), (0, 1), 1, 4.6), ((1, 0), (1, 1), 1, 4.2), ((0, 0), (1, 0), 0, 1.8), ((0, 1), (1, 1), 0, 2.4)]
    lines = [f"{clips[a]},{clips[b]},{same},0,{sim}" for a, b, same, sim in pairs]
    _write(root / "voxsim_test_list.txt", "\n".join(lines) + "\n")


BUILDERS = {"vl_rewardbench": vl_rewardbench, "mj_bench": mj_bench, "genai_bench": genai_bench, "mllm_judge": mllm_judge,
            "nisqa": nisqa, "bvcc": bvcc, "somos": somos, "voxsim": voxsim}


def make_fixtures(out: Path = FIXTURES_DIR) -> Path:
    out = Path(out)
    for name, build in BUILDERS.items():
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        build(target)
    _write(out / "README.md", "Generated by `python -m flex_tasks.make_fixtures`; do not edit by hand.\n"
           "Synthetic mini copies of each benchmark in its real layout (FLEX_JUDGE_DATA=fixtures).\n")
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = make_fixtures(Path(argv[0]) if argv else FIXTURES_DIR)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote fixtures to {out} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
