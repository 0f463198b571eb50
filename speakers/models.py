"""The enrollment database. Embeddings are stored only as AES-GCM ciphertext (see crypto.py)."""
from __future__ import annotations

import uuid

from django.db import models


class ApiKeyScope(models.TextChoices):
    ENROLL = "enroll", "enroll: create speakers, add enrollments"
    VERIFY = "verify", "verify: 1:1 verify, compare, batch-verify"
    IDENTIFY = "identify", "identify: 1:N search"
    MANAGE = "manage", "manage: list, edit and delete speakers and enrollments"
    WATCHLIST = "watchlist", "watchlist: list, add and remove known fraudsters' voices"


DEFAULT_TENANT_SLUG = "default"


class TenantQuerySet(models.QuerySet):
    """Rows of one tenant: every query of a request starts here (another tenant's row is a 404, never a 403)."""

    def for_tenant(self, tenant: Tenant | uuid.UUID) -> TenantQuerySet:
        return self.filter(tenant=tenant)


class Tenant(models.Model):
    """One application, customer or department served by the deployment (Voice ID called them domains).

    Everything biometric belongs to exactly one tenant and is seen only through its API keys.
    Its voiceprints are sealed under its own data key, stored here wrapped (AES-GCM) by the
    deployment's primary key (``VOICEPRINT_ENCRYPTION_KEYS``): destroying the wrapped key
    makes every ciphertext of the tenant unreadable at once (crypto-shredding).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # A speaker not used (enrolled, accepted by verify, matched by identify) for this long is deleted
    # by `manage.py purge_expired`; BIPA's outer limit is 3 years after the last interaction.
    retention_days = models.PositiveIntegerField(default=1095)
    # Audit events older than this are deleted by `manage.py purge_expired`.
    audit_retention_days = models.PositiveIntegerField(default=1095)
    data_key_id = models.CharField(max_length=32, blank=True, default="", editable=False)
    data_key_wrapped = models.BinaryField(null=True, blank=True, editable=False)
    data_key_wrapping_id = models.CharField(max_length=32, blank=True, default="", editable=False)
    staff = models.ManyToManyField("auth.User", blank=True, related_name="voiceprint_tenants",
                                   help_text="Staff users (not superusers) who may see this tenant in the admin.")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def data_key_context(self) -> bytes:
        """Associated data binding the wrapped data key to this tenant."""
        return f"tenant-data-key:{self.id}".encode()


class Speaker(models.Model):
    """A person known to the database. Their voiceprint is the average of their enrollments."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="speakers")
    objects = TenantQuerySet.as_manager()
    external_id = models.CharField(
        max_length=255, null=True, blank=True,
        help_text="The client's own identifier for this person (optional, unique in the tenant).")
    display_name = models.CharField(max_length=255, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)
    last_identified_at = models.DateTimeField(null=True, blank=True)
    # The last interaction (enrollment, accepted verification, identify match): retention counts from it.
    last_used_at = models.DateTimeField(null=True, blank=True, db_index=True)
    enrollment_count = models.PositiveIntegerField(default=0)
    # Consent to process the voice as biometric data (GDPR art. 9, BIPA): the caller's own record of it.
    consent_reference = models.CharField(max_length=255, blank=True, default="",
                                         help_text="The caller's id of the signed form or recorded consent.")
    consent_notice_version = models.CharField(max_length=64, blank=True, default="")
    consent_purpose = models.CharField(max_length=255, blank=True, default="")
    consent_given_at = models.DateTimeField(null=True, blank=True)

    # The voiceprint: the mean of this speaker's enrollments of one model version, encrypted.
    voiceprint_ciphertext = models.BinaryField(null=True, blank=True, editable=False)
    voiceprint_key_id = models.CharField(max_length=32, blank=True, default="", editable=False)
    voiceprint_model_version = models.CharField(max_length=128, blank=True, default="", db_index=True)
    # Net speech (s) of the enrollments the voiceprint averages: its enrollment progress.
    voiceprint_speech_s = models.FloatField(default=0.0, editable=False)
    # Set when the stored voiceprint failed to authenticate (corrupt bytes): the speaker is left
    # out of search and their verifications answer voiceprint_unreadable until it is rewritten.
    voiceprint_unreadable = models.BooleanField(default=False, db_index=True, editable=False)
    # Quality of the enrollments the voiceprint averages (their means): inputs of the calibration.
    voiceprint_snr_db = models.FloatField(default=30.0, editable=False)
    voiceprint_bandwidth_hz = models.FloatField(default=8000.0, editable=False)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="external_id_unique_in_tenant")]

    def __str__(self) -> str:
        return self.display_name or self.external_id or str(self.id)

    @property
    def has_consent(self) -> bool:
        return self.consent_given_at is not None

    @property
    def has_voiceprint(self) -> bool:
        return self.voiceprint_ciphertext is not None

    def crypto_context(self) -> bytes:
        """Associated data binding the voiceprint ciphertext to this row and model version."""
        return self.voiceprint_context(self.id, self.voiceprint_model_version)

    @staticmethod
    def voiceprint_context(speaker_id: uuid.UUID, model_version: str | None) -> bytes:
        """:meth:`crypto_context` from the two fields alone (bulk reads skip building rows)."""
        return f"voiceprint:{speaker_id}:{model_version}".encode()


