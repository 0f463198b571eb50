"""Admin panel. Every write and decision goes through the same services as the API, so the index stays right.

Beside the lists, three tools work with recordings (held in memory, never stored): add
enrollment recordings to a speaker, verify a recording against a speaker, identify a
recording against everyone. Numbers are shown rounded; refusals in plain words.
"""
from django.contrib import admin

from . import locks, population, records, sign_in, speakers, tenants, watchlist  # noqa: F401 - each registers its pages (sign_in: its audit receivers)

# The lists get the whole width of a 1280 px screen (the sidebar repeats the home page's links).
admin.site.enable_nav_sidebar = False
admin.site.site_header = "voiceprint administration"
admin.site.site_title = "voiceprint admin"
admin.site.site_url = "/"
