"""Start and stop a throwaway single-node SLURM cluster for tests.

Everything the cluster needs lives in one scratch folder: its own munge key,
munge socket, ``slurm.conf``, ``gres.conf``, state, spool and log files.  The
daemons (``munged``, ``slurmctld``, ``slurmd``) run in the foreground as
children of this process, on free TCP ports, so the cluster does not touch
``/etc/slurm``, ``/etc/munge`` or any cluster already running on the machine.

Client tools (``sbatch``, ``squeue``, ``scontrol``, ``sinfo``) find the cluster
through the ``SLURM_CONF`` environment variable; :attr:`SlurmCluster.env` holds
it, and :class:`SlurmCluster` also sets it in ``os.environ`` while the cluster
runs (``set_environ=True``, the default) so that Snakemake and the jobs it
submits with ``--export=ALL`` see it.

One piece is global: a symlink ``/etc/slurm/slurm.conf`` -> our
``slurm.conf`` while the cluster runs (``link_default_conf=True``, the
default; removed by :meth:`stop`).  snakemake-executor-plugin-slurm-jobstep
0.6.1 strips every ``SLURM_*`` variable except a few job ids from the
environment of the ``srun`` it runs inside each job, ``SLURM_CONF``
included, so that ``srun`` only finds a cluster through the default path.
Hence only one such cluster can run at a time on a machine, and none where a
real ``/etc/slurm/slurm.conf`` exists (start() refuses rather than replace it).

The node advertises a fake GPU (``Gres=gpu:1`` backed by ``/dev/null`` in
``gres.conf`` with ``AutoDetect=off``).  SLURM then accepts ``--gpus=1`` and
``--gres=gpu:1`` and runs such jobs with ``CUDA_VISIBLE_DEVICES=0``; nothing
checks that the device is a GPU.  Pass ``gpus=0`` for a node without GRES.

Needs root (slurmd runs jobs as the submitting user and munged reads a key
only its owner can read) and the Debian packages ``slurm-wlm`` and ``munge``
(see ``.ci/install-slurm.sh``).  No pytest dependency::

    from tests.slurm_cluster import SlurmCluster

    with SlurmCluster(tmp_path / "slurm") as cluster:
        subprocess.run(["sbatch", "--wrap", "true"], env=cluster.env, check=True)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["SlurmCluster", "SlurmClusterError", "slurm_available"]

_DAEMONS = ("munged", "slurmctld", "slurmd")
_CLIENTS = ("sbatch", "squeue", "scontrol", "sinfo", "scancel")
# Unix socket paths are limited to 108 bytes (sun_path) on Linux.
_MAX_SOCKET_PATH = 100
# Character devices present on every Linux machine, one per fake GPU.
_FAKE_GPU_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom")


class SlurmClusterError(RuntimeError):
    """The cluster could not be started (the message carries the daemon logs)."""


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/bin", "/sbin"):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def slurm_available() -> tuple[bool, str]:
    """Whether this machine can run :class:`SlurmCluster`, and why not."""
    if os.geteuid() != 0:
        return False, "needs root (slurmd and munged run as root here)"
    missing = [name for name in _DAEMONS + _CLIENTS if _which(name) is None]
    if missing:
        return False, (
            f"missing {', '.join(missing)}; run .ci/install-slurm.sh "
            "(Debian packages slurm-wlm and munge)"
        )
    return True, ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _total_memory_mb() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise SlurmClusterError("cannot read MemTotal from /proc/meminfo")


def _read_tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"<cannot read {path}: {error}>"
    return text[-limit:]


def _process_table() -> dict[int, int]:
    """Map every visible pid to its parent pid."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry)] = int(fields[1])
    return table


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return marker in handle.read().split(b"\0")
    except OSError:
        return False


