"""How often the speech detector refuses real speech, finds speech in sounds without any, how well its
SNR estimate tracks the truth, and what it costs: the current detector (``inference.vad``) against
the energy rule it replaced (kept below as the reference), on the same signals in the same run.

    python -m tools.vad_report --speech /path/to/shared/speech [--quick]

Real speech: the test fixtures and every recording of ``--speech`` dev/ and multi/ (identical files
once), each clean, with its pauses cut out, and mixed with each steady noise of
``tools/vad_corpus.py`` at 0, 3 and 6 dB under its active level (seeded), with and without pauses.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from inference import vad
from inference.config import VadConfig
from inference.errors import NoSpeechError
from tools import vad_corpus

RATE = vad_corpus.RATE
CONFIG = VadConfig()
Detector = Callable[[np.ndarray], "tuple[float, float] | None"]  # samples -> (speech_s, snr_db), None = no_speech


def energy_vad(samples: np.ndarray) -> tuple[float, float] | None:
    """The energy rule this project used until issue 7 (commit ade25cd), for comparison.

    Frames are speech when 9 dB over the quietest tenth of the recording, within 30 dB of its
    95th percentile and above -55 dBFS; 5 frames of hangover; SNR = speech over non-speech power.
    """
    frame = 320
    energy = vad.frame_energies(samples, frame)
    loud, noise = np.percentile(energy, 95), np.percentile(energy, 10)
    raw = energy > max(loud - 30.0, -55.0, noise + 9.0)
    mask = np.convolve(raw.astype(float), np.ones(11), mode="same") > 0 if raw.any() else raw
    speech_s = mask.sum() * frame / RATE
    if not raw.any() or speech_s < 0.3:
        return None
    power = 10.0 ** (energy / 10.0)
    noise_power = power[~mask].mean() if (~mask).any() else 10.0 ** (noise / 10.0)
    return float(speech_s), float(min(10.0 * np.log10(power[mask].mean() / max(noise_power, 1e-10)), 100.0))


def spectral_vad(samples: np.ndarray) -> tuple[float, float] | None:
    """The current detector, ``inference.vad.detect_speech``."""
    try:
        _, report = vad.detect_speech(samples, RATE, CONFIG)
    except NoSpeechError:
        return None
    return report.speech_s, report.snr_db


DETECTORS: dict[str, Detector] = {"before (energy)": energy_vad, "after (spectral)": spectral_vad}


def _speech_conditions(recording: vad_corpus.Recording, snrs: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Every version of one recording, by condition name."""
    clean = recording.samples
    cut = vad_corpus.cut_pauses(clean)
    made = {"clean": clean, "pauses cut out": cut}
    for kind in vad_corpus.NOISES:
        for snr in snrs:
            seed = vad_corpus.seed_for(recording.name, kind, snr)
            made[f"{kind} @ {snr:g} dB"] = vad_corpus.mix(clean, kind, snr, seed)[0]
            made[f"pauses cut + {kind} @ {snr:g} dB"] = vad_corpus.mix(cut, kind, snr, seed + 1)[0]
    return made


def false_no_speech(recordings: list[vad_corpus.Recording], snrs: tuple[float, ...]) -> None:
    refused = {name: {} for name in DETECTORS}
    totals: dict[str, int] = {}
    for recording in recordings:
        source = recording.name.split("/")[0] if "/" in recording.name else "fixtures"
        for condition, samples in _speech_conditions(recording, snrs).items():
            group = _group(condition)
            for key in (group, "all"):
                totals[key] = totals.get(key, 0) + 1
            for name, detect in DETECTORS.items():
                if detect(samples) is None:
                    for key in (group, "all"):
                        refused[name].setdefault(key, []).append(f"{source}:{recording.name} [{condition}]")
    print(f"## False `no_speech` on real speech ({len(recordings)} distinct recordings)\n")
    print("| condition | recordings | " + " | ".join(DETECTORS) + " |")
    print("|---|---|" + "---|" * len(DETECTORS))
    for group in [g for g in totals if g != "all"] + ["all"]:
        cells = [f"{len(refused[n].get(group, []))} ({100 * len(refused[n].get(group, [])) / totals[group]:.1f}%)"
                 for n in DETECTORS]
        print(f"| {group} | {totals[group]} | " + " | ".join(cells) + " |")
    after = refused["after (spectral)"].get("all", [])
    print("\nRefused by the current detector:", ", ".join(after[:20]) if after else "none")
    print()


