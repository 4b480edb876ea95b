"""The deployment recipes (issue 11): launcher configs, the KubeRay manifest, the Dockerfile, and
``ray job submit`` against a real ``ray start --head`` with token authentication.

The configs are checked offline, with Ray's own code where Ray has it: the cluster launcher's
``prepare_config`` (defaults, setup-command merge, Docker check, per-type worker bounds) and
``validate_config`` (the launcher's JSON schema), and Ray's ``ray start`` CLI parser for every
start command. For AWS that is everything ``ray up`` checks before it calls boto3: the provider's
``bootstrap_config`` (key pair, security group, IAM role, subnets, AMI) needs AWS credentials and
the network, and is not run here.

No Ray runs in this process: the job test starts its own cluster in subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.scripts.scripts import dashboard as ray_dashboard_cli
from ray.scripts.scripts import start as ray_start_cli

from raysession import AerBackend

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROJECT_DIR = "~/raysession"
RAY_BIN = Path(sys.executable).with_name("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """Replaces conftest's local Ray: this module needs none in its own process."""
    if ray.is_initialized():
        ray.shutdown()
    yield


# ------------------------------------------------------------------ pins


def pins() -> dict[str, str]:
    """deploy/constraints.txt as {name: version}."""
    found = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, pinned = line.split("==")
            found[name] = pinned
    return found


def raysession_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def ray_images(tag_suffix: str) -> str:
    return f"rayproject/ray:{pins()['ray']}-py311-{tag_suffix}"


def test_constraints_pin_the_versions_these_tests_run_with():
    pinned = pins()
    assert {"ray", "qiskit", "qiskit-aer", "qiskit-aer-gpu", "pydantic", "numpy"} <= set(pinned)
    for name, pin in pinned.items():
        if name != "qiskit-aer-gpu":
            assert version(name) == pin, name
    # The GPU build replaces qiskit-aer on GPU nodes: the same Aer, or results would differ.
    assert pinned["qiskit-aer-gpu"] == pinned["qiskit-aer"]
    assert ray.__version__ == pinned["ray"] == "2.60.0"


def pip_installs(commands: list[str]) -> list[list[str]]:
    """The argument lists of the ``pip install`` commands among ``commands``."""
    found = []
    for command in commands:
        words = shlex.split(command)
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install":
                found.append(words[i + 2 :])
    return found


def installs_pinned_raysession(commands: list[str]) -> bool:
    """A ``pip install -c constraints <checkout> raysession==<version>`` is among them."""
    for args in pip_installs(commands):
        constrained = "-c" in args and args[args.index("-c") + 1].endswith("/constraints.txt")
        if constrained and PROJECT_DIR in args and f"raysession=={raysession_version()}" in args:
            return True
    return False


def ray_start_params(command: str) -> dict[str, Any]:
    """Parse the ``ray start`` in a shell command line with Ray's own CLI (unknown flags fail)."""
    for part in command.split(";"):
        words = shlex.split(part)
        if len(words) > 1 and words[0].endswith("ray") and words[1] == "start":
            return ray_start_cli.make_context("ray start", words[2:]).params
    raise AssertionError(f"no ray start in {command!r}")


def launcher_config(path: Path) -> dict[str, Any]:
    config = prepare_config(yaml.safe_load(path.read_text()))
    validate_config(config)
    return config


# ------------------------------------------------------------------ cluster.yaml (AWS)

# What AWS sells under these names: vCPUs and NVIDIA GPUs.
INSTANCE_TYPES = {"m5.xlarge": (4, 0), "m5.2xlarge": (8, 0), "g4dn.xlarge": (4, 1)}


