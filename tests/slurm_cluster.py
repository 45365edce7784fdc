"""A single-node SLURM cluster on this machine, for the tests: cpu and gpu partitions.

Debian's slurm-wlm and munge are installed through apt when missing (CI runs as root).
The daemons run in the foreground as children of the test process, so they are stopped
by PID at the end; only munged, which always daemonises, is stopped through its pid file.
The config lives in a temporary directory; ``/etc/slurm/slurm.conf`` and ``gres.conf`` are
symlinks to it, because the executor plugin's job step clears ``SLURM_CONF`` before ``srun``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SLURM_PACKAGES = ("slurm-wlm", "munge")
ETC_SLURM = Path("/etc/slurm")
MARKER = "# gensynth test cluster"


class Unavailable(Exception):
    """The cluster cannot run here; the message says why (the test is skipped with it)."""


def run(*cmd: str, check: bool = True, timeout: int = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout, **kwargs)


def ensure_installed() -> None:
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0:
        raise Unavailable("slurm-wlm/munge are not installed and installing them needs root")
    if not shutil.which("apt-get"):
        raise Unavailable("slurm-wlm/munge are not installed and there is no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run("apt-get", "update", "-q", timeout=600, env=env)
        run("apt-get", "install", "-y", "-q", "--no-install-recommends", *SLURM_PACKAGES, timeout=900, env=env)
    except subprocess.CalledProcessError as exc:
        raise Unavailable(f"apt-get could not install {' '.join(SLURM_PACKAGES)}: {exc.stderr[-500:]}") from None


def munge_works() -> bool:
    if not shutil.which("munge"):
        return False
    encoded = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
    if encoded.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=encoded.stdout, capture_output=True, timeout=10).returncode == 0


def memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 1024  # leave 1 GiB to the system
    raise Unavailable("cannot read MemTotal from /proc/meminfo")


class Cluster:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.host = socket.gethostname().split(".")[0]
        self.daemons: list[subprocess.Popen] = []
        self.munge_pidfile: Path | None = None
        self.links: list[Path] = []

    # -- set-up -----------------------------------------------------------------------
    def write_config(self) -> None:
        for sub in ("state", "spool", "log", "dev"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for index in range(2):  # stand-ins for /dev/nvidia0-1: character devices (same numbers as /dev/null)
            node = self.dir / "dev" / f"nvidia{index}"
            if not node.exists():
                os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))
        d = self.dir
        (d / "slurm.conf").write_text(
            f"""{MARKER}
ClusterName=gensynth-test
SlurmctldHost={self.host}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
GresTypes=gpu
MinJobAge=600
ReturnToService=2
NodeName={self.host} CPUs={os.cpu_count()} RealMemory={memory_mb()} Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={self.host} MaxTime=INFINITE State=UP
"""
        )
        (d / "gres.conf").write_text(f"{MARKER}\nAutoDetect=off\nName=gpu File={d}/dev/nvidia[0-1]\n")
        ETC_SLURM.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "gres.conf"):
            link = ETC_SLURM / name
            if link.is_symlink() or link.exists():
                if MARKER not in link.read_text(errors="replace").splitlines()[0:1]:
                    raise Unavailable(f"{link} exists and is not this test's: refusing to replace a real SLURM config")
                link.unlink()
            link.symlink_to(d / name)
            self.links.append(link)

    def start_munge(self) -> None:
        if munge_works():
            return  # a munged is already serving; it is not ours to stop
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            run("mungekey", "-c", "-f", "-k", str(key))
            shutil.chown(key, "munge", "munge")
            key.chmod(0o400)
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "munge", "munge")
        self.munge_pidfile = run_dir / "munged.pid"
        run("runuser", "-u", "munge", "--", "munged", "--force")
        wait_for(munge_works, 20, "munged to answer")

    def start_daemon(self, *cmd: str) -> None:
        with open(self.dir / "log" / f"{cmd[0]}.out", "w") as log:  # the daemon keeps its own descriptor
            self.daemons.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def node_state(self) -> str:
        result = run("sinfo", "-h", "-N", "-n", self.host, "-o", "%T", check=False)
        return result.stdout.strip().split("\n")[0] if result.returncode == 0 else ""

    def start(self) -> None:
        self.write_config()
        self.start_munge()
        self.start_daemon("slurmctld", "-D", "-i")
        wait_for(lambda: run("scontrol", "ping", check=False).stdout.count("UP") > 0, 30, "slurmctld to answer")
        self.start_daemon("slurmd", "-D")

        def node_ready() -> bool:
            state = self.node_state()
            if "drain" in state:  # registered earlier with other gres: let it back in
                run("scontrol", "update", f"nodename={self.host}", "state=resume", check=False)
            return state.startswith("idle") or state.startswith("mix")

        wait_for(node_ready, 60, "the node to become idle", self.logs)

    # -- tear-down ----------------------------------------------------------------------
    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            with contextlib.suppress(ProcessLookupError):
                daemon.terminate()
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(timeout=10)
        if self.munge_pidfile and self.munge_pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(self.munge_pidfile.read_text().strip()), signal.SIGTERM)
        for link in self.links:
            link.unlink(missing_ok=True)

    def logs(self) -> str:
        parts = []
        for path in sorted((self.dir / "log").glob("*")):
            parts.append(f"== {path.name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)

    def job_fields(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s KEY=VALUE fields (Partition, MinMemoryNode, TimeLimit, ...)."""
        out = run("scontrol", "show", "job", job_id).stdout
        return dict(field.split("=", 1) for field in out.split() if "=" in field)


def wait_for(condition, seconds: float, what: str, details=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {seconds} s waiting for {what}\n{details()}")


@contextlib.contextmanager
def slurm_cluster(workdir: Path):
    """Install (when missing), start, yield and stop a one-node cluster; Unavailable if it cannot run."""
    if os.geteuid() != 0:
        raise Unavailable("the SLURM test cluster needs root (slurmd, munged and /etc/slurm)")
    ensure_installed()
    cluster = Cluster(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
