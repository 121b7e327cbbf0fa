"""The Kubernetes manifests, rendered offline and validated against the Kubernetes schemas, then
checked for what a cluster would only tell at run time: names, ports, the key, the user, the requests."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from locust.argument_parser import get_parser

from tests.kustomize import build, load_yaml
from tests.procs import ROOT
from users.settings.parser import add_options
from users.settings.sections import OPTIONS

K8S = ROOT / "docker" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"
SUITE = "llm-loadtest"
# OPENAI_API_KEY
SECRET_OPTIONS = {o.env_var for o in OPTIONS if o.secret}
# the Prometheus Operator's: not in the Kubernetes schemas
CRD_GROUPS = ("monitoring.coreos.com/",)


def rendered(*overlay: str) -> list[dict[str, Any]]:
    return build(K8S.joinpath(*overlay))


def with_autoscale(tmp_path: Path, overlay: str) -> list[dict[str, Any]]:
    """An overlay plus the optional autoscale component, as a user would add it."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(K8S / overlay)],
                "components": [str(K8S / "autoscale")],
            }
        )
    )
    return build(tmp_path)


def one(resources: list[dict], kind: str, name: str) -> dict:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


def container(workload: dict) -> dict:
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def flag(args: list[str], name: str) -> str:
    assert name in args, f"{name} not in {shlex.join(args)}"
    return args[args.index(name) + 1]


def port(c: dict, name: str) -> int:
    return next(p["containerPort"] for p in c.get("ports", []) if p["name"] == name)


ALL = [("web",), ("job",), ("vllm", "cuda"), ("vllm", "rocm"), ("monitoring",)]


@pytest.mark.parametrize("overlay", ALL, ids="/".join)
def test_every_rendered_manifest_validates_against_the_kubernetes_schemas(overlay):
    for res in rendered(*overlay):
        if res["apiVersion"].startswith(CRD_GROUPS):
            continue
        kubernetes_validate.validate(res, KUBERNETES_VERSION, strict=True)


