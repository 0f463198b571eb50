"""Uploads stay in memory: raw audio is never written to disk, not even to a temp file.

This is the only upload handler (settings.FILE_UPLOAD_HANDLERS). Unlike Django's
MemoryFileUploadHandler, which silently hands large files on to the next handler (there is
none here, so they would vanish), it enforces the limits itself and answers with a clear
error: ``upload_too_large`` for a file above VOICEPRINT_MAX_UPLOAD_BYTES or a body that
cannot fit VOICEPRINT_MAX_FILES such files, ``too_many_files`` above VOICEPRINT_MAX_FILES.
"""
from __future__ import annotations

from io import BytesIO

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from .exceptions import ApplicationError, TooManyFiles, UploadTooLarge

_MULTIPART_OVERHEAD_BYTES = 1024 * 1024


def max_request_bytes() -> int:
    return settings.VOICEPRINT_MAX_FILES * settings.VOICEPRINT_MAX_UPLOAD_BYTES + _MULTIPART_OVERHEAD_BYTES


class InMemoryAudioUploadHandler(FileUploadHandler):
    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.files_seen = 0
        self.error: ApplicationError | None = None
        self.file = BytesIO()

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        limit = max_request_bytes()
        if content_length is not None and content_length > limit:
            raise UploadTooLarge(
                "The request body is larger than allowed.",
                content_length=content_length, max_request_bytes=limit)
        return None  # let Django's multipart parser go on, feeding us the files

    def new_file(self, field_name, file_name, content_type, content_length, charset=None,
                 content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset,
                         content_type_extra)
        self.files_seen += 1
        if self.files_seen > settings.VOICEPRINT_MAX_FILES:
            self._stop(TooManyFiles(
                f"At most {settings.VOICEPRINT_MAX_FILES} files per request.",
                max_files=settings.VOICEPRINT_MAX_FILES))
        self.file = BytesIO()

    def receive_data_chunk(self, raw_data, start):
        limit = settings.VOICEPRINT_MAX_UPLOAD_BYTES
        if start + len(raw_data) > limit:
            self._stop(UploadTooLarge(
                f"The file {self.file_name!r} is larger than {limit} bytes.",
                field=self.field_name, filename=self.file_name, max_upload_bytes=limit))
        self.file.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.file.seek(0)
        return InMemoryUploadedFile(
            file=self.file, field_name=self.field_name, name=self.file_name,
            content_type=self.content_type, size=file_size, charset=self.charset,
            content_type_extra=self.content_type_extra)

    def upload_complete(self):
        # Raised here, after Django has drained the body, so the connection stays usable.
        if self.error is not None:
            raise self.error
        return None

    def _stop(self, error: ApplicationError) -> None:
        self.error = error
        self.file = BytesIO()  # drop what was read; Django closes it
        raise StopUpload(connection_reset=False)
