"""``CeleryBackend``: batches leave the web process as Celery tasks, ``deliver_batch``.

See :mod:`django_kameleoon.backends.handoff` for the web side, :mod:`django_kameleoon.tasks` for
the task. The task is looked up once per process, and each message is published through the
app's producer pool (one broker connection, kept), without Celery's own publish retries: the
hand-off thread retries, with backoff, while the broker is down.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, cast

from django_kameleoon.backends.base import Counters
from django_kameleoon.backends.handoff import HandoffBackend, Payload, Publisher
from django_kameleoon.conf import Problem, Settings

__all__ = ["CeleryBackend"]


class CeleryPublisher(Publisher):
    """Publishes with Celery's own message builder and sender (``app.amqp``), as
    ``apply_async`` does, minus what costs on every call there: the task and its route are
    resolved once, one producer (one broker connection) is kept for this thread, its queue is
    bound to the producer's channel once (kombu otherwise copies and binds it for every message,
    ~0.1 ms, to see that it was declared already), and ``argsrepr`` says how many events a
    message holds instead of Celery writing out the events (visitor data) into the message's
    headers, where workers and monitors would log them.
    """

    def __init__(self, settings: Settings, counters: Counters, **options: Any) -> None:
        super().__init__(settings, counters, **options)
        from celery import current_app

        from django_kameleoon.tasks import CELERY_TASK_NAME

        self.app = current_app._get_current_object()
        self.name = self.app.tasks[CELERY_TASK_NAME].name
        route = {"queue": settings.CELERY_QUEUE} if settings.CELERY_QUEUE else {}
        self.route = self.app.amqp.router.route(route, self.name, None, None, None)
        self.producer: Any = None
        #: The route's queue, bound to the producer's channel; None: Celery's own choice.
        self.declare: list[Any] | None = None

    def publish(self, payload: Payload) -> None:
        from celery.utils import uuid

        amqp = self.app.amqp
        message = amqp.as_task_v2(
            uuid(),
            self.name,
            args=(payload,),
            argsrepr=f"<{len(payload)} events>",
            kwargsrepr="{}",
            ignore_result=True,
        )
        try:
            if self.producer is None:
                self._acquire()
            amqp.send_task_message(
                self.producer, self.name, message, retry=False, declare=self.declare, **self.route
            )
        except Exception:
            self._release()  # the pool reconnects it when it is next taken
            raise

    def _acquire(self) -> None:
        """Take a producer from the app's pool and bind the route's queue to its channel (which
        connects): Celery still declares the queue once per connection, as it would."""
        from kombu.common import Broadcast
        from kombu.entity import Queue

        self.producer = self.app.producer_pool.acquire(block=True)
        queue = self.route.get("queue")
        if isinstance(queue, Queue) and not isinstance(queue, Broadcast):
            self.declare = [cast(Any, queue).bind(self.producer.channel)]  # kombu: untyped

    def _release(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.release()  # back to the pool

    def close(self) -> None:
        self._release()
        super().close()


class CeleryBackend(HandoffBackend):
    delivery_class = CeleryPublisher

    @classmethod
    def setup_problems(cls, settings: Settings) -> list[Problem]:
        try:
            celery = importlib.import_module("celery")
        except ImportError:
            return [
                Problem(
                    "E064",
                    "KAMELEOON['BACKEND'] is the CeleryBackend, but Celery is not installed "
                    "(pip install 'django-kameleoon[celery]')",
                )
            ]
        app = celery.current_app._get_current_object()
        if app.main == "default" and not app.conf.broker_url:
            # Celery's fallback app: the site made none (or made it after this ran).
            return [
                Problem(
                    "E065",
                    "KAMELEOON['BACKEND'] is the CeleryBackend, but no Celery app is set up: "
                    "import your app in your project's __init__.py, as Celery's Django guide "
                    "shows",
                )
            ]
        queue = settings.CELERY_QUEUE
        if queue is not None and queue != app.conf.task_default_queue:
            declared = {q.name for q in app.conf.task_queues or ()}
            if queue not in declared:
                return [
                    Problem(
                        "W061",
                        f"KAMELEOON['CELERY_QUEUE'] {queue!r} is neither the Celery app's default "
                        "queue nor in its task_queues: only a worker started with "
                        f"-Q {queue} runs these tasks",
                    )
                ]
        return []