class Enrollment(models.Model):
    """One accepted recording: its embedding (encrypted) and figures about it; never the audio."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    speaker = models.ForeignKey(Speaker, on_delete=models.CASCADE, related_name="enrollments")
    embedding_ciphertext = models.BinaryField(editable=False)
    key_id = models.CharField(max_length=32, editable=False)
    model_version = models.CharField(max_length=128, db_index=True)
    filename = models.CharField(max_length=255, blank=True, default="")
    duration_s = models.FloatField()
    speech_s = models.FloatField()
    clipping_ratio = models.FloatField()
    snr_db = models.FloatField()
    speech_ratio = models.FloatField()
    bandwidth_hz = models.FloatField(default=8000.0, help_text="Upper edge of the speech's spectrum (Hz).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"enrollment {self.id} of {self.speaker_id}"

    def crypto_context(self) -> bytes:
        """Associated data binding the embedding ciphertext to this row and model version."""
        return f"enrollment:{self.id}:{self.model_version}".encode()


class ApiKey(models.Model):
    """A client credential of one tenant. Only a lookup prefix and a SHA-256 of the key are stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    objects = TenantQuerySet.as_manager()
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class AuditAction(models.TextChoices):
    SPEAKER_CREATE = "speaker_create"
    SPEAKER_UPDATE = "speaker_update"
    SPEAKER_DELETE = "speaker_delete"
    ENROLL = "enroll"
    ENROLLMENT_DELETE = "enrollment_delete"
    VERIFY = "verify"
    IDENTIFY = "identify"
    DIARIZE = "diarize"
    COMPARE = "compare"
    BATCH_VERIFY = "batch_verify"
    CALIBRATE = "calibrate"
    CALIBRATION_REVERT = "calibration_revert"
    API_KEY_CREATE = "api_key_create"
    API_KEY_REVOKE = "api_key_revoke"
    KEYS_ROTATE = "keys_rotate"
    AUTH_FAILURE = "auth_failure"
    REFUSAL = "refusal"
    THROTTLED = "throttled"
    VERIFY_LOCKOUT = "verify_lockout"
    VERIFY_LOCK_LIFT = "verify_lock_lift"
    LOGIN_LOCKOUT = "login_lockout"
    VOICEPRINT_UNREADABLE = "voiceprint_unreadable"
    INDEX_REBUILD = "index_rebuild"
    WATCHLIST_ADD = "watchlist_add"
    WATCHLIST_REMOVE = "watchlist_remove"
    WATCHLIST_MATCH = "watchlist_match"
    REPLAY_DETECTED = "replay_detected"
    TENANT_CREATE = "tenant_create"
    TENANT_DELETE = "tenant_delete"
    CONSENT_SET = "consent_set"
    CONSENT_WITHDRAW = "consent_withdraw"
    OPT_OUT = "opt_out"
    OPT_OUT_LIFT = "opt_out_lift"
    PURGE = "purge"
    EXPORT = "export"
    POPULATION_REFRESH = "population_refresh"


