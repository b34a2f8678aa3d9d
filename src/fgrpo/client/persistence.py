"""A client's own state (Flower ``context.state``) on disk, so it survives a server restart.

What lives there: SCAFFOLD's c_i, local-only's adapter, FGRPO's client-side baselines, the
client's round counter. A resumed run is a new Flower run, so ``context.state`` starts empty;
the client reloads it from the file it saved after its last round.

Where: ``<state-dir>/<run id>/<client id>/`` when the node config names a ``state-dir``
(deployment: a path on the data owner's machine), else ``<run dir>/clients/<client id>/`` when
the server names one (``fgrpo run``, simulation on one machine), else nowhere.

Which file: ``round-<r>.session-<s>.state`` is the state after round r in server session s (a
session ends in a crash and the next one resumes from the checkpoint). The server tells each
round the last checkpointed round of every earlier session; a file from after that round
belongs to rounds the resumed run redid, so it is stale. The client loads the newest valid
file from before the current round, and after saving keeps only that file and the new one.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from flwr.app import RecordDict
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

from fgrpo.core.protocol import STATE_DIR_NODE_KEY

FILE_PATTERN = re.compile(r"round-(\d+)\.session-(\d+)\.state")


class StateStore:
    """One client's saved states in one directory."""

    def __init__(self, directory: Path, sessions: list[int]) -> None:
        self.directory, self.sessions = directory, sessions

    def _files(self) -> list[tuple[int, int, Path]]:
        if not self.directory.is_dir():
            return []
        found = (FILE_PATTERN.fullmatch(p.name) for p in self.directory.iterdir())
        return [(int(m[1]), int(m[2]), self.directory / m[0]) for m in found if m]

    def _valid(self, rnd: int, session: int) -> bool:
        if session == len(self.sessions):  # the current session
            return True
        return session < len(self.sessions) and rnd <= self.sessions[session]

    def latest_before(self, server_round: int) -> Path | None:
        valid = [(r, p) for r, s, p in self._files() if r < server_round and self._valid(r, s)]
        return max(valid)[1] if valid else None

    def restore(self, state: RecordDict, server_round: int) -> None:
        """Fill an empty ``state`` from the newest valid file from before ``server_round``."""
        path = self.latest_before(server_round)
        if path is None or len(state):
            return
        saved = recorddict_from_proto(ProtoRecordDict.FromString(path.read_bytes()))
        for key, record in saved.items():
            state[key] = record

    def save(self, state: RecordDict, server_round: int) -> None:
        if not len(state):
            return
        keep = {self.latest_before(server_round)}
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"round-{server_round}.session-{len(self.sessions)}.state"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(recorddict_to_proto(state).SerializeToString())
        os.replace(tmp, path)  # a crash mid-write leaves no half file under a valid name
        for _, _, old in self._files():
            if old != path and old not in keep:
                old.unlink()


def state_store(
    request: str | None, node_config: dict[str, Any], client_id: str
) -> StateStore | None:
    """Where this client keeps its state for the run the server describes in ``request``."""
    if not request:
        return None
    info = json.loads(request)
    if STATE_DIR_NODE_KEY in node_config:
        root = Path(str(node_config[STATE_DIR_NODE_KEY])) / str(info["run"])
    elif info.get("dir"):
        root = Path(info["dir"])
    else:
        return None
    return StateStore(root / client_id, [int(r) for r in info["sessions"]])
