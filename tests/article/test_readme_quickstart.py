"""The README quickstart, followed literally on a clean copy of the working tree.

`bash scripts/setup.sh && nanokube server`, then in another shell `export KUBECONFIG=...`, `kubectl get svc`,
`kubectl apply -f examples/article/`. Differences from a user's run, each for isolation only: setup.sh links
`nanokube` into a temp dir (NANOKUBE_BIN_DIR) instead of /usr/local/bin (so this machine's install is untouched),
the server gets a temp --data-dir and a fixed --api-listen port, and everything runs inside a fresh network
namespace (as root the server picks netns mode and must not touch the host's network).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def readme_commands() -> list[str]:
    """The shell lines of the README's Quickstart code blocks, comments stripped."""
    text = README.read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def clean_copy(dest: Path) -> None:
    """git clone, then the working tree's uncommitted state on top (what a clone would hold once committed)."""
    # no hardlinks: the copy is chowned to another user, which must not change this repository's objects
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(dest)], check=True, timeout=60)
    files = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, timeout=30).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        elif not src.exists() and (dest / rel).exists():
            (dest / rel).unlink()


def test_readme_names_the_commands_this_test_runs():
    commands = readme_commands()
    assert "bash scripts/setup.sh && nanokube server" in commands
    assert "kubectl get svc" in commands
    assert "kubectl apply -f examples/article/" in commands
    assert any(c.startswith("export KUBECONFIG=") for c in commands)


@pytest.mark.timeout(900)  # setup.sh builds a venv and installs into it: a minute or more on a loaded machine
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a fresh netns")
def test_quickstart_on_a_clean_copy(tmp_path):
    repo = tmp_path / "nanokube"
    clean_copy(repo)
    bin_dir = tmp_path / "bin"
    data = tmp_path / "data"
    kubeconfig = data / "kubeconfig.yaml"
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "NANOKUBE_BIN_DIR": str(bin_dir), "NANOKUBE_SKIP_APT": "1"}
    for name in ("KUBECONFIG", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(name, None)
    setup = subprocess.run(["bash", "scripts/setup.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, setup.stderr[-4000:]
    # Then the rest in a fresh network namespace; the server gets a fixed port (the netns is ours) and a temp dir.
    script = textwrap.dedent(f"""\
        set -euo pipefail
        ip link set lo up
        cd {repo}
        nanokube server --data-dir {data} --api-listen 127.0.0.1:16443 > {tmp_path}/server.out 2> {tmp_path}/server.err &
        server=$!
        trap 'kill $server 2>/dev/null; wait $server' EXIT
        for _ in $(seq 300); do grep -q '^nanokube ready' {tmp_path}/server.out && break
          kill -0 $server || {{ cat {tmp_path}/server.err >&2; exit 3; }}; sleep 0.1; done
        grep '^nanokube ready' {tmp_path}/server.out
        export KUBECONFIG={kubeconfig}
        kubectl get svc
        kubectl apply -f examples/article/
        """)
    proc = subprocess.run(["unshare", "--net", "bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    out = proc.stdout
    assert re.search(r"^nanokube ready kubeconfig=\S+ api=https://127\.0\.0\.1:16443 ", out, re.M)
    assert re.search(r"^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE$", out, re.M)
    assert re.search(r"^kubernetes\s+ClusterIP\s+\S+\s+<none>\s+443/TCP\s+\d+s$", out, re.M)
    for created in ("service/mariadb-service created", "deployment.apps/mariadb-deployment created",
                    "service/headless-svc created", "pod/pod-1 created"):
        assert created in out
    assert (bin_dir / "nanokube").resolve() == repo / ".venv" / "bin" / "nanokube"
    installed = subprocess.run([str(repo / ".venv" / "bin" / "python"), "-c", "import nanokube.cli.main as m; print(m.__file__)"],
                               env=env, capture_output=True, text=True, timeout=30).stdout
    assert installed.startswith(str(repo)), installed
