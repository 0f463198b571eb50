from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination


class SpeakerPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        """A ``page_size`` that is not a positive integer is refused (DRF would silently use the default)."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) > 0):
            raise serializers.ValidationError({self.page_size_query_param: ["A positive integer is required."]})
        return super().get_page_size(request)