class AuditEvent(models.Model):
    """Who did what to which speaker, and the decision. Never an embedding or audio."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The tenant the event concerns (null: the deployment itself, or a caller nobody could identify).
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events")
    objects = TenantQuerySet.as_manager()
    actor = models.CharField(max_length=150, help_text="api:<key name>, admin:<user>, cli or anonymous")
    client_address = models.GenericIPAddressField(null=True, blank=True, help_text="The caller's IP address.")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="audit_events")
    action = models.CharField(max_length=32, choices=AuditAction.choices, db_index=True)
    # Not a foreign key: the trail outlives a deleted speaker.
    speaker_id = models.UUIDField(null=True, blank=True, db_index=True)
    decision = models.CharField(max_length=32, blank=True, default="")
    score = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action}"


class CalibrationMethod(models.TextChoices):
    QUALITY = "quality", "quality-aware: impostor normalisation and log-likelihood ratio"


class Calibration(models.Model):
    """A deployment's own calibration, fitted on its labelled recordings (``manage.py calibrate``).

    The newest row for the loaded model version is in force; without one, the calibration shipped
    with the service decides (inference/calibrations/). ``parameters`` is an
    :class:`inference.quality_calibration.Calibration`. Rows are never edited: a new calibration
    is a new row.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.CharField(max_length=150)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="calibrations")
    objects = TenantQuerySet.as_manager()
    model_version = models.CharField(max_length=128, db_index=True)
    method = models.CharField(max_length=8, choices=CalibrationMethod.choices, default=CalibrationMethod.QUALITY)
    parameters = models.JSONField(default=dict, help_text="The fitted calibration (impostor models, llr weights, thresholds).")
    # What it was measured on.
    eer = models.FloatField(help_text="Equal error rate of the raw cosine on the site's trials, as a fraction.")
    asnorm_eer = models.FloatField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    figures = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]

    def __str__(self) -> str:
        return f"calibration {self.pk} ({self.model_version}, {self.created_at:%Y-%m-%d %H:%M})"

    @property
    def source(self) -> str:
        return f"calibration:{self.pk}"


class PopulationStatistics(models.Model):
    """How far a tenant's own impostors sit from the calibration in force, per model version and scale.

    Derived state, like the search index: recomputed from the enrolled speakers' recordings and
    voiceprints (speakers/services/population.py, inference/population.py) when the number of
    complete voiceprints has moved enough, and read by every worker's decision policy. ``base`` is
    the calibration it was measured against (the policy's source): a new site calibration makes the
    row stale until recomputed.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="population_statistics")
    objects = TenantQuerySet.as_manager()
    model_version = models.CharField(max_length=128)
    scale = models.CharField(max_length=16)
    base = models.CharField(max_length=255, help_text="The calibration measured against (shipped:<file> or calibration:<id>).")
    shift = models.FloatField(help_text="Added to the impostor mean (cosine units), after bounding.")
    spread = models.FloatField(help_text="Factor on the impostor standard deviation, after bounding.")
    measured_shift = models.FloatField()
    measured_spread = models.FloatField()
    speakers = models.PositiveIntegerField(help_text="Speakers whose recordings were scored against the others.")
    trials = models.PositiveIntegerField()
    enrolled_speakers = models.PositiveIntegerField(help_text="Complete voiceprints when it was computed.")
    threshold_moved = models.JSONField(default=dict, blank=True,
                                       help_text="The cosine a reference pair needs, before and after.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "model_version", "scale"],
                                               name="one_population_statistics_per_scale")]
        verbose_name_plural = "population statistics"

    def __str__(self) -> str:
        return f"population of {self.speakers} speakers ({self.model_version}, {self.scale})"


class IndexState(models.Model):
    """One row: the generation of the last voiceprint change, bumped under a row lock.

    Writers lock this row in the transaction that changes a voiceprint, so generations
    commit in order, and a reader that sees generation N has every change up to N.
    """

    generation = models.BigIntegerField(default=0)
    token = models.CharField(max_length=32, blank=True, default="")


class SearchTierCursor(models.Model):
    """How far a shared search tier (one Milvus collection) has applied the voiceprint change log.

    The change log is the tier's outbox: a process that finds the tier behind the log locks this
    row, applies the changes after ``generation`` (re-reading each named speaker's current row),
    and moves the cursor in the same transaction. A process that dies before the cursor moves
    leaves the changes for the next one, which applies them again with the same result.
    """

    name = models.CharField(max_length=255, primary_key=True)
    generation = models.BigIntegerField(default=-1)  # -1: never built
    token = models.CharField(max_length=32, blank=True, default="")
    # A full rebuild runs outside any transaction under this lease (see speakers.search.shared_tier).
    lease = models.CharField(max_length=32, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class IndexChange(models.Model):
    """The voiceprint change log: speaker ``speaker_id`` changed (or went) at ``generation``."""

    generation = models.BigIntegerField(unique=True)
    token = models.CharField(max_length=32)
    speaker_id = models.UUIDField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["generation"]


class WatchlistEntry(models.Model):
    """A known fraudster's voice: every enrollment and verify probe is screened against it.

    Its voiceprint is stored like a speaker's (encrypted, one per model version, never the audio)
    in :class:`WatchlistVoiceprint`. A screening hit is reported in the answer and audited; with
    ``VOICEPRINT_WATCHLIST_REFUSE`` it is a refusal (``watchlist_match``).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="watchlist")
    objects = TenantQuerySet.as_manager()
    label = models.CharField(max_length=255, help_text="How the operators name this voice (a case number, an alias).")
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.CharField(max_length=150)
    # Where the voice came from: recordings uploaded for it, or an enrolled speaker's voiceprint.
    source = models.CharField(max_length=16, default="recordings")
    source_speaker_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        verbose_name = "watchlist entry"
        verbose_name_plural = "watchlist"

    def __str__(self) -> str:
        return self.label


