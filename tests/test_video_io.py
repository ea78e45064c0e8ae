"""Video decoding and the similarity maths under ``frames``: exact rho, ffmpeg's header, containers, early stop."""

import os
import subprocess

import imageio_ffmpeg
import numpy as np
import psutil
import pytest

from manganime_ext.analysis import similarity
from manganime_ext.io import video

HEADER = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'ep000.mp4':
  Duration: 00:02:03.50, start: 0.000000, bitrate: 164 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 1920x1080 [SAR 1:1 DAR 16:9], \
162 kb/s, 23.98 fps, 23.98 tbr, 24k tbn (default)
Stream mapping:
  Stream #0:0 -> #0:0 (h264 (native) -> rawvideo (native))
Output #0, rawvideo, to 'pipe:1':
  Stream #0:0(und): Video: rawvideo (RGB[24] / 0x18424752), rgb24, 256x256, q=2-31, 25 fps, 25 tbn (default)
"""


@pytest.mark.parametrize("shape", [(256, 256, 3), (17, 23, 3), (1, 1, 1), (300, 7)])
def test_dot_is_exact(shape):
    rng = np.random.RandomState(sum(shape))
    frames = [rng.randint(0, 256, shape).astype(np.uint8), np.full(shape, 255, np.uint8), np.zeros(shape, np.uint8)]
    vectors = [similarity.frame_vector(f) for f in frames]
    for a, va in zip(frames, vectors):
        for b, vb in zip(frames, vectors):
            exact = int((a.astype(np.int64) * b.astype(np.int64)).sum())
            assert similarity.dot(va, vb) == exact
    reused = similarity.frame_vector(frames[1], out=vectors[0])
    assert reused is not None and similarity.dot(reused, reused) == 255 ** 2 * int(np.prod(shape))


def test_rho_equals_float64_formula():
    rng = np.random.RandomState(0)
    a, b = rng.randint(0, 256, (2, 64, 48, 3)).astype(np.uint8)
    fa, fb = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    expected = fa @ fb / (np.sqrt(fa @ fa) * np.sqrt(fb @ fb))
    rho = similarity.cosine_similarity(similarity.frame_vector(a), similarity.frame_vector(b))
    assert rho == pytest.approx(expected, rel=1e-15) and 0.5 < rho < 1.0


def test_parse_header_reads_the_input_stream_not_the_output():
    meta = video.parse_header(HEADER)
    assert meta == {"fps": 23.98, "duration": 123.5, "source_size": [1920, 1080]}
    assert video.parse_header("garbage") == {"fps": None, "duration": None, "source_size": None}


def test_read_video_meta_and_independent_frames(tiny_series):
    series, truth = tiny_series
    ep = truth["episodes"][0]
    meta, frames = video.read_video(str(series / ep["file"]), 32, stride=2)
    assert meta["fps"] == 24 and meta["source_size"] == [64, 64] and meta["expected_frames"] == ep["frames"] // 2
    got = list(frames)
    assert len(got) == ep["frames"] // 2 and got[0].shape == (32, 32, 3) and got[0].dtype == np.uint8
    assert not np.shares_memory(got[0], got[1]), "each frame is its own array, safe to keep"
    assert np.abs(got[0].astype(int) - got[-1].astype(int)).mean() > 5, "intro and outro differ"


@pytest.mark.parametrize("container", ["mkv", "avi", "mov"])
def test_other_containers_decode_alike(tiny_series, tmp_path, container):
    series, truth = tiny_series
    mp4 = str(series / truth["episodes"][0]["file"])
    other = str(tmp_path / f"ep.{container}")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", mp4, "-c", "copy", other], check=True)
    a = np.stack(list(video.read_video(mp4, 32)[1]))
    b = np.stack(list(video.read_video(other, 32)[1]))
    assert a.shape == b.shape and np.array_equal(a, b)


def test_audio_track_is_ignored(tiny_series, tmp_path):
    series, truth = tiny_series
    mp4 = str(series / truth["episodes"][0]["file"])
    with_audio = str(tmp_path / "with_audio.mkv")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", mp4, "-f", "lavfi", "-i", "sine=duration=6",
                    "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", with_audio], check=True)
    a = np.stack(list(video.read_video(mp4, 32)[1]))
    b = np.stack(list(video.read_video(with_audio, 32)[1]))
    assert a.shape == b.shape and np.array_equal(a, b)


def test_stopping_early_ends_ffmpeg(tiny_series):
    series, truth = tiny_series
    _, frames = video.read_video(str(series / truth["episodes"][0]["file"]), 32)
    assert [f.shape for f, _ in zip(frames, range(3))] == [(32, 32, 3)] * 3
    assert any("ffmpeg" in p.name() for p in psutil.Process().children())
    frames.close()
    assert not [p for p in psutil.Process().children() if "ffmpeg" in p.name()]


def test_closing_before_the_first_frame_ends_ffmpeg(tiny_series):
    series, truth = tiny_series
    _, frames = video.read_video(str(series / truth["episodes"][0]["file"]), 32)
    assert any("ffmpeg" in p.name() for p in psutil.Process().children())
    frames.close()
    assert not [p for p in psutil.Process().children() if "ffmpeg" in p.name()]


def test_not_a_video(tmp_path):
    text = tmp_path / "notes.webm"
    text.write_text("not a video\n" * 100)
    with pytest.raises(video.VideoError, match="notes.webm: ffmpeg cannot read"):
        video.read_video(str(text), 32)
    assert not [p for p in psutil.Process().children() if "ffmpeg" in p.name()]


def test_log_drain_keeps_header_and_last_line_of_a_long_log():
    read_end, write_end = os.pipe()
    log = video._Log(os.fdopen(read_end, "rb", buffering=0), keep=4096)
    with os.fdopen(write_end, "wb") as w:
        w.write(HEADER.encode())
        for i in range(20000):                 # ~600 KB of per-frame complaints, far past ``keep``
            w.write(f"[h264 @ 0x1] error while decoding MB {i}\n".encode())
        w.write(b"Error while decoding stream #0:0: Invalid data found when processing input\n")
    assert video.parse_header(log.header())["source_size"] == [1920, 1080]
    assert log.last_line() == "Error while decoding stream #0:0: Invalid data found when processing input"
    assert len(log.head) == len(log.tail) == 4096 and not log.is_alive()


def test_write_mp4_round_trip(tmp_path):
    """The one mp4 writer: H.264 that read_video decodes back to the same frames, up to codec noise."""
    frames = [np.full((32, 48, 3), (40 * k, 200 - 30 * k, 90), np.uint8) for k in range(6)]
    path = str(tmp_path / "clip.mp4")
    assert video.write_mp4(path, iter(frames), fps=12) == 6
    meta, decoded = video.read_video(path, 32, transform="center-crop")
    back = np.stack(list(decoded))
    assert meta["fps"] == 12 and meta["source_size"] == [48, 32] and len(back) == 6
    assert np.abs(back.astype(int) - np.stack(frames)[:, :, 8:40].astype(int)).max() <= 6
    assert video.write_mp4(str(tmp_path / "none.mp4"), iter([]), fps=12) == 0
    assert not (tmp_path / "none.mp4").exists()
    with pytest.raises(ValueError, match="frame 1 is 16x16"):
        video.write_mp4(str(tmp_path / "bad.mp4"), [frames[0], np.zeros((16, 16, 3), np.uint8)], fps=12)
