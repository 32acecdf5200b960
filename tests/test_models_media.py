"""Media decoding: audio resampling vs scipy, channel handling, errors that name doc and file."""
import io

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from scipy.signal import resample_poly

from flex_models.media import AUDIO_SR, MediaError, load_audio, load_image, load_video, to_mono_16k


def sine(sr, seconds=1.0, hz=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return np.sin(2 * np.pi * hz * t).astype(np.float32)


@pytest.mark.parametrize("sr, up, down", [(44100, 160, 441), (22050, 320, 441), (8000, 2, 1), (48000, 1, 3)])
def test_resampling_matches_scipy_and_keeps_the_tone(sr, up, down):
    x = sine(sr)
    y = load_audio({"array": x, "sampling_rate": sr})
    assert y.dtype == np.float32 and len(y) == AUDIO_SR
    np.testing.assert_allclose(y, resample_poly(x, up, down), atol=1e-6)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * AUDIO_SR / len(y) - 440.0) <= 1.0


def test_16k_passthrough_and_stereo_downmix_and_int_pcm():
    x = sine(AUDIO_SR)
    np.testing.assert_array_equal(load_audio((x, AUDIO_SR)), x)
    stereo = np.stack([x, np.zeros_like(x)], axis=1)  # (n, 2)
    np.testing.assert_allclose(to_mono_16k(stereo, AUDIO_SR), x / 2, atol=1e-7)
    np.testing.assert_allclose(to_mono_16k(stereo.T, AUDIO_SR), x / 2, atol=1e-7)  # (2, n)
    pcm = (x * 32767).astype(np.int16)
    np.testing.assert_allclose(to_mono_16k(pcm, AUDIO_SR), x, atol=1e-4)


def test_audio_from_file_and_bytes(tmp_path):
    x = sine(24000, 0.5)
    path = tmp_path / "a.wav"
    sf.write(path, np.stack([x, x], axis=1), 24000)
    y = load_audio(str(path))
    assert len(y) == 8000
    buf = io.BytesIO()
    sf.write(buf, x, 24000, format="WAV")
    np.testing.assert_allclose(load_audio(buf.getvalue()), y, atol=1e-4)


def test_missing_and_corrupt_media_name_doc_and_file(tmp_path):
    where = "task flex_nisqa split test doc 5"
    with pytest.raises(MediaError, match=r"audio file '/no/such.wav' \(task flex_nisqa split test doc 5\): no such file"):
        load_audio("/no/such.wav", where)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(MediaError, match=rf"audio file '{bad}' \({where}\)"):
        load_audio(str(bad), where)
    bad_img = tmp_path / "bad.png"
    bad_img.write_bytes(b"\x89PNG broken")
    with pytest.raises(MediaError, match=rf"image file '{bad_img}' \(doc 9\)"):
        load_image(str(bad_img), "doc 9")
    with pytest.raises(MediaError, match=r"video file '/no/clip.mp4' \(doc 2\): no such file"):
        load_video("/no/clip.mp4", "doc 2")
    with pytest.raises(MediaError, match="no 'sampling_rate'"):
        load_audio({"array": np.zeros(10)}, "doc 1")


def test_image_inputs():
    im = Image.new("L", (20, 10), 128)
    assert load_image(im).mode == "RGB"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    assert load_image(buf.getvalue()).getpixel((0, 0)) == (1, 2, 3)
    assert load_image({"bytes": buf.getvalue(), "path": None}).size == (8, 8)


def write_clip(path, n_frames: int, rate: int, width: int, height: int):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(n_frames):
            frame = np.full((height, width, 3), i * 7 % 255, dtype=np.uint8)
            frame[:, : i % width] = 255  # every frame differs
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


def test_video_frames_are_qwen_vl_utils_frames(tmp_path):
    """Frame count, indices and size equal qwen_vl_utils' fetch_video (the released GenAI-Bench
    path): 600 frames at 30 fps sampled at 1 fps are 0, 32, 63, 95, ... (a truncating sampler
    gives 0, 31, 63, 94)."""
    from qwen_vl_utils import vision_process as qv

    path = write_clip(tmp_path / "clip.mp4", 600, 30, 96, 64)
    frames, meta = load_video(path, "doc 0", fps=1.0, max_pixels=224 * 224)
    ref, ref_meta = qv.fetch_video({"video": path, "fps": 1.0, "max_pixels": 224 * 224, "min_pixels": 224 * 224},
                                   return_video_metadata=True)
    assert meta["frames_indices"][:4] == [0, 32, 63, 95]
    assert meta["frames_indices"] == [int(i) for i in ref_meta["frames_indices"]]
    assert meta["total_num_frames"] == ref_meta["total_num_frames"] == 600
    assert frames.shape == (ref.shape[0], ref.shape[2], ref.shape[3], 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(float) - ref.permute(0, 2, 3, 1).numpy()).mean() < 2.0  # decoders may differ by rounding
    # a short clip: at least 4 frames (qwen_vl_utils' minimum), even, evenly spaced
    frames, meta = load_video(write_clip(tmp_path / "short.mp4", 20, 10, 64, 48), "doc 1", fps=1.0, max_pixels=224 * 224)
    assert meta["frames_indices"] == [0, 6, 13, 19] and frames.shape[0] == 4


def test_audio_scaling_released_is_int16_range_for_resampled_audio_only(tmp_path):
    """model_args audio_scaling=released (default): audio that had to be resampled is scaled
    as the released scripts do ((x * 32767).astype(int16)); 16 kHz sources stay in [-1, 1]."""
    from flex_models.args import FlexArgError, parse_args
    from flex_models.model import MediaCache
    from flex_tasks.media import load_audio as task_audio

    x = 0.5 * sine(44100)
    p44, p16 = tmp_path / "a44.wav", tmp_path / "a16.wav"
    sf.write(p44, x, 44100, subtype="FLOAT")
    sf.write(p16, 0.5 * sine(AUDIO_SR), AUDIO_SR, subtype="FLOAT")
    unit = load_audio(str(p44), scaling="unit")
    np.testing.assert_allclose(unit, resample_poly(x, 160, 441), atol=1e-6)
    released = load_audio(str(p44), scaling="released")
    np.testing.assert_array_equal(released, np.trunc(unit * 32767).astype(np.float32))
    assert 16000 < np.abs(released).max() < 16800  # amplitude 0.5 (+ resampling ripple) in int16 units
    np.testing.assert_array_equal(load_audio(str(p16), scaling="released"), load_audio(str(p16), scaling="unit"))
    assert np.abs(load_audio(str(p16), scaling="released")).max() <= 0.5 + 1e-6
    # the tasks hand the model 16 kHz arrays with the file's own rate beside them
    doc_audio = task_audio(str(p44))
    assert doc_audio["sampling_rate"] == AUDIO_SR and doc_audio["source_sampling_rate"] == 44100
    np.testing.assert_array_equal(MediaCache("released").get("audio", doc_audio, "doc 0", {}), released)
    np.testing.assert_array_equal(MediaCache("unit").get("audio", doc_audio, "doc 0", {}), unit)
    assert parse_args({"pretrained": "x", "backend": "hf"}).audio_scaling == "released"
    assert parse_args({"pretrained": "x", "backend": "hf", "audio_scaling": "unit"}).audio_scaling == "unit"
    with pytest.raises(FlexArgError, match="audio_scaling='int16'.*released, unit"):
        parse_args({"pretrained": "x", "backend": "hf", "audio_scaling": "int16"})
