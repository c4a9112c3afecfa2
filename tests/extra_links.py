"""Extra links of a DAG run's tasks as Airflow's api-server resolves them: from the serialized DAG (which
keeps only each link's name and XCom key), through the XCom the worker pushed when the task finished."""

from __future__ import annotations

from airflow.serialization.serialized_objects import DagSerialization


def served_extra_links(dag, run) -> dict[str, dict[str, str | None]]:
    """task id -> link name -> URL (None: no URL recorded) of `run` (a finished run of `dag`)."""
    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    links = {}
    for ti in run.get_task_instances():
        task = served.get_task(ti.task_id)
        links[ti.task_id] = {name: task.get_extra_links(ti, name) or None for name in task.extra_links}
    return links
