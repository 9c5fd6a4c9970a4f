"""`nanokube.Cluster`: a throwaway cluster for tests and scripts, in one `with` statement.

    with Cluster() as c:
        c.apply("deploy.yaml")
        c.wait("deployment", "web", "Available")
        urllib.request.urlopen(c.url("web", 80))

The server runs as a child process (`python -m nanokube server`) with a temporary data dir. Loopback mode
(the default, any user) gives the cluster a whole 127.N.0.0/16 of its own (see `addresses.py`), so clusters of
several processes (pytest-xdist workers, parallel CI jobs) never meet. netns mode (root) runs the server in a
fresh network namespace; the API and Services are reached through relays on the host's 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from nanokube.testing import addresses, netns
from nanokube.testing.ports import free_port

if TYPE_CHECKING:
    import kubernetes.client

Network = Literal["loopback", "netns"]
Manifest = str | Path | dict[str, Any] | list[dict[str, Any]]

_RUNNING: weakref.WeakSet[Cluster] = weakref.WeakSet()


class ClusterError(RuntimeError):
    """The server did not start, or a command against it failed (the message carries its output)."""


def _die_with_parent() -> None:
    """The server gets SIGTERM when the process that started it dies (a killed test run leaks nothing)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Cluster:
    """A `nanokube server` of its own: started by `start()` / `with` / `async with`, stopped (pods, data dir
    and, in netns mode, the network namespace removed) by `stop()` or on leaving the block, also on an
    exception or KeyboardInterrupt.

    network: "loopback" (default; any user: pods are processes on 127.N.x addresses that the test process
    reaches directly) or "netns" (root: pods in network namespaces, kernel Services, all inside a network
    namespace of the cluster's own). `args` are extra `nanokube server` flags. `data_dir` keeps the state
    there (not removed on stop) instead of a temporary directory.
    """

    def __init__(self, *, network: Network = "loopback", args: list[str] | tuple[str, ...] = (),
                 data_dir: str | Path | None = None, ready_timeout: float = 60.0,
                 cluster_domain: str = "cluster.local") -> None:
        if network not in ("loopback", "netns"):
            raise ValueError(f"network must be 'loopback' or 'netns', not {network!r}")
        self.network: Network = network
        self.args = list(args)
        self.ready_timeout = ready_timeout
        self.cluster_domain = cluster_domain
        self._own_dir = data_dir is None
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self._base: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._claim: addresses.OctetClaim | None = None
        self._netns: str | None = None
        self._forwarders: dict[tuple[str, int], netns.Forwarder] = {}
        self._log_file: Any = None
        self.ready_line = ""
        self.data_dir = Path()
        self.log_path = Path()
        self.api_url = ""
        self.dns_address: tuple[str, int] = ("", 0)
        self.node_ip = ""
        self.service_cidr = ""
        self.pod_cidr = ""
        self.lb_pool = ""

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Cluster:
        try:
            self._spawn()
            deadline = time.monotonic() + self.ready_timeout
            while not self._read_ready(deadline):
                await self._output_async(deadline)
        except BaseException:
            self.stop()  # not awaited in a thread: a cancelled task must still leave nothing behind
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def running(self) -> bool:
        """The server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Cluster:
        """Start the server and return once it printed `nanokube ready` (every component is serving)."""
        for attempt in range(3):
            try:
                self._spawn()
                deadline = time.monotonic() + self.ready_timeout
                while not self._read_ready(deadline):
                    self._output(deadline)
                return self
            except ClusterError as exc:
                self.stop()
                # a port picked as free was taken in the meantime: try again with another
                if attempt == 2 or "in use" not in str(exc):
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        if self._proc is not None:
            raise ClusterError("cluster already started")
        self._base = Path(tempfile.mkdtemp(prefix="nanokube-cluster-"))
        self.data_dir = self._given_dir or self._base / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self._base / "server.log"
        self._log_file = open(self.log_path, "ab")
        command = [sys.executable, "-m", "nanokube", "server", "--data-dir", str(self.data_dir),
                   "--cluster-domain", self.cluster_domain]
        if self.network == "loopback":
            self._claim = addresses.claim_loopback_plan()
            plan = self._claim.plan
            self.service_cidr, self.pod_cidr, self.lb_pool = plan.service_cidr, plan.pod_cidr, plan.lb_pool
            self.node_ip = plan.node_ip
            command += [*plan.server_args(), "--proxy-status-port", str(free_port())]
        else:
            if os.geteuid() != 0:
                raise ClusterError("network='netns' needs root (use the default network='loopback')")
            missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
            if missing:
                raise ClusterError(f"network='netns' needs {', '.join(missing)}")
            self._netns = netns.new_netns_name()
            netns.create_netns(self._netns)
            command = ["ip", "netns", "exec", self._netns, *command, "--network", "netns",
                       "--api-listen", f"127.0.0.1:{addresses.API_PORT}"]
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        if self.network == "loopback":
            # the userspace proxy in the server process (the `nanokube server` default is min(2, CPUs) worker
            # processes, for forwarding throughput past one core): a test cluster starts and stops two Python
            # processes sooner and ~50 MiB lighter; the caller's own setting wins
            env.setdefault("NANOKUBE_PROXY_WORKERS", "1")
        # The kernel's parent-death signal follows the *thread* that forked: from any other thread than the main
        # one it would stop the server when that thread ends (asyncio.to_thread, a worker pool); the atexit
        # hook below still stops it with the interpreter.
        on_main_thread = threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen([*command, *self.args], stdout=subprocess.PIPE, stderr=self._log_file,
                                      stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                      preexec_fn=_die_with_parent if on_main_thread else None)
        assert self._proc.stdout is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        self._stdout = b""
        _RUNNING.add(self)

    def _output(self, deadline: float) -> None:
        """Wait until the server writes (or closes) its stdout, or the deadline passes."""
        assert self._proc is not None and self._proc.stdout is not None
        select.select([self._proc.stdout], [], [], max(0.0, min(1.0, deadline - time.monotonic())))

    async def _output_async(self, deadline: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        loop = asyncio.get_running_loop()
        fd = self._proc.stdout.fileno()
        readable: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await asyncio.wait_for(readable, max(0.0, min(1.0, deadline - time.monotonic())))
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)

    def _read_ready(self, deadline: float) -> bool:
        """True once the ready line arrived; raises ClusterError when the server died or the deadline passed."""
        assert self._proc is not None and self._proc.stdout is not None
        with contextlib.suppress(BlockingIOError):
            self._stdout += os.read(self._proc.stdout.fileno(), 65536)
        for line in self._stdout.decode(errors="replace").splitlines():
            if line.startswith("nanokube ready"):
                self._on_ready(line)
                return True
        if self._proc.poll() is not None:
            log = self.server_log(40)
            hint = ""
            if os.geteuid() != 0 and "Permission denied" in log:
                hint = ("\n(a user cannot bind ports below 1024, such as the cluster DNS's port 53: allow it once "
                        "with `sudo sysctl -w net.ipv4.ip_unprivileged_port_start=0`, or run as root)")
            raise ClusterError(f"nanokube server exited with {self._proc.returncode}:\n{log}{hint}")
        if time.monotonic() > deadline:
            raise ClusterError(f"nanokube server not ready in {self.ready_timeout}s:\n{self.server_log(40)}")
        return False

    def _on_ready(self, line: str) -> None:
        self.ready_line = line
        fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
        host, _, port = fields.get("dns", ":0").rpartition(":")
        self.dns_address = (host, int(port))
        self.api_url = fields.get("api", "")
        if self.network == "netns":
            forward = self._forward(("127.0.0.1", addresses.API_PORT))
            self.api_url = f"https://127.0.0.1:{forward.port}"
            inside = self.data_dir / "kubeconfig.yaml"
            text = inside.read_text().replace(f"https://127.0.0.1:{addresses.API_PORT}", self.api_url)
            assert self._base is not None
            (self._base / "kubeconfig.yaml").write_text(text)
            (self._base / "kubeconfig.yaml").chmod(0o600)

    def stop(self) -> int | None:
        """SIGTERM the server (SIGKILL after 15 s), then remove what it left; returns its exit code."""
        code: int | None = None
        _RUNNING.discard(self)
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self._proc.pid, signal.SIGKILL)
                    self._proc.wait(5)
            code = self._proc.returncode
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        for forward in self._forwarders.values():
            forward.close()
        self._forwarders.clear()
        if self._netns is not None:
            netns.delete_netns(self._netns)
            self._netns = None
        if self._claim is not None:
            self._claim.release()
            self._claim = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._base is not None:
            if not self._own_dir and self.log_path.exists():
                shutil.copy(self.log_path, self.data_dir / "server.log")
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None
        return code

    # -- clients -----------------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """Path of a kubeconfig (context `nanokube`) that reaches the API from this process."""
        if self.network == "netns" and self._base is not None:
            return self._base / "kubeconfig.yaml"
        return self.data_dir / "kubeconfig.yaml"

    def api_client(self) -> kubernetes.client.ApiClient:
        """A configured `kubernetes.client.ApiClient` (the official client), e.g. `CoreV1Api(c.api_client())`."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the real `kubectl` against this cluster; raises ClusterError (with its output) on failure when
        `check`."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise ClusterError("kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)")
        proc = subprocess.run([kubectl, *args], input=input, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "KUBECONFIG": str(self.kubeconfig)})
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def apply(self, manifest: Manifest, namespace: str | None = None) -> str:
        """`kubectl apply` a YAML/JSON text, a file or directory path, a dict or a list of dicts; returns
        kubectl's output."""
        ns = ["-n", namespace] if namespace else []
        if isinstance(manifest, Path) or (isinstance(manifest, str) and "\n" not in manifest
                                          and ":" not in manifest and Path(manifest).exists()):
            return self.kubectl("apply", *ns, "-f", str(manifest)).stdout
        if isinstance(manifest, str):
            text = manifest
        else:
            import yaml

            text = yaml.safe_dump_all(manifest if isinstance(manifest, list) else [manifest])
        return self.kubectl("apply", *ns, "-f", "-", input=text).stdout

    def get(self, kind: str, name: str | None = None, namespace: str | None = None) -> dict[str, Any]:
        """The object (or the list, without `name`) as JSON, through kubectl."""
        ns = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", kind, *([name] if name else []), *ns, "-o", "json").stdout)

    def wait(self, kind: str, name: str, condition: str = "Ready", namespace: str | None = None,
             timeout: float = 60) -> None:
        """Wait until the object exists and meets `condition`: a condition type ("Ready", "Available") or
        anything `kubectl wait --for` takes ("condition=Complete", "jsonpath={.status.phase}=Running",
        "delete"). Raises ClusterError after `timeout` seconds."""
        ns = ["-n", namespace] if namespace else []
        target = f"{kind}/{name}"
        wanted = condition if "=" in condition or condition in ("delete", "create") else f"condition={condition}"
        deadline = time.monotonic() + timeout
        if wanted != "delete":
            self.kubectl("wait", *ns, "--for=create", target, f"--timeout={max(1, int(timeout))}s",
                         timeout=timeout + 10)
        left = max(1, int(deadline - time.monotonic()))
        self.kubectl("wait", *ns, f"--for={wanted}", target, f"--timeout={left}s", timeout=left + 10)

    # -- reaching Services and names -----------------------------------------------------------------------
    def url(self, service: str, port: int | str | None = None, scheme: str = "http",
            namespace: str = "default") -> str:
        """A URL (`scheme://ADDR:PORT/`) for port `port` (number or name; optional when the Service has one)
        of a Service, that this process can connect to. Loopback mode: the LoadBalancer address when the
        Service has one, else its ClusterIP (every ClusterIP answers on the host); headless Services give the
        first address their DNS name resolves to; ExternalName the external name. netns mode: a relay on
        127.0.0.1 to the same address inside the cluster's namespace."""
        svc = self.get("service", service, namespace)
        spec = svc.get("spec") or {}
        ports = spec.get("ports") or []
        if spec.get("type") == "ExternalName":
            return f"{scheme}://{spec['externalName']}{'' if port is None else f':{port}'}/"
        chosen = [p for p in ports if port is None or p.get("port") == port or p.get("name") == port]
        if port is None and len(ports) != 1:
            raise ClusterError(f"Service {namespace}/{service} has {len(ports)} ports: say which")
        if not chosen:
            raise ClusterError(f"Service {namespace}/{service} has no port {port!r}")
        number = int(chosen[0]["port"])
        ingress = [i["ip"] for i in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
                   if i.get("ip")]
        if ingress:
            host = ingress[0]
        elif spec.get("clusterIP") not in (None, "", "None"):
            host = spec["clusterIP"]
        else:
            found = self.resolve(f"{service}.{namespace}.svc.{self.cluster_domain}.")
            if not found:
                raise ClusterError(f"headless Service {namespace}/{service} has no ready endpoint")
            host = found[0]
        if self.network == "netns":
            host, number = "127.0.0.1", self._forward((host, number)).port
        return f"{scheme}://{host}:{number}/"

    def _forward(self, target: tuple[str, int]) -> netns.Forwarder:
        assert self._netns is not None
        if target not in self._forwarders:
            self._forwarders[target] = netns.Forwarder(self._netns, target)
        return self._forwarders[target]

    def resolve(self, name: str, rdtype: str = "A", namespace: str = "default") -> list[str]:
        """Ask the cluster DNS, as a pod of `namespace` would (its search list, ndots:5); the answers' values
        ([] when the name does not exist)."""
        import dns.message
        import dns.query
        import dns.rcode
        import dns.rdatatype

        if name.endswith("."):
            candidates = [name]
        else:
            zone = self.cluster_domain
            search = [f"{name}.{namespace}.svc.{zone}.", f"{name}.svc.{zone}.", f"{name}.{zone}."]
            candidates = [f"{name}.", *search] if name.count(".") >= 5 else [*search, f"{name}."]
        wanted = dns.rdatatype.from_text(rdtype)
        host, port = self.dns_address
        for candidate in candidates:
            query = dns.message.make_query(candidate, wanted)
            if self._netns is not None:
                sock = netns.in_netns(self._netns, self._udp_socket)
                with sock:
                    answer = dns.query.udp(query, host, port=port, timeout=5, sock=sock)
            else:
                answer = dns.query.udp(query, host, port=port, timeout=5)
            if answer.rcode() == dns.rcode.NOERROR:
                values = [rr.to_text() for rrset in answer.answer if rrset.rdtype == wanted for rr in rrset]
                if values:
                    return values
        return []

    @staticmethod
    def _udp_socket() -> Any:
        import socket

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        return sock

    # -- what happened -----------------------------------------------------------------------------------
    def logs(self, pod: str, namespace: str | None = None, container: str | None = None,
             tail: int | None = None, previous: bool = False) -> str:
        """`kubectl logs` of a pod (every container unless `container` names one)."""
        argv = ["logs", pod, *(["-n", namespace] if namespace else [])]
        argv += ["-c", container] if container else ["--all-containers", "--prefix"]
        if tail is not None:
            argv.append(f"--tail={tail}")
        if previous:
            argv.append("--previous")
        return self.kubectl(*argv).stdout

    def events(self, namespace: str | None = None) -> str:
        """The cluster's Events as `kubectl get events` prints them, oldest first."""
        scope = ["-n", namespace] if namespace else ["-A"]
        return self.kubectl("get", "events", *scope, "--sort-by=.metadata.creationTimestamp", check=False).stdout

    def server_log(self, lines: int | None = None) -> str:
        """The server's log (stderr); its last `lines` lines when given."""
        if self._log_file is not None:
            self._log_file.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if lines is None else "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<nanokube.Cluster {self.network} {state} api={self.api_url or '-'}>"


@atexit.register
def _stop_forgotten() -> None:
    for cluster in list(_RUNNING):
        with contextlib.suppress(Exception):
            cluster.stop()
