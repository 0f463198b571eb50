"""Seeded degradations that turn clean recordings into the conditions of the calibration set.

Every function takes 16 kHz float64 mono and a ``numpy.random.Generator`` (from
:func:`dsp.rng_for`, seeded by the output path), so a degraded file is a pure function of
its row in ``degradations.csv``. The CLI materialises that manifest::

    python -m tools.calibration_set.degrade --corpus var/calibration-corpus --root var/calibration

writes ``<root>/degraded/...`` and links ``<root>/audio`` to the corpus, so every path of
the trial and identification lists resolves under ``--audio-root <root>``.

Conditions (parameters as in ``make_lists.CONDITIONS``):

* ``crop``: a contiguous excerpt holding ``seconds`` of net speech (energy gate of
  :mod:`dsp`), starting at a random speech onset; pauses inside are kept.
* ``telephone``: resample to 8 kHz, 4th-order Butterworth band-pass 300-3400 Hz, G.711
  mu-law encode/decode (the ITU segment table, 8 bits per sample), written at 8 kHz.
* ``codec``: encoded by libsndfile (through soundfile) and stored encoded: MP3 at 16 kbit/s
  CBR, Ogg/Vorbis at its lowest quality (~22 kbit/s at 16 kHz), Ogg/Opus at ~8 kbit/s.
* ``noise``: additive noise scaled to an SNR against the power of the speech frames:
  ``white`` (Gaussian), ``pink`` (1/f power, shaped in the FFT domain), ``hum`` (mains at
  50 or 60 Hz with 8 harmonics, amplitudes 1/k, random phases), ``babble`` (five talkers of
  the same split that are in no trial of that split, each at equal speech power, random
  offsets, looped to length).
* ``reverb``: convolution with a synthetic room impulse response: a direct path, eight
  early reflections within 2-40 ms and an exponentially decaying Gaussian tail with the
  given RT60 (60 dB of decay in RT60 seconds); the direct-to-reverberant ratio is drawn in
  [-3, +6] dB. The output is scaled back to the input's speech level.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, sosfilt

from tools.calibration_set import dsp

logger = logging.getLogger(__name__)

TELEPHONE_RATE = 8_000
TELEPHONE_BAND_HZ = (300.0, 3400.0)
CODECS: dict[str, dict[str, Any]] = {
    "mp3_16k": {"format": "MP3", "subtype": "MPEG_LAYER_III", "bitrate_mode": "CONSTANT",
                "compression_level": 0.93, "ext": "mp3"},
    "vorbis_low": {"format": "OGG", "subtype": "VORBIS", "compression_level": 1.0, "ext": "ogg"},
    "opus_8k": {"format": "OGG", "subtype": "OPUS", "compression_level": 1.0, "ext": "ogg"},
}
BABBLE_TALKERS = 5
MAINS_HARMONICS = 8


class DegradeError(ValueError):
    """A degradation that cannot be made as asked (e.g. a crop longer than the speech)."""


# ----------------------------------------------------------------------------- crops


def crop_net_speech(x: np.ndarray, seconds: float, rng: np.random.Generator, rate: int = dsp.RATE) -> np.ndarray:
    """A contiguous excerpt of ``x`` holding ``seconds`` of net speech.

    Starts at a speech onset drawn from those that leave enough speech after them, and
    ends at the frame where the speech count reaches ``seconds``.

    Raises
    ------
    DegradeError
        ``x`` holds less than ``seconds`` of speech.
    """
    mask = dsp.speech_frames(x, rate)
    need = int(round(seconds / dsp.HOP_S))
    remaining = np.cumsum(mask[::-1])[::-1]
    onsets = np.flatnonzero(mask & np.r_[True, ~mask[:-1]] & (remaining >= need))
    if onsets.size == 0:
        raise DegradeError(f"{mask.sum() * dsp.HOP_S:.2f} s of speech, less than the {seconds} s crop")
    start = int(rng.choice(onsets))
    end = start + int(np.searchsorted(np.cumsum(mask[start:]), need)) + 1
    hop = int(dsp.HOP_S * rate)
    return x[start * hop : min(x.size, end * hop + int(dsp.FRAME_S * rate))]


# ----------------------------------------------------------------------------- telephone

_ULAW_BIAS = 0x84
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def ulaw_encode(pcm16: np.ndarray) -> np.ndarray:
    """ITU-T G.711 mu-law: int16 samples -> uint8 codes.

    The reference algorithm (Sun's ``g711.c``, as in CPython's ``audioop.lin2ulaw``): keep
    14 bits, add the bias, find the segment, take 4 mantissa bits, invert.
    """
    s = pcm16.astype(np.int32) >> 2
    mask = np.where(s < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(s), 8159) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag, side="left")
    uval = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    return (uval ^ mask).astype(np.uint8)


def ulaw_decode(codes: np.ndarray) -> np.ndarray:
    """G.711 mu-law uint8 codes -> int16 samples."""
    u = (~codes.astype(np.int32)) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def telephone(x: np.ndarray, rate: int = dsp.RATE) -> np.ndarray:
    """Narrowband telephone channel: 8 kHz, 300-3400 Hz band-pass, G.711 mu-law.

    Returns
    -------
    ``(m,)`` float64 at :data:`TELEPHONE_RATE`.
    """
    y = dsp.resample(x, rate, TELEPHONE_RATE)
    sos = butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=TELEPHONE_RATE, output="sos")
    y = sosfilt(sos, y)
    pcm = np.round(np.clip(y, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    return ulaw_decode(ulaw_encode(pcm)).astype(np.float64) / 32768


# ----------------------------------------------------------------------------- codecs


def encode(x: np.ndarray, codec: str, rate: int = dsp.RATE, *, ogg_serial: int = 0x5EED) -> bytes:
    """``x`` encoded with one of :data:`CODECS` (the bytes of the compressed file).

    libogg gives each stream a random serial number; it is replaced by ``ogg_serial`` (and
    the page checksums recomputed) so that an Ogg file, too, is the same bytes on every run.
    """
    spec = dict(CODECS[codec])
    spec.pop("ext")
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), rate, **spec)
    data = buf.getvalue()
    return set_ogg_serial(data, ogg_serial) if spec["format"] == "OGG" else data


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def ogg_crc(page: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, not reflected, initial 0)."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ byte]
    return crc


def set_ogg_serial(data: bytes, serial: int) -> bytes:
    """``data`` (a single-stream Ogg file) with every page's serial number set to ``serial``."""
    out = bytearray(data)
    pos = 0
    while pos < len(out):
        if out[pos : pos + 4] != b"OggS":
            raise DegradeError(f"not an Ogg page at byte {pos}")
        nsegs = out[pos + 26]
        size = 27 + nsegs + sum(out[pos + 27 : pos + 27 + nsegs])
        out[pos + 14 : pos + 18] = serial.to_bytes(4, "little")
        out[pos + 22 : pos + 26] = b"\0\0\0\0"
        out[pos + 22 : pos + 26] = ogg_crc(bytes(out[pos : pos + size])).to_bytes(4, "little")
        pos += size
    return bytes(out)


