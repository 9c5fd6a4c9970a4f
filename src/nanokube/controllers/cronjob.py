"""CronJob controller (pkg/controller/cronjob/cronjob_controllerv2.go): at each scheduled time creates the Job
`<cronjob>-<minutes since the epoch>` from spec.jobTemplate, honouring suspend, startingDeadlineSeconds and the
concurrency policy (Allow/Forbid/Replace); tracks status.active, lastScheduleTime and lastSuccessfulTime;
deletes finished Jobs beyond the history limits. A sync asks to be looked at again at the next activation.

NANOKUBE_CRON_CLOCK_SPEED (tests only) makes the controller's clock run that many times faster than the wall
clock from the moment the controller starts, so an every-minute schedule fires every second at 60.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from nanokube.api import cron
from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, parse_time, rfc3339
from nanokube.client import object_key
from nanokube.controllers.events import NORMAL, WARNING
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.job_logic import condition
from nanokube.controllers.owned import OwnedIndex
from nanokube.controllers.resources import CRONJOBS, JOBS

log = logging.getLogger(__name__)
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SYNC_SLACK = 0.1


class Clock:
    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._mono0) * self.speed
        return datetime.fromtimestamp(self._wall0 + elapsed, UTC)

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds / self.speed


def _job_ref(job: Obj) -> Obj:
    md = job["metadata"]
    return {"kind": "Job", "namespace": md["namespace"], "name": md["name"], "uid": md["uid"],
            "apiVersion": "batch/v1", "resourceVersion": md.get("resourceVersion", "")}


def _finished_type(job: Obj) -> str | None:
    return "Complete" if condition(job, "Complete") else "Failed" if condition(job, "Failed") else None


class CronJobController(Controller):
    name = "cronjob-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.clock = Clock(float(os.environ.get("NANOKUBE_CRON_CLOCK_SPEED") or 1.0))
        self.cronjobs = ctx.informer(CRONJOBS)
        self._uid_to_key: dict[str, str] = {}
        self.cronjobs.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n),
                                  on_delete=lambda cj: self._uid_to_key.pop(cj["metadata"]["uid"], None))
        self.jobs = OwnedIndex(ctx.informer(JOBS), "CronJob", self._enqueue_uid)

    def _changed(self, cj: Obj) -> None:
        self._uid_to_key[cj["metadata"]["uid"]] = object_key(cj)
        self.queue.add(object_key(cj))

    def _enqueue_uid(self, uid: str) -> None:
        key = self._uid_to_key.get(uid)
        if key:
            self.queue.add(key)

    async def sync(self, key: str) -> float | None:
        cj = self.cronjobs.cache.get(key)
        if cj is None:
            return None
        at = self.clock.now()
        spec = cj.get("spec") or {}
        status = copy.deepcopy(cj.get("status") or {})
        before = copy.deepcopy(status)
        jobs = self.jobs.of(cj["metadata"]["uid"])
        await self._track(cj, status, jobs)
        try:
            again = await self._schedule(cj, spec, status, at)
        finally:
            await self._clean_history(cj, jobs)
            if status != before:
                await self.client.update(CRONJOBS, {**cj, "status": status}, subresource="status")
        return again

    async def _track(self, cj: Obj, status: Obj, jobs: list[Obj]) -> None:
        active = list(status.get("active") or [])
        by_uid = {j["metadata"]["uid"]: j for j in jobs}
        active_uids = {ref.get("uid") for ref in active}
        for job in jobs:
            finished = _finished_type(job)
            name = job["metadata"]["name"]
            if job["metadata"]["uid"] not in active_uids and finished is None:
                self.event(cj, WARNING, "UnexpectedJob", f"Saw a job that the controller did not create or forgot: {name}")
            elif job["metadata"]["uid"] in active_uids and finished is not None:
                active = [r for r in active if r.get("uid") != job["metadata"]["uid"]]
                self.event(cj, NORMAL, "SawCompletedJob", f"Saw completed job: {name}, status: {finished}")
            if finished == "Complete":
                done = (job.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if done and (not last or parse_time(done) > parse_time(last)):  # type: ignore[operator]
                    status["lastSuccessfulTime"] = done
        for ref in list(active):
            if ref.get("uid") in by_uid:
                continue
            try:
                found = await self.client.get(JOBS, ref["name"], cj["metadata"]["namespace"])
                if found["metadata"]["uid"] == ref.get("uid"):
                    continue
            except ApiError as err:
                if err.code != 404:
                    raise
            active = [r for r in active if r.get("uid") != ref.get("uid")]
            self.event(cj, NORMAL, "MissingJob", f"Active job went missing: {ref.get('name')}")
        if active:
            status["active"] = active
        else:
            status.pop("active", None)

    async def _schedule(self, cj: Obj, spec: Obj, status: Obj, at: datetime) -> float | None:
        if cj["metadata"].get("deletionTimestamp") or spec.get("suspend"):
            return None
        text = spec.get("schedule") or ""
        zone = spec.get("timeZone")
        if zone is not None and cron.load_zone(zone) is None:
            self.event(cj, WARNING, "UnknownTimeZone", f'invalid timeZone: "{zone}": unknown time zone {zone}')
            return None
        if "TZ" in text:
            self.event(cj, WARNING, "UnsupportedSchedule", f'CRON_TZ or TZ used in schedule "{text}" is not '
                       "officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/"
                       " for more details")
        try:
            schedule = cron.parse(cron.schedule_in_zone(text, zone))
        except cron.CronError as err:
            self.event(cj, WARNING, "UnparseableSchedule", f'unparseable schedule: "{text}" : {err}')
            return None
        created = parse_time(cj["metadata"].get("creationTimestamp")) or at
        earliest = parse_time(status.get("lastScheduleTime")) or created
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, at - timedelta(seconds=int(deadline)))
        scheduled, missed = cron.most_recent(schedule, earliest, at)
        following = schedule.next_after(at)
        wait = None if following is None else \
            self.clock.real_seconds((following - at).total_seconds()) + NEXT_SYNC_SLACK
        if scheduled is None:
            return wait
        if missed > cron.MANY_MISSED:
            self.event(cj, WARNING, "TooManyMissedTimes", "too many missed start times. Set or decrease "
                                                          ".spec.startingDeadlineSeconds or check clock skew")
        if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < at:
            self.event(cj, WARNING, "MissSchedule",
                       f"Missed scheduled time to start a job: {format_datetime(scheduled.astimezone(UTC))}")
            return wait
        name = f"{cj['metadata']['name']}-{int(scheduled.timestamp()) // 60}"
        active = status.get("active") or []
        if any(r.get("name") == name for r in active) or status.get("lastScheduleTime") == rfc3339(scheduled):
            return wait
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.event(cj, NORMAL, "JobAlreadyActive",
                       "Not starting job because prior execution is running and concurrency policy is Forbid")
            return wait
        if policy == "Replace":
            for ref in active:
                await self._delete_job(cj, ref["name"])
            status.pop("active", None)
        job = self._job_from_template(cj, name, scheduled)
        try:
            made = await self.client.create(JOBS, job, cj["metadata"]["namespace"])
        except ApiError as err:
            if err.code != 409:
                self.event(cj, WARNING, "FailedCreate", f"Error creating job: {err.message}")
                raise
            return wait
        self.event(cj, NORMAL, "SuccessfulCreate", f"Created job {name}")
        status["active"] = [*(status.get("active") or []), _job_ref(made)]
        status["lastScheduleTime"] = rfc3339(scheduled)
        return wait

    @staticmethod
    def _job_from_template(cj: Obj, name: str, scheduled: datetime) -> Obj:
        template = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
        tmd = template.get("metadata") or {}
        md: Obj = {"name": name, "namespace": cj["metadata"]["namespace"], "labels": dict(tmd.get("labels") or {}),
                   "annotations": {**(tmd.get("annotations") or {}), SCHEDULED_ANNOTATION: rfc3339(scheduled)},
                   "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cj["metadata"]["name"],
                                        "uid": cj["metadata"]["uid"], "controller": True,
                                        "blockOwnerDeletion": True}]}
        if not md["labels"]:
            del md["labels"]
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": md, "spec": template.get("spec") or {}}

    async def _delete_job(self, cj: Obj, name: str) -> None:
        try:
            await self.client.delete(JOBS, name, cj["metadata"]["namespace"], propagation_policy="Background")
        except ApiError as err:
            if err.code != 404:
                raise
            return
        self.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {name}")

    async def _clean_history(self, cj: Obj, jobs: list[Obj]) -> None:
        spec = cj.get("spec") or {}
        limits = {"Complete": spec.get("successfulJobsHistoryLimit"), "Failed": spec.get("failedJobsHistoryLimit")}
        defaults = {"Complete": 3, "Failed": 1}
        doomed: list[str] = []
        for kind, limit in limits.items():
            keep = defaults[kind] if limit is None else int(limit)
            finished = [j for j in jobs if _finished_type(j) == kind and not j["metadata"].get("deletionTimestamp")]
            finished.sort(key=lambda j: ((j.get("status") or {}).get("startTime") is None,
                                         (j.get("status") or {}).get("startTime") or ""))
            doomed += [j["metadata"]["name"] for j in finished[:max(0, len(finished) - keep)]]
        await asyncio.gather(*(self._delete_job(cj, name) for name in doomed))
