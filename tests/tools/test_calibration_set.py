"""The calibration-set recipe: degradations do what they are documented to do, seeded; the
lists are speaker-disjoint, balanced and consistent."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tools.calibration_set import degrade, dsp, make_lists

RATE = dsp.RATE


def bursts(seconds: float = 6.0, on: float = 0.3, off: float = 0.2, level_db: float = -20.0,
           seed: int = 0) -> np.ndarray:
    """Speech-like test signal: bursts of noise (``on`` s) separated by silence (``off`` s)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    x = np.zeros(n)
    period = int((on + off) * RATE)
    for start in range(0, n, period):
        length = min(int(on * RATE), n - start)
        x[start : start + length] = rng.standard_normal(length)
    return x / np.sqrt(np.mean(x[x != 0] ** 2)) * 10 ** (level_db / 20)


def tone_power(x: np.ndarray, freq: float, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    return float(spectrum[np.abs(freqs - freq) < 5].sum())


def test_rng_for_gives_the_same_stream_for_the_same_names_and_another_for_other_names():
    a = dsp.rng_for("degrade", "x.wav").standard_normal(4)
    assert np.array_equal(a, dsp.rng_for("degrade", "x.wav").standard_normal(4))
    assert not np.array_equal(a, dsp.rng_for("degrade", "y.wav").standard_normal(4))


def test_the_speech_gate_counts_the_bursts_and_not_the_gaps():
    x = bursts(seconds=5.0, on=0.3, off=0.2)
    assert dsp.net_speech_s(x) == pytest.approx(3.0, abs=0.25)  # edge frames overlap a burst


def test_quiet_cut_falls_in_a_gap_between_bursts():
    x = bursts(seconds=4.0, on=0.3, off=0.2)
    cut = dsp.quiet_cut(x, 1.6, 2.4) / RATE
    assert (cut % 0.5) > 0.3  # inside an ``off`` stretch


@pytest.mark.parametrize("seconds", [1.0, 1.5, 2.0, 3.0])
def test_a_crop_holds_the_requested_net_speech(seconds):
    x = bursts(seconds=8.0)
    crop = degrade.crop_net_speech(x, seconds, dsp.rng_for("test", seconds))
    assert dsp.net_speech_s(crop) == pytest.approx(seconds, abs=0.1)


def test_a_crop_longer_than_the_speech_is_refused():
    with pytest.raises(degrade.DegradeError):
        degrade.crop_net_speech(bursts(seconds=2.0), 3.0, dsp.rng_for("test"))


def test_mu_law_matches_the_g711_reference_codes():
    # Codes of CPython's audioop.lin2ulaw (Sun's g711.c) for these samples.
    pcm = np.array([-32768, 0, 32767, -2768, 7232], dtype=np.int16)
    assert degrade.ulaw_encode(pcm).tolist() == [0, 255, 128, 57, 163]
    assert degrade.ulaw_decode(np.array([0, 255, 128, 57, 163], dtype=np.uint8)).tolist() == [
        -32124, 0, 32124, -2748, 7164]


def test_mu_law_round_trip_error_is_within_half_a_quantisation_step():
    pcm = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
    err = np.abs(degrade.ulaw_decode(degrade.ulaw_encode(pcm)).astype(float) - pcm)
    # 16 steps per segment: half a step is 1/32 of the level, plus the 2 bits G.711 drops.
    assert np.all(err <= 0.036 * np.abs(pcm.astype(float)) + 8)


def test_the_telephone_channel_keeps_the_voice_band_and_drops_the_rest():
    t = np.arange(2 * RATE) / RATE
    x = 0.2 * (np.sin(2 * np.pi * 100 * t) + np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 6000 * t))
    y = degrade.telephone(x)
    assert y.size == x.size // 2
    kept = tone_power(y, 1000, degrade.TELEPHONE_RATE)
    assert tone_power(y, 100, degrade.TELEPHONE_RATE) < kept / 100  # >= 20 dB down
    ref = tone_power(dsp.resample(x, RATE, degrade.TELEPHONE_RATE), 1000, degrade.TELEPHONE_RATE)
    assert kept == pytest.approx(ref, rel=0.1)


@pytest.mark.parametrize("noise", ["white", "pink", "hum"])
@pytest.mark.parametrize("snr_db", [0, 5, 10, 20])
def test_added_noise_sits_at_the_requested_snr_against_the_speech_frames(noise, snr_db):
    x = bursts()
    rng = dsp.rng_for("test", noise, snr_db)
    n = {"white": degrade.white_noise, "pink": degrade.pink_noise}.get(noise, degrade.hum_noise)(x.size, rng)
    y = degrade.add_noise(x, n, snr_db)
    residual = y - x
    measured = 10 * np.log10(dsp.speech_power(x) / np.mean(residual**2))
    assert measured == pytest.approx(snr_db, abs=0.05)


