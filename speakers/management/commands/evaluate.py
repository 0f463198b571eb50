"""``python manage.py evaluate``: measure accuracy on labelled recordings with the service's own engine and decisions.

Verification (a VoxCeleb-style trial list): EER, minDCF and DET overall (:mod:`inference.evaluation`),
and per probe condition (net speech and SNR bins) the false-accept and false-reject rates of the
calibrated decision in force, with the rate each condition would have at its own threshold and a
DET curve per condition in one figure. Identification (a ``<speaker> <path>`` list): top-1 and, with
the calibrated rule the service applies, correct matches and false identifications of unknown voices.
Files are refused where the service would refuse them as probes (unless ``--no-quality-gates``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference import evaluation, population
from inference.evaluation import calibrated
from inference.evaluation.report import write_condition_figure, write_identification_figure
from inference.fusion import model_parts
from speakers import selectors
from speakers.runtime import asnorm as service_asnorm
from speakers.runtime import inference_owner
from speakers.services import calibration as calibration_service
from speakers.tenancy import default_tenant


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


class Command(BaseCommand):
    help = ("Evaluate verification (a VoxCeleb-style trial list: '<1|0> <path_a> <path_b>') per condition and "
            "open-set identification (a list of '<speaker> <path>' lines) with the service's engine and its "
            "calibrated decisions; write JSON + PNG reports.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--trials", type=Path, help="trial list, paths relative to --audio-root")
        parser.add_argument("--audio-root", type=Path, required=True, help="directory the listed paths are relative to")
        parser.add_argument("--identify", type=Path, metavar="LIST",
                            help="also run open-set identification on this '<speaker> <path>' list")
        parser.add_argument("--enroll-per-speaker", type=int, default=3,
                            help="utterances averaged into each enrolled voiceprint (identification)")
        parser.add_argument("--unknown", nargs="+", metavar="SPEAKER",
                            help="speakers never enrolled (default: each third of the speakers in turn, pooled)")
        parser.add_argument("--asnorm", action="store_true", help="also evaluate the AS-norm scale")
        parser.add_argument("--out-dir", type=Path, default=Path("reports"), help="where the reports go")
        parser.add_argument("--no-quality-gates", action="store_true",
                            help="embed every file, even those the service would refuse as probes")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, trials: Path | None, audio_root: Path, identify: Path | None, enroll_per_speaker: int,
               unknown: list[str] | None, asnorm: bool, out_dir: Path, no_quality_gates: bool, no_progress: bool,
               **options) -> None:
        if trials is None and identify is None:
            raise CommandError("give --trials, --identify or both")
        if not audio_root.is_dir():
            raise CommandError(f"--audio-root {audio_root} is not a directory")
        try:
            trial_list = evaluation.read_trials(trials) if trials else None
            utterances = evaluation.read_speaker_list(identify) if identify else None
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc

        embedder = calibration_service.AccuracyEmbedder(quality_gates=not no_quality_gates)
        # Without and with the tenant's population adaptation (the same when none is in force).
        base = selectors.base_decision_policy(model_version=inference_owner.model_version(), tenant=default_tenant())
        policy = selectors.decision_policy(model_version=inference_owner.model_version(), tenant=default_tenant())
        norm = None
        if asnorm and len(settings.VOICEPRINT_MODELS) > 1:
            self.stdout.write("AS-norm: not evaluated (no cohort for the fused models; VOICEPRINT_MODELS=ecapa has it).")
        elif asnorm:
            norm = service_asnorm.asnorm()
        scales = ["cosine"] + (["asnorm"] if norm is not None and "asnorm" in policy.calibration.scales else [])
        self.stdout.write(f"Model {policy.model_version}; quality gates {'off' if no_quality_gates else 'on'}; "
                          f"calibration {policy.source}; false-accept target {policy.far_target:.2%}; population "
                          f"adaptation {self._population_line(policy)}.")
        if trial_list is not None:
            try:
                report = evaluation.evaluate_verification(trial_list, audio_root, embedder, asnorm=norm,
                                                          far_target=policy.far_target, progress=not no_progress)
                table, _ = calibration_service.trial_table(trials=trial_list, audio_root=audio_root,
                                                           embedder=embedder, asnorm=norm is not None)
                if len(settings.VOICEPRINT_MODELS) > 1:  # each network alone, from the same (fused) vectors
                    report["networks"] = {
                        name: evaluation.evaluate_verification(trial_list, audio_root, _network_part(embedder, name),
                                                               far_target=policy.far_target, progress=False)["cosine"]
                        for name in settings.VOICEPRINT_MODELS}
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            report["conditions"] = {
                scale: calibrated.condition_report(
                    table, calibrated.calibrated_decisions(base.calibration, scale, policy.far_target),
                    far=policy.far_target)
                for scale in scales}
            if policy.population:
                report["conditions_adapted"] = {
                    scale: calibrated.condition_report(
                        table, calibrated.calibrated_decisions(policy.calibration, scale, policy.far_target),
                        far=policy.far_target)
                    for scale in scales if scale in policy.population}
            report["calibration"] = {"source": policy.source, "far_target": policy.far_target,
                                     "population": {scale: {"shift": row.shift, "spread": row.spread,
                                                            "speakers": row.speakers}
                                                    for scale, row in policy.population.items()}}
            paths = (out_dir / "verification.json", out_dir / "verification.png")
            evaluation.write_report(report, *paths)
            conditions_png = out_dir / "verification_conditions.png"
            write_condition_figure(table, calibrated.calibrated_decisions(policy.calibration, "cosine",
                                                                          policy.far_target), conditions_png)
            self._print_verification(report, trials, (*paths, conditions_png), policy.far_target)
        if utterances is not None:
            try:
                report = self._identification(utterances, audio_root, embedder, base, scales, norm,
                                              enroll_per_speaker, unknown)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            path = out_dir / "identification.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=1) + "\n")
            write_identification_figure(report, out_dir / "identification.png")
            self._print_identification(report, path)

    # --- identification with the calibrated rule -------------------------------------------------------

    def _identification(self, utterances, audio_root, embedder, policy, scales, norm, enroll_per_speaker,
                        unknown) -> dict[str, Any]:
        speakers = sorted({s for s, _ in utterances})
        if len(speakers) < 2:
            raise ValueError("the identification list needs at least two speakers")
        holdouts = [set(unknown)] if unknown else [set(speakers[r::3]) for r in range(3)]
        usable: dict[str, list] = {s: [] for s in speakers}
        failed = {}
        for speaker, path in utterances:
            try:
                usable[speaker].append(embedder.side([audio_root / path]))
            except Exception as exc:  # noqa: BLE001 - every refusal is recorded by its code
                failed[path] = getattr(exc, "code", "file_error")
        report: dict[str, Any] = {"speakers": len(speakers), "failed_files": failed, "runs": len(holdouts)}
        for scale in scales:
            report[scale] = self._identification_scale(scale, speakers, holdouts, usable, policy, norm,
                                                       enroll_per_speaker, adapt=False)
            report[f"{scale} adapted"] = self._identification_scale(scale, speakers, holdouts, usable, policy, norm,
                                                                    enroll_per_speaker, adapt=True)
        return report

    def _identification_scale(self, scale, speakers, holdouts, usable, policy, norm, enroll_per_speaker, *,
                              adapt: bool) -> dict[str, Any]:
        """One scale's identification rates over the hold-out runs; with ``adapt``, each run's calibration is
        re-levelled on its gallery as the service re-levels on its enrolled speakers (no labels)."""
        pooled: dict[str, list] = {"rates": [], "top1": [], "speakers": [], "shift": []}  # per hold-out run
        for holdout in holdouts:
            names = [s for s in speakers if s not in holdout and len(usable[s]) > enroll_per_speaker]
            if not names:
                continue
            gallery = [calibrated.enrollment_side([x.vector for x in usable[s][:enroll_per_speaker]],
                                                  [x.quality for x in usable[s][:enroll_per_speaker]])
                       for s in names]
            calibration = policy.calibration
            if adapt:
                calibration, shift = self._gallery_adapted(policy.calibration, scale, names, gallery, usable,
                                                           enroll_per_speaker, norm)
                pooled["speakers"].append(shift.speakers)
                pooled["shift"].append(shift.shift)
            probes = [(s, side) for s in speakers for side in
                      (usable[s][enroll_per_speaker:] if s in names else usable[s])]
            verdicts = calibrated.identification_verdicts(calibration, scale, gallery,
                                                          [side for _, side in probes], norm, policy.fir_target)
            known = np.array([s in names for s, _ in probes])
            truth = np.array([names.index(s) if s in names else -1 for s, _ in probes])
            rates = calibrated.identification_rates(verdicts, known, truth)
            best = np.array([v.best for v in verdicts])
            pooled["top1"].append((best[known] == truth[known]).mean() if known.any() else None)
            pooled["rates"].append(rates)
        out = {
            "top1_accuracy": float(np.mean([x for x in pooled["top1"] if x is not None])),
            "correct_match": float(np.mean([r["correct_match"] for r in pooled["rates"]
                                            if r["correct_match"] is not None])),
            "false_identification": float(np.mean([r["false_identification"] for r in pooled["rates"]
                                                   if r["false_identification"] is not None])),
            "known_probes": int(sum(r["known_probes"] for r in pooled["rates"])),
            "unknown_probes": int(sum(r["unknown_probes"] for r in pooled["rates"])),
        }
        if adapt:
            out["population_speakers"] = pooled["speakers"]
            out["shift"] = pooled["shift"]
        return out

    @staticmethod
    def _gallery_adapted(calibration, scale, names, gallery, usable, enroll_per_speaker, norm):
        """The calibration re-levelled on a gallery: each enrolled speaker's enrollment recordings against the other
        voiceprints (speakers/services/population.py does the same on a tenant's stored vectors)."""
        recordings = [(s, x) for s in names for x in usable[s][:enroll_per_speaker]]
        shift = population.measure_population(calibration, scale, population.Population(
            voiceprints=np.stack([g.vector for g in gallery]), voiceprint_quality=[g.quality for g in gallery],
            voiceprint_owner=names, recordings=np.stack([x.vector for _, x in recordings]),
            recording_quality=[x.quality for _, x in recordings], recording_owner=[s for s, _ in recordings]),
            asnorm=norm)
        return population.adapted_calibration(calibration, {scale: shift}), shift

    @staticmethod
    def _population_line(policy) -> str:
        if not policy.population:
            return "not in force"
        return "; ".join(f"{scale}: impostor mean {row.shift:+.3f}, spread x{row.spread:.2f} ({row.speakers} speakers)"
                         for scale, row in policy.population.items())

    # --- output ------------------------------------------------------------------------------------

    def _print_verification(self, report: dict[str, Any], trials: Path, paths, far: float) -> None:
        c = report["counts"]
        lines = ["", f"Verification: {trials}",
                 f"  {c['scored']} trials scored ({c['target']} target, {c['nontarget']} non-target), "
                 f"{c['skipped']} skipped; {c['files']} files, {c['failed_files']} refused"
                 + (f" ({', '.join(sorted(set(report['failed_files'].values())))})" if report["failed_files"] else "")]
        for key in ("cosine", "asnorm"):
            if report.get(key):
                m = report[key]
                dcf = ", ".join(f"{d['min_dcf']:.3f} (p={d['p_target']:g})" for d in m["min_dcf"])
                lines.append(f"  {key}: EER {_pct(m['eer'])}, minDCF {dcf}")
        for name, m in report.get("networks", {}).items():
            dcf = ", ".join(f"{d['min_dcf']:.3f} (p={d['p_target']:g})" for d in m["min_dcf"])
            lines.append(f"  {name} alone (its part of the fused vectors): EER {_pct(m['eer'])}, minDCF {dcf}")
        decisions = [(scale, "", groups) for scale, groups in report["conditions"].items()]
        decisions += [(scale, ", adapted to the population", groups)
                      for scale, groups in report.get("conditions_adapted", {}).items()]
        for scale, adapted, groups in decisions:
            lines.append(f"  calibrated decision ({scale}{adapted}), false-accept target {far:.2%}: FAR / FRR "
                         "(FRR at the condition's own threshold)")
            for group, e in groups.items():
                if "far" in e:
                    lines.append(f"    {group:<36} {_pct(e['far'])} / {_pct(e['frr'])} ({_pct(e['oracle_frr'])})"
                                 f"  EER {_pct(e['eer'])}  [{e['targets']} target, {e['impostors']} impostor]")
        lines.append("  Reports: " + ", ".join(str(p) for p in paths))
        self.stdout.write("\n".join(lines))

    def _print_identification(self, report: dict[str, Any], path: Path) -> None:
        lines = ["", f"Identification: {report['speakers']} speakers, {report['runs']} hold-out run(s)"
                 + (f", {len(report['failed_files'])} files refused" if report["failed_files"] else "")]
        for scale in ("cosine", "cosine adapted", "asnorm", "asnorm adapted"):
            if scale in report:
                r = report[scale]
                lines.append(f"  {scale}: top-1 {_pct(r['top1_accuracy'])}, correct match {_pct(r['correct_match'])}, "
                             f"false identification of unknown voices {_pct(r['false_identification'])} "
                             f"({r['known_probes']} known / {r['unknown_probes']} unknown probes)")
        lines.append(f"  Reports: {path}, {path.with_suffix('.png')}")
        self.stdout.write("\n".join(lines))


def _network_part(embedder, name: str):
    """An ``embed_fn`` giving one network's unit vector out of the fused engine's (no second embedding)."""
    config = inference_owner.engine_config()

    def embed(path: Path) -> np.ndarray:
        return model_parts(embedder(path), config)[name]

    return embed
