"""Audio formats, edge conversions and audio files.

Inside the voice package audio is PCM16 little-endian mono; clients and telephony speak
other formats. This module converts at the edges: `decode_to_pcm16` / `encode_from_pcm16`
change the sample encoding (the rate is untouched), `resample` changes the rate of a whole
buffer, and `read_wav` / `encode_file` read and write files. The primitives below them
(G.711 tables, the streaming `Resampler`, `wav_bytes`) are providers/speech/pcm.py, shared
with the cloud speech engines.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from providers.speech.pcm import AudioFormatError, g711_decode, g711_encode, pcm16_samples

Encoding = Literal["pcm16", "ulaw", "alaw"]


@dataclass(frozen=True, slots=True)
class AudioFormat:
    encoding: Encoding
    sample_rate: int
    channels: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in ("pcm16", "ulaw", "alaw"):
            raise AudioFormatError(f"unknown audio encoding {self.encoding!r}")
        if self.sample_rate <= 0:
            raise AudioFormatError(f"sample rate must be positive, got {self.sample_rate}")
        if self.channels < 1:
            raise AudioFormatError(f"channel count must be at least 1, got {self.channels}")

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "pcm16" else 1

    @property
    def bytes_per_second(self) -> int:
        return self.bytes_per_sample * self.channels * self.sample_rate

    def duration_seconds(self, data: bytes) -> float:
        return len(data) / self.bytes_per_second


PCM16_16K = AudioFormat("pcm16", 16_000)
PCM16_24K = AudioFormat("pcm16", 24_000)
ULAW_8K = AudioFormat("ulaw", 8_000)
ALAW_8K = AudioFormat("alaw", 8_000)


def decode_to_pcm16(data: bytes, fmt: AudioFormat) -> bytes:
    """Return `data` (in `fmt`) as PCM16 little-endian at the same rate and channel count."""
    if fmt.encoding == "pcm16":
        # The per-frame path of every session: a length check, no array, no copy of `bytes`.
        if len(data) % (2 * fmt.channels):
            pcm16_samples(data, fmt.channels)
        return data if type(data) is bytes else bytes(data)
    return g711_decode(data, fmt.encoding)


def encode_from_pcm16(pcm: bytes, fmt: AudioFormat) -> bytes:
    """Encode PCM16 little-endian samples as `fmt`'s encoding (rate and channels unchanged)."""
    if fmt.encoding == "pcm16":
        pcm16_samples(pcm, fmt.channels)
        return bytes(pcm)
    return g711_encode(pcm, fmt.encoding, channels=fmt.channels)


def resample(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample a whole PCM16 mono buffer."""
    if src_rate == dst_rate:
        pcm16_samples(pcm)
        return bytes(pcm)
    samples = pcm16_samples(pcm)
    out: npt.NDArray[np.int16] = soxr.resample(samples, src_rate, dst_rate)
    return out.astype("<i2", copy=False).tobytes()


def pcm16_seconds(pcm: bytes, sample_rate: int) -> float:
    return len(pcm) / (2 * sample_rate)


FileFormat = Literal["mp3", "opus", "flac"]

# libsndfile's container and codec for each compressed file format we write.
_FILE_FORMATS: dict[str, tuple[str, str]] = {
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
    "flac": ("FLAC", "PCM_16"),
}
_OPUS_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)


def can_encode(fmt: FileFormat) -> bool:
    """Whether this libsndfile writes `fmt` (the soundfile wheels' own build writes all three)."""
    container, codec = _FILE_FORMATS[fmt]
    return container in soundfile.available_formats() and codec in soundfile.available_subtypes(container)


def encode_file(pcm: bytes, rate: int, fmt: FileFormat) -> bytes:
    """PCM16 mono as a complete mp3, Ogg Opus or FLAC file. CPU-bound: run it off the event loop.

    Whole files only: libsndfile patches each format's header when it closes the file (frame
    counts, stream info), so bytes handed out before the end would describe a file that never was.
    """
    container, codec = _FILE_FORMATS[fmt]
    if fmt == "opus" and rate not in _OPUS_RATES:
        pcm, rate = resample(pcm, rate, 48_000), 48_000
    buffer = io.BytesIO()
    try:
        soundfile.write(buffer, pcm16_samples(pcm), rate, format=container, subtype=codec)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise AudioFormatError(f"cannot encode {fmt}: {exc}") from None
    return buffer.getvalue()


def read_wav(data: bytes) -> tuple[bytes, int]:
    """Decode a WAV (or any soundfile-readable) file to (PCM16 mono bytes, sample rate).

    Multi-channel audio is averaged down to mono.
    """
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise AudioFormatError(f"not a readable audio file: {exc}") from None
    frames: npt.NDArray[np.int16] = samples
    mono = frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1).round().astype(np.int16)
    return mono.astype("<i2", copy=False).tobytes(), int(rate)