def test_aws_cluster_yaml_is_a_valid_launcher_config_with_head_cpu_and_gpu_node_types():
    config = launcher_config(REPO / "cluster.yaml")
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    head = config["head_node_type"]
    workers = {name: spec for name, spec in types.items() if name != head}

    # Declared resources match the instance types; the head takes no CPU work.
    for spec in types.values():
        cpus, gpus = INSTANCE_TYPES[spec["node_config"]["InstanceType"]]
        assert spec["resources"].get("GPU", 0) == gpus
        assert spec["resources"]["CPU"] in ({0, cpus} if spec is types[head] else {cpus})
    assert types[head]["resources"]["CPU"] == 0

    # One CPU worker type that starts with the cluster, one GPU type the autoscaler adds.
    cpu = [name for name, spec in workers.items() if "GPU" not in spec["resources"]]
    gpu = [name for name, spec in workers.items() if spec["resources"].get("GPU", 0) >= 1]
    assert len(cpu) == 1 and len(gpu) == 1, workers
    assert workers[cpu[0]]["min_workers"] >= 1
    assert workers[gpu[0]]["min_workers"] == 0 < workers[gpu[0]]["max_workers"]

    # A GPU backend's worker fits the GPU type and no other worker type.
    shape = AerBackend(device="GPU", num_gpus_per_worker=1).shape
    for name, spec in workers.items():
        fits = (
            spec["resources"].get("CPU", 0) >= shape.num_cpus
            and spec["resources"].get("GPU", 0) >= shape.num_gpus
        )
        assert fits == (name == gpu[0]), name


def test_aws_cluster_yaml_installs_pinned_raysession_and_aer_gpu_on_gpu_nodes():
    config = launcher_config(REPO / "cluster.yaml")
    types = config["available_node_types"]
    gpu = next(spec for spec in types.values() if spec["resources"].get("GPU"))

    # Ray's image of the pinned Ray everywhere; its CUDA build on GPU nodes.
    assert config["docker"]["image"] == ray_images("cpu")
    assert gpu["docker"]["worker_image"] == ray_images("gpu")
    assert all(
        spec.get("docker", {}).get("worker_image", config["docker"]["image"]) == ray_images("cpu")
        for spec in types.values()
        if spec is not gpu
    )

    # The checkout reaches every node; every node installs it at the pinned version.
    assert config["file_mounts"][PROJECT_DIR] == "."
    assert installs_pinned_raysession(config["head_setup_commands"])
    assert installs_pinned_raysession(config["worker_setup_commands"])
    # The GPU type's own list replaces the global one: raysession, then Aer's GPU build.
    commands = gpu["worker_setup_commands"]
    assert installs_pinned_raysession(commands)
    # Both Aer builds are removed (so a rerun starts clean), then the GPU one is installed last.
    uninstall = [i for i, c in enumerate(commands) if "pip uninstall -y" in c]
    assert uninstall and {"qiskit-aer", "qiskit-aer-gpu"} <= set(commands[uninstall[-1]].split())
    assert uninstall[-1] == len(commands) - 2
    assert pip_installs(commands[-1:]) == [
        ["-c", f"{PROJECT_DIR}/deploy/constraints.txt", "qiskit-aer-gpu"]
    ]


def test_aws_cluster_yaml_turns_token_auth_on_with_one_token_and_serves_the_dashboard():
    config = launcher_config(REPO / "cluster.yaml")
    # Every process in every node's container runs with token authentication on...
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    # Jobs wait for a GPU node as long as one takes to start, not raysession's default minute.
    assert "--env RAYSESSION_PLACEMENT_TIMEOUT_S=900" in config["docker"]["run_options"]
    assert not any(
        "worker_run_options" in spec.get("docker", {})
        for spec in config["available_node_types"].values()
    )
    # ...and the head and every worker read the one token this machine generated.
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"

    head = ray_start_params(config["head_start_ray_commands"][-1])
    worker = ray_start_params(config["worker_start_ray_commands"][-1])
    assert head["head"] and worker["address"] == f"$RAY_HEAD_IP:{head['port']}"
    assert head["autoscaling_config"] == "~/ray_bootstrap_config.yaml"
    # `ray dashboard cluster.yaml` forwards its default remote port to the head's localhost.
    remote_port = next(p.default for p in ray_dashboard_cli.params if p.name == "remote_port")
    assert head["dashboard_port"] == remote_port
    assert head["include_dashboard"] is not False and head["dashboard_host"] == "127.0.0.1"


# ------------------------------------------------------------------ deploy/local-cluster.yaml


