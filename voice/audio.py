"""Audio formats, G.711 codecs, resampling and WAV helpers.

Inside the voice package audio is PCM16 little-endian mono; clients and telephony speak
other formats. This module converts at the edges: `decode_to_pcm16` / `encode_from_pcm16`
change the sample encoding (the rate is untouched), `Resampler` changes the rate of a
stream chunk by chunk, and `wav_bytes` / `read_wav` box PCM for engines that want files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

Encoding = Literal["pcm16", "ulaw", "alaw"]


class AudioFormatError(ValueError):
    """Audio bytes that cannot be what their format says (e.g. half a PCM16 sample)."""


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


def _build_ulaw_tables() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint8]]:
    # The ITU-T G.711 reference algorithm (as in Sun's g711.c and CPython's audioop),
    # vectorised over every code and every int16 value once at import.
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((codes & 0x0F) << 3) + 0x84) << ((codes & 0x70) >> 4)
    decode = np.where(codes & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)

    linear = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(linear < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(linear), 8159) + (0x84 >> 2)
    segment_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(segment_ends, value, side="left")
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((value >> (segment + 1)) & 0x0F))
    encoded = (code ^ mask) & 0xFF
    return decode, _by_uint16(encoded)


def _build_alaw_tables() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint8]]:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (codes & 0x70) >> 4
    base = (codes & 0x0F) << 4
    magnitude = np.where(segment == 0, base + 8, (base + 0x108) << np.maximum(segment - 1, 0))
    decode = np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)

    linear = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(linear >= 0, 0xD5, 0x55)
    value = np.where(linear >= 0, linear, -linear - 1)
    segment_ends = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    seg = np.searchsorted(segment_ends, value, side="left")
    shift = np.where(seg < 2, 1, seg)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((value >> shift) & 0x0F))
    encoded = (code ^ mask) & 0xFF
    return decode, _by_uint16(encoded)


def _by_uint16(encoded_by_int16: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """Reorder a table built for -32768..32767 so it is indexed by the sample's uint16 bits."""
    return np.roll(encoded_by_int16.astype(np.uint8), -32768)


_ULAW_DECODE, _ULAW_ENCODE = _build_ulaw_tables()
_ALAW_DECODE, _ALAW_ENCODE = _build_alaw_tables()


def _pcm16_samples(pcm: bytes, channels: int = 1) -> npt.NDArray[np.int16]:
    if len(pcm) % (2 * channels):
        raise AudioFormatError(
            f"PCM16 data of {len(pcm)} bytes is not a whole number of {channels}-channel frames"
        )
    return np.frombuffer(pcm, dtype="<i2")


def decode_to_pcm16(data: bytes, fmt: AudioFormat) -> bytes:
    """Return `data` (in `fmt`) as PCM16 little-endian at the same rate and channel count."""
    if fmt.encoding == "pcm16":
        # The per-frame path of every session: a length check, no array, no copy of `bytes`.
        if len(data) % (2 * fmt.channels):
            _pcm16_samples(data, fmt.channels)
        return data if type(data) is bytes else bytes(data)
    table = _ULAW_DECODE if fmt.encoding == "ulaw" else _ALAW_DECODE
    return table[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def encode_from_pcm16(pcm: bytes, fmt: AudioFormat) -> bytes:
    """Encode PCM16 little-endian samples as `fmt`'s encoding (rate and channels unchanged)."""
    samples = _pcm16_samples(pcm, fmt.channels)
    if fmt.encoding == "pcm16":
        return bytes(pcm)
    table = _ULAW_ENCODE if fmt.encoding == "ulaw" else _ALAW_ENCODE
    return table[samples.view(np.uint16)].tobytes()


class Resampler:
    """A streaming PCM16 mono resampler: chunk boundaries leave no seams.

    Feed any byte chunks (even odd-sized ones; a dangling byte waits for its partner) to
    `process`, then call `flush` once at the end of the stream to drain the filter's tail.
    One instance per stream: it keeps filter state between calls.
    """

    def __init__(self, src_rate: int, dst_rate: int, *, quality: str = "HQ") -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise AudioFormatError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._pending = b""
        self._stream = (
            soxr.ResampleStream(src_rate, dst_rate, 1, dtype="int16", quality=quality)
            if src_rate != dst_rate
            else None
        )

    def process(self, pcm: bytes) -> bytes:
        data = self._pending + pcm if self._pending else pcm
        whole = len(data) - len(data) % 2
        self._pending = data[whole:]
        if self._stream is None:
            return bytes(data[:whole])
        if not whole:
            return b""
        samples = np.frombuffer(data[:whole], dtype="<i2")
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(samples)
        return out.astype("<i2", copy=False).tobytes()

    def flush(self) -> bytes:
        """Drain the resampler at the end of the stream; a lone trailing byte is dropped."""
        self._pending = b""
        if self._stream is None:
            return b""
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        return out.astype("<i2", copy=False).tobytes()


def resample(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample a whole PCM16 mono buffer."""
    if src_rate == dst_rate:
        _pcm16_samples(pcm)
        return bytes(pcm)
    samples = _pcm16_samples(pcm)
    out: npt.NDArray[np.int16] = soxr.resample(samples, src_rate, dst_rate)
    return out.astype("<i2", copy=False).tobytes()


def pcm16_seconds(pcm: bytes, sample_rate: int) -> float:
    return len(pcm) / (2 * sample_rate)


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """A PCM16 mono WAV file holding `pcm`."""
    buffer = io.BytesIO()
    soundfile.write(buffer, _pcm16_samples(pcm), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


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
        soundfile.write(buffer, _pcm16_samples(pcm), rate, format=container, subtype=codec)
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
