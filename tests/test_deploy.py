"""The deployment files, checked statically (no Docker engine or cluster runs here).

- docker-compose.yml's `scale` profile: PostgreSQL, Redis, two api and two executor processes
  of one image, and the proxy in front of the apis (deploy/proxy/nginx.conf).
- deploy/k8s/*.yaml against the Kubernetes OpenAPI schemas (kubernetes-validate, offline),
  and what the schemas cannot say: probes, the HPA's target, the settings they set.
- deploy/prometheus/alerts.yml with promtool: `check rules`, then unit tests proving that the
  alerts fire when they should (and not when they should not).

Missing tools (kubernetes-validate, promtool) skip their tests, except under CI=true, where
they fail: CI installs them, and a silent skip there would hide that it did not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S_DIR = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
NGINX_CONF = DEPLOY / "proxy" / "nginx.conf"
KUBERNETES_VERSION = "1.29.0"

SETTINGS = {name.upper() for name in Settings.model_fields}
SCALE_SERVICES = {"postgres", "redis", "api-1", "api-2", "executor-1", "executor-2", "proxy"}
APIS = ("api-1", "api-2")
EXECUTORS = ("executor-1", "executor-2")
# Metrics named in alerts.yml that the service does not export yet (none now; add any here).
PENDING_METRICS: set[str] = set()


def _missing_tool(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message + " [CI=true: a missing tool fails, never skips]")
    pytest.skip(message)


# -- docker-compose.yml ------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _interpolated(value: str) -> str:
    """Compose's `${NAME:-default}`, as an unset NAME gives it."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: _interpolated(value) for name, value in service["environment"].items()}


def _settings_from(env: dict[str, str]) -> Settings:
    """The settings a process would read from exactly `env` (no .env file)."""
    assert set(env) <= SETTINGS, f"not settings: {sorted(set(env) - SETTINGS)}"
    return Settings(_env_file=None, **{name.lower(): value for name, value in env.items()})


def test_scale_profile_has_its_services_and_leaves_the_default_alone(
    services: dict[str, dict[str, Any]],
) -> None:
    scale = {name for name, s in services.items() if "scale" in s.get("profiles", [])}
    assert scale == SCALE_SERVICES
    for name in scale:
        assert services[name]["profiles"] == ["scale"], name
    # `docker compose up` alone still runs only the single process (SQLite) service.
    assert [name for name, s in services.items() if "profiles" not in s] == ["executor"]
    assert "STORE_URL" not in services["executor"]["environment"]


def test_every_app_service_sets_only_real_settings(services: dict[str, dict[str, Any]]) -> None:
    app_services = [s for s in services.values() if s.get("build") == "."]
    assert len(app_services) == 6  # executor, demo, two apis, two executors
    for service in app_services:
        env = _environment(service)
        assert set(env) <= SETTINGS, sorted(set(env) - SETTINGS)