def test_local_cluster_yaml_is_a_valid_launcher_config_that_installs_raysession_with_token_auth():
    config = launcher_config(DEPLOY / "local-cluster.yaml")
    assert config["provider"]["type"] == "local"

    # Every mounted path exists in a checkout, and together they make an installable project.
    mounts = config["file_mounts"]
    project = {
        remote: REPO / local for remote, local in mounts.items() if remote != "~/.ray/auth_token"
    }
    assert all(path.exists() for path in project.values()), mounts
    pyproject = project[f"{PROJECT_DIR}/pyproject.toml"].read_text()
    assert re.search(r'^name = "raysession"$', pyproject, re.MULTILINE)
    readme = re.search(r'^readme = "(.+)"$', pyproject, re.MULTILINE)
    assert readme and project[f"{PROJECT_DIR}/{readme.group(1)}"].is_file()
    assert (project[f"{PROJECT_DIR}/raysession"] / "__init__.py").is_file()
    assert project[f"{PROJECT_DIR}/deploy/constraints.txt"] == DEPLOY / "constraints.txt"

    # Setup commands run on head and workers alike and install the mounted project, pinned.
    assert installs_pinned_raysession(config["head_setup_commands"])
    assert installs_pinned_raysession(config["worker_setup_commands"])

    # Token authentication: one token, copied to every node, and every ray start in token mode.
    assert mounts["~/.ray/auth_token"] == "~/.ray/auth_token"
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        assert commands[-1].startswith("export RAY_AUTH_MODE=token;"), commands
    head = ray_start_params(config["head_start_ray_commands"][-1])
    worker = ray_start_params(config["worker_start_ray_commands"][-1])
    assert head["head"] and worker["address"] == f"$RAY_HEAD_IP:{head['port']}"
    remote_port = next(p.default for p in ray_dashboard_cli.params if p.name == "remote_port")
    assert head["dashboard_port"] == remote_port


# ------------------------------------------------------------------ KubeRay


