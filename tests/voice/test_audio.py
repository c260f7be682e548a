from __future__ import annotations

import io
import random
import warnings

import numpy as np
import pytest
import soundfile

from providers.speech.pcm import AudioFormatError, Resampler, wav_bytes
from tests.voice.fakes import tone
from voice.audio import (
    ALAW_8K,
    PCM16_16K,
    PCM16_24K,
    ULAW_8K,
    AudioFormat,
    decode_to_pcm16,
    encode_from_pcm16,
    pcm16_seconds,
    read_wav,
    resample,
)

with warnings.catch_warnings():
    # audioop is deprecated, but until 3.13 it is CPython's own G.711 reference: our
    # lookup tables must agree with it bit for bit.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

EVERY_SAMPLE = np.arange(-32768, 32768, dtype="<i2").tobytes()
EVERY_CODE = bytes(range(256))


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int64)


def dominant_frequency(pcm: bytes, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples(pcm)))
    return float(np.fft.rfftfreq(len(pcm) // 2, 1 / rate)[int(np.argmax(spectrum))])


def test_ulaw_matches_reference_for_every_sample_and_code() -> None:
    assert encode_from_pcm16(EVERY_SAMPLE, ULAW_8K) == audioop.lin2ulaw(EVERY_SAMPLE, 2)
    assert decode_to_pcm16(EVERY_CODE, ULAW_8K) == audioop.ulaw2lin(EVERY_CODE, 2)


def test_alaw_matches_reference_for_every_sample_and_code() -> None:
    assert encode_from_pcm16(EVERY_SAMPLE, ALAW_8K) == audioop.lin2alaw(EVERY_SAMPLE, 2)
    assert decode_to_pcm16(EVERY_CODE, ALAW_8K) == audioop.alaw2lin(EVERY_CODE, 2)


@pytest.mark.parametrize("fmt", [ULAW_8K, ALAW_8K])
def test_g711_round_trip_keeps_a_tone_within_quantisation_error(fmt: AudioFormat) -> None:
    pcm = tone(8000, 0.5, amplitude=12000)
    encoded = encode_from_pcm16(pcm, fmt)
    assert len(encoded) == len(pcm) // 2
    decoded = decode_to_pcm16(encoded, fmt)
    error = np.abs(samples(decoded) - samples(pcm))
    # G.711 keeps about 12 bits of precision: the step near full scale is 1024.
    assert error.max() <= 1024
    assert error.mean() < 200


def test_pcm16_passes_through_and_rejects_half_samples() -> None:
    pcm = tone(16000, 0.1)
    assert decode_to_pcm16(pcm, PCM16_16K) == pcm
    assert encode_from_pcm16(pcm, PCM16_24K) == pcm
    with pytest.raises(AudioFormatError, match="101 bytes"):
        decode_to_pcm16(b"\x00" * 101, PCM16_16K)
    with pytest.raises(ValueError):
        encode_from_pcm16(b"\x00" * 3, ULAW_8K)


def test_audio_format_validates_and_measures() -> None:
    assert PCM16_24K.bytes_per_second == 48_000
    assert ULAW_8K.duration_seconds(b"\x00" * 160) == pytest.approx(0.02)
    with pytest.raises(AudioFormatError):
        AudioFormat("mp3", 16_000)  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError):
        AudioFormat("pcm16", 0)
    assert pcm16_seconds(b"\x00" * 32_000, 16_000) == pytest.approx(1.0)


def test_streaming_resampler_is_seamless_across_arbitrary_chunks() -> None:
    pcm = tone(24_000, 1.0)
    whole = resample(pcm, 24_000, 16_000)
    stream = Resampler(24_000, 16_000)
    rng = random.Random(7)
    out = bytearray()
    offset = 0
    while offset < len(pcm):
        size = rng.randint(1, 999)  # odd sizes split samples between chunks
        out += stream.process(pcm[offset : offset + size])
        offset += size
    out += stream.flush()
    assert len(out) == len(whole) == 32_000
    assert np.abs(samples(bytes(out)) - samples(whole)).max() <= 2
    # Resampling each chunk on its own would leave audible seams; the stream does not.
    naive = b"".join(resample(pcm[i : i + 960], 24_000, 16_000) for i in range(0, len(pcm), 960))
    assert np.abs(samples(naive[: len(whole)]) - samples(whole)).max() > 50


def test_resampling_preserves_pitch_and_duration() -> None:
    pcm = tone(22_050, 1.0, frequency=300)
    out = resample(pcm, 22_050, 16_000)
    assert pcm16_seconds(out, 16_000) == pytest.approx(1.0, abs=0.001)
    assert dominant_frequency(out, 16_000) == pytest.approx(300, abs=2)


def test_same_rate_resampler_passes_bytes_through() -> None:
    stream = Resampler(16_000, 16_000)
    assert stream.process(b"\x01\x02\x03") == b"\x01\x02"
    assert stream.process(b"\x04") == b"\x03\x04"
    assert stream.flush() == b""


def test_wav_round_trip_and_stereo_downmix() -> None:
    pcm = tone(16_000, 0.25)
    assert read_wav(wav_bytes(pcm, 16_000)) == (pcm, 16_000)

    left = samples(tone(8_000, 0.1, amplitude=1000))
    stereo = np.stack([left, left + 200], axis=1).astype(np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo, 8_000, format="WAV", subtype="PCM_16")
    mono, rate = read_wav(buffer.getvalue())
    assert rate == 8_000
    assert np.array_equal(samples(mono), left + 100)


def test_read_wav_rejects_garbage() -> None:
    with pytest.raises(AudioFormatError):
        read_wav(b"not a wav file at all")
