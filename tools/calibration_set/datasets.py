"""What each source of the calibration set is, where it comes from and under which licence.

One entry per dataset. ``shippable`` says whether files may end up in the repository or a
release (CC BY / CC BY-SA / Apache material); the others (non-commercial or unclear terms)
are for measurement only and must stay in the shared data folder.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    key: str
    name: str
    repo: str
    commit: str
    licence: str
    shippable: bool
    language: str
    style: str
    recording: str
    licence_note: str = ""


DATASETS: dict[str, Dataset] = {
    d.key: d
    for d in (
        Dataset(
            key="librispeech-test-other",
            name="LibriSpeech test-other (V. Panayotov et al., OpenSLR 12), 10 readers x 10 utterances",
            repo="resemble-ai/Resemblyzer",
            commit="15d828edebe06bc72b9cabc8ef8ca5ab2cb457ce",
            licence="CC BY 4.0",
            shippable=True,
            language="en",
            style="read",
            recording="LibriVox audiobook, home recording; the 'other' (harder) half of LibriSpeech",
            licence_note="audio_data/librispeech_test-other/LICENSE.TXT in the repository",
        ),
        Dataset(
            key="librispeech-train-clean-100",
            name="LibriSpeech train-clean-100 (OpenSLR 12), first utterance of one chapter per reader",
            repo="resemble-ai/Resemblyzer",
            commit="15d828edebe06bc72b9cabc8ef8ca5ab2cb457ce",
            licence="CC BY 4.0",
            shippable=True,
            language="en",
            style="read",
            recording="LibriVox audiobook, home recording; one utterance per reader, cut in two at a quiet point",
            licence_note="LibriSpeech licence (same LICENSE.TXT as test-other)",
        ),
        Dataset(
            key="ravdess",
            name="RAVDESS speech, audio-only (S. R. Livingstone, F. A. Russo, Zenodo 1188976), 24 actors",
            repo="simiya/Projet-Son-Jedha",
            commit="c34bdb1bcad43081bebfe8dc90d784709f37abb7",
            licence="CC BY-NC-SA 4.0",
            shippable=False,
            language="en",
            style="acted emotional",
            recording="studio, 48 kHz; two fixed sentences, neutral North American accent",
            licence_note="non-commercial: measurement only, never in the repository or a release",
        ),
        Dataset(
            key="emodb",
            name="Berlin Database of Emotional Speech, Emo-DB (F. Burkhardt et al. 2005), 10 actors",
            repo="sylaschacko/voice-emotion-analysis",
            commit="4b0f64c947b84beb43c8b1a7e7a6597a04902f02",
            licence="unclear (see note)",
            shippable=False,
            language="de",
            style="acted emotional",
            recording="anechoic studio, 16 kHz originally; this copy is resampled to 22.05 kHz and cut or "
            "zero-padded to exactly 2.0 s",
            licence_note="the copy carries no licence; TU Berlin distributes Emo-DB free of charge for research, "
            "audEERING republishes it as CC0-1.0 (not verified here): measurement only",
        ),
        Dataset(
            key="aishell1",
            name="AISHELL-1 (Beijing Shell Shell Technology, OpenSLR 33), 2 speakers",
            repo="QianZ423/kaldi-asr-aishell-sample",
            commit="4e69bf1a29621515d4a21ef6c2458335e6f86e24",
            licence="Apache-2.0",
            shippable=True,
            language="zh",
            style="read",
            recording="quiet room, high-fidelity microphone downsampled to 16 kHz",
            licence_note="AISHELL-1 is released under the Apache License 2.0",
        ),
        Dataset(
            key="fsdd",
            name="Free Spoken Digit Dataset (Z. Jackson et al.), 6 speakers",
            repo="Jakobovski/free-spoken-digit-dataset",
            commit="26eb9aaf76e81b692f806f9140c2d2777410d7a1",
            licence="CC BY-SA 4.0",
            shippable=True,
            language="en",
            style="isolated digits",
            recording="recorded at 8 kHz (4 kHz bandwidth), various home microphones; 6 digits joined per "
            "recording with 0.15 s gaps",
            licence_note="share-alike; same speakers as shared/speech/multi (train part only)",
        ),
    )
}