# ----------------------------------------------------------------------------- noise


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f power spectrum (amplitude 1/sqrt(f), DC removed)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    spectrum /= np.sqrt(f)
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n)


def hum_noise(n: int, rng: np.random.Generator, rate: int = dsp.RATE) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and ``MAINS_HARMONICS`` harmonics, amplitude 1/k, random phases."""
    f0 = float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / rate
    phases = rng.uniform(0, 2 * np.pi, MAINS_HARMONICS)
    return sum(np.sin(2 * np.pi * k * f0 * t + phases[k - 1]) / k for k in range(1, MAINS_HARMONICS + 1))


def babble_noise(n: int, talkers: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Sum of ``talkers`` (each looped to ``n`` from a random offset) at equal speech power."""
    out = np.zeros(n)
    for t in talkers:
        t = t / np.sqrt(dsp.speech_power(t) + 1e-12)
        reps = int(np.ceil((n + t.size) / t.size)) + 1
        looped = np.tile(t, reps)
        offset = int(rng.integers(0, t.size))
        out += looped[offset : offset + n]
    return out


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float, rate: int = dsp.RATE) -> np.ndarray:
    """``x + g * noise`` with ``g`` such that speech power / noise power = ``snr_db``.

    The speech power is measured over the speech frames of ``x`` (:func:`dsp.speech_power`),
    the noise power over the whole noise. The sum is scaled down if it would clip.
    """
    p_speech = dsp.speech_power(x, rate)
    p_noise = float(np.mean(noise**2)) + 1e-20
    y = x + noise * np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    peak = np.max(np.abs(y))
    return y / peak * 0.99 if peak >= 1.0 else y


# ----------------------------------------------------------------------------- reverberation


def synthetic_rir(rt60: float, rng: np.random.Generator, rate: int = dsp.RATE,
                  drr_db: float | None = None) -> np.ndarray:
    """A synthetic room impulse response with reverberation time ``rt60`` seconds.

    Direct path at t = 0; eight early reflections between 2 and 40 ms (amplitudes 0.2-0.6,
    random signs); a Gaussian tail from 5 ms decaying by 60 dB in ``rt60`` s, scaled so the
    energy ratio direct / (reflections + tail) is ``drr_db`` (drawn in [-3, 6] dB if None).
    """
    n = int(1.2 * rt60 * rate) + 1
    t = np.arange(n) / rate
    reverb = np.zeros(n)
    early = rng.integers(int(0.002 * rate), int(0.040 * rate), 8)
    reverb[early] += rng.uniform(0.2, 0.6, 8) * rng.choice([-1.0, 1.0], 8)
    tail_start = int(0.005 * rate)
    reverb[tail_start:] += rng.standard_normal(n - tail_start) * np.exp(-6.9078 * t[tail_start:] / rt60)
    if drr_db is None:
        drr_db = float(rng.uniform(-3.0, 6.0))
    reverb *= np.sqrt(1.0 / (np.sum(reverb**2) * 10 ** (drr_db / 10)))
    reverb[0] = 1.0
    return reverb