def test_the_autoscaler_and_the_results_reader_validate(tmp_path):
    hpa = one(with_autoscale(tmp_path, "web"), "HorizontalPodAutoscaler", "llm-loadtest-worker")
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "llm-loadtest-worker")
    (reader,) = load_yaml(K8S / "job" / "results-reader.yaml")
    kubernetes_validate.validate(reader, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_broken_manifest():
    worker = one(rendered("web"), "Deployment", "llm-loadtest-worker")
    # a name where a number belongs
    container(worker)["ports"][0]["containerPort"] = "metrics"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSION, strict=True)
    worker = one(rendered("web"), "Deployment", "llm-loadtest-worker")
    # a misspelt field: strict schemas refuse it
    container(worker)["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["web", "job"])
def test_workers_find_the_master_and_every_port_agrees(overlay):
    res = rendered(overlay)
    service = one(res, "Service", "llm-loadtest-master")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    master = one(res, "Deployment" if overlay == "web" else "Job", "llm-loadtest-master")
    worker = one(res, "Deployment", "llm-loadtest-worker")
    m, w = container(master), container(worker)
    # the worker dials the master's Service on its master port, which lands on the master's bind port
    assert flag(w["args"], "--master-host") == service["metadata"]["name"]
    assert int(flag(w["args"], "--master-port")) == ports["master"]["port"]
    assert port(m, ports["master"]["targetPort"]) == int(flag(m["args"], "--master-bind-port"))
    # the Service selects the master's pods, not the workers'
    selector = service["spec"]["selector"].items()
    assert selector <= master["spec"]["template"]["metadata"]["labels"].items()
    assert not selector <= worker["spec"]["template"]["metadata"]["labels"].items()
    # Prometheus: --metrics-port (from the ConfigMap) is the port each pod and the Service name "metrics"
    options = one(res, "ConfigMap", "llm-loadtest-options")["data"]
    metrics = int(options["LOCUST_METRICS_PORT"])
    assert port(m, ports["metrics"]["targetPort"]) == metrics == port(w, "metrics")
    if overlay == "web":
        assert port(m, ports["web"]["targetPort"]) == int(flag(m["args"], "--web-port"))
    # the headless Job waits for exactly the workers the Deployment runs, and never reruns itself
    else:
        assert int(flag(m["args"], "--expect-workers")) == worker["spec"]["replicas"]
        assert "--headless" in m["args"] and master["spec"]["backoffLimit"] == 0
        assert master["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # the master's CSVs go to the results volume
    volumes = {v["name"]: v for v in master["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [vm for vm in m["volumeMounts"] if flag(m["args"], "--csv").startswith(vm["mountPath"] + "/")]
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    one(res, "PersistentVolumeClaim", claim)


@pytest.mark.parametrize("overlay", ["web", "job"])
def test_the_key_comes_from_a_secret_and_pods_run_as_non_root_with_requests(overlay):
    res = rendered(overlay)
    for cm in (r for r in res if r["kind"] == "ConfigMap"):
        for key in cm["data"]:
            assert not set(key.split("_")) & {"KEY", "TOKEN", "PASSWORD", "SECRET", "AUTH"}, key
            assert key not in SECRET_OPTIONS, key
    # the key is never in the repository
    assert not any(r["kind"] == "Secret" for r in res)
    workloads = [r for r in res if r["kind"] in ("Deployment", "Job")]
    assert len(workloads) == 2
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        c = container(workload)
        env = {e["name"]: e for e in c["env"]}
        assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "llm-loadtest-api-key"
        assert "value" not in env["OPENAI_API_KEY"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= set(c["resources"]["requests"])
        assert [ref["configMapRef"]["name"] for ref in c["envFrom"]] == ["llm-loadtest-options"]


def test_the_configmap_holds_only_options_the_suite_or_locust_knows_with_values_they_accept():
    options = one(rendered("web"), "ConfigMap", "llm-loadtest-options")["data"]
    parser = get_parser()
    add_options(parser)
    known = {a.env_var for a in parser._actions if getattr(a, "env_var", None)}
    assert set(options) <= known, sorted(set(options) - known)
    parsed = parser.parse_args(args=["-f", "locustfile.py"], env_vars=options)
    # the seed
    assert (parsed.num_users, parsed.spawn_rate, parsed.num_requests) == (128, 16, 500)
    assert (parsed.input_tokens, parsed.max_tokens) == (2048, 512)
    # the vLLM Service of vllm/
    assert parsed.host == "http://vllm:8000"


def test_the_image_is_the_suites_and_the_monitors_select_the_right_pods():
    # docker/locust.compose.yml builds it under this name
    image = "vllm-locust-suite:latest"
    assert f"image: {image}" in (ROOT / "docker" / "locust.compose.yml").read_text()
    web = rendered("web")
    for workload in (one(web, "Deployment", "llm-loadtest-master"), one(web, "Deployment", "llm-loadtest-worker")):
        assert container(workload)["image"] == image
    monitors = rendered("monitoring")
    pod_monitor = one(monitors, "PodMonitor", SUITE)
    master = one(web, "Deployment", "llm-loadtest-master")
    worker = one(web, "Deployment", "llm-loadtest-worker")
    selector = pod_monitor["spec"]["selector"]["matchLabels"].items()
    assert selector <= master["spec"]["template"]["metadata"]["labels"].items()
    # no double counting
    assert not selector <= worker["spec"]["template"]["metadata"]["labels"].items()
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert port(container(master), endpoint["port"])
    vllm = rendered("vllm", "cuda")
    service_monitor = one(monitors, "ServiceMonitor", "vllm")
    service = one(vllm, "Service", "vllm")
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {p["name"] for p in service["spec"]["ports"]} >= {e["port"] for e in service_monitor["spec"]["endpoints"]}


@pytest.mark.parametrize(
    ("variant", "gpu", "image"),
    [("cuda", "nvidia.com/gpu", "vllm/vllm-openai"), ("rocm", "amd.com/gpu", "rocm/vllm-dev")],
)
def test_vllm_runs_with_the_seeds_flags_on_either_vendor(variant, gpu, image):
    res = rendered("vllm", variant)
    c = container(one(res, "Deployment", "vllm"))
    assert c["image"].startswith(image)
    assert c["resources"]["limits"][gpu] == flag(c["args"], "--tensor-parallel-size") == "8"
    for needed in ("--enable-prefix-caching", "--enable-chunked-prefill", "--enable-prompt-tokens-details"):
        assert needed in c["args"]
    assert "Llama-3.1-70B-Instruct" in flag(c["args"], "--model")
    service = one(res, "Service", "vllm")
    assert port(c, service["spec"]["ports"][0]["targetPort"]) == int(flag(c["args"], "--port"))
    env = {e["name"]: e for e in c["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "llm-loadtest-api-key"
    if variant == "rocm":
        assert env["NCCL_MIN_NCHANNELS"]["value"] == "112"
        assert "SYS_PTRACE" in c["securityContext"]["capabilities"]["add"]
