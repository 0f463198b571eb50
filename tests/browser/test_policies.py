"""Every page works under the content security policy every answer now carries (issue 18).

The API docs are Swagger UI (drf-spectacular-sidecar): they must render, and "Try it out" must
reach the API, with no inline script and no violation; the admin must sign in and list speakers.
A violation is caught both as the browser's ``securitypolicyviolation`` event and as a console error.
"""
from __future__ import annotations

VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
    (e) => window.__violations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def _watched(launch):
    page = launch()
    page.add_init_script(VIOLATIONS)
    return page


def _violations(page) -> list[str]:
    return page.evaluate("() => window.__violations") + [e for e in page.errors if "Content Security Policy" in e]


def test_the_api_docs_render_and_call_the_api_under_the_policy(launch, app_server, reports_dir):
    page = _watched(launch)
    response = page.goto(f"{app_server.url}/api/v1/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock-summary-path", timeout=60_000)
    paths = page.eval_on_selector_all(".opblock-summary-path", "nodes => nodes.map(n => n.textContent.trim())")
    assert "/api/v1/verify" in paths and "/api/v1/health" in paths
    health = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text="/api/v1/health")).first
    health.locator(".opblock-summary").click()
    health.locator(".try-out__btn").click()
    health.locator(".execute").click()
    status = health.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=60_000)
    assert status.text_content().strip() == "200"
    page.screenshot(path=reports_dir / "policies-api-docs.png", full_page=False)
    assert _violations(page) == [], _violations(page)


def test_the_admin_and_the_landing_page_work_under_the_policy(launch, app_server, reports_dir):
    page = _watched(launch)
    page.goto(f"{app_server.url}/")
    page.goto(f"{app_server.url}/admin/login/?next=/admin/speakers/speaker/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", app_server.admin_password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/speakers/speaker/")
    page.wait_for_selector("#changelist")
    page.goto(f"{app_server.url}/admin/speakers/speaker/add/")
    page.wait_for_selector("#id_external_id")
    page.goto(f"{app_server.url}/admin/speakers/speaker/identify/")
    page.wait_for_selector("input[type=file]")
    assert page.evaluate("() => document.querySelector('link[href$=\"admin-tools.css\"]').sheet.cssRules.length > 0")
    page.goto(f"{app_server.url}/admin/speakers/auditevent/")  # a list without actions: Django's inline style
    page.wait_for_selector("#changelist")
    page.screenshot(path=reports_dir / "policies-admin.png")
    assert _violations(page) == [], _violations(page)
