"""Jobs and CronJobs."""

from __future__ import annotations

from datetime import datetime

from nanokube.apiserver.printing.base import (
    Cell,
    Column,
    Obj,
    Printer,
    age_column,
    age_of,
    api_doc,
    as_int,
    containers_cells,
    is_deleting,
    name_column,
    name_of,
    spec,
    status,
    wide,
)
from nanokube.apiserver.printing.duration import elapsed_seconds, human_duration, parse_timestamp, since
from nanokube.apiserver.printing.labels import format_label_selector
from nanokube.apiserver.printing.workloads import CONTAINERS_DOC, IMAGES_DOC

# The STATUS cell: the first condition (True) in this order wins, then deletion, else Running.
_STATUS_ORDER = (("Complete", "Complete"), ("Failed", "Failed"), (None, "Terminating"), ("Suspended", "Suspended"),
                 ("FailureTarget", "FailureTarget"), ("SuccessCriteriaMet", "SuccessCriteriaMet"))


def _has_condition(job: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status(job).get("conditions") or [])


def job_status(job: Obj) -> str:
    for ctype, text in _STATUS_ORDER:
        if (ctype is None and is_deleting(job)) or (ctype is not None and _has_condition(job, ctype)):
            return text
    return "Running"


def _completions(job: Obj) -> str:
    succeeded = as_int(status(job).get("succeeded"))
    completions = spec(job).get("completions")
    parallelism = spec(job).get("parallelism")
    if completions is not None:
        return f"{succeeded}/{as_int(completions)}"
    if parallelism is not None and as_int(parallelism) > 1:
        return f"{succeeded}/1 of {as_int(parallelism)}"
    return f"{succeeded}/1"


def _duration(job: Obj, now: datetime) -> str:
    start = parse_timestamp(status(job).get("startTime"))
    if start is None:
        return ""
    end = parse_timestamp(status(job).get("completionTime")) or now
    return human_duration(elapsed_seconds(start, end))


def _job_row(job: Obj, now: datetime) -> list[Cell]:
    names, images = containers_cells((spec(job).get("template") or {}).get("spec") or {})
    return [name_of(job), job_status(job), _completions(job), _duration(job, now), age_of(job, now), names, images,
            format_label_selector(spec(job).get("selector"))]


JOBS = Printer(
    (
        name_column(),
        Column("Status", description="Status of the job."),
        Column("Completions", description=api_doc("batch.v1.JobStatus", "succeeded")),
        Column("Duration", description="Time required to complete the job."),
        age_column(),
        wide("Containers", CONTAINERS_DOC),
        wide("Images", IMAGES_DOC),
        wide("Selector", api_doc("batch.v1.JobSpec", "selector")),
    ),
    _job_row,
)


def _bool_ptr(value: object) -> str:
    """printBoolPtr: True/False, `<unset>` for nil."""
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def _cron_job_row(cj: Obj, now: datetime) -> list[Cell]:
    job_spec = (spec(cj).get("jobTemplate") or {}).get("spec") or {}
    names, images = containers_cells((job_spec.get("template") or {}).get("spec") or {})
    last = status(cj).get("lastScheduleTime")
    return [
        name_of(cj),
        spec(cj).get("schedule") or "",
        spec(cj).get("timeZone") or "<none>",
        _bool_ptr(spec(cj).get("suspend")),
        len(status(cj).get("active") or []),
        since(last, now) if last else "<none>",
        age_of(cj, now),
        names,
        images,
        format_label_selector(job_spec.get("selector")),
    ]


def _cj_doc(field: str) -> str:
    return api_doc("batch.v1.CronJobSpec", field)


CRON_JOBS = Printer(
    (
        name_column(),
        Column("Schedule", description=_cj_doc("schedule")),
        Column("Timezone", description=_cj_doc("timeZone")),
        Column("Suspend", "boolean", _cj_doc("suspend")),
        Column("Active", "integer", api_doc("batch.v1.CronJobStatus", "active")),
        Column("Last Schedule", description=api_doc("batch.v1.CronJobStatus", "lastScheduleTime")),
        age_column(),
        wide("Containers", CONTAINERS_DOC),
        wide("Images", IMAGES_DOC),
        wide("Selector", api_doc("batch.v1.JobSpec", "selector")),
    ),
    _cron_job_row,
)
