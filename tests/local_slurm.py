"""A single-node SLURM cluster on localhost, for testing the SLURM profile for real.

Needs Debian's ``slurmctld slurmd slurm-client munge`` (``make slurm-deps``) and root, as
the daemons run as root without systemd. Everything the cluster writes (configuration,
state, spool, logs, pid files) lives in one folder, except a link to the configuration
at ``/etc/slurm/slurm.conf``, SLURM's default path: the executor plugin strips every
``SLURM_*`` variable (``SLURM_CONF`` too) inside its jobs, so ``srun`` there finds the
configuration only at the default path. An existing slurm.conf that is not ours is never
touched (the test is skipped instead). Accounting is off, so the executor plugin must
poll with ``squeue`` (``sacct`` fails without slurmdbd) and ``MinJobAge`` keeps finished
jobs visible to ``squeue`` for an hour.

Usage::

    with LocalSlurm(tmp_dir) as cluster:
        subprocess.run([...], env=cluster.env)

Run ``python tests/local_slurm.py DIR`` to start one by hand (Ctrl-C stops it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_SOCKET_DIR = Path("/run/munge")
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# brainpad local test cluster"


def missing_requirements() -> str | None:
    """Why a local cluster cannot start here, or None when it can."""
    absent = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if absent:
        return f"SLURM/munge not installed ({', '.join(absent)}); run `make slurm-deps` as root"
    if os.geteuid() != 0:
        return "the local SLURM daemons must be started as root"
    if DEFAULT_CONF.exists() and not _ours(DEFAULT_CONF):
        return f"{DEFAULT_CONF} belongs to another SLURM set-up; not replacing it"
    return None


def _ours(path: Path) -> bool:
    try:
        return path.read_text().startswith(MARKER)
    except OSError:
        return path.is_symlink()  # a dangling link left by a killed test run


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_resources() -> tuple[int, int]:
    """(CPUs, memory in MB) of this machine as slurmd sees them, memory minus 10 %."""
    fields = dict(
        item.split("=", 1)
        for item in subprocess.run(
            [_binary("slurmd"), "-C"], capture_output=True, text=True, check=True
        ).stdout.split()
        if "=" in item
    )
    return int(fields["CPUs"]), int(int(fields["RealMemory"]) * 0.9)


class LocalSlurm:
    """Start ``munged`` (if needed), ``slurmctld`` and ``slurmd`` for one local node."""

    def __init__(self, root: str | Path, partition: str = "debug") -> None:
        self.root = Path(root)
        self.partition = partition
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._munged = False

    def write_config(self) -> None:
        cpus, memory = node_resources()
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        ctld, slurmd = _free_port(), _free_port()
        lines = [
            MARKER,
            "ClusterName=brainpad-test",
            f"SlurmctldHost={self.node}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=3600",
            "SchedulerParameters=sched_interval=1",
            f"SlurmctldPort={ctld}",
            f"SlurmdPort={slurmd}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            f"NodeName={self.node} CPUs={cpus} RealMemory={memory} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE"
            " State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.unlink(missing_ok=True)
        DEFAULT_CONF.symlink_to(self.conf)

    def _start_munge(self) -> None:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
            return
        if not MUNGE_KEY.is_file():
            subprocess.run(["mungekey", "--create"], check=True)
            shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_SOCKET_DIR.mkdir(parents=True, exist_ok=True)
        shutil.chown(MUNGE_SOCKET_DIR, "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _binary("munged")], check=True)
        self._munged = True

    @staticmethod
    def stop_stale() -> None:
        """Stop daemons a killed test run left behind (those started with our config)."""
        for daemon in ("slurmd", "slurmctld"):
            found = subprocess.run(["pgrep", "-x", daemon], capture_output=True, text=True)
            for pid in found.stdout.split():
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                confs = [e[len(b"SLURM_CONF=") :] for e in environ if e.startswith(b"SLURM_CONF=")]
                conf = Path(confs[0].decode()) if confs else None
                if conf and (not conf.exists() or conf.read_text().startswith(MARKER)):
                    os.kill(int(pid), signal.SIGTERM)

    def start(self, timeout: float = 60.0) -> LocalSlurm:
        """Start the daemons and wait until the node is idle."""
        self.stop_stale()
        self.write_config()
        self._start_munge()
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([_binary(daemon)], env=self.env, check=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True
            ).stdout.strip()
            if state == "idle":
                return self
            time.sleep(1)
        self.stop()
        msg = (
            f"the local SLURM node did not become idle in {timeout:.0f} s; logs in {self.root}/log"
        )
        raise RuntimeError(msg)

    def stop(self) -> None:
        """Stop the daemons by the PIDs in their pid files."""
        for daemon in ("slurmd", "slurmctld"):
            pid_file = self.root / f"{daemon}.pid"
            if pid_file.is_file():
                try:
                    os.kill(int(pid_file.read_text()), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(1)
        if DEFAULT_CONF.is_symlink() and DEFAULT_CONF.resolve() == self.conf.resolve():
            DEFAULT_CONF.unlink()

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    import sys

    reason = missing_requirements()
    if reason:
        sys.exit(reason)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the daemons on TERM too
    with LocalSlurm(sys.argv[1] if len(sys.argv) > 1 else "/tmp/brainpad-slurm") as cluster:
        print(f"export SLURM_CONF={cluster.conf}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