def reverberate(x: np.ndarray, rir: np.ndarray, rate: int = dsp.RATE) -> np.ndarray:
    """``x`` convolved with ``rir`` (same length as ``x``), at the speech level of ``x``."""
    y = fftconvolve(x, rir)[: x.size]
    y *= np.sqrt(dsp.speech_power(x, rate) / (dsp.speech_power(y, rate) + 1e-20))
    peak = np.max(np.abs(y))
    return y / peak * 0.99 if peak >= 1.0 else y


def measured_rt60(rir: np.ndarray, rate: int = dsp.RATE) -> float:
    """RT60 by Schroeder backward integration, fitted on the -5 to -25 dB decay (T20 x 3)."""
    energy = np.cumsum(rir[::-1] ** 2)[::-1]
    edc = 10 * np.log10(energy / energy[0] + 1e-20)
    i5, i25 = int(np.argmax(edc <= -5)), int(np.argmax(edc <= -25))
    slope = np.polyfit(np.arange(i5, i25) / rate, edc[i5:i25], 1)[0]
    return float(-60.0 / slope)


# ----------------------------------------------------------------------------- manifest


def make(row: dict[str, str], corpus: Path) -> tuple[bytes | np.ndarray, int]:
    """One row of ``degradations.csv`` -> (samples or encoded bytes, rate)."""
    params = json.loads(row["params"])
    rng = dsp.rng_for("degrade", row["path"])
    x, rate, _ = dsp.decode((corpus / row["source"]).read_bytes())
    if rate != dsp.RATE:
        raise DegradeError(f"{row['source']} is at {rate} Hz, not {dsp.RATE}")
    kind = row["kind"]
    if kind == "crop":
        return crop_net_speech(x, float(params["seconds"]), rng), dsp.RATE
    if kind == "telephone":
        return telephone(x), TELEPHONE_RATE
    if kind == "codec":
        return encode(x, params["codec"], ogg_serial=int(rng.integers(1, 2**31))), dsp.RATE
    if kind == "noise":
        noise_type = params["noise"]
        if noise_type == "white":
            noise = white_noise(x.size, rng)
        elif noise_type == "pink":
            noise = pink_noise(x.size, rng)
        elif noise_type == "hum":
            noise = hum_noise(x.size, rng)
        elif noise_type == "babble":
            talkers = [dsp.decode((corpus / p).read_bytes())[0] for p in params["talkers"]]
            noise = babble_noise(x.size, talkers, rng)
        else:
            raise DegradeError(f"unknown noise {noise_type!r}")
        return add_noise(x, noise, float(params["snr_db"])), dsp.RATE
    if kind == "reverb":
        return reverberate(x, synthetic_rir(float(params["rt60"]), rng)), dsp.RATE
    raise DegradeError(f"unknown degradation {kind!r}")


def materialise(rows: list[dict[str, str]], corpus: Path, root: Path, *, force: bool = False) -> int:
    """Write every row's file under ``root`` (skipping existing ones unless ``force``)."""
    written = 0
    for n, row in enumerate(rows, 1):
        out = root / row["path"]
        if out.exists() and not force:
            continue
        result, rate = make(row, corpus)
        out.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(result, bytes):
            out.write_bytes(result)
        else:
            dsp.write_wav(out, result, rate)
        written += 1
        if n % 1000 == 0:
            logger.info("%d / %d", n, len(rows))
    return written


def link_corpus(corpus: Path, root: Path) -> None:
    """``<root>/audio`` -> ``<corpus>/audio`` (so one audio root serves every list)."""
    root.mkdir(parents=True, exist_ok=True)
    link = root / "audio"
    if link.is_symlink() or link.exists():
        if link.resolve() != (corpus / "audio").resolve():
            raise FileExistsError(f"{link} exists and is not a link to {corpus / 'audio'}")
        return
    os.symlink((corpus / "audio").resolve(), link)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="the corpus (audio/, degradations.csv)")
    parser.add_argument("--root", type=Path, required=True,
                        help="where degraded/ is written and audio/ linked: the --audio-root of the lists")
    parser.add_argument("--condition", action="append", help="only these conditions (default: all)")
    parser.add_argument("--force", action="store_true", help="rewrite files that exist")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with open(args.corpus / "degradations.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if not args.condition or r["condition"] in args.condition]
    link_corpus(args.corpus, args.root)
    written = materialise(rows, args.corpus, args.root, force=args.force)
    logger.info("%d of %d degraded files written under %s", written, len(rows), args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
