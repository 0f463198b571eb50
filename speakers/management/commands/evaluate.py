"""``python manage.py evaluate``: measure accuracy on labelled recordings with the service's own engine.

A thin wrapper of :mod:`inference.evaluation` (EER, minDCF, DET, open-set identification): the
files are embedded by the service's engine with its config and, unless ``--no-quality-gates``,
refused where the service would refuse them as probes. Reports go to ``--out-dir`` as JSON and
PNG; a summary, with what the thresholds in force do on these recordings, is printed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inference import evaluation
from speakers import asnorm as service_asnorm
from speakers import inference_owner, selectors
from speakers.services import calibration as calibration_service


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


class Command(BaseCommand):
    help = ("Evaluate verification (a VoxCeleb-style trial list: '<1|0> <path_a> <path_b>') and open-set "
            "identification (a list of '<speaker> <path>' lines) with the service's engine; write JSON + PNG reports.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--trials", type=Path, help="trial list, paths relative to --audio-root")
        parser.add_argument("--audio-root", type=Path, required=True, help="directory the listed paths are relative to")
        parser.add_argument("--identify", type=Path, metavar="LIST",
                            help="also run open-set identification on this '<speaker> <path>' list")
        parser.add_argument("--enroll-per-speaker", type=int, default=3,
                            help="utterances averaged into each enrolled voiceprint (identification)")
        parser.add_argument("--unknown", nargs="+", metavar="SPEAKER",
                            help="speakers never enrolled (default: every third speaker in name order)")
        parser.add_argument("--rotate-unknown", action="store_true",
                            help="also pool three runs, each holding out a different third of the speakers")
        parser.add_argument("--far", type=float, default=0.01, help="false-accept rate of the reported threshold")
        parser.add_argument("--asnorm", action="store_true", help="also score with AS-norm (the service's cohort)")
        parser.add_argument("--out-dir", type=Path, default=Path("reports"), help="where the reports go")
        parser.add_argument("--no-quality-gates", action="store_true",
                            help="embed every file, even those the service would refuse as probes")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, trials: Path | None, audio_root: Path, identify: Path | None, enroll_per_speaker: int,
               unknown: list[str] | None, rotate_unknown: bool, far: float, asnorm: bool, out_dir: Path,
               no_quality_gates: bool, no_progress: bool, **options) -> None:
        if trials is None and identify is None:
            raise CommandError("give --trials, --identify or both")
        if not audio_root.is_dir():
            raise CommandError(f"--audio-root {audio_root} is not a directory")
        try:
            trial_list = evaluation.read_trials(trials) if trials else None
            utterances = evaluation.read_speaker_list(identify) if identify else None
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc

        embed_fn = calibration_service.accuracy_embed_fn(quality_gates=not no_quality_gates)
        norm = service_asnorm.asnorm() if asnorm else None
        policy = selectors.decision_policy(model_version=inference_owner.model_version(),
                                           asnorm_key=norm.key if norm else None)
        progress = not no_progress
        self.stdout.write(f"Model {policy.model_version}; quality gates {'off' if no_quality_gates else 'on'}; "
                          f"thresholds in force from {policy.cosine.sources['verify']}.")
        if trial_list is not None:
            try:
                report = evaluation.evaluate_verification(trial_list, audio_root, embed_fn, asnorm=norm,
                                                          far_target=far, progress=progress)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            report["thresholds_in_force"] = self._thresholds_in_force(report, policy)
            paths = (out_dir / "verification.json", out_dir / "verification.png")
            evaluation.write_report(report, *paths)
            self._print_verification(report, trials, paths)
        if utterances is not None:
            runs: list[tuple[str, Any, selectors.Thresholds]] = [("cosine", None, policy.cosine)]
            if norm is not None:
                runs.append(("asnorm", norm, policy.asnorm))
            for name, normaliser, thresholds in runs:
                try:
                    report = evaluation.evaluate_identification(
                        utterances, audio_root, embed_fn, enroll_per_speaker=enroll_per_speaker,
                        unknown_speakers=set(unknown) if unknown else None, threshold=thresholds.identify,
                        margin=thresholds.identify_margin, asnorm=normaliser, progress=progress)
                    if rotate_unknown:
                        pooled, _ = evaluation.identification_pooled(
                            utterances, audio_root, embed_fn, threshold=thresholds.identify,
                            margin=thresholds.identify_margin, enroll_per_speaker=enroll_per_speaker,
                            asnorm=normaliser, progress=progress)
                        report["pooled"] = {
                            "known_probes": sum(1 for p in pooled if p["known"]),
                            "unknown_probes": sum(1 for p in pooled if not p["known"]),
                            **evaluation.identification_operating_point(
                                pooled, threshold=thresholds.identify, margin=thresholds.identify_margin,
                                top_k=report["top_k"]),
                        }
                except ValueError as exc:
                    raise CommandError(str(exc)) from exc
                stem = "identification" if name == "cosine" else "identification_asnorm"
                paths = (out_dir / f"{stem}.json", out_dir / f"{stem}.png")
                evaluation.write_report(report, *paths)
                self._print_identification(report, name, paths)

    # --- output -----------------------------------------------------------------------------------

    @staticmethod
    def _thresholds_in_force(report: dict[str, Any], policy: selectors.DecisionPolicy) -> dict[str, Any]:
        labels = report["scores"]["labels"]
        out: dict[str, Any] = {}
        for key, thresholds in (("cosine", policy.cosine), ("asnorm", policy.asnorm)):
            if report.get(key) is None:
                continue
            far, frr = evaluation.rates_at_threshold(report["scores"][key], labels, thresholds.verify)
            out[key] = {"threshold": thresholds.verify, "source": thresholds.sources["verify"], "far": far, "frr": frr}
        return out

    def _print_verification(self, report: dict[str, Any], trials: Path, paths: tuple[Path, Path]) -> None:
        c = report["counts"]
        scales = [("cosine", "cosine")] + ([("asnorm", f"AS-norm k={report['asnorm']['top_k']}")]
                                        if report["asnorm"] else [])
        lines = [
            "",
            f"Verification: {trials}",
            f"  {c['scored']} trials scored ({c['target']} target, {c['nontarget']} non-target), "
            f"{c['skipped']} skipped; {c['files']} files, {c['failed_files']} refused"
            + (f" ({', '.join(sorted(set(report['failed_files'].values())))})" if report["failed_files"] else ""),
            "  " + f"{'':<28}" + "".join(f"{title:>18}" for _, title in scales),
        ]

        def row(label: str, cell) -> str:
            return "  " + f"{label:<28}" + "".join(f"{cell(key):>18}" for key, _ in scales)

        in_force = report["thresholds_in_force"]
        lines.append(row("EER", lambda k: _pct(report[k]["eer"])))
        lines.append(row("  threshold at EER", lambda k: f"{report[k]['eer_threshold']:.3f}"))
        lines.append(row("EER (SpeechBrain definition)", lambda k: _pct(report[k]["eer_speechbrain"])))
        for i, dcf in enumerate(report["cosine"]["min_dcf"]):
            lines.append(row(f"minDCF p_target={dcf['p_target']:g}",
                             lambda k, i=i: f"{report[k]['min_dcf'][i]['min_dcf']:.3f}"))
            lines.append(row("  at threshold", lambda k, i=i: f"{report[k]['min_dcf'][i]['threshold']:.3f}"))
        lines.append(row(f"threshold at FAR {100 * report['cosine']['far_target']:g} %",
                         lambda k: f"{report[k]['threshold_at_far']:.3f}"))
        lines.append(row("  FAR / FRR there (%)", lambda k: f"{100 * report[k]['far_at_threshold']:.2f} / "
                                                            f"{100 * report[k]['frr_at_threshold']:.2f}"))
        lines.append(row("threshold in force", lambda k: f"{in_force[k]['threshold']:g}"))
        lines.append(row("  FAR / FRR there (%)",
                         lambda k: f"{100 * in_force[k]['far']:.2f} / {100 * in_force[k]['frr']:.2f}"))
        lines.append(f"  Report: {paths[0]}, {paths[1]}")
        # The README's accuracy table, row for row, so a run can be checked against it at a glance.
        far = 100 * report["cosine"]["far_target"]
        lines += ["", f"  | | EER | minDCF 0.01 | minDCF 0.05 | threshold at {far:g}% FAR (FRR) |",
                  "  |---|---|---|---|---|"]
        for key, title in (("cosine", "cosine"), ("asnorm", "AS-norm")):
            if not report.get(key):
                continue
            r = report[key]
            dcf = {round(d["p_target"], 4): d["min_dcf"] for d in r["min_dcf"]}
            decimals = 3 if key == "cosine" else 2
            lines.append(f"  | {title} | {100 * r['eer']:.2f}% | {dcf.get(0.01, float('nan')):.3f} | "
                         f"{dcf.get(0.05, float('nan')):.3f} | {r['threshold_at_far']:.{decimals}f} "
                         f"({100 * r['frr_at_threshold']:.1f}%) |")
        self.stdout.write("\n".join(lines))

    def _print_identification(self, report: dict[str, Any], scale: str, paths: tuple[Path, Path]) -> None:
        sp, c = report["speakers"], report["counts"]
        known, unknown = report["known"] or {}, report["unknown"] or {}
        lines = [
            "",
            f"Identification ({scale}): {len(sp['known'])} speakers enrolled with {report['enroll_per_speaker']} "
            f"utterances each; unknown: {', '.join(sp['unknown']) or 'none'}; "
            f"{c['known_probes']} known / {c['unknown_probes']} unknown probes"
            + (f"; {c['files_failed']} files refused" if c["files_failed"] else ""),
            f"  top-1 {_pct(known.get('top1_accuracy'))}, top-{report['top_k']} {_pct(known.get('topk_accuracy'))}",
            f"  at threshold {report['threshold']:g}, margin {report['margin']:g}: correct match "
            f"{_pct(known.get('correct_match_rate'))}, wrong match {_pct(known.get('wrong_match_rate'))}, "
            f"false identification of unknown voices {_pct(unknown.get('false_identification_rate'))}",
        ]
        pooled = report.get("pooled")
        if pooled:
            lines.append(
                f"  pooled over 3 hold-outs ({pooled['known_probes']} known / {pooled['unknown_probes']} unknown): "
                f"top-1 {_pct((pooled['known'] or {}).get('top1_accuracy'))}, correct match "
                f"{_pct((pooled['known'] or {}).get('correct_match_rate'))}, false identification "
                f"{_pct((pooled['unknown'] or {}).get('false_identification_rate'))}")
        lines.append(f"  Report: {paths[0]}, {paths[1]}")
        self.stdout.write("\n".join(lines))
