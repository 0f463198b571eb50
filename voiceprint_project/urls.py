from django.contrib import admin
from django.urls import include, path, re_path

from speakers import pages
from speakers.api.errors import not_found
from speakers.api.views import ClassicBatchVerifyApi, ClassicVerifySpeakerApi

urlpatterns = [
    path("", pages.landing, name="landing"),
    path("app/", pages.app_page, name="app"),
    path("favicon.ico", pages.favicon),
    path("api/v1/", include("speakers.api.urls")),
    # The classic ECAPA demo API's endpoints, for its existing clients.
    path("v1/verify-speaker", ClassicVerifySpeakerApi.as_view(), name="classic-verify-speaker"),
    path("v1/batch-verify", ClassicBatchVerifyApi.as_view(), name="classic-batch-verify"),
    path("admin/", admin.site.urls),
    # Unknown API paths answer in the API's error shape, also with DEBUG on.
    re_path(r"^(api|v1)/", not_found),
]

handler400 = "speakers.api.errors.bad_request"
handler403 = "speakers.api.errors.permission_denied"
handler404 = "speakers.api.errors.not_found"
handler500 = "speakers.api.errors.server_error"
