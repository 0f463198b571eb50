from django.apps import AppConfig


class SpeakersConfig(AppConfig):
    name = "speakers"
    verbose_name = "Speakers and voiceprints"

    def ready(self) -> None:
        from . import crypto, tenancy
        from .api import schema  # noqa: F401 - registers the X-API-Key scheme with drf-spectacular

        crypto.register_data_key_resolver(tenancy.data_key_by_id)