def test_kuberay_manifest_is_a_raycluster_of_pinned_images_with_token_auth():
    manifest = yaml.safe_load((DEPLOY / "raycluster.yaml").read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayCluster"
    spec = manifest["spec"]
    assert spec["rayVersion"] == pins()["ray"]

    head = spec["headGroupSpec"]
    groups = {group["groupName"]: group for group in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert groups["gpu"]["minReplicas"] == 0 < groups["gpu"]["maxReplicas"]

    tag = f"raysession:{raysession_version()}-ray{pins()['ray']}-py311"
    shared_env = spec["autoscalerOptions"]["env"]
    for pod, image in [(head, tag), (groups["cpu"], tag), (groups["gpu"], f"{tag}-gpu")]:
        (container,) = pod["template"]["spec"]["containers"]
        assert container["image"] == image
        # Requests equal limits, and only the GPU group asks for a GPU.
        resources = container["resources"]
        assert resources["requests"] == resources["limits"]
        assert {"cpu", "memory"} <= set(resources["limits"])
        assert ("nvidia.com/gpu" in resources["limits"]) == (pod is groups["gpu"])
        assert container["env"] == shared_env
    # The same Secret's token in every Ray container and the autoscaler, token mode on.
    env = {item["name"]: item for item in shared_env}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "auth_token"
    assert float(env["RAYSESSION_PLACEMENT_TIMEOUT_S"]["value"]) >= 600
    (gpu_container,) = groups["gpu"]["template"]["spec"]["containers"]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == 1


# ------------------------------------------------------------------ Dockerfile


def test_dockerfile_pins_ray_raysession_and_the_constraints():
    text = (DEPLOY / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    assert args["RAY_IMAGE"] == ray_images("cpu")
    assert args["RAYSESSION_VERSION"] == raysession_version()
    assert re.search(r"^FROM \$\{RAY_IMAGE\}$", text, re.MULTILINE)
    assert "COPY --chown=ray:users deploy/constraints.txt" in text
    install = re.search(r"pip install --no-cache-dir -c deploy/constraints.txt \. (\S+)", text)
    assert install and install.group(1) == '"raysession==${RAYSESSION_VERSION}"'
    assert f"ray.__version__ == '{pins()['ray']}'" in text
    # The build commands in its header make the tags the KubeRay manifest runs.
    manifest = (DEPLOY / "raycluster.yaml").read_text()
    for tag in re.findall(r"-t (raysession:\S+)", text):
        assert f"image: {tag}\n" in manifest, tag
    assert f"RAY_IMAGE={ray_images('gpu')}" in text
    # Only what the image needs leaves the build context.
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignored[ignored.index("*") :][:5] == [
        "*",
        "!pyproject.toml",
        "!README.md",
        "!raysession",
        "!deploy/constraints.txt",
    ]


# ------------------------------------------------------------------ ray job submit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers_http(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # up, and refusing us without a token
    except OSError:
        return False
    return True


def run_ray(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RAY_BIN), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def token_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A ``ray start --head`` of 2 CPUs with token authentication on, and a client env with
    its token; stopped after the test.

    Ports and the temp dir are this cluster's own, so it never meets another Ray on the
    machine. It is stopped by SIGTERM to its ``ray start --block`` (which stops that node's
    processes), not ``ray stop``, which stops every Ray process on the machine.
    """
    temp = Path(tempfile.mkdtemp(prefix="rsdeploy", dir="/tmp"))
    token_file = temp / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    # As in an activated virtualenv: the job's `python` is the one with Ray and raysession.
    env["PATH"] = f"{RAY_BIN.parent}{os.pathsep}{env.get('PATH', '')}"
    dashboard_port = free_port()
    ports = {
        "--port": free_port(),
        "--dashboard-port": dashboard_port,
        "--ray-client-server-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--metrics-export-port": free_port(),
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
    }
    command = [
        str(RAY_BIN), "start", "--head", "--block", "--num-cpus=2", "--disable-usage-stats",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--temp-dir={temp / 'ray'}",
        f"--object-store-memory={256 * 1024**2}",
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]  # fmt: skip
    log = (temp / "ray-start.log").open("w")
    # No drain wait on SIGTERM (it lets Serve proxies quiesce; there are none here).
    head_env = {**env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    head = subprocess.Popen(
        command,
        env=head_env,
        cwd=temp,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        deadline = time.monotonic() + 90
        while not answers_http(f"{address}/api/version"):
            assert head.poll() is None, (temp / "ray-start.log").read_text()
            assert time.monotonic() < deadline, (temp / "ray-start.log").read_text()
            time.sleep(0.2)
        yield address, env
    finally:
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                head.kill()
                head.wait()
        # Anything of that node still alive is in the session it started in: ours.
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_runs_a_raysession_sweep_on_a_ray_start_cluster_with_token_auth(
    token_cluster,
):
    address, env = token_cluster
    job_id = f"raysession-deploy-{secrets.token_hex(4)}"
    # The README's command: the examples as working_dir, this checkout's raysession as a module.
    runtime_env = json.dumps({"py_modules": ["raysession"]})
    submitted = run_ray(
        env, "job", "submit", "--address", address, "--submission-id", job_id,
        "--working-dir", "examples", "--runtime-env-json", runtime_env,
        "--", "python", "parameter_sweep.py", "--qubits", "3", "--points", "12", "--tasks", "2",
    )  # fmt: skip
    out = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, out
    assert re.search(r"session [0-9a-f]{32}: 2 jobs from 2 Ray tasks, [12] Aer workers", out), out
    assert "swept 12 parameter sets of efficient_su2(3, reps=2)" in out, out
    assert f"Job '{job_id}' succeeded" in out, out

    status = run_ray(env, "job", "status", "--address", address, job_id)
    assert status.returncode == 0 and "succeeded" in status.stdout + status.stderr, status

    # Token authentication is on: the same request with another token is refused.
    wrong = {**env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    refused = run_ray(wrong, "job", "status", "--address", address, job_id)
    assert refused.returncode != 0
    assert re.search(r"(?i)authenticat|unauthori[sz]ed|forbidden", refused.stdout + refused.stderr)