class SlurmCluster:
    """A single-node SLURM cluster living in ``workdir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Parameters
    ----------
    workdir:
        Scratch folder for keys, configuration, state and logs (created).
    partition:
        Name of the single, default partition.
    cpus:
        CPUs the node advertises (default: ``os.cpu_count()``).
    real_memory_mb:
        Memory the node advertises (default: half the machine's memory).
        ``SlurmdParameters=config_overrides`` keeps the node usable even if
        this does not match the hardware.
    gpus:
        Number of fake GPUs (GRES ``gpu``) on the node; 0 for none.
    start_timeout:
        Seconds to wait for the node to become idle.
    set_environ:
        Export ``SLURM_CONF`` in ``os.environ`` while the cluster runs.
    link_default_conf:
        Symlink ``/etc/slurm/slurm.conf`` to our configuration while the
        cluster runs (needed for Snakemake jobs, see the module docstring).
    """

    default_conf = Path("/etc/slurm/slurm.conf")

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        partition: str = "debug",
        cpus: int | None = None,
        real_memory_mb: int | None = None,
        gpus: int = 1,
        start_timeout: float = 60.0,
        set_environ: bool = True,
        link_default_conf: bool = True,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.partition = partition
        self.cpus = cpus or os.cpu_count() or 1
        self.real_memory_mb = real_memory_mb or max(256, _total_memory_mb() // 2)
        self.gpus = gpus
        self.start_timeout = start_timeout
        self.set_environ = set_environ
        self.link_default_conf = link_default_conf
        self._linked_default_conf = False
        self.nodename = socket.gethostname().split(".")[0]
        self.conf_path = self.workdir / "slurm.conf"
        self.log_dir = self.workdir / "log"
        self._marker = f"PFAMI_TEST_SLURM_CLUSTER={uuid.uuid4().hex}"
        self._procs: dict[str, subprocess.Popen] = {}
        self._log_files: dict[str, object] = {}
        self._socket_dir: Path | None = None
        self._old_slurm_conf: str | None = None
        self._environ_set = False

    # ------------------------------------------------------------------ API

    @property
    def env(self) -> dict[str, str]:
        """Environment for client commands (``os.environ`` plus SLURM_CONF)."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf_path)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30):
        """Run a SLURM client command against this cluster, capture its output."""
        return subprocess.run(
            list(args),
            env=self.env,
            check=check,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def node_state(self) -> str:
        """State of the node as ``sinfo`` prints it (``idle``, ``mix``, ...)."""
        result = self.run("sinfo", "-h", "-N", "-o", "%t", check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def job_ids(self) -> list[str]:
        """Ids of all jobs the controller still knows (any state)."""
        result = self.run("squeue", "-h", "--states=all", "-o", "%i", check=False)
        return result.stdout.split() if result.returncode == 0 else []

    def logs(self) -> str:
        """The tail of every daemon log, for error messages."""
        parts = []
        for name in sorted(self.log_dir.glob("*.log")):
            parts.append(f"===== {name.name} =====\n{_read_tail(name)}")
        return "\n".join(parts)

    def __enter__(self) -> "SlurmCluster":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---------------------------------------------------------------- start

    def start(self) -> None:
        ok, why = slurm_available()
        if not ok:
            raise SlurmClusterError(f"cannot start a SLURM cluster: {why}")
        if self._procs:
            raise SlurmClusterError("cluster already started")
        try:
            self._write_files()
            if self.link_default_conf:
                self._link_default_conf()
            self._start_munge()
            self._start_daemon(
                "slurmctld", [_which("slurmctld"), "-D", "-f", str(self.conf_path)]
            )
            self._wait(self._controller_up, "slurmctld to answer 'scontrol ping'")
            self._start_daemon(
                "slurmd",
                [
                    _which("slurmd"),
                    "-D",
                    "-f",
                    str(self.conf_path),
                    "-N",
                    self.nodename,
                ],
            )
            self._wait(
                lambda: self.node_state() == "idle", "the node to be idle in sinfo"
            )
        except BaseException:
            self.stop()
            raise
        if self.set_environ:
            self._old_slurm_conf = os.environ.get("SLURM_CONF")
            os.environ["SLURM_CONF"] = str(self.conf_path)
            self._environ_set = True

    def _controller_up(self) -> bool:
        result = self.run("scontrol", "ping", check=False)
        return result.returncode == 0 and "UP" in result.stdout

    def _write_files(self) -> None:
        for sub in ("state", "spool", "log", "munge"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir / "munge", 0o700)

        key = self.workdir / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)

        socket_path = self.workdir / "munge" / "munge.socket"
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="munge-"))
            socket_path = self._socket_dir / "munge.socket"
        self.munge_socket = socket_path

        ctld_port, slurmd_port = _free_port(), _free_port()
        w = self.workdir
        lines = [
            "# Written by tests/slurm_cluster.py: a throwaway single-node cluster.",
            "ClusterName=pfamitest",
            f"SlurmctldHost={self.nodename}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={socket_path}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={w / 'state'}",
            f"SlurmdSpoolDir={w / 'spool'}",
            f"SlurmctldPidFile={w / 'slurmctld.pid'}",
            f"SlurmdPidFile={w / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.log_dir / 'slurmctld.log'}",
            f"SlurmdLogFile={self.log_dir / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            # Finished jobs stay visible to squeue this long; Snakemake's
            # squeue status command relies on it, and tests list a whole
            # run's jobs after it ends (a run can take minutes).
            "MinJobAge=3600",
            "KillWait=5",
            "InactiveLimit=0",
            "DefMemPerCPU=100",
        ]
        gres = ""
        if self.gpus:
            lines.append("GresTypes=gpu")
            gres = f" Gres=gpu:{self.gpus}"
        lines += [
            f"NodeName={self.nodename} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.real_memory_mb}{gres} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes=ALL Default=YES "
            "MaxTime=INFINITE State=UP",
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")

        # slurmd reads gres.conf from the folder of slurm.conf.  Fake GPUs:
        # no autodetection, and device files that exist on every machine
        # (slurmd refuses the same file for two GPUs).
        gres_conf = self.workdir / "gres.conf"
        if self.gpus:
            if self.gpus > len(_FAKE_GPU_FILES):
                raise SlurmClusterError(
                    f"at most {len(_FAKE_GPU_FILES)} fake GPUs, asked for {self.gpus}"
                )
            gres_lines = ["AutoDetect=off"]
            gres_lines += [
                f"NodeName={self.nodename} Name=gpu File={device}"
                for device in _FAKE_GPU_FILES[: self.gpus]
            ]
            gres_conf.write_text("\n".join(gres_lines) + "\n")
        elif gres_conf.exists():
            gres_conf.unlink()

    def _link_default_conf(self) -> None:
        link = self.default_conf
        if link.is_symlink() and not link.exists():
            link.unlink()  # left behind by a cluster that was not stopped
        if link.is_symlink() or link.exists():
            raise SlurmClusterError(
                f"{link} already exists (a real SLURM installation or another "
                "test cluster); not replacing it.  Pass link_default_conf=False "
                "if the jobs do not need srun."
            )
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(self.conf_path)
        self._linked_default_conf = True

    def _unlink_default_conf(self) -> None:
        if not self._linked_default_conf:
            return
        link = self.default_conf
        if link.is_symlink() and os.readlink(link) == str(self.conf_path):
            link.unlink()
        self._linked_default_conf = False

    def _daemon_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf_path)
        name, value = self._marker.split("=", 1)
        env[name] = value
        return env

    def _start_daemon(self, name: str, argv: list[str]) -> None:
        # Foreground daemons write to stderr as well as their log file; keep
        # that output next to the logs.
        log = open(self.log_dir / f"{name}.stderr.log", "ab")
        self._log_files[name] = log
        self._procs[name] = subprocess.Popen(
            argv,
            env=self._daemon_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        time.sleep(0.2)
        if self._procs[name].poll() is not None:
            raise SlurmClusterError(
                f"{name} exited at once with status {self._procs[name].returncode}\n"
                + self.logs()
            )

    def _start_munge(self) -> None:
        m = self.workdir / "munge"
        self._start_daemon(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={m / 'munge.key'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--seed-file={m / 'munged.seed'}",
                f"--log-file={self.log_dir / 'munged.log'}",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), "munged to create its socket")

    def _wait(self, condition, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise SlurmClusterError(
                        f"{name} died (status {proc.returncode}) while waiting "
                        f"for {what}\n" + self.logs()
                    )
            if condition():
                return
            time.sleep(0.5)
        raise SlurmClusterError(
            f"timed out after {self.start_timeout:.0f}s waiting for {what} "
            f"(sinfo node state: {self.node_state()!r})\n{self.logs()}"
        )

    # ----------------------------------------------------------------- stop

    def stop(self) -> None:
        """Cancel all jobs, stop the daemons, kill anything they left behind."""
        if self._environ_set:
            if self._old_slurm_conf is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = self._old_slurm_conf
            self._environ_set = False

        ctld = self._procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            self._cancel_all_jobs()

        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
        for log in self._log_files.values():
            log.close()
        self._log_files.clear()

        self._kill_leftovers()
        self._unlink_default_conf()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def _cancel_all_jobs(self) -> None:
        active = self.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
        if not active:
            return
        self.run("scancel", *active, check=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not self.run("squeue", "-h", "-o", "%i", check=False).stdout.split():
                return
            time.sleep(0.5)

    def _kill_leftovers(self) -> None:
        """SIGKILL processes started by our daemons (slurmstepd and below).

        slurmstepd inherits the daemons' environment, which carries a marker
        unique to this cluster; job processes are its descendants.
        """
        marker = self._marker.encode()
        for _ in range(3):
            table = _process_table()
            roots = {
                pid for pid in table if pid != os.getpid() and _has_marker(pid, marker)
            }
            if not roots:
                return
            doomed = set(roots)
            grew = True
            while grew:
                grew = False
                for pid, ppid in table.items():
                    if ppid in doomed and pid not in doomed:
                        doomed.add(pid)
                        grew = True
            for pid in doomed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
