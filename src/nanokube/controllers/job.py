"""Job controller: runs pods to `completions` (`parallelism` at a time, Indexed or not), counts finished pods
through the `batch.kubernetes.io/job-tracking` finalizer, fails at backoffLimit or activeDeadlineSeconds,
and writes v1.32's conditions (SuccessCriteriaMet/FailureTarget first, Complete/Failed once no pod is left
terminating). Finished Jobs with ttlSecondsAfterFinished are deleted when it expires (the TTL controller).

Counting follows the Kubernetes order so a restart never counts a pod twice: a finished pod's uid goes into
status.uncountedTerminatedPods, then its finalizer is removed, then the uid moves into succeeded/failed.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from datetime import datetime

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, now, parse_time, rfc3339
from nanokube.client import object_key
from nanokube.controllers import job_logic as logic
from nanokube.controllers.events import NORMAL, WARNING
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.owned import OwnedIndex, controller_uid
from nanokube.controllers.podports import is_terminal
from nanokube.controllers.resources import JOBS, PODS

log = logging.getLogger(__name__)
BURST = 500
EXPECTATION_TIMEOUT = 30.0


def _finalized(pod: Obj) -> bool:
    return logic.TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


class JobController(Controller):
    name = "job-controller"
    workers = 4

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informer(JOBS)
        self._uid_to_key: dict[str, str] = {}
        # pods already counted whose finalizer removal the pod informer may not show yet (finalizer expectations)
        self._counted: dict[str, set[str]] = {}
        self._creating: dict[str, tuple[float, set[str]]] = {}  # job uid -> (since, keys of pods not yet seen)
        self._deleted: set[str] = set()  # uids of pods this controller deleted: not failures
        self.jobs.add_handler(on_add=self._job_changed, on_update=lambda _o, n: self._job_changed(n),
                              on_delete=self._job_deleted)
        self.pods = OwnedIndex(ctx.informer(PODS), "Job", self._enqueue_uid)
        self.pods.informer.add_handler(on_add=self._maybe_orphaned, on_update=lambda _o, n: self._maybe_orphaned(n),
                                       on_delete=lambda p: self._deleted.discard(p["metadata"]["uid"]))

    def _job_changed(self, job: Obj) -> None:
        self._uid_to_key[job["metadata"]["uid"]] = object_key(job)
        self.queue.add(object_key(job))

    def _job_deleted(self, job: Obj) -> None:
        self._uid_to_key.pop(job["metadata"]["uid"], None)
        self._counted.pop(job["metadata"]["uid"], None)
        self._creating.pop(job["metadata"]["uid"], None)
        for pod in self.pods.of(job["metadata"]["uid"]):
            self._maybe_orphaned(pod)

    def _enqueue_uid(self, uid: str) -> None:
        key = self._uid_to_key.get(uid)
        if key:
            self.queue.add(key)

    def _maybe_orphaned(self, pod: Obj) -> None:
        """A tracked pod whose Job is gone must not keep its finalizer (it would never be deleted)."""
        if _finalized(pod) and (uid := controller_uid(pod, "Job")) and self.jobs.synced.is_set() \
                and uid not in self._uid_to_key:
            self.queue.add(("pod", object_key(pod)))

    # -- sync ------------------------------------------------------------------------------------------
    async def sync(self, key: str | tuple[str, str]) -> float | None:
        if isinstance(key, tuple):
            pod = self.pods.informer.cache.get(key[1])
            uid = controller_uid(pod, "Job") if pod else None
            if pod is not None and uid and uid not in self._uid_to_key:
                await self._strip([pod])
            return None
        job = self.jobs.cache.get(key)
        if job is None:
            return None
        pods = self.pods.of(job["metadata"]["uid"])
        at = now()
        if logic.is_finished(job) or job["metadata"].get("deletionTimestamp"):
            await self._strip([p for p in pods if _finalized(p)])
            return await self._expire(job, at) if logic.is_finished(job) else None
        return await self._reconcile(job, pods, at)

    async def _reconcile(self, job: Obj, pods: list[Obj], at: datetime) -> float | None:
        status = copy.deepcopy(job.get("status") or {})
        before = copy.deepcopy(status)
        spec = logic.spec_of(job)
        suspended = bool(spec.get("suspend"))
        if not suspended and not status.get("startTime"):
            status["startTime"] = rfc3339(at)
        uncounted = status.get("uncountedTerminatedPods") or {}
        unc_ok, unc_fail = set(uncounted.get("succeeded") or []), set(uncounted.get("failed") or [])
        active = [p for p in pods if not is_terminal(p) and not p["metadata"].get("deletionTimestamp")]
        total = logic.completions(job)
        counted = self._counted.setdefault(job["metadata"]["uid"], set())
        counted &= {p["metadata"]["uid"] for p in pods if _finalized(p)}  # the rest: the cache caught up
        finished = [p for p in pods if _finalized(p) and (is_terminal(p) or p["metadata"].get("deletionTimestamp"))
                    and p["metadata"]["uid"] not in counted]
        for pod in finished:
            uid = pod["metadata"]["uid"]
            if uid in unc_ok or uid in unc_fail or (uid in self._deleted and not is_terminal(pod)):
                continue
            (unc_ok if (pod.get("status") or {}).get("phase") == "Succeeded" else unc_fail).add(uid)
        completed = logic.parse_indexes(status.get("completedIndexes"))
        if logic.is_indexed(job):
            completed |= {i for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"
                          and (i := logic.pod_index(p)) is not None and i < (total or 0)}
        succeeded = int(status.get("succeeded") or 0) + len(unc_ok)
        failed = int(status.get("failed") or 0) + len(unc_fail)
        done = len(completed) if logic.is_indexed(job) else succeeded

        failure: tuple[str, str] | None = None
        target = logic.condition(job, "FailureTarget")
        if target is not None:
            failure = (target.get("reason", ""), target.get("message", ""))
        elif failed > logic.backoff_limit(job) or logic.restarts_past_limit(job, active):
            failure = logic.BACKOFF_EXCEEDED
        elif spec.get("activeDeadlineSeconds") is not None and status.get("startTime") and not suspended and \
                (at - parse_time(status["startTime"])).total_seconds() >= int(spec["activeDeadlineSeconds"]):
            failure = logic.DEADLINE_EXCEEDED
        complete = failure is None and (done > 0 and not active if total is None else done >= total)

        again: float | None = None
        if failure is not None:
            logic.set_condition(status, logic.new_condition("FailureTarget", *failure, at))
            await self._delete(job, active)
        elif complete:
            logic.set_condition(status, logic.new_condition("SuccessCriteriaMet", *logic.COMPLETIONS_REACHED, at))
            await self._delete(job, active)
        elif suspended:
            await self._delete(job, active)
            if logic.set_condition(status, logic.new_condition("Suspended", "JobSuspended", "Job suspended", at)):
                self.event(job, NORMAL, "Suspended", "Job suspended")
        else:
            if logic.condition(job, "Suspended") is not None:
                logic.set_condition(status, logic.new_condition("Suspended", "JobResumed", "Job resumed", at, "False"))
                status["startTime"] = rfc3339(at)
                self.event(job, NORMAL, "Resumed", "Job resumed")
            again = await self._manage(job, pods, active, done, completed, at)

        deadline = spec.get("activeDeadlineSeconds")
        if failure is None and not complete and deadline is not None and status.get("startTime") and not suspended:
            left = int(deadline) - (at - parse_time(status["startTime"])).total_seconds()
            again = left if again is None else min(again, left)
        # count what finished: uncounted first, finalizers off, then into the counters
        status["active"] = len(active)
        status["ready"] = logic.ready_count(active)
        status["terminating"] = sum(1 for p in pods if p["metadata"].get("deletionTimestamp") and not is_terminal(p))
        if unc_ok or unc_fail:
            status["uncountedTerminatedPods"] = {k: sorted(v) for k, v in
                                                 (("succeeded", unc_ok), ("failed", unc_fail)) if v}
            job = await self._write(job, status)
            await self._strip(finished)
            counted.update(p["metadata"]["uid"] for p in finished)
            status = copy.deepcopy(job.get("status") or {})
        status["succeeded"], status["failed"] = succeeded, failed
        status["uncountedTerminatedPods"] = {}
        if logic.is_indexed(job):
            status["completedIndexes"] = logic.format_indexes(completed)
        self._finish(job, status, at)
        if status != before:
            await self._write(job, status)
        return again

    def _finish(self, job: Obj, status: Obj, at: datetime) -> None:
        """The terminal condition once no finished pod is uncounted and none is still terminating."""
        if status.get("terminating"):
            return
        for cond in status.get("conditions") or []:
            if cond.get("status") != "True":
                continue
            if cond["type"] == "FailureTarget":
                if logic.set_condition(status, logic.new_condition("Failed", cond["reason"], cond["message"], at)):
                    self.event(job, WARNING, cond["reason"], cond["message"])
                return
            if cond["type"] == "SuccessCriteriaMet":
                if logic.set_condition(status, logic.new_condition("Complete", *logic.COMPLETIONS_REACHED, at)):
                    status["completionTime"] = rfc3339(at)
                    self.event(job, NORMAL, "Completed", "Job completed")
                return

    def _creations_seen(self, job: Obj) -> bool:
        """Pods created but not yet in the informer would be created again: wait for them (expectations)."""
        pending = self._creating.get(job["metadata"]["uid"])
        if pending is None:
            return True
        since, keys = pending
        if all(k in self.pods.informer.cache for k in keys) or time.monotonic() - since > EXPECTATION_TIMEOUT:
            del self._creating[job["metadata"]["uid"]]
            return True
        return False

    async def _manage(self, job: Obj, pods: list[Obj], active: list[Obj], done: int, completed: set[int],
                      at: datetime) -> float | None:
        if not self._creations_seen(job):
            return None
        want = logic.want_active(job, done, len(active))
        if len(active) > want:
            surplus = sorted(active, key=lambda p: (logic.ready_count([p]), p["metadata"].get("creationTimestamp")
                                                    or ""), reverse=False)[:len(active) - want]
            await self._delete(job, surplus)
            return None
        if len(active) == want:
            return None
        last_success = max((t for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"
                            and (t := logic.finish_time(p)) is not None), default=None)
        failures = [t for p in pods if (p.get("status") or {}).get("phase") == "Failed"
                    and (t := logic.finish_time(p)) is not None and (last_success is None or t > last_success)]
        if failures:
            wait = logic.backoff_delay(len(failures)) - (at - max(failures)).total_seconds()
            if wait > 0:
                return wait
        count = min(want - len(active), BURST)
        if logic.is_indexed(job):
            indexes: list[int | None] = list(logic.missing_indexes(job, completed, active, count))
        else:
            indexes = [None] * count
        await self._create(job, indexes)
        return None

    # -- writes ----------------------------------------------------------------------------------------
    async def _create(self, job: Obj, indexes: list[int | None]) -> None:
        ns = job["metadata"]["namespace"]
        created: set[str] = set()
        self._creating[job["metadata"]["uid"]] = (time.monotonic(), created)
        batch = 1
        while indexes:
            now_, indexes = indexes[:batch], indexes[batch:]
            results = await asyncio.gather(*(self.client.create(PODS, logic.new_pod(job, i), ns) for i in now_),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, ApiError):
                    self.event(job, WARNING, "FailedCreate", f"Error creating: {result.message}")
                    raise result
                if isinstance(result, BaseException):
                    raise result
                created.add(f"{ns}/{result['metadata']['name']}")
                self.event(job, NORMAL, "SuccessfulCreate", f"Created pod: {result['metadata']['name']}")
            batch *= 2

    async def _delete(self, job: Obj, pods: list[Obj]) -> None:
        async def one(pod: Obj) -> None:
            self._deleted.add(pod["metadata"]["uid"])
            try:
                await self.client.delete(PODS, pod["metadata"]["name"], pod["metadata"]["namespace"],
                                         preconditions={"uid": pod["metadata"]["uid"]})
            except ApiError as err:
                if err.code in (404, 409):
                    return
                self.event(job, WARNING, "FailedDelete", f"Error deleting: {err.message}")
                raise
            self.event(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

        await asyncio.gather(*(one(p) for p in pods[:BURST]))

    async def _strip(self, pods: list[Obj]) -> None:
        async def one(pod: Obj) -> None:
            rest = [f for f in pod["metadata"].get("finalizers") or [] if f != logic.TRACKING_FINALIZER]
            try:
                await self.client.patch(PODS, pod["metadata"]["name"], {"metadata": {"finalizers": rest or None}},
                    pod["metadata"]["namespace"])
            except ApiError as err:
                if err.code != 404:
                    raise

        for start in range(0, len(pods), BURST):
            results = await asyncio.gather(*(one(p) for p in pods[start:start + BURST]), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    async def _write(self, job: Obj, status: Obj) -> Obj:
        return await self.client.update(JOBS, {**job, "status": status}, subresource="status")

    async def _expire(self, job: Obj, at: datetime) -> float | None:
        ttl = logic.spec_of(job).get("ttlSecondsAfterFinished")
        finished = logic.finished_at(job)
        if ttl is None or finished is None:
            return None
        left = (finished - at).total_seconds() + int(ttl)
        if left > 0:
            return left
        try:
            await self.client.delete(JOBS, job["metadata"]["name"], job["metadata"]["namespace"],
                                     propagation_policy="Foreground", preconditions={"uid": job["metadata"]["uid"]})
        except ApiError as err:
            if err.code not in (404, 409):
                raise
        return None
