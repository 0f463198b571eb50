"""Recipe for the calibration set: real speech from many speakers, degraded in seeded ways.

Pipeline (each step a module runnable with ``python -m tools.calibration_set.<step>``):

1. ``select_sources``: from fetched snapshots of public repositories, choose the original
   files and write ``sources.csv`` (repository, commit, path, speaker, licence of each one).
2. ``build_corpus``: read every file of ``sources.csv`` out of the snapshots at its pinned
   commit, normalise it (16 kHz mono PCM16 WAV, one folder per speaker), write
   ``provenance.csv``.
3. ``make_lists``: speaker-disjoint train / held-out split, enrollment sets, per-condition
   verification trials and identification lists, and ``degradations.csv`` (which probe is
   made how, with which seed).
4. ``degrade``: materialise the degraded probes listed in ``degradations.csv``.

Everything is deterministic: randomness comes from :func:`tools.calibration_set.dsp.rng_for`,
seeded by a fixed integer and the names of what is being made, never from global state.
Only numpy, scipy and soundfile are used. See ``notes/calibration_set.md``.
"""
