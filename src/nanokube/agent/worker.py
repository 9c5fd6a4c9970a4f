"""One pod on this node, driven by one serialized worker: sandbox, volumes, init containers, containers,
restarts with back-off, probes, hooks, status, graceful termination and the pod object's removal.

The worker is level-triggered: anything that happens (a pod update, a process exit, a probe flip, a
back-off timer) only wakes it, and ``sync`` works out what to do from the current state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanokube.agent import process
from nanokube.agent.backoff import Backoff, go_duration
from nanokube.agent.envvars import ContainerConfigError, build_env, expand_command, service_env
from nanokube.agent.etcfiles import pod_hostname
from nanokube.agent.ipam import PoolExhausted
from nanokube.agent.logs import ContainerLog
from nanokube.agent.netns import NetworkError
from nanokube.agent.nodecontext import NodeRuntime
from nanokube.agent.probes import Prober, Target, run_action
from nanokube.agent.sandbox import Sandbox, SandboxRecord
from nanokube.agent.status import condition, pod_phase, unready_message
from nanokube.agent.volumes import VolumeNotReady, VolumeSources, prepare_volume, subpath
from nanokube.images.catalogue import ImageNotFound

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIN_GRACE = 2.0
NETWORK_LINGER = 1.0  # seconds a deleted pod's network namespace outlives its API object (netns mode)
PRIVATE_TMPFS = ("/tmp", "/run")


def _under_private_tmpfs(path: str) -> bool:
    real = os.path.realpath(path)
    return any(real == t or real.startswith(t + "/") for t in PRIVATE_TMPFS)


def runtime_mounts() -> list[tuple[str, str, bool]]:
    """The interpreter and the nanokube package stay visible when they live under a path the pod's private
    tmpfs hides (e.g. a checkout in /tmp): they are bound back, read-only, at the same place."""
    import nanokube

    wanted = {os.path.dirname(os.path.dirname(os.path.realpath(nanokube.__file__))),
              os.path.realpath(sys.prefix), os.path.realpath(sys.exec_prefix)}
    return [(p, p, True) for p in sorted(wanted) if _under_private_tmpfs(p)]


def rfc3339(epoch: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if epoch is None else epoch))


@dataclass
class ContainerRun:
    spec: Obj
    init: bool
    log: ContainerLog
    backoff: Backoff
    runs: int = 0  # processes started so far (restartCount = runs - 1 once one ran)
    restart_count: int = 0
    proc: process.ContainerProcess | None = None
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    last_exit: process.ExitStatus | None = None
    finished_mono: float = 0.0
    started: bool = False
    ready: bool = False
    succeeded: bool = False  # init container finished with 0
    probers: list[asyncio.Task] = field(default_factory=list)
    kill_reason: str | None = None
    killing: bool = False
    image_id: str = ""
    container_id: str = ""

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.running

    @property
    def sidecar(self) -> bool:
        return self.init and self.spec.get("restartPolicy") == "Always"

    def stop_probers(self) -> None:
        for task in self.probers:
            task.cancel()
        self.probers.clear()


class PodWorker:
    def __init__(self, rt: NodeRuntime, pod: Obj) -> None:
        self.rt = rt
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta.get("namespace", "default")
        self.name: str = meta["name"]
        self.dir: Path = rt.pods_dir / self.uid
        self.sandbox: Sandbox | None = None
        self.etc: dict[str, Path] = {}
        self.volume_paths: dict[str, Path] = {}
        self.volumes_dirty = True
        self.volume_error: str | None = None
        self.sandbox_error: str | None = None
        self.gone = False
        self.terminal = False
        self.finished = asyncio.Event()
        self.start_time = rfc3339()
        self._cond_since: dict[str, tuple[bool, str]] = {}
        self._last_status: Obj | None = None
        self._wake = asyncio.Event()
        self._deadline: float | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._watchers: set[asyncio.Task] = set()
        self.containers: dict[str, ContainerRun] = {}
        spec = pod.get("spec") or {}
        for init, key in ((True, "initContainers"), (False, "containers")):
            for c in spec.get(key) or []:
                clog = ContainerLog(self.dir / "logs" / c["name"])
                rt.logs[(self.namespace, self.name, c["name"])] = clog
                self.containers[c["name"]] = ContainerRun(c, init, clog, Backoff(base=rt.settings.backoff_base))

    # -- driving -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._wake.set()
        self._task = asyncio.ensure_future(self._run())

    def update(self, pod: Obj) -> None:
        old_meta, new_meta = self.pod.get("metadata") or {}, pod.get("metadata") or {}
        if any(old_meta.get(k) != new_meta.get(k) for k in ("labels", "annotations")):
            self.volumes_dirty = True  # downwardAPI files show them, as kubelet keeps them current
        self.pod = pod
        self.wake()

    def removed(self) -> None:
        self.gone = True
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def wake_in(self, delay: float) -> None:
        at = time.monotonic() + delay
        if self._deadline is None or at < self._deadline:
            self._deadline = at

    @property
    def init_specs(self) -> list[ContainerRun]:
        return [c for c in self.containers.values() if c.init]

    @property
    def main_specs(self) -> list[ContainerRun]:
        return [c for c in self.containers.values() if not c.init]

    async def _run(self) -> None:
        while not self.finished.is_set():
            timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._deadline is not None and self._deadline <= time.monotonic():
                self._deadline = None
            try:
                async with self._lock:
                    await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod %s/%s: sync failed", self.namespace, self.name)
                self.wake_in(1.0)

    # -- sync ------------------------------------------------------------------------------------------------
    async def sync(self) -> None:
        if self.finished.is_set():
            return
        if self.gone or self.pod["metadata"].get("deletionTimestamp"):
            await self.terminate()
            return
        if self.terminal:
            return
        if self.sandbox is None:
            try:
                await self.setup_sandbox()
                self.sandbox_error = None
            except (NetworkError, PoolExhausted, OSError) as err:
                self.sandbox_error = str(err)
                log.warning("pod %s/%s: sandbox: %s", self.namespace, self.name, err)
                self.wake_in(2.0)
                await self.report()
                return
        if self.volumes_dirty:
            try:
                await self.prepare_volumes()
                self.volume_error = None
                self.volumes_dirty = False
            except (VolumeNotReady, ContainerConfigError, OSError) as err:
                self.volume_error = str(err)
                self.wake_in(1.0)
                await self.report()
                return
        init_state = await self.sync_init()
        if init_state == "done":
            await self.sync_main()
        phase = self.phase()
        if phase in ("Succeeded", "Failed"):
            self.terminal = True
            for c in self.containers.values():
                if c.running:
                    await c.proc.stop(MIN_GRACE)  # type: ignore[union-attr]
            await self.teardown_sandbox()
        await self.report()

    async def setup_sandbox(self) -> None:
        rt = self.rt
        spec = self.pod.get("spec") or {}
        # a fresh start: logs of an earlier agent run of this pod are not this run's history
        for c in self.containers.values():
            if c.runs == 0 and c.log.directory.exists():
                for old in c.log.directory.glob("*.log"):
                    old.unlink()
        host_network = bool(spec.get("hostNetwork"))
        ip = rt.settings.node_ip if host_network else rt.ipam.allocate(self.uid)  # type: ignore[union-attr]
        sandbox = Sandbox(self.dir, SandboxRecord(self.uid, self.namespace, self.name, ip=ip))
        sandbox.save()
        try:
            if rt.netns_mode and not host_network:
                await sandbox.create_network(rt.pod_cidr)
            self.etc = sandbox.write_etc(self.pod, rt.settings.cluster_dns, rt.settings.cluster_domain)
        except BaseException:
            await sandbox.teardown()
            if not host_network:
                rt.ipam.release(ip)  # type: ignore[union-attr]
            raise
        self.sandbox = sandbox
        rt.sandboxes[self.uid] = sandbox

    async def prepare_volumes(self) -> None:
        assert self.sandbox is not None
        rt = self.rt
        src = VolumeSources(rt.get_secret, rt.get_configmap, rt.get_pvc, rt.get_pv, pod_ip=self.sandbox.ip,
                            host_ip=rt.settings.node_ip, node_allocatable=rt.allocatable)
        paths = {}
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            paths[volume["name"]] = await prepare_volume(self.pod, volume, self.dir, src)
        self.volume_paths = paths

    def refresh_volumes(self) -> None:
        """A Secret/ConfigMap this pod uses changed: rewrite its volumes."""
        self.volumes_dirty = True
        self.wake()

    def has_config_error(self) -> bool:
        return bool(self.volume_error) or any(
            (c.state.get("waiting") or {}).get("reason") == "CreateContainerConfigError"
            for c in self.containers.values())

    def uses(self, kind: str, name: str) -> bool:
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            if kind == "secret" and (volume.get("secret") or {}).get("secretName") == name:
                return True
            if kind == "configmap" and (volume.get("configMap") or {}).get("name") == name:
                return True
            for source in (volume.get("projected") or {}).get("sources") or []:
                if kind == "secret" and (source.get("secret") or {}).get("name") == name:
                    return True
                if kind == "configmap" and (source.get("configMap") or {}).get("name") == name:
                    return True
        return False

    async def sync_init(self) -> str:
        """'done' when every init container has succeeded (sidecars: started), else 'waiting' or 'failed'."""
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        for c in self.init_specs:
            if c.sidecar:
                if c.running and c.started:
                    continue
                await self.ensure_running(c, "Always")
                return "waiting"
            if c.succeeded:
                continue
            if c.running:
                return "waiting"
            if c.last_exit is not None and c.last_exit.code == 0 and c.proc is not None:
                c.succeeded = True
                continue
            await self.ensure_running(c, "Never" if policy == "Never" else "OnFailure")
            return "failed" if self._init_failed_for_good() else "waiting"
        return "done"

    async def sync_main(self) -> None:
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        for c in self.main_specs:
            await self.ensure_running(c, policy)

    async def ensure_running(self, c: ContainerRun, policy: str) -> None:
        if c.running:
            if c.kill_reason and not c.killing:
                c.killing = True
                grace = self._grace(c)
                task = asyncio.ensure_future(c.proc.stop(grace))  # type: ignore[union-attr]
                self._watchers.add(task)
                task.add_done_callback(self._watchers.discard)
            return
        if c.last_exit is None:  # never ran (or could not be configured yet)
            await self.start_container(c)
            return
        code = c.last_exit.code
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            return
        now = time.monotonic()
        remaining = c.backoff.remaining(c.finished_mono, now)
        if remaining > 0:
            if "terminated" in c.state:
                c.last_state = {"terminated": c.state["terminated"]}
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                f"back-off {go_duration(c.backoff.delay)} restarting failed container={c.name} "
                f"pod={self.name}_{self.namespace}({self.uid})")}}
            self.wake_in(remaining)
            return
        await self.start_container(c)

    def _init_failed_for_good(self) -> bool:
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        if policy != "Never":
            return False
        return any(c.init and not c.sidecar and c.last_exit is not None and c.last_exit.code != 0 and not c.running
                   for c in self.containers.values())

    # -- starting a container ---------------------------------------------------------------------------
    def _pod_values(self) -> dict[str, str]:
        assert self.sandbox is not None
        return {"pod_name": self.name, "pod_namespace": self.namespace, "pod_ip": self.sandbox.ip}

    async def _container_env(self, c: ContainerRun) -> dict[str, str]:
        rt = self.rt
        assert self.sandbox is not None
        if not rt.services_synced():
            raise ContainerConfigError("services have not yet been read at least once, cannot construct envvars")
        spec = self.pod.get("spec") or {}
        links = spec.get("enableServiceLinks", True) is not False
        svc_env = service_env(rt.services(), self.namespace, links)
        return await build_env(self.pod, c.spec, services_env=svc_env, get_secret=rt.get_secret,
                               get_configmap=rt.get_configmap, pod_ip=self.sandbox.ip,
                               host_ip=rt.settings.node_ip, node_allocatable=rt.allocatable)

    def _mounts(self, c: ContainerRun) -> list[tuple[str, str, bool]]:
        out = []
        for vm in c.spec.get("volumeMounts") or []:
            base = self.volume_paths.get(vm.get("name", ""))
            if base is None:
                raise ContainerConfigError(f'cannot find volume "{vm.get("name")}" to mount into container '
                                           f'"{c.name}"')
            source = subpath(base, vm.get("subPath") or "")
            out.append((str(source), vm["mountPath"], bool(vm.get("readOnly"))))
        return out

    async def start_container(self, c: ContainerRun) -> None:
        rt = self.rt
        sandbox = self.sandbox
        assert sandbox is not None
        spec = c.spec
        try:
            declared = await self._container_env(c)
            command = expand_command(list(spec.get("command") or []), declared)
            args = expand_command(list(spec.get("args") or []), declared)
            image = spec.get("image") or ""
            resolved = rt.catalogue.command_for(image, command, args, self._pod_values())
            mounts = self._mounts(c)
        except ImageNotFound as err:
            c.state = {"waiting": {"reason": "ImageNotFound", "message": str(err)}}
            self.wake_in(5.0)
            return
        except ContainerConfigError as err:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)}}
            self.wake_in(2.0)
            return
        entry = rt.catalogue.lookup(image)
        c.image_id = f"nanokube-catalogue://{entry.name}" if entry else f"host://{resolved.argv[0]}"
        hostname, _fqdn = pod_hostname(self.pod, rt.settings.cluster_domain)
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname,
               "HOME": "/root" if os.geteuid() == 0 else os.environ.get("HOME", "/")}
        env.update(resolved.env)
        env.update(declared)
        cwd = spec.get("workingDir") or resolved.working_dir or "/"
        host_network = bool((self.pod.get("spec") or {}).get("hostNetwork"))
        if rt.netns_mode:
            for source, target, _ro in mounts:
                self._ensure_mount_point(target, source)
            isolation = process.Isolation(
                enabled=True, netns=None if host_network else sandbox.netns_path,
                hostname=None if host_network else hostname,
                files=[(str(path), target) for target, path in self.etc.items()] if not host_network else [],
                mounts=mounts + runtime_mounts(), tmpfs=list(PRIVATE_TMPFS))
        else:
            isolation = process.Isolation(enabled=False)
            env.setdefault("POD_IP", sandbox.ip)
            env.update({"NANOKUBE_NETWORK": "loopback", "NANOKUBE_BIND": sandbox.ip,
                        "NANOKUBE_DNS": rt.settings.cluster_dns, "NANOKUBE_POD_DIR": str(self.dir),
                        "NANOKUBE_MOUNTS": json.dumps({target: source for source, target, _ in mounts})})
        if c.runs > 0:
            c.restart_count += 1
            c.backoff.restarted(time.monotonic())
            c.last_state = {"terminated": c.state.get("terminated") or self._terminated_state(c)}
        c.runs += 1
        c.started = False
        c.ready = False
        c.kill_reason = None
        c.killing = False
        try:
            proc = await process.start(resolved.argv, env=env, cwd=cwd, isolation=isolation, log=c.log,
                                       restart=c.restart_count, on_spawn=sandbox.add_pid)
        except process.StartError as err:
            now = time.time()
            c.last_exit = process.ExitStatus(128, None, now, now)
            c.finished_mono = time.monotonic()
            c.proc = None
            c.state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": str(err),
                                      "startedAt": rfc3339(0), "finishedAt": rfc3339(now), "containerID": ""}}
            self.wake()
            return
        c.proc = proc
        c.last_exit = None
        c.container_id = f"nanokube://{self.uid[:8]}-{c.name}-{c.restart_count}-{proc.pid}"
        watcher = asyncio.ensure_future(self._watch_exit(c, proc))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        post_start = (spec.get("lifecycle") or {}).get("postStart")
        if post_start:
            ok, message = await run_action(post_start, self._target(c), float(self._grace(c)))
            if not ok and proc.running:
                log.info("pod %s/%s container %s: postStart hook failed: %s", self.namespace, self.name, c.name,
                         message)
                c.kill_reason = "FailedPostStartHook"
                await proc.stop(self._grace(c))
                return
        c.state = {"running": {"startedAt": rfc3339(proc.started_at)}}
        self._start_probers(c)

    def _ensure_mount_point(self, target: str, source: str) -> None:
        is_dir = os.path.isdir(source)
        real = os.path.realpath(target)
        if any(real == t or real.startswith(t + "/") for t in PRIVATE_TMPFS):
            return  # made inside the container's own tmpfs by the launcher
        assert self.sandbox is not None
        self.sandbox.ensure_mount_point(real, is_dir)

    def _terminated_state(self, c: ContainerRun) -> Obj:
        exit_status = c.last_exit
        if exit_status is None:
            return {}
        reason = "Completed" if exit_status.code == 0 else ("OOMKilled" if exit_status.oom_killed else "Error")
        return {"exitCode": exit_status.code, "reason": reason, "startedAt": rfc3339(exit_status.started_at),
                "finishedAt": rfc3339(exit_status.finished_at), "containerID": c.container_id}

    async def _watch_exit(self, c: ContainerRun, proc: process.ContainerProcess) -> None:
        await proc.exited.wait()
        if c.proc is not proc:
            return
        c.stop_probers()
        c.last_exit = proc.exit
        c.finished_mono = time.monotonic()
        c.ready = False
        c.started = False
        c.state = {"terminated": self._terminated_state(c)}
        if self.sandbox is not None:
            self.sandbox.drop_pid(proc.pid)
        self.wake()

    # -- probes ------------------------------------------------------------------------------------------
    def _target(self, c: ContainerRun) -> Target:
        assert self.sandbox is not None
        ports = {p["name"]: int(p["containerPort"]) for p in c.spec.get("ports") or [] if p.get("name")}
        proc = c.proc

        async def run_exec(argv: list[str], timeout: float) -> tuple[int, str]:
            if proc is None:
                return 126, "container is not running"
            return await proc.run_inside(argv, timeout)

        return Target(self.sandbox.ip, ports, run_exec)

    def _start_probers(self, c: ContainerRun) -> None:
        startup = c.spec.get("startupProbe")
        if startup:
            self._add_prober(c, "startup", startup)
        else:
            self._started(c)

    def _started(self, c: ContainerRun) -> None:
        c.started = True
        if c.spec.get("readinessProbe"):
            self._add_prober(c, "readiness", c.spec["readinessProbe"])
        else:
            c.ready = True
        if c.spec.get("livenessProbe"):
            self._add_prober(c, "liveness", c.spec["livenessProbe"])
        self.wake()

    def _add_prober(self, c: ContainerRun, kind: str, probe: Obj) -> None:
        proc = c.proc

        def changed(kind: str, ok: bool, message: str) -> None:
            if c.proc is not proc or not c.running:
                return
            if kind == "startup":
                if ok:
                    self._started(c)
                else:
                    c.kill_reason = "StartupProbeFailed"
                    log.info("pod %s/%s container %s: startup probe failed: %s", self.namespace, self.name,
                             c.name, message)
            elif kind == "readiness":
                c.ready = ok
            elif kind == "liveness" and not ok:
                log.info("pod %s/%s container %s: liveness probe failed: %s", self.namespace, self.name, c.name,
                         message)
                c.kill_reason = "LivenessProbeFailed"
            self.wake()

        prober = Prober(kind, probe, self._target(c), changed)
        c.probers.append(asyncio.ensure_future(prober.run()))

    def _grace(self, c: ContainerRun | None = None) -> float:
        meta = self.pod["metadata"]
        spec = self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None and c is not None and c.kill_reason in ("LivenessProbeFailed", "StartupProbeFailed"):
            probe = c.spec.get("livenessProbe" if c.kill_reason == "LivenessProbeFailed" else "startupProbe") or {}
            grace = probe.get("terminationGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return max(float(grace), MIN_GRACE)

    # -- stopping ----------------------------------------------------------------------------------------
    async def stop_containers(self, grace: float, *, hooks: bool = True) -> None:
        async def stop_one(c: ContainerRun) -> None:
            c.stop_probers()
            proc = c.proc
            if proc is None or not proc.running:
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            pre_stop = (c.spec.get("lifecycle") or {}).get("preStop")
            if hooks and pre_stop:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run_action(pre_stop, self._target(c), grace), grace)
            await proc.stop(max(deadline - loop.time(), min(MIN_GRACE, grace)))

        await asyncio.gather(*(stop_one(c) for c in self.containers.values()))
        for task in list(self._watchers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 2.0)

    async def teardown_sandbox(self) -> None:
        sandbox = self.sandbox
        if sandbox is None:
            return
        others = [s for uid, s in self.rt.sandboxes.items() if uid != self.uid]
        await sandbox.teardown(others=others)
        if not (self.pod.get("spec") or {}).get("hostNetwork"):
            self.rt.ipam.release(sandbox.ip)  # type: ignore[union-attr]
        self.rt.sandboxes.pop(self.uid, None)

    async def terminate(self) -> None:
        """Graceful delete: preStop, SIGTERM, SIGKILL after the grace period, final status, remove the object."""
        await self.stop_containers(self._grace())
        if self.sandbox is not None:
            await self.sandbox.kill_processes()  # like a container's cgroup: nothing outlives the pod object
        for c in self.containers.values():
            if c.proc is not None and c.last_exit is None and c.proc.exit is not None:
                c.last_exit = c.proc.exit
            if c.last_exit is not None or c.proc is not None:
                c.state = {"terminated": self._terminated_state(c)} if c.last_exit else c.state
        ip = self.sandbox.ip if self.sandbox else ""
        if not self.gone:
            with contextlib.suppress(Exception):
                await self.report(final=True, ip=ip)
            with contextlib.suppress(Exception):
                await self.rt.remove_pod(self.pod)
        if self.sandbox is not None and self.sandbox.record.netns:
            # The proxy drops the endpoint a little after the API does. Until the network goes, a connection it
            # still sends here is refused at once by the empty namespace; after, it would hang on a dead address.
            await asyncio.sleep(NETWORK_LINGER)
        await self.teardown_sandbox()
        shutil.rmtree(self.dir, ignore_errors=True)  # logs and emptyDirs go with the pod (PVC data lives elsewhere)
        self._forget()

    async def shutdown(self, cap: float) -> None:
        """The agent is stopping: stop this pod's processes (grace capped) and remove its sandbox; no API calls."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lock.acquire(), 1.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.stop_containers(min(self._grace(), cap))
        await self.teardown_sandbox()
        self.finished.set()

    def _forget(self) -> None:
        for c in self.containers.values():
            self.rt.logs.pop((self.namespace, self.name, c.name), None)
        self.finished.set()

    # -- status ------------------------------------------------------------------------------------------
    def phase(self) -> str:
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        init_done = all(c.succeeded or (c.sidecar and c.running and c.started) for c in self.init_specs)
        states = [self._container_status(c) for c in self.main_specs]
        return pod_phase(policy, [], states, init_done, self._init_failed_for_good())

    def _since(self, ctype: str, ok: bool) -> str:
        prev = self._cond_since.get(ctype)
        if prev is None or prev[0] != ok:
            prev = (ok, rfc3339())
            self._cond_since[ctype] = prev
        return prev[1]

    def _container_status(self, c: ContainerRun, *, pending_init: bool = False) -> Obj:
        state = c.state
        if pending_init and "waiting" in state and state["waiting"].get("reason") == "ContainerCreating":
            state = {"waiting": {"reason": "PodInitializing"}}
        if self.volume_error or self.sandbox_error:
            if "waiting" in state and c.runs == 0:
                state = {"waiting": {"reason": "ContainerCreating"}}
        status = {"name": c.name, "state": state, "lastState": c.last_state, "ready": bool(c.ready and c.running),
                  "restartCount": c.restart_count, "image": c.spec.get("image", ""), "imageID": c.image_id,
                  "started": bool(c.started and c.running)}
        if c.container_id:
            status["containerID"] = c.container_id
        return status

    def build_status(self, *, final: bool = False, ip: str | None = None) -> Obj:
        rt = self.rt
        spec = self.pod.get("spec") or {}
        old = self.pod.get("status") or {}
        init_done = all(c.succeeded or (c.sidecar and c.running and c.started) for c in self.init_specs)
        init_statuses = [self._container_status(c) for c in self.init_specs]
        statuses = sorted((self._container_status(c, pending_init=not init_done) for c in self.main_specs),
                          key=lambda s: s["name"])
        if final:
            phase = "Succeeded" if all(
                (s["state"].get("terminated") or {}).get("exitCode", 1) == 0 for s in statuses) else "Failed"
        else:
            phase = self.phase()
        pod_ip = ip if ip is not None else (self.sandbox.ip if self.sandbox else "")
        sandbox_ready = self.sandbox is not None and not final
        unready = [s["name"] for s in statuses if not s["ready"]]
        incomplete = [c.name for c in self.init_specs if not (c.succeeded or (c.sidecar and c.running and c.started))]
        completed = (phase in ("Succeeded", "Failed") and final) or phase == "Succeeded"
        conds = [condition("PodReadyToStartContainers", sandbox_ready, self._since("PodReadyToStartContainers",
                                                                                  sandbox_ready))]
        conds.append(condition("Initialized", not incomplete, self._since("Initialized", not incomplete),
                               None if not incomplete else "ContainersNotInitialized",
                               None if not incomplete else unready_message("incomplete", incomplete)))
        containers_ready = not unready and not completed
        gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
        gate_missing = [g for g in gates if not any(
            x.get("type") == g and x.get("status") == "True" for x in old.get("conditions") or [])]
        ready = containers_ready and not gate_missing
        if completed:
            reason, message = "PodCompleted", None
        elif unready:
            reason, message = "ContainersNotReady", unready_message("unready", unready)
        else:
            reason, message = None, None
        if ready or not gate_missing or reason:
            ready_reason, ready_message = (None, None) if ready else (reason, message)
        else:
            ready_reason = "ReadinessGatesNotReady"
            ready_message = f"corresponding condition of pod readiness gate \"{gate_missing[0]}\" does not exist."
        conds.append(condition("Ready", ready, self._since("Ready", ready), ready_reason, ready_message))
        conds.append(condition("ContainersReady", containers_ready, self._since("ContainersReady", containers_ready),
                               None if containers_ready else reason, None if containers_ready else message))
        ours = {c["type"] for c in conds}
        scheduled = next((c for c in old.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        conds.append(scheduled or condition("PodScheduled", True, self.start_time))
        ours.add("PodScheduled")
        conds.extend(c for c in old.get("conditions") or [] if c.get("type") not in ours)
        status: Obj = {"phase": phase, "conditions": conds, "hostIP": rt.settings.node_ip,
                       "hostIPs": [{"ip": rt.settings.node_ip}], "startTime": old.get("startTime") or self.start_time,
                       "containerStatuses": statuses}
        if pod_ip:
            status["podIP"] = pod_ip
            status["podIPs"] = [{"ip": pod_ip}]
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        if old.get("qosClass"):
            status["qosClass"] = old["qosClass"]
        return status

    async def report(self, *, final: bool = False, ip: str | None = None) -> None:
        status = self.build_status(final=final, ip=ip)
        if status == self._last_status:
            return
        self._last_status = status
        try:
            await self.rt.report_status(self.pod, status)
        except Exception as err:
            log.info("pod %s/%s: status update failed: %s", self.namespace, self.name, err)
            self._last_status = None
            self.wake_in(1.0)
