"""Every decision the service makes on the shared recordings, as JSON: the check that a refactoring changed none.

Through the HTTP API (Django's test client, a fresh SQLite database, the real engine): each speaker of
``multi/`` is enrolled with its first three recordings; then every other recording of every speaker is
verified against every speaker, identified (cosine and AS-norm), and compared with each speaker's first
recording; the dev clips likewise. Timings and ids are left out, everything else is written exactly
(``repr`` of every float), so two snapshots are equal only when every decision is bit-for-bit the same::

    python tools/decision_snapshot.py --speech ../shared/speech --out before.json
    # ... change the code ...
    python tools/decision_snapshot.py --speech ../shared/speech --out after.json
    cmp before.json after.json

It uses only the public API, so it runs on any commit of the service (copy it beside an older checkout).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENROLL_FILES = 3
VOLATILE = {"processing_time_ms", "id", "speaker_id", "created_at", "updated_at", "enrollment_id", "last_used_at"}


def _clean(value):
    """Drop volatile fields; floats as their exact repr."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speech", type=Path, required=True, help="the shared recordings (dev/ and multi/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the service checkout to run (default: here)")
    args = parser.parse_args(argv)

    root = args.root.resolve()
    work = Path(tempfile.mkdtemp(prefix="decision-snapshot-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'db.sqlite3'}"
    os.environ.setdefault("VOICEPRINT_MODEL_DIR", str(root / "var" / "model"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "voiceprint_project.settings"
    # thousands of decisions from one key: no lockout or rate limit may refuse one of them
    os.environ["VOICEPRINT_VERIFY_LOCKOUT_AFTER"] = "1000000"
    os.environ["VOICEPRINT_RATE_PER_KEY"] = "1000000/min"
    os.environ["VOICEPRINT_RATE_PER_CLIENT"] = "1000000/min"
    sys.path.insert(0, str(root))
    os.chdir(root)
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from speakers.models import ApiKeyScope
    from speakers.services import Actor, api_key_create

    call_command("migrate", verbosity=0)
    _, key = api_key_create(name="snapshot", scopes=tuple(ApiKeyScope.values), actor=Actor.cli("snapshot"))
    client = APIClient(HTTP_X_API_KEY=key, HTTP_HOST="localhost")

    speech = args.speech.resolve()
    groups: dict[str, list[Path]] = {}
    for folder in sorted((speech / "multi").iterdir()):
        if folder.is_dir():
            groups[folder.name] = sorted(folder.glob("*.wav"))
    dev = sorted((speech / "dev").glob("*.wav"))
    for name in ("a", "b"):
        groups[f"dev-{name}"] = [p for p in dev if p.name.startswith(f"{name}_")]

    def upload(path: Path):
        from django.core.files.uploadedfile import SimpleUploadedFile

        return SimpleUploadedFile(path.name, path.read_bytes(), content_type="audio/wav")

    snapshot: dict = {"enroll": {}, "verify": [], "identify": [], "compare": []}
    ids: dict[str, str] = {}
    for speaker, files in groups.items():
        created = client.post("/api/v1/speakers", {"external_id": speaker, "display_name": speaker}, format="json")
        if created.status_code != 201:
            raise SystemExit(f"creating speaker {speaker}: {created.status_code} {created.json()}")
        ids[speaker] = created.json()["id"]
        enrolled = client.post(f"/api/v1/speakers/{ids[speaker]}/enrollments",
                               {"audio": [upload(p) for p in files[:ENROLL_FILES]]}, format="multipart")
        snapshot["enroll"][speaker] = [enrolled.status_code, _clean(enrolled.json())]
    for speaker, files in groups.items():
        for probe in files[ENROLL_FILES:]:
            label = f"{speaker}/{probe.name}"
            for claimed in groups:
                for asnorm in ("false", "true"):
                    answer = client.post("/api/v1/verify", {"speaker_id": ids[claimed], "audio": upload(probe),
                                                            "asnorm": asnorm}, format="multipart")
                    snapshot["verify"].append([label, claimed, asnorm, answer.status_code, _clean(answer.json())])
            for asnorm in ("false", "true"):
                answer = client.post("/api/v1/identify", {"audio": upload(probe), "top_k": 5, "asnorm": asnorm},
                                     format="multipart")
                snapshot["identify"].append([label, asnorm, answer.status_code, _clean(answer.json())])
            for other, other_files in groups.items():
                answer = client.post("/api/v1/compare", {"reference": upload(other_files[0]), "test": upload(probe)},
                                     format="multipart")
                snapshot["compare"].append([label, other, answer.status_code, _clean(answer.json())])
    args.out.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    counts = {k: len(v) for k, v in snapshot.items()}
    print(f"{counts} decisions written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