def test_pink_noise_falls_by_about_3_db_per_octave():
    n = degrade.pink_noise(1 << 18, dsp.rng_for("test"))
    power = np.abs(np.fft.rfft(n)) ** 2
    freqs = np.fft.rfftfreq(n.size, 1 / RATE)
    def band(lo):
        return power[(freqs >= lo) & (freqs < 2 * lo)].sum()
    assert 10 * np.log10(band(250) / band(2000)) == pytest.approx(0.0, abs=1.0)  # equal energy per octave
    assert 10 * np.log10(power[(freqs > 240) & (freqs < 260)].mean() / power[(freqs > 480) & (freqs < 520)].mean()) \
        == pytest.approx(3.0, abs=1.0)


def test_babble_is_made_of_the_given_talkers_at_equal_power():
    talkers = [bursts(seed=s, level_db=-10 - 10 * s) for s in range(3)]
    b = degrade.babble_noise(RATE * 3, talkers, dsp.rng_for("test"))
    assert b.size == RATE * 3
    assert np.mean(b**2) == pytest.approx(3 * 0.6, rel=0.35)  # three unit-speech-power talkers, 60 % active


@pytest.mark.parametrize("rt60", [0.3, 0.6, 0.9])
def test_a_synthetic_room_response_has_the_requested_reverberation_time(rt60):
    rir = degrade.synthetic_rir(rt60, dsp.rng_for("test", rt60), drr_db=0.0)
    assert rir[0] == 1.0
    assert degrade.measured_rt60(rir) == pytest.approx(rt60, rel=0.1)


def test_reverberation_keeps_the_length_and_the_speech_level():
    x = bursts()
    y = degrade.reverberate(x, degrade.synthetic_rir(0.6, dsp.rng_for("test")))
    assert y.size == x.size
    assert dsp.speech_power(y) == pytest.approx(dsp.speech_power(x), rel=0.05)


@pytest.mark.parametrize("codec", sorted(degrade.CODECS))
def test_codecs_write_files_that_decode_back_to_the_same_duration(codec):
    x = bursts(seconds=3.0)
    data = degrade.encode(x, codec)
    y, rate = sf.read(io.BytesIO(data))
    assert rate == RATE
    assert y.shape[0] == pytest.approx(x.size, abs=0.1 * RATE)  # MP3 adds encoder padding
    assert len(data) < x.size * 2 / 4  # at least 4x smaller than 16-bit PCM


def test_a_degraded_file_is_a_pure_function_of_its_manifest_row(tmp_path):
    dsp.write_wav(tmp_path / "audio" / "s1" / "a.wav", bursts())
    dsp.write_wav(tmp_path / "audio" / "s2" / "b.wav", bursts(seed=2))
    rows = [
        {"path": "degraded/n/s1/a.wav", "kind": "noise", "source": "audio/s1/a.wav",
         "params": json.dumps({"noise": "babble", "snr_db": 5, "talkers": ["audio/s2/b.wav"]})},
        {"path": "degraded/r/s1/a.wav", "kind": "reverb", "source": "audio/s1/a.wav", "params": json.dumps({"rt60": 0.3})},
        {"path": "degraded/c/s1/a.wav", "kind": "crop", "source": "audio/s1/a.wav", "params": json.dumps({"seconds": 1.5})},
    ]
    for row in rows:
        first, _ = degrade.make(row, tmp_path)
        second, _ = degrade.make(row, tmp_path)
        assert np.array_equal(first, second)
    other = dict(rows[0], path="degraded/n/s1/a_other.wav")
    assert not np.array_equal(degrade.make(rows[0], tmp_path)[0], degrade.make(other, tmp_path)[0])


# ----------------------------------------------------------------------------- lists


