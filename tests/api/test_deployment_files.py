"""The multi-machine compose file and its balancer configuration agree with the settings they feed.

Docker is not needed: the file is read, and the app's environment from it is loaded by the real
settings module in a subprocess (a typo, a missing variable or an invalid value fails here).
"""
from __future__ import annotations

import re
import subprocess
import sys

import yaml
from apitools import REPO

COMPOSE = REPO / "compose.cluster.yaml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_cluster_compose_file_starts_the_whole_topology():
    services = _compose()["services"]
    assert {"db", "redis", "milvus", "migrate", "app1", "app2", "balancer"} <= services.keys()
    for name in ("app1", "app2"):
        env = services[name]["environment"]
        assert env["VOICEPRINT_INDEX_BACKEND"] == "milvus" and env["VOICEPRINT_MILVUS_URI"] == "http://milvus:19530"
        assert env["VOICEPRINT_CACHE_URL"].startswith("redis://redis:")
        assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
        assert "migrate" not in " ".join(services[name]["command"])  # migrations run once, not per server
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_variable_the_apps_get_is_one_the_settings_read():
    read = set(re.findall(r'env_\w+\("([A-Z0-9_]+)"', (REPO / "voiceprint_project" / "settings.py").read_text()))
    read |= {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    env = _compose()["services"]["app1"]["environment"]
    assert set(env) - read == set()


def test_the_settings_accept_the_apps_environment(tmp_path):
    env = dict(_compose()["services"]["app1"]["environment"])
    env.update({"DJANGO_SECRET_KEY": "x" * 50, "VOICEPRINT_ENCRYPTION_KEYS": _a_key(),
                "VOICEPRINT_MILVUS_TOKEN": "root:secret", "PATH": "/usr/bin:/bin",
                "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings"})
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.VOICEPRINT_INDEX_BACKEND, s.VOICEPRINT_MILVUS_INDEX, s.CACHES['default']['BACKEND'], "
            "s.DATABASES['default']['ENGINE'], *s.VOICEPRINT_TRUSTED_PROXIES)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["milvus", "HNSW", "django.core.cache.backends.redis.RedisCache",
                                     "django.db.backends.postgresql", "172.30.0.10/32"]


def test_the_api_servers_trust_forwarded_addresses_from_the_balancer_alone():
    compose = _compose()
    balancer = compose["services"]["balancer"]["networks"]["default"]["ipv4_address"]
    assert compose["services"]["app1"]["environment"]["VOICEPRINT_TRUSTED_PROXIES"] == balancer
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    import ipaddress

    assert ipaddress.ip_address(balancer) in ipaddress.ip_network(subnet)


def test_the_balancer_sends_requests_to_both_servers_and_upgrades_websockets():
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    assert re.findall(r"server (app\d):8000", conf) == ["app1", "app2"]
    assert 'proxy_set_header Upgrade $http_upgrade' in conf
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in _compose()["services"]["balancer"]["volumes"]


def _a_key() -> str:
    from django.conf import settings

    return settings.VOICEPRINT_ENCRYPTION_KEYS[0]


def test_the_topology_purges_expired_data_every_day():
    purge = _compose()["services"]["purge"]
    command = " ".join(purge["command"])
    assert "manage.py purge_expired" in command and "sleep 86400" in command
    assert purge["environment"] == _compose()["services"]["app1"]["environment"]
    assert purge["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
