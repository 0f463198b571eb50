"""``python -m voiceprint_client``: the ``voiceprint`` command."""
import sys

from .cli import main

sys.exit(main())