def test_postgres_and_redis_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    postgres, redis = services["postgres"], services["redis"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    env = _environment(postgres)
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(env)
    assert redis["image"].startswith("redis:")
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert "ports" not in postgres and "ports" not in redis


@pytest.mark.parametrize("name", APIS + EXECUTORS)
def test_scale_processes_share_one_image_and_the_engines(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["build"] == "."
    assert service["image"] == services["api-1"]["image"]  # built once, run four times
    env = _environment(service)
    assert env["ROLE"] == ("api" if name in APIS else "executor")
    assert env["HTTP_HOST"] == "0.0.0.0"
    assert env["LOG_FORMAT"] == "json"
    postgres = _environment(services["postgres"])
    assert env["STORE_URL"] == (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert re.fullmatch(r"redis://redis:6379/\d+", env["BUS_URL"])
    assert env["PARTITIONS"] == _environment(services["api-1"])["PARTITIONS"]
    settings = _settings_from(env)  # what the process itself would accept
    assert settings.role == env["ROLE"]
    assert service["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    probe = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{settings.http_port}/readyz" in probe
    assert "ports" not in service  # only the proxy publishes a port
    assert service["stop_grace_period"] == "15s"


def test_proxy_publishes_8080_after_the_apis_are_ready(
    services: dict[str, dict[str, Any]],
) -> None:
    proxy = services["proxy"]
    assert proxy["ports"] == ["8080:8080"]
    for name in APIS:
        assert proxy["depends_on"][name] == {"condition": "service_healthy"}
    (volume,) = proxy["volumes"]
    source, target, mode = volume.split(":")
    assert (ROOT / source).resolve() == NGINX_CONF.resolve()
    # Included inside nginx's `http` block, where `upstream` and `map` belong.
    assert target.startswith("/etc/nginx/conf.d/") and target.endswith(".conf")
    assert mode == "ro"


def _nginx_blocks(text: str, keyword: str) -> dict[str, str]:
    """`keyword NAME { ... }` blocks (no nested braces inside them) by NAME."""
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return dict(re.findall(keyword + r"\s+(\S+)\s*\{([^{}]*)\}", body))


def test_proxy_round_robins_both_apis_and_upgrades_websockets(
    services: dict[str, dict[str, Any]],
) -> None:
    conf = NGINX_CONF.read_text()
    (upstream_name, upstream), *others = _nginx_blocks(conf, "upstream").items()
    assert not others
    port = _environment(services["api-1"])["HTTP_PORT"]
    servers = re.findall(r"^\s*server\s+(\S+?)(?:\s[^;]*)?;", upstream, re.M)
    assert servers == [f"{name}:{port}" for name in APIS]
    # Round-robin is nginx's default; any of these would replace it.
    assert not re.search(r"^\s*(ip_hash|hash|least_conn|random|sticky)\b", upstream, re.M)
    assert re.search(r"^\s*listen\s+8080;", conf, re.M)  # the container port published
    # `map $http_upgrade $connection_upgrade`: "upgrade" when asked, else no Connection.
    mapping = re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade\s*\{([^}]*)\}", conf)
    assert mapping and re.search(r"default\s+upgrade;", mapping.group(1))
    locations = _nginx_blocks(conf, "location")
    # The location nginx picks for /ws (the longest matching prefix) upgrades it.
    ws = max((p for p in locations if "/ws".startswith(p)), key=len)
    for location in {ws, "/"}:
        block = locations[location]
        assert f"proxy_pass http://{upstream_name};" in block, location
        assert "proxy_http_version 1.1;" in block, location
        assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", block), location
        assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", block)
        # The origin check compares Origin with Host: the client's Host must reach the api.
        assert re.search(r"proxy_set_header\s+Host\s+\$http_host;", block), location
    timeout = re.search(r"proxy_read_timeout\s+(\d+)([smh]);", locations[ws])
    assert timeout and int(timeout.group(1)) * {"s": 1, "m": 60, "h": 3600}[timeout.group(2)] > 20


def test_the_image_can_run_the_scale_roles() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    install = re.search(r'pip install\b[^\n]*"\.\[([\w,]+)\]"', dockerfile)
    assert install and "scale" in install.group(1).split(",")


# -- deploy/k8s ----------------------------------------------------------------------------


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


MANIFESTS = _manifests()


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for _, m in MANIFESTS if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_the_manifests_are_all_there() -> None:
    kinds = sorted(m["kind"] for _, m in MANIFESTS)
    expected = ["Namespace", "ConfigMap", "Secret", "Deployment", "Deployment", "Service"]
    expected += ["HorizontalPodAutoscaler", "PodDisruptionBudget"]
    assert kinds == sorted(expected)
    (namespace,) = [m["metadata"]["name"] for _, m in MANIFESTS if m["kind"] == "Namespace"]
    assert MANIFESTS[0][1]["kind"] == "Namespace"  # applied first by `kubectl apply -f`
    for _, manifest in MANIFESTS[1:]:
        assert manifest["metadata"]["namespace"] == namespace


@pytest.mark.parametrize(
    "manifest",
    [m for _, m in MANIFESTS],
    ids=[f"{file}:{m['kind']}/{m['metadata']['name']}" for file, m in MANIFESTS],
)
def test_manifest_is_valid_for_kubernetes(manifest: dict[str, Any]) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        _missing_tool("kubernetes-validate is not installed (pip install kubernetes-validate)")
    # strict: unknown fields (a misspelt key) are errors too, as `kubectl --validate` does.
    checked = kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert checked == KUBERNETES_VERSION.rsplit(".", 1)[0]


@pytest.mark.parametrize("role", ["api", "executor"])
def test_deployments_run_two_replicas_with_probes_and_limits(role: str) -> None:
    deployment = _one("Deployment", f"trade-executor-{role}")
    assert deployment["spec"]["replicas"] == 2
    selector = deployment["spec"]["selector"]["matchLabels"]
    template = deployment["spec"]["template"]
    assert selector.items() <= template["metadata"]["labels"].items()
    pod = template["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 15  # SIGTERM hands over in time
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
    container = _container(deployment)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["ROLE"] == role and env["HTTP_HOST"] == "0.0.0.0"
    (port,) = container["ports"]
    config = _one("ConfigMap", "trade-executor-config")["data"]
    assert port["containerPort"] == int(config["HTTP_PORT"])
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        action = container[probe]["httpGet"]
        assert action["path"] == path and action["port"] in (port["name"], port["containerPort"])
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


def _secret_keys_used(container: dict[str, Any]) -> set[str]:
    refs = [item["valueFrom"]["secretKeyRef"] for item in container["env"] if "valueFrom" in item]
    return {ref["key"] for ref in refs}


@pytest.mark.parametrize("role", ["api", "executor"])
def test_deployment_env_is_real_settings_the_service_accepts(role: str) -> None:
    container = _container(_one("Deployment", f"trade-executor-{role}"))
    config = _one("ConfigMap", "trade-executor-config")
    secret = _one("Secret", "trade-executor-secrets")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] == config["metadata"]["name"]
            env |= config["data"]
        else:
            assert source["secretRef"]["name"] == secret["metadata"]["name"]
            env |= secret["stringData"]
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[item["name"]] = secret["stringData"][ref["key"]]
        else:
            env[item["name"]] = item["value"]
    settings = _settings_from(env)
    assert settings.role == role and settings.log_format == "json"
    assert settings.store_url.startswith("postgresql://") and settings.bus_url.startswith("redis")
    if role == "executor":
        assert "API_TOKENS" not in env  # an executor gets only the secrets it uses
        assert _secret_keys_used(container) == {"STORE_URL", "BUS_URL"}


def test_every_setting_named_in_config_and_secret_is_real() -> None:
    config = _one("ConfigMap", "trade-executor-config")["data"]
    secret = _one("Secret", "trade-executor-secrets")["stringData"]
    assert set(config) <= SETTINGS, sorted(set(config) - SETTINGS)
    assert set(secret) == {"API_TOKENS", "STORE_URL", "BUS_URL"}
    assert "API_TOKENS" not in config and "STORE_URL" not in config
    for value in secret.values():
        assert "CHANGE-ME" in value  # placeholders, clearly marked


def test_the_api_service_and_its_autoscaler() -> None:
    deployment = _one("Deployment", "trade-executor-api")
    service = _one("Service", "trade-executor-api")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    (container_port,) = _container(deployment)["ports"]
    assert port["port"] == 80
    assert port["targetPort"] in (container_port["name"], 8080)
    assert container_port["containerPort"] == 8080
    hpa = _one("HorizontalPodAutoscaler", "trade-executor-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # Utilization is of the request: without a CPU request the HPA cannot compute it.
    assert "cpu" in _container(deployment)["resources"]["requests"]


def test_the_executors_disruption_budget() -> None:
    deployment = _one("Deployment", "trade-executor-executor")
    budget = _one("PodDisruptionBudget", "trade-executor-executor")
    assert budget["spec"]["minAvailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


# -- deploy/prometheus/alerts.yml ----------------------------------------------------------


def _exported_metrics() -> set[str]:
    """Every series name app/http/metrics.py exports, with the suffixes its types add."""
    source = (ROOT / "app" / "http" / "metrics.py").read_text()
    names = set()
    for kind, name in re.findall(r'(\w+)\(\s*"(executor_\w+)"', source):
        if kind == "CounterMetricFamily":
            names.add(name + "_total")
        elif kind == "GaugeMetricFamily":
            names.add(name)
        elif kind == "Histogram":
            names |= {name + "_bucket", name + "_count", name + "_sum"}
    return names


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alerts_name_only_exported_metrics(alert_rules: list[dict[str, Any]]) -> None:
    exported = _exported_metrics()
    assert {
        "executor_upstream_connected", "executor_open_orders", "executor_fills_total",
        "executor_http_request_duration_seconds_bucket", "executor_orders_total",
    } <= exported  # fmt: skip
    functions = {"rate", "increase", "sum", "histogram_quantile", "absent"}
    keywords = {"and", "or", "unless"}
    used = set()
    for rule in alert_rules:
        # Without label matchers, ranges and grouping label lists: metric names remain.
        expr = re.sub(
            r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\b(on|ignoring|by|without)\s*\([^)]*\)',
            "",
            rule["expr"],
        )
        used |= set(re.findall(r"[a-zA-Z_:][\w:]*", expr)) - functions - keywords
    assert used <= exported | PENDING_METRICS, sorted(used - exported - PENDING_METRICS)
    assert not PENDING_METRICS & exported, "exported now: drop it from PENDING_METRICS"


def test_every_alert_has_a_severity_and_explains_itself(
    alert_rules: list[dict[str, Any]],
) -> None:
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names))
    for rule in alert_rules:
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    covered = " ".join(rule["expr"] for rule in alert_rules)
    for metric in (
        "executor_upstream_connected", "executor_upstream_reconnects_total",
        "executor_upstream_malformed_frames_total", "executor_fills_total",
        "executor_market_updates_total", "executor_worker_rebuilds_total",
        "executor_http_request_duration_seconds_bucket", "executor_command_lag_seconds",
    ):  # fmt: skip
        assert metric in covered, metric


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        _missing_tool("promtool is not installed (Debian: apt-get install prometheus)")
    return str(path)


def test_promtool_accepts_the_rules(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    inner = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _firing(alert: str, at: str, *instances: str, severity: str) -> dict[str, Any]:
    expected = [
        {"exp_labels": {"severity": severity, "job": "executor", "instance": instance}}
        for instance in instances
    ]
    return {"eval_time": at, "alertname": alert, "exp_alerts": expected}


def _executor(instance: str, **series: str) -> list[dict[str, str]]:
    """One executor's series; a name may carry a label after `__` (outcome / status)."""
    out = []
    for key, values in series.items():
        name, _, label = key.partition("__")
        extra = dict([label.split("_", 1)]) if label else {}
        out.append(_series(name, values, job="executor", instance=instance, **extra))
    return out


# Each case: input series (one sample a minute) and the alerts expected at given times.
# `alertname` checks list every instance firing then: the others must not fire.
PROMTOOL_CASES: list[dict[str, Any]] = [
    {  # the feed: down with open orders, down while idle, flapping, malformed frames
        "interval": "1m",
        "input_series": [
            *_executor(
                "down",
                executor_upstream_connected="0x20",
                executor_open_orders="2x20",
                executor_upstream_reconnects_total="0+1x20",
                executor_upstream_malformed_frames_total="0 0 0 0 5x16",
            ),
            *_executor(
                "idle",
                executor_upstream_connected="0x20",
                executor_open_orders="0x20",
                executor_upstream_reconnects_total="0x20",
                executor_upstream_malformed_frames_total="0x20",
            ),
            *_executor(
                "healthy",
                executor_upstream_connected="1x20",
                executor_open_orders="2x20",
                executor_upstream_reconnects_total="3x20",
                executor_upstream_malformed_frames_total="1x20",
            ),
        ],
        "alert_rule_test": [
            _firing("ExecutorUpstreamDown", "30s", severity="critical"),  # not for 1m yet
            _firing("ExecutorUpstreamDown", "3m", "down", severity="critical"),
            _firing("ExecutorUpstreamFlapping", "12m", "down", severity="warning"),
            _firing("ExecutorMalformedUpstreamFrames", "6m", "down", severity="warning"),
            _firing("ExecutorMissing", "10m", severity="critical"),
        ],
    },
    {  # execution: stuck symbol, no fills, orders that never end (no final-status series
        # at all: the alert must fire without them), commit failures, command lag
        "interval": "1m",
        "input_series": [
            *_executor(
                "stuck",
                executor_open_orders="3x60",
                executor_market_updates_total__outcome_applied="500x60",
                executor_market_updates_total__outcome_skipped="0+5x60",
                executor_fills_total="0x60",
                executor_worker_rebuilds_total="0 0 1x58",
                executor_command_lag_seconds="3x60",
            ),
            *_executor(
                "unfilled",
                executor_open_orders="3x60",
                executor_market_updates_total__outcome_applied="0+100x60",
                executor_market_updates_total__outcome_skipped="0x60",
                executor_fills_total="7x60",
                executor_orders_total__status_expired="0+2x60",
                executor_worker_rebuilds_total="0+1x60",
                executor_command_lag_seconds="30x60",
            ),
            *_executor(
                "healthy",
                executor_open_orders="3x60",
                executor_upstream_connected="1x60",
                executor_market_updates_total__outcome_applied="0+100x60",
                executor_market_updates_total__outcome_skipped="0x60",
                executor_fills_total="0+4x60",
                executor_orders_total__status_filled="0+4x60",
                executor_orders_total__status_expired="0x60",
                executor_worker_rebuilds_total="2x60",
                executor_command_lag_seconds="0.05x60",
            ),
            *_executor(
                "empty",
                executor_open_orders="0x60",
                executor_market_updates_total__outcome_applied="0x60",
                executor_fills_total="0x60",
            ),
        ],
        "alert_rule_test": [
            _firing("ExecutorNoMarketUpdates", "12m", "stuck", severity="warning"),
            _firing("ExecutorNoFills", "10m", severity="warning"),  # not for long enough
            _firing("ExecutorNoFills", "35m", "unfilled", severity="warning"),
            _firing("ExecutorOrdersNotFinishing", "10m", "stuck", severity="critical"),
            _firing("ExecutorCommitFailures", "5m", "stuck", "unfilled", severity="warning"),
            _firing("ExecutorCommitFailuresRepeated", "12m", "unfilled", severity="critical"),
            _firing("ExecutorCommandLag", "5m", "stuck", "unfilled", severity="warning"),
            _firing("ExecutorCommandLagCritical", "5m", "unfilled", severity="critical"),
            _firing("ExecutorMissing", "10m", severity="critical"),  # some are there
        ],
    },
    {  # exchange info unreadable for a while on one api process, briefly on another
        "interval": "1m",
        "input_series": [
            _series("executor_exchange_info_available", "0x15", job="executor", instance="out"),
            _series(
                "executor_exchange_info_available", "1 0 0 1x12", job="executor", instance="blip"
            ),
        ],
        "alert_rule_test": [
            _firing("ExecutorExchangeInfoUnavailable", "5m", severity="warning"),
            _firing("ExecutorExchangeInfoUnavailable", "12m", "out", severity="warning"),
        ],
    },
    {  # nothing executes at all
        "interval": "1m",
        "input_series": [_series("executor_open_orders", "0x10", job="api", instance="a")],
        "alert_rule_test": [
            {
                "eval_time": "7m",
                "alertname": "ExecutorMissing",
                "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
            }
        ],
    },
    {  # HTTP p99: a slow order route fires; slow probes and a fast route do not
        "interval": "1m",
        "input_series": [
            _series(
                f"executor_http_request_duration_seconds_{suffix}",
                values,
                job="api",
                instance="a",
                method="POST",
                route=route,
                **bucket,
            )
            for route in ("/order/limit", "/healthz")
            for suffix, bucket, values in (
                ("bucket", {"le": "0.25"}, "0x30"),
                ("bucket", {"le": "1"}, "0+60x30"),
                ("bucket", {"le": "+Inf"}, "0+60x30"),
                ("count", {}, "0+60x30"),
            )
        ]
        + [
            _series(
                f"executor_http_request_duration_seconds_{suffix}",
                "0+60x30",
                job="api",
                instance="a",
                method="GET",
                route="/orders",
                **bucket,
            )
            for suffix, bucket in (
                ("bucket", {"le": "0.25"}),
                ("bucket", {"le": "+Inf"}),
                ("count", {}),
            )
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "ExecutorHttpLatencyHigh",
                "exp_alerts": [
                    {"exp_labels": {"severity": "warning", "job": "api", "route": "/order/limit"}}
                ],
            }
        ],
    },
]


def test_alerts_fire_when_they_should(promtool: str, tmp_path: Path) -> None:
    # promtool compares annotations too; the rules are tested without them (their texts are
    # checked above and their templates by `promtool check rules`).
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    tested = {check["alertname"] for case in PROMTOOL_CASES for check in case["alert_rule_test"]}
    assert tested == {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    unit_tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": PROMTOOL_CASES}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(unit_tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
