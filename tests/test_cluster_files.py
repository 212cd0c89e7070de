"""The cluster files in cluster/ (README: On a cluster): the Ray cluster launcher YAML through Ray's own validator,
the KubeRay RayCluster/RayJob (KubeRay's fields, their pod templates and volumes through Kubernetes' schemas), the
Dockerfile's pip commands against the README's, and the spark-submit templates: Kubernetes' checked flag by flag
(YARN's runs for real on a local master inside the Ray job of tests/test_trainer.py)."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import plan_env

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "cluster"
K8S_VERSION = "1.33.0"
# KubeRay v1.6's ray.io/v1 fields (docs.ray.io "KubeRay CRD API reference"): a misspelt key is ignored by the
# operator, so it is refused here.
RAYCLUSTER_SPEC = {"rayVersion", "authOptions", "enableInTreeAutoscaling", "autoscalerOptions", "headGroupSpec",
                   "workerGroupSpecs", "headServiceAnnotations", "suspend", "managedBy", "gcsFaultToleranceOptions",
                   "upgradeStrategy"}
HEAD_SPEC = {"serviceType", "headService", "enableIngress", "rayStartParams", "template", "resources", "labels"}
WORKER_SPEC = {"groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds", "suspend", "rayStartParams",
               "template", "scaleStrategy", "numOfHosts", "resources", "labels"}
RAYJOB_SPEC = {"entrypoint", "runtimeEnvYAML", "jobId", "metadata", "submissionMode", "shutdownAfterJobFinishes",
               "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "clusterSelector",
               "submitterPodTemplate", "submitterConfig", "entrypointNumCpus", "entrypointNumGpus",
               "entrypointResources", "suspend", "managedBy", "deletionStrategy"}


def _yaml(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def _k8s_validate(resource: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def _pod_templates(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


def test_launcher_yaml_passes_rays_validator():
    import ray
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = _yaml("ray-cluster-aws.yaml")
    cfg = prepare_config(raw)
    validate_config(cfg)  # Ray's JSON schema (ray/autoscaler/ray-schema.json) plus its own checks
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}  # the head takes no tasks
    assert any(t["resources"].get("GPU", 0) > 0 for t in types.values())
    assert cfg["docker"]["image"].endswith(":0.1.0") and "-e RAY_AUTH_MODE=token" in cfg["docker"]["run_options"]
    assert "--dashboard-host=127.0.0.1" in " ".join(cfg["head_start_ray_commands"])  # never public
    assert f"rayproject/ray:{ray.__version__}-py311" in (CLUSTER / "Dockerfile").read_text()


def test_kuberay_cluster_and_job_share_one_spec_with_known_fields():
    import ray

    cluster, job = _yaml("kuberay/raycluster.yaml"), _yaml("kuberay/rayjob.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = cluster["spec"]
    assert job["spec"]["rayClusterSpec"] == spec  # one cluster spec: the job's is the cluster's, verbatim
    assert set(spec) <= RAYCLUSTER_SPEC, set(spec) - RAYCLUSTER_SPEC
    assert set(spec["headGroupSpec"]) <= HEAD_SPEC and all(set(g) <= WORKER_SPEC for g in spec["workerGroupSpecs"])
    assert set(job["spec"]) <= RAYJOB_SPEC, set(job["spec"]) - RAYJOB_SPEC
    assert spec["rayVersion"] == ray.__version__ and spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP" and not head.get("enableIngress")  # the dashboard is not public
    assert head["rayStartParams"] == {"num-cpus": "0", "num-gpus": "0"}
    head_limits = head["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" not in head_limits
    gpu = [g for g in spec["workerGroupSpecs"]
           if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]]
    assert gpu and all(g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] for g in spec["workerGroupSpecs"])
    for k, v in cluster["metadata"].items():
        assert k in ("name", "labels", "namespace", "annotations"), k


def test_kuberay_pod_templates_and_storage_pass_kubernetes_schemas():
    claim = _yaml("kuberay/storage.yaml")
    _k8s_validate(claim)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every Ray pod mounts it
    for i, template in enumerate(_pod_templates(_yaml("kuberay/raycluster.yaml")["spec"])):
        _k8s_validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"t{i}"}, "template": template})
        spec = template["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]
                  if "persistentVolumeClaim" in v}
        mounts = {m["name"]: m["mountPath"] for c in spec["containers"] for m in c["volumeMounts"]}
        assert any(claims.get(n) == claim["metadata"]["name"] and p == "/shared" for n, p in mounts.items())
    with pytest.raises(Exception, match="imagee"):  # the validator does refuse a misspelt field
        _k8s_validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"},
                       "template": {"spec": {"containers": [{"name": "x", "imagee": "y"}]}}})


def test_rayjob_entrypoint_is_a_valid_pipeline_command():
    from interest.cli import build_parser

    argv = shlex.split(_yaml("kuberay/rayjob.yaml")["spec"]["entrypoint"])
    assert argv[:2] == ["interest", "pipeline"]
    args = build_parser("pipeline").parse_args(argv[1:])
    assert args.out.startswith("/shared/") and args.input.startswith("/shared/")
    assert args.hmac_key_file == "/secrets/hmac/key"
    head = _yaml("kuberay/raycluster.yaml")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {m["mountPath"] for m in head["volumeMounts"]} >= {"/shared", "/secrets/hmac"}


def test_dockerfile_pip_commands_are_the_readmes():
    readme = (REPO / "README.md").read_text()
    runs = re.findall(r"^RUN (.*pip install.*)$", (CLUSTER / "Dockerfile").read_text(), flags=re.M)
    assert len(runs) == 3, runs
    for cmd in runs:
        assert cmd in readme, f"Dockerfile's `{cmd}` is not in the README"
    lock_torch = next(l for l in (REPO / "requirements.lock").read_text().splitlines() if l.startswith("torch=="))
    assert lock_torch in runs[0]


def test_k8s_template_passes_the_planners_sizing(tmp_path):
    fake = tmp_path / "spark-submit"
    fake.write_text("#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > \"$ARGS_OUT\"\n")
    fake.chmod(0o755)
    env = {**os.environ, **plan_env("1e9"), "SPARK_SUBMIT": str(fake), "ARGS_OUT": str(tmp_path / "args"),
           "K8S_API": "https://k8s.example:6443", "SPARK_IMAGE": "reg/interest-spark:1", "PYSPARK_PYTHON": sys.executable}
    subprocess.run([str(CLUSTER / "spark" / "submit-k8s.sh"), "--input", "/shared/e", "--format", "taobao",
                    "--output", "/shared/s"], env=env, check=True, cwd=tmp_path)
    args = (tmp_path / "args").read_text().splitlines()
    joined = " ".join(args)
    assert args[args.index("--master") + 1] == "k8s://https://k8s.example:6443"
    assert f"spark.executor.instances={env['SPARK_EXECUTORS']}" in args
    assert f"spark.executor.memory={env['SPARK_EXECUTOR_MEMORY']}" in args
    assert "spark.kubernetes.container.image=reg/interest-spark:1" in args
    assert "spark.kubernetes.executor.volumes.persistentVolumeClaim.shared.mount.path=/shared" in args
    assert f"data.shuffle_partitions={env['SPARK_SHUFFLE_PARTITIONS']}" in args
    assert args[-6:] == ["--input", "/shared/e", "--format", "taobao", "--output", "/shared/s"]  # the user's last
    assert "-XX:+ExitOnOutOfMemoryError" in joined and args[args.index("--py-files") + 1].endswith(".zip")
    missing = {k: v for k, v in env.items() if k != "SPARK_EXECUTORS"}
    proc = subprocess.run([str(CLUSTER / "spark" / "submit-k8s.sh")], env=missing, capture_output=True, text=True)
    assert proc.returncode != 0 and "interest plan --events N --spark-env" in proc.stderr
