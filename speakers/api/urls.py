from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views

app_name = "api"

urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("ready", views.ReadinessApi.as_view(), name="ready"),
    path("speakers", views.SpeakerCollectionApi.as_view(), name="speakers"),
    path("speakers/<str:speaker_id>", views.SpeakerDetailApi.as_view(), name="speaker"),
    path("speakers/<str:speaker_id>/consent", views.SpeakerConsentApi.as_view(), name="consent"),
    path("speakers/<str:speaker_id>/opt-out", views.SpeakerOptOutApi.as_view(), name="opt-out"),
    path("speakers/<str:speaker_id>/export", views.SpeakerExportApi.as_view(), name="export"),
    path("speakers/<str:speaker_id>/enrollments", views.SpeakerEnrollApi.as_view(), name="enrollments"),
    path("speakers/<str:speaker_id>/enrollments/<str:enrollment_id>", views.EnrollmentDetailApi.as_view(),
         name="enrollment"),
    path("verify", views.VerifyApi.as_view(), name="verify"),
    path("identify", views.IdentifyApi.as_view(), name="identify"),
    path("diarize", views.DiarizeApi.as_view(), name="diarize"),
    path("compare", views.CompareApi.as_view(), name="compare"),
    path("batch-verify", views.BatchVerifyApi.as_view(), name="batch-verify"),
    path("policy", views.PolicyApi.as_view(), name="policy"),
    path("watchlist", views.WatchlistCollectionApi.as_view(), name="watchlist"),
    path("watchlist/<str:entry_id>", views.WatchlistDetailApi.as_view(), name="watchlist-entry"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI with its start-up script as a file of its own (no inline script: the content security policy)
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]