class WatchlistVoiceprint(models.Model):
    """A watchlist entry's voiceprint for one model version, encrypted like a speaker's."""

    entry = models.ForeignKey(WatchlistEntry, on_delete=models.CASCADE, related_name="voiceprints")
    model_version = models.CharField(max_length=128, db_index=True)
    ciphertext = models.BinaryField(editable=False)
    key_id = models.CharField(max_length=32, editable=False)
    speech_s = models.FloatField()
    snr_db = models.FloatField(default=30.0)
    bandwidth_hz = models.FloatField(default=8000.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entry", "model_version"], name="one_watchlist_voiceprint_per_model")]

    def crypto_context(self) -> bytes:
        """Associated data binding the ciphertext to its entry and model version."""
        return f"watchlist:{self.entry_id}:{self.model_version}".encode()


class OptOut(models.Model):
    """A person who opted out: their external id may not be enrolled again in the tenant.

    Only a keyed hash (HMAC-SHA-256 under the deployment's secret key) of the external id is
    kept, never the id itself. Lifting a block is an operator's audited action.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="opt_outs")
    external_id_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id_hash"], name="one_opt_out_per_id")]


class ReplayPrint(models.Model):
    """An audio fingerprint of a recording the service has heard: each enrollment recording, and a speaker's last
    accepted probes. Spectral-peak pair hashes only (:mod:`inference.fingerprint`): never audio, and it cannot be
    turned back into audio; stored encrypted under the tenant's data key like a voiceprint. A probe that matches
    one is refused (``replay_detected``)."""

    class Kind(models.TextChoices):
        ENROLLMENT = "enrollment"
        PROBE = "probe"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    speaker = models.ForeignKey(Speaker, on_delete=models.CASCADE, related_name="replay_prints")
    enrollment = models.ForeignKey(Enrollment, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="replay_prints")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    ciphertext = models.BinaryField(editable=False)
    key_id = models.CharField(max_length=32, editable=False)
    duration_s = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def crypto_context(self) -> bytes:
        """Associated data binding the ciphertext to this row and its speaker."""
        return f"replay-print:{self.id}:{self.speaker_id}".encode()


class VerificationLock(models.Model):
    """One caller's verifications of one speaker, paused after its rejections (``verification_locked``).

    The caller is an API key or a client address (exactly one of them): a lock never applies to
    another key calling from another address, so an attacker's guesses never lock out the genuine
    speaker. The row outlives its lock for a day so that the next lock of the same pair lasts
    twice as long; an accepted verification by the pair, or an operator, removes it
    (speakers/services/lockout.py).
    """

    speaker = models.ForeignKey(Speaker, on_delete=models.CASCADE, related_name="verification_locks")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="verification_locks")
    client_address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    locked_at = models.DateTimeField(help_text="When the latest lock began.")
    locked_until = models.DateTimeField(db_index=True)
    lockouts = models.PositiveIntegerField(default=1, help_text="Locks of this pair within a day of each other.")
    rejections = models.PositiveIntegerField(help_text="Rejections in a row that caused the latest lock.")

    class Meta:
        ordering = ["-locked_until"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(api_key__isnull=False, client_address__isnull=True)
                | models.Q(api_key__isnull=True, client_address__isnull=False),
                name="verification_lock_key_or_address"),
            models.UniqueConstraint(fields=["speaker", "api_key"], condition=models.Q(api_key__isnull=False),
                                    name="one_verification_lock_per_key"),
            models.UniqueConstraint(fields=["speaker", "client_address"],
                                    condition=models.Q(client_address__isnull=False),
                                    name="one_verification_lock_per_address"),
        ]

    def __str__(self) -> str:
        return f"{self.speaker_id} for {self.caller}"

    @property
    def caller(self) -> str:
        """Whom the lock refuses: ``key vp_xxxx`` or ``address 1.2.3.4``."""
        return f"key {self.api_key.prefix}" if self.api_key_id else f"address {self.client_address}"
