"""Leave an instance as the landing sensor would after a tick: its observations and cursor.

The demo ingests the landing folder by itself; without this, the sensor's first tick in the UI
would find every file new and request the whole history again. The sensor's own evaluation
computes what to record, so its cursor format stays its own.
"""

import time

import dagster as dg

# The instigator state's types have no public constructor; Dagster finds a sensor's state by
# its selector (code location, repository, sensor name), which is what is stored here.
from dagster._core.definitions.sensor_definition import SensorType
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

LOCATION = "qlib_assets"  # workspace.yaml's location_name
MODULE = "qlib_assets.definitions"
REPOSITORY = "__repository__"


def _origin(sensor: str) -> RemoteInstigatorOrigin:
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=MODULE), location_name=LOCATION
    )
    return RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, REPOSITORY), sensor)


def stored_cursor(instance: dg.DagsterInstance, sensor: str) -> str | None:
    origin = _origin(sensor)
    state = instance.get_instigator_state(origin.get_id(), origin.get_selector().get_id())
    data = state.instigator_data if state else None
    return data.cursor if isinstance(data, SensorInstigatorData) else None


def record_sensor_tick(
    instance: dg.DagsterInstance, defs: dg.Definitions, sensor: str = "landing_sensor"
) -> dg.SensorResult:
    """Evaluate ``sensor`` once from its stored cursor; store its asset events and new cursor
    without launching its run requests (the caller has materialized what they ask for)."""
    definition = defs.resolve_sensor_def(sensor)
    context = dg.build_sensor_context(
        instance=instance, cursor=stored_cursor(instance, sensor), definitions=defs
    )
    result = definition(context)
    if not isinstance(result, dg.SensorResult):
        raise TypeError(f"{sensor} returned {type(result).__name__}, not a SensorResult")
    for event in result.asset_events or []:
        instance.report_runless_asset_event(event)
    origin = _origin(sensor)
    now = time.time()
    data = SensorInstigatorData(
        last_tick_timestamp=now,
        min_interval=definition.minimum_interval_seconds,
        cursor=result.cursor,
        last_sensor_start_timestamp=now,
        sensor_type=SensorType.STANDARD,
    )
    existing = instance.get_instigator_state(origin.get_id(), origin.get_selector().get_id())
    if existing is None:
        instance.add_instigator_state(
            InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE, data)
        )
    else:
        instance.update_instigator_state(existing.with_data(data))
    return result
