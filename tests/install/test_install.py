"""`pip install .` and `pipx install .` give a working nanokube (issue 11): the `nanokube` command, the package
data it reads at run time (image catalogue, web UI, type stubs), the pytest plugin's entry point, and a cluster
that starts from the installed copy and validates, schedules and runs a pod.

Both install a copy of this tree (a build writes `build/` and `*.egg-info` next to the sources) into a
throwaway environment that borrows the test interpreter's site-packages for the dependencies, so nothing is
downloaded for them; the isolated build still fetches its build backend (setuptools) from the package index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SMOKE = r"""
import json, sys
import nanokube
from nanokube import Cluster
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
       "spec": {"containers": [{"name": "echo", "image": "nanokube/echo"}]}}
bad = '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 99999}]}}'
with Cluster(args=["--dns-upstream", "127.0.0.1:9"], ready_timeout=240) as c:
    refused = c.kubectl("apply", "-f", "-", input=bad, check=False)
    c.apply(pod)
    c.wait("pod", "echo", "Ready", timeout=120)
    print(json.dumps({"module": nanokube.__file__, "ready": c.ready_line, "refused": refused.stderr}))
"""


def clean_env() -> dict[str, str]:
    """The environment without this checkout on PYTHONPATH: the installed copy is what runs."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KUBECONFIG")}
    return env


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("tree")
    shutil.copytree(REPO / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "pyproject.toml", dst)
    return dst


@pytest.fixture(scope="module")
def pip_venv(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps", str(tree)],
                   check=True, timeout=900, env=clean_env(), capture_output=True)
    yield venv
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture(scope="module")
def pipx_app(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the `nanokube` pipx linked, the python of its venv)."""
    pipx = shutil.which("pipx")
    if pipx is None:
        pytest.skip("pipx is not installed (scripts/setup.sh installs it: apt-get install pipx)")
    home = tmp_path_factory.mktemp("pipx")
    env = {**clean_env(), "PIPX_HOME": str(home / "home"), "PIPX_BIN_DIR": str(home / "bin"),
           "PIPX_MAN_DIR": str(home / "man")}
    subprocess.run([pipx, "install", "--python", sys.executable, "--system-site-packages", str(tree)],
                   check=True, timeout=900, env=env, capture_output=True)
    yield home / "bin/nanokube", home / "home/venvs/nanokube/bin/python"
    shutil.rmtree(home, ignore_errors=True)


def check_installed(command: Path, python: Path) -> None:
    env = clean_env()
    assert subprocess.run([str(command), "--help"], capture_output=True, text=True, env=env,
                          timeout=120).stdout.startswith("usage: nanokube")
    where = subprocess.run([str(python), "-c", "import nanokube, os; print(os.path.dirname(nanokube.__file__))"],
                           capture_output=True, text=True, env=env, check=True, timeout=120).stdout.strip()
    installed = Path(where)
    assert installed.is_relative_to(python.parent.parent), installed
    shipped = {p.relative_to(REPO / "src/nanokube") for p in (REPO / "src/nanokube").rglob("*")
               if p.is_file() and p.suffix not in (".py", ".pyc")}
    missing = sorted(str(p) for p in shipped if not (installed / p).is_file())
    assert not missing, f"package data not installed: {missing}"
    plugins = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                              "print(*[ep.value for ep in m.entry_points(group='pytest11')])"],
                             capture_output=True, text=True, env=env, check=True, timeout=120).stdout.split()
    assert "nanokube.testing.pytest_plugin" in plugins
    run = subprocess.run([str(python), "-c", SMOKE], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    result = json.loads(run.stdout.splitlines()[-1])
    assert Path(result["module"]).is_relative_to(installed)
    assert result["ready"].startswith("nanokube ready")
    assert "spec.ports[0].port: Invalid value: 99999" in result["refused"]  # kubectl read the OpenAPI, the API validated


def test_pip_install_into_a_venv(pip_venv: Path) -> None:
    check_installed(pip_venv / "bin/nanokube", pip_venv / "bin/python")


def test_pipx_install(pipx_app: tuple[Path, Path]) -> None:
    check_installed(*pipx_app)
