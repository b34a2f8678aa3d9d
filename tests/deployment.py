"""A real Flower deployment on loopback: flower-superlink, flower-supernode and `flwr run`
as separate processes, each in its own process group, all killed (with every descendant)
when the test ends. Flower's CLI reads its SuperLink connections from a temporary FLWR_HOME.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fgrpo.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # flower-superlink, flower-supernode, flwr of this environment
FEDERATION = "loopback"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pem(key: ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def make_tls(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it (what `openssl` would
    make)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP384R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fgrpo test CA")])

    def certificate(
        subject: x509.Name, key: ec.EllipticCurvePrivateKey, is_ca: bool
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        )

    ca = certificate(ca_name, ca_key, True).sign(ca_key, hashes.SHA256())
    server = (
        certificate(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), server_key, False
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": folder / "ca.crt", "cert": folder / "server.pem", "key": folder / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(_pem(server_key, serialization.PrivateFormat.PKCS8))
    return files


def make_node_key(folder: Path, name: str) -> tuple[Path, Path]:
    """A SuperNode's P-384 key pair in OpenSSH format (what `ssh-keygen -t ecdsa -b 384` makes)."""
    key = ec.generate_private_key(ec.SECP384R1())
    private, public = folder / name, folder / f"{name}.pub"
    private.write_bytes(_pem(key, serialization.PrivateFormat.OpenSSH))
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    return private, public


class Deployment:
    """One SuperLink and its SuperNodes; ``close()`` leaves no process behind."""

    def __init__(self, folder: Path, tls: dict[str, Path] | None = None) -> None:
        self.folder, self.tls = folder, tls
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        home = folder / "flwr-home"  # never the user's ~/.flwr
        home.mkdir()
        connection = f'root-certificates = "{tls["ca"]}"' if tls else "insecure = true"
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{FEDERATION}"\n\n[superlink.{FEDERATION}]\n'
            f'address = "127.0.0.1:{self.port}"\n{connection}\n'
        )
        self.env = {
            **os.environ,
            "FLWR_HOME": str(home),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "PYTHONPATH": str(ROOT / "src"),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def _start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.folder,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def _security(self, server: bool) -> list[str]:
        if not self.tls:
            return ["--insecure"]
        if server:
            return [
                "--ssl-ca-certfile",
                str(self.tls["ca"]),
                "--ssl-certfile",
                str(self.tls["cert"]),
                "--ssl-keyfile",
                str(self.tls["key"]),
            ]
        return ["--root-certificates", str(self.tls["ca"])]

    def start_superlink(self, *extra: str, timeout: float = 60) -> None:
        self._start(
            "superlink",
            [
                str(BIN / "flower-superlink"),
                *self._security(True),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--disable-runtime-dependency-installation",
                *extra,
            ],
        )
        deadline = time.monotonic() + timeout
        while "Uvicorn running" not in self.log("superlink"):
            assert self.procs["superlink"].poll() is None, self.log("superlink")[-3000:]
            assert time.monotonic() < deadline, (
                "SuperLink did not start:\n" + self.log("superlink")[-3000:]
            )
            time.sleep(0.2)

    def start_supernode(
        self, name: str, node_config: dict[str, str], *extra: str
    ) -> subprocess.Popen:
        config = " ".join(f"{k}={json.dumps(v)}" for k, v in node_config.items())
        return self._start(
            name,
            [
                str(BIN / "flower-supernode"),
                *self._security(False),
                "--superlink",
                f"127.0.0.1:{self.port}",
                "--port",
                str(free_port()),
                "--node-config",
                config,
                "--max-retries",
                "3",
                *extra,
            ],
        )

    def wait_for_nodes(self, n: int, timeout: float = 90) -> None:
        """Until the SuperLink has activated ``n`` SuperNodes (so round 1 samples them all)."""
        deadline = time.monotonic() + timeout
        while self.log("superlink").count("Activated node_id=") < n:
            assert time.monotonic() < deadline, (
                f"{n} SuperNodes did not connect:\n" + self.log("superlink")[-3000:]
            )
            time.sleep(0.2)

    def flwr(self, *args: str, timeout: float = 120, name: str = "") -> subprocess.CompletedProcess:
        """One `flwr` CLI command against this SuperLink, killed (with its children) on timeout."""
        name = name or f"flwr-{len(self.procs)}"
        proc = self.start_flwr(name, *args)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
        return subprocess.CompletedProcess(proc.args, proc.returncode, self.log(name), "")

    def start_flwr(self, name: str, *args: str) -> subprocess.Popen:
        return self._start(name, [str(BIN / "flwr"), *args])

    def run_args(self, app_config: dict[str, object]) -> list[str]:
        """`flwr run` arguments: this app on this federation, ``app_config`` as run-config
        overrides."""
        overrides = self.folder / "run_config.toml"
        overrides.write_text(
            "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in app_config.items())
        )
        return ["run", str(ROOT), FEDERATION, "--run-config", str(overrides), "--stream"]

    def run(
        self, app_config: dict[str, object], timeout: float = 600
    ) -> subprocess.CompletedProcess:
        return self.flwr(*self.run_args(app_config), timeout=timeout, name="run")

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL the process, its group and every descendant (Flower's SuperExec starts its own
        session)."""
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        psutil.wait_procs(family, timeout=10)
        proc.wait(timeout=10)

    def close(self) -> None:
        for proc in reversed(list(self.procs.values())):
            self.kill(proc)

    def leftovers(self) -> list[str]:
        return processes_of_flwr_home(self.env["FLWR_HOME"])


def processes_of_flwr_home(home: str) -> list[str]:
    """Processes still running with ``home`` as FLWR_HOME in their environment."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get("FLWR_HOME") == home and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(" ".join(proc.info["cmdline"] or []))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


# As small as a real round gets: random tiny model, one local step of one prompt x 4 completions.
FAST = {
    "model.name": "tiny-random",
    "federation.num_clients": 2,
    "federation.min_clients": 2,
    "federation.rounds": 2,
    "federation.local_steps": 1,
    "strategy.name": "fedavg",
    "data.tasks": "addition",
    "data.train_size": 16,
    "data.test_size": 2,
    "eval.every": 0,
    "eval.max_new_tokens": 8,
    "grpo.per_device_train_batch_size": 4,
    "grpo.num_generations": 4,
    "grpo.max_completion_length": 8,
}


def owner_source(
    folder: Path, columns: tuple[str, str], gold: str, reward: float, rows: int = 4
) -> Path:
    """An owner's folder as the README shows it: its file with its own columns and answer format,
    its reward module (every completion scores ``reward``: the run's metrics show whose function
    scored it), and the data-config file naming both relative to itself."""
    folder.mkdir()
    prompt, answer = columns
    problems = get_task("addition").generate(rows, len(gold), share="train", unique=True)
    (folder / "rows.jsonl").write_text(
        "".join(
            json.dumps({prompt: p["prompt"][-1]["content"], answer: gold.format(p["answer"])})
            + "\n"
            for p in problems
        )
    )
    (folder / "scoring.py").write_text(
        f"def score(completions, gold, **kwargs):\n    return [{reward}] * len(completions)\n"
    )
    (folder / "source.toml").write_text(
        f'[source]\nname = "addition"\npath = "rows.jsonl"\nprompt_column = "{prompt}"\nanswer_column = "{answer}"\n'
        f'answer_format = "{"gsm8k" if "####" in gold else "plain"}"\nchecker = "exact"\n'
        'rewards = ["scoring.py:score"]\n'
    )
    return folder / "source.toml"


def rounds(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
