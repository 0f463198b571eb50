"""``python manage.py calibrate``: set this deployment's decision thresholds from its own labelled recordings.

Measures the verification threshold at a target false-accept rate (``--far``, default 1 %) or at
the equal error rate (``--at-eer``) on a VoxCeleb-style trial list, and, with ``--identify``, the
identification threshold at a target false-identification rate of unknown voices (``--fir``),
then stores them as a calibration for the loaded model version: from then on they decide
instead of the settings. ``--dry-run`` shows what would change; ``--show`` prints the policy in
force; ``--revert`` withdraws the newest calibration.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inference import evaluation
from speakers import asnorm as service_asnorm
from speakers import inference_owner, selectors
from speakers.audit import Actor
from speakers.exceptions import ApplicationError
from speakers.models import CalibrationMethod
from speakers.services import calibration as calibration_service


def _rates(figures: dict[str, Any] | None, prefix: str = "") -> str:
    if not figures:
        return ""
    return f"FAR {100 * figures['far' + prefix]:.2f} %, FRR {100 * figures['frr' + prefix]:.2f} %"


def _fir(point: dict[str, Any] | None) -> str:
    if not point:
        return ""
    known, unknown = point.get("known") or {}, point.get("unknown") or {}
    parts = []
    if unknown:
        parts.append(f"FIR {100 * unknown['false_identification_rate']:.2f} %")
    if known:
        parts.append(f"correct match {100 * known['correct_match_rate']:.2f} %")
    return ", ".join(parts)


class Command(BaseCommand):
    help = ("Measure and store this deployment's thresholds (verify, and identify with --identify) from its own "
            "labelled recordings, at a target false-accept rate or at the EER.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--trials", type=Path,
                            help="trial list '<1|0> <path_a> <path_b>', paths relative to --audio-root")
        parser.add_argument("--audio-root", type=Path, help="directory the listed paths are relative to")
        point = parser.add_mutually_exclusive_group()
        point.add_argument("--far", type=float, default=0.01, help="target false-accept rate of verification")
        point.add_argument("--at-eer", action="store_true", help="verification threshold at the equal error rate")
        parser.add_argument("--identify", type=Path, metavar="LIST",
                            help="also calibrate identification on this '<speaker> <path>' list")
        parser.add_argument("--fir", type=float, default=0.01,
                            help="target false-identification rate of unknown voices (with --identify)")
        parser.add_argument("--unknown", nargs="+", metavar="SPEAKER",
                            help="speakers treated as unknown (default: each third of the speakers in turn)")
        parser.add_argument("--enroll-per-speaker", type=int, default=3,
                            help="utterances per enrolled voiceprint in the identification experiment")
        parser.add_argument("--asnorm", action="store_true", help="also calibrate the AS-norm thresholds")
        parser.add_argument("--note", default="", help="stored with the calibration (e.g. which devices)")
        parser.add_argument("--out-dir", type=Path, help="also write the JSON + PNG reports here")
        parser.add_argument("--dry-run", action="store_true", help="measure and print, store nothing")
        parser.add_argument("--force", action="store_true", help="calibrate even on fewer trials than the minimum")
        parser.add_argument("--no-quality-gates", action="store_true",
                            help="use every file, even those the service would refuse as probes")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument("--show", action="store_true", help="print the thresholds in force and exit")
        parser.add_argument("--revert", action="store_true",
                            help="withdraw the newest calibration of the loaded model version and exit")

    def handle(self, *args, **o) -> None:
        if o["show"]:
            self._print_policy(self._policy())
            return
        if o["revert"]:
            withdrawn = calibration_service.calibration_revert(model_version=inference_owner.model_version(),
                                                       actor=Actor.cli("calibrate"))
            if withdrawn is None:
                raise CommandError("No calibration to withdraw for the loaded model version.")
            self.stdout.write(f"Withdrew calibration {withdrawn.pk} ({withdrawn.created_at:%Y-%m-%d %H:%M}).")
            self._print_policy(self._policy())
            return
        if o["trials"] is None or o["audio_root"] is None:
            raise CommandError("--trials and --audio-root are required")
        if not o["audio_root"].is_dir():
            raise CommandError(f"--audio-root {o['audio_root']} is not a directory")
        try:
            trials = evaluation.read_trials(o["trials"])
            utterances = evaluation.read_speaker_list(o["identify"]) if o["identify"] else None
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        try:
            proposal = calibration_service.calibration_measure(
                trials=trials, audio_root=o["audio_root"],
                method=CalibrationMethod.EER if o["at_eer"] else CalibrationMethod.FAR, far_target=o["far"],
                utterances=utterances, fir_target=o["fir"], unknown_speakers=o["unknown"],
                enroll_per_speaker=o["enroll_per_speaker"], asnorm=o["asnorm"],
                quality_gates=not o["no_quality_gates"], force=o["force"], progress=not o["no_progress"])
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if o["out_dir"]:
            for name, report in proposal.reports.items():
                evaluation.write_report(report, o["out_dir"] / f"calibration_{name}.json",
                                        o["out_dir"] / f"calibration_{name}.png")
        self._print_proposal(proposal)
        if o["dry_run"]:
            self.stdout.write("\nDry run: nothing stored.")
            return
        calibration = calibration_service.calibration_create(proposal=proposal, actor=Actor.cli("calibrate"),
                                                  note=o["note"])
        self.stdout.write(f"\nStored as calibration {calibration.pk}: it decides from now on for "
                          f"{calibration.model_version}.")

    # --- output -----------------------------------------------------------------------------------

    @staticmethod
    def _policy() -> selectors.DecisionPolicy:
        return selectors.decision_policy(model_version=inference_owner.model_version(),
                                         asnorm_key=service_asnorm.asnorm_key())

    def _print_policy(self, policy: selectors.DecisionPolicy) -> None:
        self.stdout.write(f"Thresholds in force for {policy.model_version}:")
        for name, t in (("cosine", policy.cosine), ("AS-norm", policy.asnorm)):
            self.stdout.write(f"  {name:<8} verify {t.verify:g} ({t.sources['verify']}), identify {t.identify:g} "
                              f"({t.sources['identify']}) with margin {t.identify_margin:g} "
                              f"({t.sources['identify_margin']})")
        self.stdout.write(f"  score normalisation by default: {'AS-norm' if policy.asnorm_default else 'none'}"
                          f"; AS-norm key {policy.asnorm_key}")

    def _print_proposal(self, p: calibration_service.CalibrationProposal) -> None:
        before = p.policy_before
        v, i = p.figures["verification"], p.figures.get("identification", {})
        point = "at the EER" if p.method == CalibrationMethod.EER else f"at FAR {100 * p.far_target:g} %"
        counts = p.counts["verification"]
        lines = [
            f"Calibration for {p.model_version} ({point}"
            + (f"; identification at FIR {100 * p.fir_target:g} %" if p.fir_target is not None else "") + ")",
            f"  {counts['scored']} trials ({counts['target']} target, {counts['nontarget']} non-target), "
            f"{counts['failed_files']} of {counts['files']} files refused; EER {100 * p.eer:.2f} %"
            + (f", with AS-norm {100 * p.asnorm_eer:.2f} %" if p.asnorm_eer is not None else ""),
            "",
            f"  {'':<22}{'before':<26}{'after':<26}on these recordings, before -> after",
            f"  {'verify (cosine)':<22}{before.cosine.verify:<8.3f}{before.cosine.sources['verify']:<18}"
            f"{p.verify_threshold:<26.3f}{_rates(v['cosine'], '_before')} -> {_rates(v['cosine'])}",
        ]
        if p.identify_threshold is not None:
            c = i["cosine"]
            lines.append(f"  {'identify (cosine)':<22}{before.cosine.identify:<8.3f}"
                         f"{before.cosine.sources['identify']:<18}{p.identify_threshold:<8.3f}{f'margin {p.identify_margin:g}':<18}"
                         f"{_fir(c['before'])} -> {_fir(c)}")
        if p.asnorm_verify_threshold is not None:
            lines.append(f"  {'verify (AS-norm)':<22}{before.asnorm.verify:<8.3f}{before.asnorm.sources['verify']:<18}"
                         f"{p.asnorm_verify_threshold:<26.3f}{_rates(v['asnorm'], '_before')} -> {_rates(v['asnorm'])}")
        if p.asnorm_identify_threshold is not None:
            a = i["asnorm"]
            lines.append(f"  {'identify (AS-norm)':<22}{before.asnorm.identify:<8.3f}"
                         f"{before.asnorm.sources['identify']:<18}{p.asnorm_identify_threshold:<8.3f}{f'margin {p.asnorm_identify_margin:g}':<18}"
                         f"{_fir(a['before'])} -> {_fir(a)}")
        for warning in p.warnings:
            lines.append(f"  warning: {warning}")
        self.stdout.write("\n".join(lines))
