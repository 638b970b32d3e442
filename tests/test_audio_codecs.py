"""Audio in and out of bytes: format sniffing, the numpy WAV reader, ffmpeg formats, pydub,
missing ffmpeg, and the hypothesis strategies shipped in chainvoice.testing."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.errors import InvalidArgument

import chainvoice as cv
from chainvoice import _codecs
from chainvoice.testing.strategies import audio

FAST = settings(max_examples=30, deadline=None)


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5, channels: int = 1) -> cv.Audio:
    t = np.arange(round(seconds * rate)) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return cv.Audio(np.repeat(x[:, None], channels, axis=1).astype(np.float32), rate)


def dominant_frequency(a: cv.Audio) -> float:
    x = a.to_mono().samples[:, 0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return float(np.argmax(spectrum) * a.rate / (8 * len(x)))


@pytest.fixture
def no_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine without ffmpeg: nothing on PATH, no imageio-ffmpeg, no override."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CHAINVOICE_FFMPEG", raising=False)
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    _codecs.clear_ffmpeg_cache()
    yield
    _codecs.clear_ffmpeg_cache()


def ffmpeg(*args: str, stdin: bytes = b"") -> bytes:
    cmd = [_codecs.find_ffmpeg(), "-hide_banner", "-loglevel", "error", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, check=True).stdout


# ------------------------------------------------------------------------ hand-built WAVs


def chunk(cid: bytes, body: bytes, size: int | None = None) -> bytes:
    head = cid + struct.pack("<I", len(body) if size is None else size)
    return head + body + (b"\x00" if len(body) % 2 else b"")


def fmt(tag: int, channels: int, rate: int, bits: int, *, subformat: int | None = None) -> bytes:
    align = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if subformat is not None:
        guid = struct.pack("<H", subformat) + _codecs._GUID_TAIL
        body += struct.pack("<HHI16s", 22, bits, 0, guid)
    return chunk(b"fmt ", body)


def riff(*chunks: bytes, kind: bytes = b"RIFF") -> bytes:
    payload = b"WAVE" + b"".join(chunks)
    return kind + struct.pack("<I", len(payload)) + payload


VALUES = np.array([0.0, 0.5, -0.5, -1.0, 0.25, 0.75], dtype=np.float64)


@pytest.mark.parametrize(
    ("name", "header", "data", "tolerance"),
    [
        ("float32", fmt(3, 2, 8000, 32), VALUES.astype("<f4").tobytes(), 0),
        ("float64", fmt(3, 2, 8000, 64), VALUES.astype("<f8").tobytes(), 0),
        (
            "extensible float32",
            fmt(0xFFFE, 2, 8000, 32, subformat=3),
            VALUES.astype("<f4").tobytes(),
            0,
        ),
        ("pcm8", fmt(1, 2, 8000, 8), (VALUES * 128 + 128).clip(0, 255).astype("u1").tobytes(), 0),
        (
            "pcm16",
            fmt(1, 2, 8000, 16),
            (VALUES * 32768).clip(-32768, 32767).astype("<i2").tobytes(),
            0,
        ),
        (
            "extensible pcm24",
            fmt(0xFFFE, 2, 8000, 24, subformat=1),
            (VALUES * 2**23)
            .clip(-(2**23), 2**23 - 1)
            .astype("<i4")
            .view("u1")
            .reshape(-1, 4)[:, :3]
            .tobytes(),
            0,
        ),
        (
            "pcm32",
            fmt(1, 2, 8000, 32),
            (VALUES * 2**31).clip(-(2**31), 2**31 - 1).astype("<i4").tobytes(),
            1e-9,
        ),
    ],
)
def test_wav_sample_formats_are_read(
    name: str, header: bytes, data: bytes, tolerance: float
) -> None:
    wav = riff(header, chunk(b"fact", struct.pack("<I", 3)), chunk(b"data", data))
    a = cv.Audio.from_bytes(wav)
    assert (a.rate, a.channels, a.frames) == (8000, 2, 3)
    expected = VALUES.copy()
    if name == "pcm8":
        expected = np.minimum(expected, 127 / 128)
    np.testing.assert_allclose(a.samples.ravel(), expected, atol=tolerance + 1e-7)


def test_odd_chunks_before_data_are_skipped_with_their_pad_byte() -> None:
    data = np.array([1, -1, 300], dtype="<i2").tobytes()
    wav = riff(fmt(1, 1, 16000, 16), chunk(b"LIST", b"odd"), chunk(b"data", data))
    assert cv.Audio.from_bytes(wav).to_pcm16() == data


def test_rf64_is_read() -> None:
    data = np.arange(10, dtype="<i2").tobytes()
    ds64 = chunk(b"ds64", struct.pack("<QQQI", 0, len(data), 10, 0))
    wav = riff(ds64, fmt(1, 1, 8000, 16), chunk(b"data", data, size=0xFFFFFFFF), kind=b"RF64")
    assert cv.Audio.from_bytes(wav).to_pcm16() == data


@pytest.mark.parametrize("declared", [0xFFFFFFFF, 0])
def test_streamed_wav_without_a_length_reads_to_the_end(declared: int) -> None:
    # A WAV written to a pipe cannot know its length; a trailing partial frame is dropped.
    data = np.arange(100, dtype="<i2").tobytes() + b"\x01"
    wav = riff(fmt(1, 2, 24000, 16), b"data" + struct.pack("<I", declared) + data)
    wav = wav[:4] + struct.pack("<I", declared) + wav[8:]
    a = cv.Audio.from_bytes(wav)
    assert (a.frames, a.channels) == (50, 2)
    assert a.to_pcm16() == data[:-1]


def test_empty_data_chunk_followed_by_metadata_is_empty() -> None:
    wav = riff(fmt(1, 1, 8000, 16), chunk(b"data", b""), chunk(b"LIST", bytes(40)))
    with pytest.raises(cv.EmptyAudioError, match="no audio frames"):
        cv.Audio.from_bytes(wav)


def test_wav_claiming_more_data_than_present_is_truncated() -> None:
    data = np.zeros(100, dtype="<i2").tobytes()
    wav = riff(fmt(1, 1, 16000, 16), chunk(b"data", data, size=10_000))[: 44 + len(data)]
    with pytest.raises(cv.AudioFormatError, match=r"10000 bytes.*only 200.*truncated"):
        cv.Audio.from_bytes(wav)


@pytest.mark.parametrize(
    ("wav", "error", "message"),
    [
        (riff(chunk(b"data", b"\x00\x00")), cv.AudioFormatError, "no fmt chunk"),
        (riff(fmt(1, 1, 8000, 16)), cv.AudioFormatError, "no data chunk"),
        (
            riff(chunk(b"fmt ", b"\x01\x00"), chunk(b"data", b"\x00\x00")),
            cv.AudioFormatError,
            "at least 16",
        ),
        (riff(fmt(1, 0, 8000, 16), chunk(b"data", b"\x00\x00")), cv.AudioFormatError, "0 channels"),
        (
            riff(fmt(1, 5000, 8000, 16), chunk(b"data", b"\x00\x00")),
            cv.AudioFormatError,
            "5000 channels",
        ),
        (riff(fmt(1, 1, 0, 16), chunk(b"data", b"\x00\x00")), cv.SampleRateError, "0 Hz"),
        (
            riff(fmt(1, 1, 10**9, 16), chunk(b"data", b"\x00\x00")),
            cv.SampleRateError,
            "1000000000 Hz, outside the 1000 to 768000 Hz",
        ),
        (riff(fmt(1, 1, 8000, 16), chunk(b"data", b"")), cv.EmptyAudioError, "no audio frames"),
        (
            riff(fmt(3, 1, 8000, 16), chunk(b"data", b"\x00\x00")),
            cv.AudioFormatError,
            "16-bit float",
        ),
        (riff(fmt(1, 1, 8000, 48), chunk(b"data", bytes(6))), cv.AudioFormatError, "48-bit"),
        (
            riff(fmt(3, 1, 8000, 32), chunk(b"data", np.array([0, np.nan], "<f4").tobytes())),
            cv.InvalidSamplesError,
            "NaN",
        ),
        (b"RIFF\x04\x00\x00\x00WAVE", cv.AudioFormatError, "no fmt chunk"),
        (b"RIFF", cv.AudioFormatError, "cannot recognise"),
    ],
)
def test_broken_wavs_raise_clear_errors(wav: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        cv.Audio.from_bytes(wav)


def test_g711_wavs_decode_like_ffmpeg() -> None:
    source = tone(440, 0.05, 8000).to_wav()
    for codec in ("pcm_mulaw", "pcm_alaw"):
        wav = ffmpeg(
            "-f", "wav", "-i", "pipe:0", "-c:a", codec, "-f", "wav", "pipe:1", stdin=source
        )
        ours = cv.Audio.from_bytes(wav)
        theirs, rate = _codecs._ffmpeg_decode(_codecs.find_ffmpeg(), wav, None, "wav")
        assert ours.rate == rate == 8000
        np.testing.assert_array_equal(ours.samples, theirs)


def test_adpcm_wav_is_decoded_through_ffmpeg() -> None:
    source = tone(440, 0.2, 16000)
    wav = ffmpeg(
        "-f",
        "wav",
        "-i",
        "pipe:0",
        "-c:a",
        "adpcm_ima_wav",
        "-f",
        "wav",
        "pipe:1",
        stdin=source.to_wav(),
    )
    a = cv.Audio.from_bytes(wav)
    assert a.rate == 16000 and abs(a.duration - 0.2) < 0.1  # padded to whole ADPCM blocks
    assert dominant_frequency(a) == pytest.approx(440, rel=0.01)


# ---------------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"RF64\xff\xff\xff\xffWAVEds64", "wav"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x05" + bytes(5) + b"\xff\xfb\x90\x64", "mp3"),
        (b"\xff\xfb\x90\x64" + bytes(8), "mp3"),
        (b"\xff\xf3\x48\xc4" + bytes(8), "mp3"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "aac"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00fLaC\x00\x00\x00\x22", "flac"),
        (b"OggS\x00\x02" + bytes(22) + b"\x13OpusHead", "ogg"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "matroska"),
        (b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00", "mp4"),
        (b"FORM\x00\x00\x10\x00AIFFCOMM", "aiff"),
        (b"caff\x00\x01\x00\x00", "caf"),
        (b"#!AMR\n", "amr"),
        (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), "wma"),
        (b".snd\x00\x00\x00\x18", "au"),
        (b"\xff\xff\xff\xff\xff\xff", None),
        (b"hello world", None),
        (b"\x00" * 32, None),
    ],
)
def test_sniff(head: bytes, kind: str | None) -> None:
    assert _codecs.sniff(head) == kind


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "HTML"),
        (b'{"error": {"message": "invalid key"}}', "JSON"),
        (b"just some words", "plain text"),
        (bytes(range(7, 200)), "07 08 09"),
    ],
)
def test_unknown_formats_say_what_the_data_looks_like(data: bytes, message: str) -> None:
    with pytest.raises(cv.AudioFormatError, match=message) as info:
        cv.Audio.from_bytes(data)
    assert "from_pcm16" in str(info.value) and "format=" in str(info.value)


@pytest.mark.parametrize("make", ["wav", "junk"])
def test_an_unknown_format_name_is_an_error_that_lists_the_known_ones(make: str) -> None:
    data = tone(440, 0.1, 8000).to_wav() if make == "wav" else b"\x00" * 64
    with pytest.raises(cv.AudioFormatError, match=r"format='bogus' is not.*wav, mp3, ogg"):
        cv.Audio.from_bytes(data, format="bogus")
    with pytest.raises(cv.AudioFormatError, match="format='bogus'"):
        cv.Audio.from_file(io.BytesIO(data), format="bogus")
    with pytest.raises(TypeError, match="format name"):
        cv.Audio.from_bytes(data, format=3)  # type: ignore[arg-type]


def test_format_names_known_to_chainvoice_or_to_ffmpeg_are_accepted(tmp_path: Path) -> None:
    wav = tone(440, 0.1, 8000).to_wav()
    path = tmp_path / "x.wav"
    path.write_bytes(wav)
    for name in ("mp3", ".MP3", "Wave", "oga", "w64"):  # w64: an ffmpeg demuxer
        assert cv.Audio.from_bytes(wav, format=name).frames == 800  # the content decides
        assert cv.Audio.from_file(path, format=name).frames == 800


def test_without_ffmpeg_only_known_format_names_are_accepted(no_ffmpeg: None) -> None:
    wav = tone(440, 0.1, 8000).to_wav()
    assert cv.Audio.from_bytes(wav, format="mp3").frames == 800
    with pytest.raises(cv.AudioFormatError, match="with ffmpeg installed"):
        cv.Audio.from_bytes(wav, format="w64")


def test_empty_and_wrongly_typed_input() -> None:
    with pytest.raises(cv.EmptyAudioError, match="empty"):
        cv.Audio.from_bytes(b"")
    with pytest.raises(TypeError, match="from_file"):
        cv.Audio.from_bytes("speech.wav")  # type: ignore[arg-type]
    with pytest.raises(cv.AudioFormatError, match="from_pcm16"):
        cv.Audio.from_bytes(b"\x01\x02\x03\x04", format="pcm")


# ------------------------------------------------------------------------ compressed formats


@pytest.mark.parametrize(
    ("name", "kind", "rate_out"),
    [
        ("mp3", "mp3", 16000),
        ("ogg", "ogg", 16000),
        ("opus", "ogg", 48000),
        ("flac", "flac", 16000),
        ("webm", "webm", 48000),
        ("m4a", "mp4", 16000),
        ("aac", "aac", 16000),
        ("aiff", "aiff", 16000),
    ],
)
def test_compressed_round_trip(name: str, kind: str, rate_out: int) -> None:
    a = tone(440, 0.3, 16000)
    data = a.encode(name)
    assert _codecs.sniff(data) == kind
    b = cv.Audio.from_bytes(data)
    assert (b.rate, b.channels) == (rate_out, 1)
    assert abs(b.duration - a.duration) < 0.1
    assert dominant_frequency(b) == pytest.approx(440, rel=0.01)
    if name in ("flac", "aiff"):  # lossless at 16 bits
        assert b.to_pcm16() == a.to_pcm16()


def test_stereo_survives_mp3() -> None:
    left = tone(300, 0.3, 22050).samples[:, 0]
    right = tone(1000, 0.3, 22050).samples[:, 0]
    a = cv.Audio(np.stack([left, right], axis=1), 22050)
    b = cv.Audio.from_bytes(a.encode("mp3"))
    assert b.channels == 2
    assert dominant_frequency(cv.Audio(b.samples[:, 0], b.rate)) == pytest.approx(300, rel=0.01)
    assert dominant_frequency(cv.Audio(b.samples[:, 1], b.rate)) == pytest.approx(1000, rel=0.01)


def test_bitrate_option() -> None:
    a = tone(440, 1.0, 24000)
    assert len(a.encode("mp3", bitrate="32k")) < len(a.encode("mp3", bitrate=192_000))
    with pytest.raises(cv.ConfigurationError, match="lossless"):
        a.encode("flac", bitrate="64k")
    with pytest.raises(cv.ConfigurationError, match="64k"):
        a.encode("mp3", bitrate="fast")
    with pytest.raises(cv.ConfigurationError, match="too low"):
        a.encode("mp3", bitrate=64)
    with pytest.raises(cv.ConfigurationError, match="no bitrate"):
        a.encode("wav", bitrate="64k")
    with pytest.raises(cv.ConfigurationError, match="WAV only"):
        a.encode("mp3", sample_format="pcm24")


def test_encode_errors() -> None:
    with pytest.raises(cv.AudioFormatError, match=r"'xyz'.*mp3.*flac"):
        tone(440, 0.1, 8000).encode("xyz")
    with pytest.raises(cv.EmptyAudioError, match="0 frames"):
        cv.Audio.silence(0).encode("mp3")


def test_corrupt_compressed_data() -> None:
    good = tone(440, 0.3, 16000).encode("m4a")
    with pytest.raises(cv.AudioFormatError, match="could not decode"):
        cv.Audio.from_bytes(good[: len(good) // 2])
    with pytest.raises(cv.AudioFormatError, match="could not decode"):
        cv.Audio.from_bytes(b"OggS" + bytes(range(256)) * 4)
    with pytest.raises((cv.AudioFormatError, cv.EmptyAudioError)):
        cv.Audio.from_bytes(b"fLaC" + b"\x00" * 300)


def test_video_without_sound() -> None:
    video = ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=0.2:size=32x32:rate=5",
        "-c:v", "mpeg4", "-f", "mp4", "-movflags", "frag_keyframe+empty_moov", "pipe:1",
    )  # fmt: skip
    with pytest.raises(cv.AudioFormatError, match="no audio stream"):
        cv.Audio.from_bytes(video)


# ---------------------------------------------------------------------------- files and save


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".opus", ".pcm"])
def test_save_and_from_file(tmp_path: Path, suffix: str) -> None:
    a = tone(440, 0.25, 24000)
    path = a.save(tmp_path / f"clip{suffix}")
    assert path == tmp_path / f"clip{suffix}" and path.stat().st_size > 0
    if suffix == ".pcm":
        assert path.read_bytes() == a.to_pcm16()
        return
    for source in (path, str(path)):
        b = cv.Audio.from_file(source)
        assert dominant_frequency(b) == pytest.approx(440, rel=0.01)
    with path.open("rb") as f:
        assert cv.Audio.from_file(f).frames == b.frames


def test_save_wav_options(tmp_path: Path) -> None:
    a = tone(440, 0.1, 8000)
    p = a.save(tmp_path / "x.WAV", sample_format="float32")
    assert cv.Audio.from_file(p) == a
    p2 = a.save(tmp_path / "y.bin", format="flac")
    assert p2.read_bytes()[:4] == b"fLaC"


@pytest.mark.parametrize("name", ["clip.xyz", "clip"])
def test_save_with_an_unknown_suffix_lists_the_supported_ones(tmp_path: Path, name: str) -> None:
    with pytest.raises(cv.AudioFormatError, match=r"\.wav.*\.mp3.*\.flac"):
        tone(440, 0.1, 8000).save(tmp_path / name)
    assert not (tmp_path / name).exists()


def test_suffix_and_format_are_hints_for_unrecognised_content(tmp_path: Path) -> None:
    mp3 = tone(440, 0.3, 16000).encode("mp3")
    junk = b"\x00" * 64 + mp3  # some tools pad the start of an MP3
    with pytest.raises(cv.AudioFormatError):
        cv.Audio.from_bytes(junk)
    assert dominant_frequency(cv.Audio.from_bytes(junk, format="mp3")) == pytest.approx(
        440, rel=0.01
    )
    path = tmp_path / "padded.mp3"
    path.write_bytes(junk)
    assert dominant_frequency(cv.Audio.from_file(path)) == pytest.approx(440, rel=0.01)
    assert cv.Audio.from_file(io.BytesIO(junk), format="mp3").channels == 1


def id3_tag(size: int) -> bytes:
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + bytes(size)


@pytest.mark.parametrize("tag_size", [100, 100_000])
def test_flac_behind_an_id3_tag(tmp_path: Path, tag_size: int) -> None:
    a = tone(440, 0.2, 16000)
    data = id3_tag(tag_size) + a.encode("flac")
    assert _codecs.sniff(data) == "flac"
    path = tmp_path / "tagged.bin"
    path.write_bytes(data)
    assert cv.Audio.from_file(path).to_pcm16() == a.to_pcm16()
    assert cv.Audio.from_bytes(data).to_pcm16() == a.to_pcm16()


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        cv.Audio.from_file(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(cv.EmptyAudioError, match=r"empty\.wav"):
        cv.Audio.from_file(empty)
    text = tmp_path / "notes.wav"
    text.write_text("not really audio")
    with pytest.raises(cv.AudioFormatError, match=r"notes\.wav.*plain text"):
        cv.Audio.from_file(text)
    with pytest.raises(TypeError, match="'rb'"):
        cv.Audio.from_file(io.StringIO("RIFF"))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ no ffmpeg


def test_missing_ffmpeg_says_how_to_get_one(no_ffmpeg: None) -> None:
    a = tone(440, 0.1, 8000)
    with pytest.raises(cv.FFmpegNotFoundError, match=r"MP3.*chainvoice\[ffmpeg\]") as info:
        a.encode("mp3")
    assert isinstance(info.value, cv.AudioError) and "apt install ffmpeg" in str(info.value)
    with pytest.raises(cv.FFmpegNotFoundError, match=r"reading OGG.*chainvoice\[ffmpeg\]"):
        cv.Audio.from_bytes(b"OggS" + bytes(100))


def test_wav_and_pcm_need_no_ffmpeg(no_ffmpeg: None) -> None:
    a = tone(440, 0.1, 8000)
    assert cv.Audio.from_bytes(a.encode("wav")).to_pcm16() == a.to_pcm16()
    assert a.encode(".WAV", sample_format="float32") == a.to_wav(sample_format="float32")
    assert a.encode("pcm16") == a.to_pcm16()


def test_non_pcm_wav_without_ffmpeg(no_ffmpeg: None) -> None:
    wav = riff(fmt(0x0011, 1, 8000, 4), chunk(b"data", bytes(256)))
    with pytest.raises(cv.FFmpegNotFoundError, match="codec 0x0011"):
        cv.Audio.from_bytes(wav)


def test_chainvoice_ffmpeg_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = _codecs.find_ffmpeg()
    monkeypatch.setenv("CHAINVOICE_FFMPEG", str(tmp_path / "nope"))
    _codecs.clear_ffmpeg_cache()
    try:
        with pytest.raises(cv.FFmpegNotFoundError, match="CHAINVOICE_FFMPEG"):
            tone(440, 0.1, 8000).encode("flac")
        monkeypatch.setenv("CHAINVOICE_FFMPEG", real)
        _codecs.clear_ffmpeg_cache()
        assert _codecs.find_ffmpeg() == real
    finally:
        _codecs.clear_ffmpeg_cache()


# ------------------------------------------------------------------------------------ pydub


def test_segment_round_trip_and_export() -> None:
    a = tone(440, 0.2, 22050, channels=2)
    seg = a.to_segment()
    assert (seg.frame_rate, seg.channels, seg.sample_width) == (22050, 2, 2)
    assert cv.Audio.from_segment(seg).to_pcm16() == a.to_pcm16()
    # pydub is pointed at chainvoice's ffmpeg, so exporting works without ffmpeg on PATH.
    with seg.export(format="mp3") as f:
        exported = f.read()
    assert dominant_frequency(cv.Audio.from_bytes(exported)) == pytest.approx(440, rel=0.01)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_from_segment_of_other_widths(width: int) -> None:
    pydub = _codecs.load_pydub()
    ints = np.array([0, 1, -1], dtype=np.int64) * (2 ** (8 * width - 1) - 1)
    raw = b"".join(int(v).to_bytes(width, "little", signed=True) for v in ints)
    seg = pydub.AudioSegment(data=raw, sample_width=width, frame_rate=8000, channels=1)
    a = cv.Audio.from_segment(seg)
    np.testing.assert_allclose(a.samples[:, 0], [0, 1, -1], atol=1 / 2 ** (8 * width - 2))


def test_from_segment_errors() -> None:
    pydub = _codecs.load_pydub()
    with pytest.raises(cv.EmptyAudioError):
        cv.Audio.from_segment(pydub.AudioSegment.empty())
    with pytest.raises(cv.InvalidSamplesError, match="AudioSegment"):
        cv.Audio.from_segment(b"not a segment")  # type: ignore[arg-type]
    odd = pydub.AudioSegment(data=bytes(4), sample_width=2, frame_rate=10**9, channels=1)
    with pytest.raises(cv.SampleRateError, match=r"frame rate must be .* to 768000"):
        cv.Audio.from_segment(odd)


# ------------------------------------------------------------------------- import isolation


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_import_chainvoice_imports_no_optional_dependency() -> None:
    proc = run_python(
        "import sys, numpy as np, chainvoice as cv\n"
        "a = cv.Audio(np.zeros(800, dtype=np.float32), 8000)\n"
        "cv.Audio.from_bytes(a.to_wav()).silences(); a[0.01:0.05].to_mono()\n"
        "optional = ('pydub', 'audioop', 'soxr', 'imageio_ffmpeg', 'hypothesis', 'openai')\n"
        "loaded = [m for m in optional if m in sys.modules]\n"
        "print(loaded)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_strategies_without_hypothesis_name_the_extra() -> None:
    proc = run_python(
        "import sys; sys.modules['hypothesis'] = None\n"
        "try:\n"
        "    import chainvoice.testing.strategies\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MissingDependencyError")
    assert "chainvoice[test]" in proc.stdout


# ------------------------------------------------------------------------------- strategies


@given(
    audio(
        min_duration=0.01,
        max_duration=0.05,
        rates=[8000, 16000],
        channels=[1, 3],
        max_amplitude=0.5,
    )
)
@FAST
def test_audio_strategy_respects_its_bounds(a: cv.Audio) -> None:
    assert a.rate in (8000, 16000) and a.channels in (1, 3)
    assert 0.01 - 1 / a.rate < a.duration <= 0.05
    assert a.peak <= 0.5 + 1e-6


@given(audio(max_duration=0.02, quantized=True))
@FAST
def test_quantized_strategy_is_on_the_pcm16_grid(a: cv.Audio) -> None:
    scaled = a.samples.astype(np.float64) * 32768
    assert np.array_equal(scaled, np.round(scaled)) and a.peak <= 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_duration": 1.0, "max_duration": 0.5},
        {"min_duration": -1.0},
        {"rates": []},
        {"rates": [0]},
        {"channels": [0]},
        {"signals": ["music"]},
        {"max_amplitude": -1.0},
    ],
)
def test_audio_strategy_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        audio(**kwargs)  # type: ignore[arg-type]
