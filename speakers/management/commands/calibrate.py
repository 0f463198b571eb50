"""``python manage.py calibrate``: re-level the calibration on this deployment's own labelled recordings.

The service ships a calibration fitted on many speakers and conditions (docs/accuracy.md): scores
become log-likelihood ratios, and one operating point (``VOICEPRINT_FAR_TARGET``) holds whatever
the recordings. A site's microphones, rooms and population shift the impostor scores a little;
this command measures the shift on a VoxCeleb-style trial list of the site's own recordings and
stores a calibration on top of the one in force, then reports, per probe condition, the false
accepts and rejects before and after. ``--dry-run`` stores nothing; ``--show`` prints what is in
force; ``--revert`` withdraws the newest site calibration.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inference import evaluation
from speakers import selectors
from speakers.audit import Actor
from speakers.exceptions import ApplicationError
from speakers.runtime import inference_owner
from speakers.services import calibration as calibration_service
from speakers.tenancy import tenant_for_command


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


class Command(BaseCommand):
    help = ("Re-level the decision calibration on this deployment's own labelled recordings (a VoxCeleb-style trial "
            "list) and store it; report false accepts and rejects per condition before and after.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--trials", type=Path,
                            help="trial list '<1|0> <path_a> <path_b>' (a enrolls, b probes), paths relative to "
                                 "--audio-root")
        parser.add_argument("--audio-root", type=Path, help="directory the listed paths are relative to")
        parser.add_argument("--no-asnorm", action="store_true", help="re-level the cosine scale only")
        parser.add_argument("--note", default="", help="stored with the calibration (e.g. which devices)")
        parser.add_argument("--dry-run", action="store_true", help="measure and print, store nothing")
        parser.add_argument("--force", action="store_true", help="calibrate even on fewer trials than the minimum")
        parser.add_argument("--no-quality-gates", action="store_true",
                            help="use every file, even those the service would refuse as probes")
        parser.add_argument("--no-progress", action="store_true", help="accepted for symmetry with evaluate")
        parser.add_argument("--show", action="store_true", help="print the calibration in force and exit")
        parser.add_argument("--revert", action="store_true",
                            help="withdraw the newest site calibration of the loaded model version and exit")
        parser.add_argument("--tenant", default=None, metavar="SLUG",
                            help="the tenant whose calibration this is (default: the default tenant)")

    def handle(self, *args, **o) -> None:
        tenant = tenant_for_command(o["tenant"])
        if o["show"]:
            self._print_policy(selectors.decision_policy(model_version=inference_owner.model_version(), tenant=tenant))
            return
        if o["revert"]:
            withdrawn = calibration_service.calibration_revert(model_version=inference_owner.model_version(),
                                                               tenant=tenant, actor=Actor.cli("calibrate", tenant=tenant))
            if withdrawn is None:
                raise CommandError("No site calibration to withdraw for the loaded model version.")
            self.stdout.write(f"Withdrew calibration {withdrawn.pk}.")
            self._print_policy(selectors.decision_policy(model_version=inference_owner.model_version(), tenant=tenant))
            return
        if o["trials"] is None or o["audio_root"] is None:
            raise CommandError("--trials and --audio-root are required")
        if not o["audio_root"].is_dir():
            raise CommandError(f"--audio-root {o['audio_root']} is not a directory")
        try:
            trials = evaluation.read_trials(o["trials"])
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        try:
            proposal = calibration_service.calibration_measure(
                trials=trials, audio_root=o["audio_root"], tenant=tenant, asnorm=not o["no_asnorm"],
                quality_gates=not o["no_quality_gates"], force=o["force"])
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self._print_proposal(proposal)
        if o["dry_run"]:
            self.stdout.write("\nDry run: nothing stored.")
            return
        row = calibration_service.calibration_create(proposal=proposal, actor=Actor.cli("calibrate", tenant=tenant),
                                                     note=o["note"])
        self.stdout.write(f"\nStored as calibration {row.pk}: it decides from now on for {row.model_version}.")

    # --- output -----------------------------------------------------------------------------------

    def _print_policy(self, policy: selectors.DecisionPolicy) -> None:
        self.stdout.write(f"Model {policy.model_version}: calibration {policy.source}; false-accept target "
                          f"{policy.far_target:.2%}, false-identification target {policy.fir_target:.2%}; "
                          f"scales {', '.join(policy.calibration.scales)}; AS-norm by default: "
                          f"{'yes' if policy.asnorm_default else 'no'}.")

    def _print_proposal(self, p: calibration_service.CalibrationProposal) -> None:
        c = p.counts
        lines = [f"Calibration for {p.model_version} on top of {p.policy_before.source}: {c['scored']} trials "
                 f"scored ({c['target']} target, {c['impostor']} impostor), {c['failed_files']} files refused; "
                 f"EER {_pct(p.eer)}" + (f", with AS-norm {_pct(p.asnorm_eer)}" if p.asnorm_eer is not None else "")]
        for warning in p.warnings:
            lines.append(f"  warning: {warning}")
        for scale, figures in p.figures.items():
            lines.append(f"\n  {scale}: false-accept / false-reject rate at the {p.policy_before.far_target:.2%} "
                         "operating point, before -> after")
            for group, before in figures["before"].items():
                after: dict[str, Any] = figures["after"][group]
                if "far" not in before:
                    continue
                lines.append(f"    {group:<38} {_pct(before['far'])} / {_pct(before['frr'])}  ->  "
                             f"{_pct(after['far'])} / {_pct(after['frr'])}  "
                             f"({before['targets']} target, {before['impostors']} impostor)")
        self.stdout.write("\n".join(lines))
