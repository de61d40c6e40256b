"""The dependency-injector container: settings → redis client → operator → listener
container and scheduler. Applications subclass it to add their own providers::

    class AppContainer(StreambootContainer):
        inventory = providers.Singleton(InventoryService, client=StreambootContainer.redis)

A listener's ``handler`` names one of these providers, or an import path whose class
gets its constructor arguments from the providers of the same names.
"""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from dependency_injector import containers, providers

from .client import redis_client_resource, sync_redis_client_resource
from .config.models import AppSettings, SchedulerSettings
from .listener.container import ListenerContainer
from .operator import RedisOperator


def build_scheduler(settings: SchedulerSettings) -> AsyncIOScheduler:
    """Every job: one instance at a time, missed runs coalesced, misfires tolerated."""
    return AsyncIOScheduler(
        timezone=settings.timezone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(settings.misfire_grace_time.total_seconds()) or 1,
        },
    )


class StreambootContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=AppSettings)
    redis = providers.Resource(redis_client_resource, settings=settings.provided.redis)
    sync_redis = providers.Resource(sync_redis_client_resource, settings=settings.provided.redis)
    operator = providers.Singleton(RedisOperator, client=redis)
    listener_container = providers.Singleton(ListenerContainer, operator=operator,
                                             keeper_client=sync_redis)
    scheduler = providers.Singleton(build_scheduler, settings=settings.provided.scheduler)
