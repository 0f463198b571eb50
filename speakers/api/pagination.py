from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination


class SpeakerPagination(PageNumberPagination):
    """Pages of a list: ``page`` and ``page_size`` are positive integers, as the schema says.

    DRF would take ``page=last`` or an empty ``page``, and fall back to the default on a ``page_size`` it
    cannot read; here either is a 400 ``validation_error``. A page past the end is DRF's 404 ``not_found``.
    """

    page_size_query_param = "page_size"
    max_page_size = 500
    last_page_strings = ()

    def paginate_queryset(self, queryset, request, view=None):
        for name in (self.page_query_param, self.page_size_query_param):
            raw = request.query_params.get(name)
            if raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) > 0):
                raise serializers.ValidationError({name: ["A positive integer is required."]})
        return super().paginate_queryset(queryset, request, view)