def _group(condition: str) -> str:
    """``white @ 3 dB`` -> ``steady noise @ 3 dB``; ``pauses cut + pink @ 0 dB`` -> ``pauses cut + noise @ 0 dB``."""
    if "@" not in condition:
        return condition
    snr = condition.split("@")[1].strip()
    return ("pauses cut + noise @ " if condition.startswith("pauses cut") else "steady noise @ ") + snr


def false_speech(frame_source: np.ndarray) -> None:
    sounds = list(vad_corpus.non_speech(frame_source))
    for kind in vad_corpus.NOISES:
        for level in (-45.0, -15.0):
            sounds.append((f"60 s of {kind} at {level:g} dBFS",
                           (10 ** (level / 20) * vad_corpus.noise(kind, 60 * RATE, vad_corpus.seed_for(kind, level)))
                           .astype(np.float32)))
    found = {name: [] for name in DETECTORS}
    for label, samples in sounds:
        for name, detect in DETECTORS.items():
            result = detect(samples)
            if result is not None:
                found[name].append(f"{label} ({result[0]:.2f} s)")
    print(f"## False speech on {len(sounds)} sounds without speech\n")
    print("| detector | found speech in | which |")
    print("|---|---|---|")
    for name, hits in found.items():
        print(f"| {name} | {len(hits)} of {len(sounds)} | {'; '.join(hits) or '-'} |")
    print()


def snr_tracking(recordings: list[vad_corpus.Recording]) -> None:
    print(f"## SNR estimate against the true SNR ({len(recordings)} recordings; median [min, max], "
          "`n/s` = refused as no_speech)\n")
    kinds = ("white", "pink", "brown", "hum50", "pink+hum50")
    print("| noise | true SNR | " + " | ".join(DETECTORS) + " |")
    print("|---|---|" + "---|" * len(DETECTORS))
    for kind in kinds:
        for snr in (0.0, 5.0, 10.0, 20.0, 30.0):
            cells = []
            for detect in DETECTORS.values():
                values, refused = [], 0
                for recording in recordings:
                    mixed, _ = vad_corpus.mix(recording.samples, kind, snr, vad_corpus.seed_for(recording.name, kind, snr))
                    result = detect(mixed)
                    if result is None:
                        refused += 1
                    else:
                        values.append(result[1])
                cell = f"{np.median(values):.1f} [{min(values):.1f}, {max(values):.1f}]" if values else "-"
                cells.append(cell + (f", {refused} n/s" if refused else ""))
            print(f"| {kind} | {snr:g} | " + " | ".join(cells) + " |")
    print()


def speed(frame_source: np.ndarray, repeats: int) -> None:
    signal = np.tile(frame_source, int(np.ceil(10 * RATE / frame_source.size)))[: 10 * RATE]
    signal = vad_corpus.mix(signal, "pink", 10.0, 1)[0]
    wall = {name: [] for name in DETECTORS}
    cpu = {name: [] for name in DETECTORS}
    for detect in DETECTORS.values():
        detect(signal)  # first call: caches and the detector's one-off calibration
    for i in range(repeats):
        order = list(DETECTORS.items()) if i % 2 == 0 else list(DETECTORS.items())[::-1]
        for name, detect in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            detect(signal)
            wall[name].append(1000.0 * (time.perf_counter() - started))
            cpu[name].append(1000.0 * (time.process_time() - started_cpu))
    print(f"## Cost per 10 s of audio (median of {repeats} alternating runs; wall time on a shared machine, "
          "and this process's CPU time)\n")
    for name in DETECTORS:
        print(f"- {name}: {statistics.median(wall[name]):.1f} ms wall, {statistics.median(cpu[name]):.1f} ms CPU")
    start = time.perf_counter()
    vad._steady_noise_statistics.cache_clear()
    vad._steady_noise_statistics(RATE, CONFIG)
    print(f"- one-off calibration of the spectral detector (first call in a process): "
          f"{1000 * (time.perf_counter() - start):.0f} ms")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech", type=Path, help="the shared speech directory (dev/, multi/)")
    parser.add_argument("--quick", action="store_true", help="the 12 fixtures only, one noise level (3 dB)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    recordings = vad_corpus.real_recordings(None if args.quick else args.speech)
    fixtures = vad_corpus.real_recordings(None)
    snrs = (3.0,) if args.quick else (0.0, 3.0, 6.0)
    false_no_speech(recordings, snrs)
    false_speech(fixtures[0].samples)
    snr_tracking(fixtures if args.quick else recordings)
    speed(fixtures[0].samples, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