def _fake_corpus(tmp_path: Path) -> Path:
    """A provenance.csv (no audio) with the shapes of the real sources."""
    rows = []

    def add(dataset: str, speaker: str, name: str, net: float = 4.0) -> None:
        rows.append({"path": f"audio/{speaker}/{name}.wav", "speaker": speaker, "source_dataset": dataset,
                     "net_speech_s": f"{net:.2f}"})

    for s in range(40):
        add("librispeech-train-clean-100", f"ls-{s}", f"{s}-1-0000_a")
        add("librispeech-train-clean-100", f"ls-{s}", f"{s}-1-0000_b")
    for s in range(100, 104):
        for u in range(10):
            add("librispeech-test-other", f"ls-{s}", f"{s}-2-{u:04d}")
    for a in range(1, 7):
        for emo in ("01", "01", "02", "03", "04", "05", "06"):
            for st in ("01", "02"):
                add("ravdess", f"rav-{a:02d}", f"03-01-{emo}-02-{st}-01-{a:02d}")
    for s in ("03", "08", "09", "10"):
        for i, emo in enumerate("NNNNNWWLLAF"):
            add("emodb", f"emodb-{s}", f"{s}a0{i % 10}{emo}a", net=1.8)
    for s in ("S0001", "S0002"):
        for i in range(8):
            add("aishell1", f"aishell-{s}", f"BAC009{s}W{i:04d}")
    for s in ("george", "jackson"):
        for i in range(6):
            add("fsdd", f"fsdd-{s}", f"digits{40 + i}", net=2.5)
    with open(tmp_path / "provenance.csv", "w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)
    return tmp_path


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    corpus = _fake_corpus(tmp_path_factory.mktemp("corpus"))
    speakers, net = make_lists.load_speakers(corpus)
    for spk in speakers.values():
        make_lists.assign_roles(spk)
    make_lists.split_speakers(speakers)
    return speakers, make_lists.build_lists(speakers, nontargets=1, net_s=net.__getitem__)


def _speaker_of(path: str) -> str:
    return path.split("/")[-2]


def test_no_speaker_is_in_both_splits(lists):
    speakers, out = lists
    seen: dict[str, set[str]] = {}
    for (split, _), rows in out["trials"].items():
        for _, enroll_id, probe in rows:
            seen.setdefault(enroll_id, set()).add(split)
            seen.setdefault(_speaker_of(probe), set()).add(split)
    assert all(len(splits) == 1 for splits in seen.values())
    assert {s.split for s in speakers.values()} == {"train", "heldout"}


def test_every_condition_is_balanced_and_targets_pair_the_probe_with_its_own_speaker(lists):
    speakers, out = lists
    for rows in out["trials"].values():
        targets = [r for r in rows if r[0] == 1]
        assert len(targets) == len(rows) - len(targets) > 0
        for label, enroll_id, probe in rows:
            same = enroll_id == _speaker_of(probe)
            assert same == (label == 1)
            assert speakers[enroll_id].population == speakers[_speaker_of(probe)].population


def test_babble_talkers_are_in_no_list_and_come_from_the_same_split(lists):
    speakers, out = lists
    babble = {n for n, s in speakers.items() if s.role == "babble"}
    assert babble
    listed = {e for rows in out["trials"].values() for _, e, p in rows} | {
        _speaker_of(p) for rows in out["trials"].values() for _, _, p in rows}
    assert not babble & listed
    for row in out["degradations"]:
        params = json.loads(row["params"])
        probe_split = speakers[_speaker_of(row["source"])].split
        for talker in params.get("talkers", []):
            assert speakers[_speaker_of(talker)].split == probe_split


def test_unknown_speakers_are_never_enrolled_in_identification(lists):
    speakers, out = lists
    for rows in out["ident"].values():
        enrolled = {s for role, s, _ in rows if role == "enroll"}
        assert all(speakers[s].known for s in enrolled)
        probes = {s for role, s, _ in rows if role == "probe"}
        assert probes - enrolled  # there are unknown voices among the probes


def test_emotional_probes_are_expressive_and_enrollment_is_not(lists):
    speakers, out = lists
    for (_split, cond), rows in out["trials"].items():
        if cond != "emotional":
            continue
        for _, _enroll_id, probe in rows:
            stem = Path(probe).stem
            emotion = stem.split("-")[2] if stem.startswith("03-") else stem[5]
            assert emotion not in ("01", "02", "N")
    for spk in speakers.values():
        if spk.dataset == "ravdess":
            assert all(Path(p).stem.split("-")[2] in ("01", "02") for p in spk.enroll)


def test_the_lists_do_not_change_between_runs(tmp_path):
    corpus = _fake_corpus(tmp_path)

    def run():
        speakers, net = make_lists.load_speakers(corpus)
        for spk in speakers.values():
            make_lists.assign_roles(spk)
        make_lists.split_speakers(speakers)
        return make_lists.build_lists(speakers, nontargets=3, net_s=net.__getitem__)

    assert run() == run()


@pytest.mark.parametrize("codec", sorted(degrade.CODECS))
def test_an_encoded_file_is_the_same_bytes_on_every_run(codec):
    x = bursts(seconds=2.0)
    assert degrade.encode(x, codec, ogg_serial=7) == degrade.encode(x, codec, ogg_serial=7)


def test_setting_the_ogg_serial_keeps_valid_checksums():
    data = degrade.encode(bursts(seconds=2.0), "vorbis_low", ogg_serial=1)
    serial = int.from_bytes(data[14:18], "little")
    assert serial == 1
    # Re-stamping a page with its own serial recomputes the checksum libogg wrote.
    raw = io.BytesIO()
    sf.write(raw, bursts(seconds=2.0), RATE, format="OGG", subtype="VORBIS")
    original = raw.getvalue()
    assert degrade.set_ogg_serial(original, int.from_bytes(original[14:18], "little")) == original


def test_only_the_phone_enrolled_condition_degrades_the_enrollment(lists):
    _, out = lists
    made = {row["path"] for row in out["degradations"]}
    for (_split, cond), sets in out["enrollments"].items():
        paths = [p for _, ps in sets for p in ps]
        if cond == "narrowband_8k_both":
            assert all(p.startswith("degraded/narrowband_8k_both/") and p in made for p in paths)
        else:
            assert all(p.startswith("audio/") for p in paths)
    for (split, cond), rows in out["ident"].items():
        enrolled = {p for role, _, p in rows if role == "enroll"}
        listed = {p for _, ps in out["enrollments"][(split, cond)] for p in ps}
        assert enrolled <= listed
