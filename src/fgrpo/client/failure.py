"""A client that fails says who it is.

Flower turns an exception in a ClientApp into an error reply that names neither the
client nor, for a lost node, even the node. So the train function's exceptions are
caught here, logged on the client (the traceback at DEBUG), and answered with a reply
holding only the client's id and the error (``client`` ConfigRecord: ``client-id``,
``error``); the server's screening records it under node and client id.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from logging import DEBUG, ERROR

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.supercore import log

from fgrpo.core.protocol import CLIENT_ERROR_KEY

TrainFn = Callable[[Message, Context], Message]


def reports_failure(client_id_of: Callable[[Context], str]) -> Callable[[TrainFn], TrainFn]:
    def wrap(train: TrainFn) -> TrainFn:
        @functools.wraps(train)
        def guarded(msg: Message, context: Context) -> Message:
            try:
                return train(msg, context)
            except Exception as err:  # noqa: BLE001 - reported to the server, never swallowed
                client_id, error = client_id_of(context), f"{type(err).__name__}: {err}"
                log(ERROR, "client %s failed: %s", client_id, error)
                log(DEBUG, "%s", traceback.format_exc())
                return Message(
                    RecordDict(
                        {"client": ConfigRecord({"client-id": client_id, CLIENT_ERROR_KEY: error})}
                    ),
                    reply_to=msg,
                )

        return guarded

    return wrap
