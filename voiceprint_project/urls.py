from django.contrib import admin
from django.urls import include, path

from speakers.api.views import ClassicVerifySpeakerApi

urlpatterns = [
    path("api/v1/", include("speakers.api.urls")),
    # The classic ECAPA demo API's endpoint, for its existing clients.
    path("v1/verify-speaker", ClassicVerifySpeakerApi.as_view(), name="classic-verify-speaker"),
    path("admin/", admin.site.urls),
]

handler404 = "speakers.api.errors.not_found"
handler500 = "speakers.api.errors.server_error"
