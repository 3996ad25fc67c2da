"""Resource accounting of asset steps: ``metered`` wraps an asset body.

The body runs inside :func:`qlib_assets.operations.accounting.measure`; the figures are added
to every materialization's metadata and appended to the ``resource_usage`` table. The wrapper
asks Dagster for the ``operations_store`` resource by adding a parameter to the signature
Dagster reads, so the body itself stays as it is. ``DailyAssets.asset`` applies it to every
daily asset; assets outside that helper apply it as a decorator under ``@dg.asset``.
"""

import functools
import inspect
import socket
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from qlib_assets.operations.accounting import ResourceUsage, measure
from qlib_assets.operations.store import OperationsStore, StepIdentity

KIND_TAG = "qlib_assets/kind"
STORE_PARAM = "operations_store"


class OperationsStoreResource(dg.ConfigurableResource):
    """Where step measurements (and budget holds) are recorded."""

    url: str

    def store(self) -> OperationsStore:
        return OperationsStore(self.url)


def run_kind(tags: dict[str, str]) -> str | None:
    """The run's kind tag; a run launched by a backfill is a backfill unless tagged otherwise."""
    if KIND_TAG in tags:
        return tags[KIND_TAG]
    return "backfill" if "dagster/backfill" in tags else None


def step_identity(context: dg.AssetExecutionContext) -> StepIdentity:
    spec = next(iter(context.assets_def.specs))
    partitions: tuple[str, ...] = ()
    if context.has_partition_key_range:
        partitions = tuple(context.partition_keys)
    elif context.has_partition_key:
        partitions = (context.partition_key,)
    return StepIdentity(
        run_id=context.run_id,
        step_key=context.get_step_execution_context().step.key,
        asset=context.asset_key.to_user_string(),
        partitions=partitions,
        spec=spec.tags.get("spec"),
        host=socket.gethostname(),
        run_kind=run_kind(dict(context.run.tags)),
    )


def _with_usage(event: Any, usage: ResourceUsage) -> Any:
    if isinstance(event, dg.MaterializeResult):
        return event._replace(metadata={**(event.metadata or {}), **usage.as_metadata()})
    return event


def metered(body: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    """Measure the asset body; its events are emitted once it is done, with the figures."""

    @functools.wraps(body)
    def wrapper(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator[Any]:
        resource: OperationsStoreResource = kwargs.pop(STORE_PARAM)
        usage = ResourceUsage()
        try:
            with measure() as usage:
                out = body(context, *args, **kwargs)
                events = list(out) if inspect.isgenerator(out) else [out]
        finally:
            # A failed step cost as much as it ran: it is recorded too.
            resource.store().record_usage(step_identity(context), usage)
        for event in events:
            yield _with_usage(event, usage)

    signature = inspect.signature(body)
    extra = inspect.Parameter(
        STORE_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=OperationsStoreResource
    )
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), extra]
    )
    return wrapper
