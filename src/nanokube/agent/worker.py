"""One pod on this node, driven by one serialized worker: sandbox, volumes, init containers, containers,
restarts with back-off, hooks, graceful termination and the pod object's removal. What a container starts
with is in launch.py, its probers in probing.py, stopping in stopping.py, the status in status.py.

The worker is level-triggered: anything that happens (a pod update, a process exit, a probe flip, a
back-off timer) only wakes it, and ``sync`` works out what to do from the current state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from pathlib import Path

import aiohttp

from nanokube.agent import process
from nanokube.agent.backoff import Backoff, go_duration
from nanokube.agent.cgroups_pod import container_cgroup, qos_class, remove_pod_cgroup
from nanokube.agent.container import MIN_GRACE, ContainerRun, grace_period
from nanokube.agent.envvars import ContainerConfigError
from nanokube.agent.ipam import PoolExhausted
from nanokube.agent.launch import prepare_launch
from nanokube.agent.logs import ContainerLog
from nanokube.agent.netns import NetworkError
from nanokube.agent.nodecontext import NodeRuntime
from nanokube.agent.probes import Target, run_action
from nanokube.agent.probing import ContainerProbing, probe_target
from nanokube.agent.sandbox import Sandbox, SandboxRecord
from nanokube.agent.status import StatusBuilder, container_status, current_phase, init_failed_for_good
from nanokube.agent.stdio import container_stdio
from nanokube.agent.stopping import stop_containers
from nanokube.agent.volumes import VolumeNotReady, VolumeSources, prepare_volume
from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, rfc3339
from nanokube.images.catalogue import ImageNotFound

log = logging.getLogger(__name__)

NETWORK_LINGER = 1.0  # seconds a deleted pod's network namespace outlives its API object (netns mode)


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
        self.status = StatusBuilder()
        self.probing = ContainerProbing(f"{self.namespace}/{self.name}", self._pod_ip, self.wake,
                                        unhealthy=lambda c, kind, message: self.event(
                                            "Warning", "Unhealthy", f"{kind.capitalize()} probe failed: {message}",
                                            c))
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
        self._add_ephemeral(pod)
        rt.workers[(self.namespace, self.name)] = self  # exec, attach and port-forward find the pod here

    def event(self, event_type: str, reason: str, message: str, c: ContainerRun | None = None) -> None:
        self.rt.record_event(self.pod, event_type, reason, message, c.name if c is not None else None)

    # -- driving -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._wake.set()
        self._task = asyncio.ensure_future(self._run())

    def update(self, pod: Obj) -> None:
        old_meta, new_meta = self.pod.get("metadata") or {}, pod.get("metadata") or {}
        if any(old_meta.get(k) != new_meta.get(k) for k in ("labels", "annotations")):
            self.volumes_dirty = True  # downwardAPI files show them, as kubelet keeps them current
        self.pod = pod
        self._add_ephemeral(pod)
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
        return [c for c in self.containers.values() if not c.init and not c.ephemeral]

    @property
    def ephemeral_specs(self) -> list[ContainerRun]:
        return [c for c in self.containers.values() if c.ephemeral]

    def _add_ephemeral(self, pod: Obj) -> None:
        reported = {s.get("name"): s for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []}
        for spec in (pod.get("spec") or {}).get("ephemeralContainers") or []:
            if spec.get("name") and spec["name"] not in self.containers:
                clog = ContainerLog(self.dir / "logs" / spec["name"])
                self.rt.logs[(self.namespace, self.name, spec["name"])] = clog
                c = ContainerRun(spec, False, clog, Backoff(), ephemeral=True)
                done = (reported.get(spec["name"]) or {}).get("state") or {}
                if "running" in done or "terminated" in done:  # ran before this agent started: never again
                    now = time.time()
                    c.last_exit = process.ExitStatus(0, None, now, now)
                    c.state = {"terminated": done.get("terminated") or {
                        "exitCode": 0, "reason": "Completed", "startedAt": rfc3339(now), "finishedAt": rfc3339(now)}}
                self.containers[spec["name"]] = c

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
                if self.volume_error != str(err):
                    self.event("Warning", "FailedMount", str(err))
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
        # a pod started again after an agent restart keeps its IP when it is still free, as clients cached it
        earlier = (self.pod.get("status") or {}).get("podIP")
        ip = rt.settings.node_ip if host_network else rt.ipam.allocate(self.uid, earlier)  # type: ignore[union-attr]
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
                            host_ip=rt.settings.node_ip, node_allocatable=rt.allocatable,
                            request_token=rt.request_token)
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
            return "failed" if init_failed_for_good(self.pod, self.init_specs) else "waiting"
        return "done"

    async def sync_main(self) -> None:
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        for c in self.main_specs:
            await self.ensure_running(c, policy)
        for c in self.ephemeral_specs:
            await self.ensure_running(c, "Never")

    async def ensure_running(self, c: ContainerRun, policy: str) -> None:
        if c.running:
            if c.kill_reason and not c.killing:
                c.killing = True
                probe = {"LivenessProbeFailed": "liveness", "StartupProbeFailed": "startup"}.get(c.kill_reason)
                if probe:
                    self.event("Normal", "Killing", f"Container {c.name} failed {probe} probe, will be restarted", c)
                grace = self._grace(c)
                task = asyncio.ensure_future(c.proc.stop(grace))  # type: ignore[union-attr]
                self._watchers.add(task)
                task.add_done_callback(self._watchers.discard)
            return
        if c.proc is not None and c.last_exit is None:
            self._record_exit(c, c.proc)  # it ended just now; its exit watcher has not run yet
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
                c.log.previous = c.restart_count
            if (c.state.get("waiting") or {}).get("reason") != "CrashLoopBackOff":
                self.event("Warning", "BackOff", f"Back-off restarting failed container {c.name} in pod "
                                                 f"{self.name}_{self.namespace}({self.uid})", c)
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                f"back-off {go_duration(c.backoff.delay)} restarting failed container={c.name} "
                f"pod={self.name}_{self.namespace}({self.uid})")}}
            self.wake_in(remaining)
            return
        await self.start_container(c)

    # -- starting a container ---------------------------------------------------------------------------
    def _pod_ip(self) -> str:
        return self.sandbox.ip if self.sandbox else ""

    async def start_container(self, c: ContainerRun) -> None:
        sandbox = self.sandbox
        assert sandbox is not None
        if c.pull_retry_at > time.monotonic():  # ImagePullBackOff: not before the back-off has passed
            self.wake_in(c.pull_retry_at - time.monotonic())
            return
        try:
            launch = await prepare_launch(self.rt, self.pod, c, sandbox, self.dir, self.etc, self.volume_paths)
        except ImageNotFound as err:
            image = c.spec.get("image", "")
            if (c.state.get("waiting") or {}).get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                c.state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}
                self.event("Normal", "BackOff", f'Back-off pulling image "{image}"', c)
                self.event("Warning", "Failed", "Error: ImagePullBackOff", c)
            else:
                c.state = {"waiting": {"reason": "ErrImagePull", "message": str(err)}}
                self.event("Warning", "Failed", f'Failed to pull image "{image}": {err}', c)
                self.event("Warning", "Failed", "Error: ErrImagePull", c)
            c.pull_backoff = min(300.0, c.pull_backoff * 2 or 5.0)
            c.pull_retry_at = time.monotonic() + c.pull_backoff
            self.wake_in(c.pull_backoff)
            return
        except ContainerConfigError as err:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)}}
            self.wake_in(2.0)
            return
        c.image_id = launch.image_id
        c.pull_backoff = c.pull_retry_at = 0.0
        self.event("Normal", "Pulled", f'Container image "{c.spec.get("image", "")}" already present on machine', c)
        if c.runs > 0:
            c.restart_count += 1
            c.backoff.restarted(time.monotonic())
            c.last_state = {"terminated": c.state.get("terminated") or c.terminated_state()}
        c.runs += 1
        c.started = False
        c.ready = False
        c.kill_reason = None
        c.killing = False
        try:
            proc = await process.start(launch.argv, env=launch.env, cwd=launch.cwd, isolation=launch.isolation,
                                       log=c.log, restart=c.restart_count, on_spawn=sandbox.add_pid,
                                       stdio=container_stdio(c.spec), cgroup=container_cgroup(self.rt, self.pod, c))
        except process.StartError as err:
            now = time.time()
            c.last_exit = process.ExitStatus(128, None, now, now)
            c.finished_mono = time.monotonic()
            c.proc = None
            self.event("Warning", "Failed", f"Error: {err}", c)
            c.state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": str(err),
                                      "startedAt": rfc3339(0), "finishedAt": rfc3339(now), "containerID": ""}}
            self.wake()
            return
        c.proc = proc
        c.last_exit = None
        self.event("Normal", "Created", f"Created container: {c.name}", c)
        self.event("Normal", "Started", f"Started container {c.name}", c)
        c.container_id = f"nanokube://{self.uid[:8]}-{c.name}-{c.restart_count}-{proc.pid}"
        watcher = asyncio.ensure_future(self._watch_exit(c, proc))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        post_start = (c.spec.get("lifecycle") or {}).get("postStart")
        if post_start:
            ok, message = await run_action(post_start, self._target(c), float(self._grace(c)))
            if not ok and proc.running:
                log.info("pod %s/%s container %s: postStart hook failed: %s", self.namespace, self.name, c.name,
                         message)
                c.kill_reason = "FailedPostStartHook"
                await proc.stop(self._grace(c))
                return
        c.state = {"running": {"startedAt": rfc3339(proc.started_at)}}
        self.probing.start(c)

    async def _watch_exit(self, c: ContainerRun, proc: process.ContainerProcess) -> None:
        await proc.exited.wait()
        self._record_exit(c, proc)

    def _record_exit(self, c: ContainerRun, proc: process.ContainerProcess) -> None:
        """The container's process has ended: its terminated state, from which restarts back off. Called by the
        exit watcher, or by a sync that sees the exit first (it must not take the container for a new one)."""
        if c.proc is not proc or proc.exit is None or c.last_exit is proc.exit:
            return
        c.stop_probers()
        c.last_exit = proc.exit
        if proc.exit is not None and proc.exit.oom_killed:
            limit = ((c.spec.get("resources") or {}).get("limits") or {}).get("memory")
            self.event("Warning", "OOMKilled", f"Container {c.name} was OOM-killed: its memory limit ({limit}) was "
                                               "exceeded", c)
        c.finished_mono = time.monotonic()
        c.ready = False
        c.started = False
        c.state = {"terminated": c.terminated_state()}
        if self.sandbox is not None:
            self.sandbox.drop_pid(proc.pid)
        self.wake()

    def _target(self, c: ContainerRun) -> Target:
        return probe_target(self._pod_ip(), c)

    def _grace(self, c: ContainerRun | None = None) -> float:
        return grace_period(self.pod, c)

    # -- stopping ----------------------------------------------------------------------------------------
    async def stop_containers(self, grace: float, *, hooks: bool = True) -> None:
        for c in self.containers.values():
            if c.running:
                self.event("Normal", "Killing", f"Stopping container {c.name}", c)
        await stop_containers(self.containers.values(), grace, self._target, hooks=hooks)
        for task in list(self._watchers):
            try:
                await asyncio.wait_for(task, 2.0)
            except TimeoutError:
                pass  # wait_for cancelled it
            except Exception:
                log.exception("pod %s/%s: a container watcher failed", self.namespace, self.name)

    async def teardown_sandbox(self) -> None:
        sandbox = self.sandbox
        if sandbox is None:
            return
        others = [s for uid, s in self.rt.sandboxes.items() if uid != self.uid]
        await sandbox.teardown(others=others)
        if not (self.pod.get("spec") or {}).get("hostNetwork"):
            self.rt.ipam.release(sandbox.ip)  # type: ignore[union-attr]
        self.rt.sandboxes.pop(self.uid, None)
        await remove_pod_cgroup(self.rt, self.uid)

    async def terminate(self) -> None:
        """Graceful delete: preStop, SIGTERM, SIGKILL after the grace period, final status, remove the object."""
        await self.stop_containers(self._grace())
        if self.sandbox is not None:
            await self.sandbox.kill_processes()  # like a container's cgroup: nothing outlives the pod object
        for c in self.containers.values():
            if c.proc is not None and c.last_exit is None and c.proc.exit is not None:
                c.last_exit = c.proc.exit
            if c.last_exit is not None or c.proc is not None:
                c.state = {"terminated": c.terminated_state()} if c.last_exit else c.state
        ip = self.sandbox.ip if self.sandbox else ""
        if not self.gone:
            await self.report(final=True, ip=ip)  # a refused status update is logged and retried by report()
            try:
                await self.rt.remove_pod(self.pod)
            except (ApiError, aiohttp.ClientError, OSError) as err:  # TimeoutError is an OSError
                log.info("pod %s/%s: delete after termination failed: %s", self.namespace, self.name, err)
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
        if self.rt.workers.get((self.namespace, self.name)) is self:
            del self.rt.workers[(self.namespace, self.name)]
        for c in self.containers.values():
            self.rt.logs.pop((self.namespace, self.name, c.name), None)
        self.finished.set()

    # -- status ------------------------------------------------------------------------------------------
    def phase(self) -> str:
        return current_phase(self.pod, self.init_specs, self.main_specs)

    def build_status(self, *, final: bool = False, ip: str | None = None) -> Obj:
        status = self.status.build(self.pod, self.init_specs, self.main_specs, node_ip=self.rt.settings.node_ip,
                                   pod_ip=ip if ip is not None else self._pod_ip(),
                                   sandbox_ready=self.sandbox is not None and not final,
                                   creating=bool(self.volume_error or self.sandbox_error), final=final)
        status["qosClass"] = qos_class(self.pod)
        if self.ephemeral_specs:
            status["ephemeralContainerStatuses"] = [container_status(c) for c in self.ephemeral_specs]
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
